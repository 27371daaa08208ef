"""History in the TUI: past comparisons and chats, searchable; open one to see its panes,
re-run it with the same or other targets, or export it as Markdown, JSON or CSV."""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING, cast

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, Vertical, VerticalScroll
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Input, Label, Markdown, Static

from providers.base import Message
from providers.registry import Target, TargetError, parse_target
from workbench.commands.models import list_everything
from workbench.export import ExportFormat, write_stored
from workbench.history import Comparison, ComparisonSummary, list_comparisons, load_comparison
from workbench.sanitize import clean, clean_line
from workbench.tui.screens.picker import ModelPicker
from workbench.tui.widgets.pane import metrics_line

if TYPE_CHECKING:
    from workbench.tui.app import WorkbenchApp

PROMPT_CHARS = 44
TARGETS_CHARS = 30
MIN_PANE_WIDTH = 40
_STATUS_MARK = {"done": "✓", "failed": "✗", "cancelled": "⊘"}
_ACTIONS = [
    Binding("r", "rerun", "Re-run"),
    Binding("o", "rerun_other", "Re-run with…"),
    Binding("m", "export('md')", "Markdown"),
    Binding("j", "export('json')", "JSON"),
    Binding("c", "export('csv')", "CSV"),
]


class _ComparisonActions(Screen[None]):
    """Re-run and export, the same on the list and in the opened comparison."""

    @property
    def workbench(self) -> WorkbenchApp:
        return cast("WorkbenchApp", self.app)

    def selected(self) -> Comparison | None:
        raise NotImplementedError

    def action_export(self, kind: ExportFormat) -> None:
        comparison = self._chosen("export")
        if comparison is None:
            return
        try:
            path = write_stored(comparison, kind)
        except OSError as exc:
            self.notify(f"Export failed: {exc}", severity="error")
            return
        self.notify(f"Exported to {path}")

    def _chosen(self, doing: str) -> Comparison | None:
        comparison = self.selected()
        if comparison is None:
            self.notify(f"Nothing to {doing}: pick a comparison", severity="warning")
        return comparison

    def action_rerun(self) -> None:
        comparison = self._chosen("re-run")
        if comparison is None:
            return
        try:
            targets = [parse_target(spec) for spec in comparison.targets]
        except TargetError as exc:
            self.notify(str(exc), severity="error")
            return
        # Each target goes on with its own conversation: one whose earlier turn failed
        # was never given the answers the others got.
        self._replay(comparison, targets, [pane.history for pane in comparison.panes])

    @work(exclusive=True, group="history-pick")
    async def action_rerun_other(self) -> None:
        comparison = self._chosen("re-run")
        if comparison is None:
            return
        app = self.workbench
        listings = await app.engine.run(list_everything(app.registry))
        chosen: list[str] = []
        while True:
            title = (
                f"Re-run with {', '.join(chosen)} and… (Esc to start)"
                if chosen
                else "Re-run with… (pick one or more, Esc when done)"
            )
            picker = ModelPicker(listings, app.memory_probe(), title, app.settings.embedded_context)
            choice = await app.push_screen_wait(picker)
            if not choice:
                break
            if choice not in chosen:
                chosen.append(choice)
        if not chosen:
            self.notify("No model chosen: nothing re-run")
            return
        # New targets had no conversation of their own: each is given the fullest one.
        histories = [comparison.history] * len(chosen)
        self._replay(comparison, [parse_target(spec) for spec in chosen], histories)

    def _replay(
        self, comparison: Comparison, targets: list[Target], histories: list[list[Message]]
    ) -> None:
        self.workbench.replay(
            list(zip(targets, histories, strict=True)),
            comparison.prompt,
            private=comparison.private,
        )


class HistoryScreen(_ComparisonActions):
    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back"),
        *_ACTIONS,
        Binding("slash", "search", "Search"),
        Binding("down", "focus_list", show=False),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.summaries: list[ComparisonSummary] = []

    def compose(self) -> ComposeResult:
        with Vertical(id="history"):
            yield Label("History — past comparisons and chats", classes="section")
            yield Input(placeholder="search prompts and answers", id="history-search")
            yield DataTable(id="history-list", cursor_type="row", zebra_stripes=True)
            yield Static(id="history-status")
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one("#history-list", DataTable)
        table.add_columns("when", "from", "status", "prompt", "targets")
        self.refresh_list()
        table.focus()

    def on_screen_resume(self) -> None:
        self.refresh_list()  # a re-run or a new chat may have added rows

    def refresh_list(self) -> None:
        search = self.query_one("#history-search", Input).value
        table = self.query_one("#history-list", DataTable)
        row = table.cursor_row
        was = self.summaries[row].batch if 0 <= row < len(self.summaries) else None
        self.summaries = list_comparisons(self.workbench.store, search)
        table.clear()
        for s in self.summaries:
            table.add_row(*_row(s), key=s.batch)
        batches = [s.batch for s in self.summaries]
        if was in batches:  # stay on the row the user was on
            table.move_cursor(row=batches.index(was), animate=False)
        count = len(self.summaries)
        if count:
            status = f"{count} comparison{'s' if count != 1 else ''}"
        elif search:
            status = "No matches"
        else:
            status = "Nothing yet: ask something on the main screen"
        help_ = "Enter open · Esc back"  # the footer has the rest
        self.query_one("#history-status", Static).update(Text(f"{status} · {help_}", "dim"))

    @on(Input.Changed, "#history-search")
    def searched(self) -> None:
        self.refresh_list()

    @on(Input.Submitted, "#history-search")
    def action_focus_list(self) -> None:
        self.query_one("#history-list", DataTable).focus()

    def action_search(self) -> None:
        self.query_one("#history-search", Input).focus()

    def selected(self) -> Comparison | None:
        table = self.query_one("#history-list", DataTable)
        if not self.summaries or not 0 <= table.cursor_row < len(self.summaries):
            return None
        return load_comparison(self.workbench.store, self.summaries[table.cursor_row].batch)

    @on(DataTable.RowSelected, "#history-list")
    def open_row(self) -> None:
        comparison = self.selected()
        if comparison is not None:
            self.app.push_screen(ComparisonView(comparison))


class ComparisonView(_ComparisonActions):
    """One stored comparison, read-only: every target's conversation, answer and figures."""

    BINDINGS = [Binding("escape", "app.pop_screen", "Back"), *_ACTIONS]

    def __init__(self, comparison: Comparison) -> None:
        super().__init__()
        self.comparison = comparison

    def compose(self) -> ComposeResult:
        c = self.comparison
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(c.created_at))
        turn = max((sum(m.role == "user" for m in p.sent) for p in c.panes), default=1)
        title = Text(f"{when} · {c.origin}" + (f" · turn {turn}" if turn > 1 else ""), "bold")
        title.append(f" · {len(c.panes)} target{'s' if len(c.panes) != 1 else ''}", "dim")
        yield Static(title, id="title")
        with Grid(id="history-panes"):
            for pane in c.panes:
                with Vertical(classes="pane"):
                    r = pane.result
                    header = Text(clean_line(r.name), style="bold")
                    header.append(f" · {r.status}", style="green" if r.status == "done" else "red")
                    yield Static(header, classes="pane-header")
                    with VerticalScroll(classes="pane-body"):
                        yield Markdown(_transcript(pane.conversation().turns))
                    error = Static(classes="pane-error")
                    if r.error:
                        error.update(Text(f"{r.status}: {clean_line(r.error)}", style="red"))
                        error.display = True
                    yield error
                    yield Static(metrics_line(r), classes="pane-metrics")
        yield Footer()

    def on_mount(self) -> None:
        self._layout()
        self.query_one(".pane-body", VerticalScroll).focus()

    def on_resize(self) -> None:
        self._layout()

    def _layout(self) -> None:
        grid = self.query_one("#history-panes", Grid)
        count = max(len(self.comparison.panes), 1)
        columns = max(1, min(count, self.size.width // MIN_PANE_WIDTH))
        grid.styles.grid_size_columns = columns
        grid.styles.grid_size_rows = math.ceil(count / columns)

    def selected(self) -> Comparison | None:
        return self.comparison


def _row(s: ComparisonSummary) -> tuple[str | Text, ...]:
    when = time.strftime("%Y-%m-%d %H:%M", time.localtime(s.created_at))
    origin = f"{s.origin} · turn {s.turn}" if s.turn > 1 else s.origin
    marks = Text()
    for status in s.statuses:
        marks.append(_STATUS_MARK.get(status, "…"), "green" if status == "done" else "red")
    targets = ", ".join(clean_line(t) for t in s.targets)
    return (
        when,
        origin,
        marks,
        Text(_cut(s.prompt, PROMPT_CHARS)),
        Text(_cut(targets, TARGETS_CHARS)),
    )


def _cut(text: str, width: int) -> str:
    text = clean_line(text)
    return text if len(text) <= width else text[: width - 1] + "…"


def _transcript(turns: list[Message]) -> str:
    """The turns as the live pane shows them: prompts quoted, answers as Markdown."""
    parts: list[str] = []
    for message in turns:
        content = clean(message.content)
        if message.role == "user":
            parts.append("\n".join(f"> {line}" for line in content.splitlines() or [""]))
        else:
            parts.append(content.rstrip())
    return "\n\n---\n\n".join(parts) if parts else "*nothing was asked*"
