"""History in the TUI: past comparisons and chats, searchable; open one to see its panes,
re-run it with the same or other targets, or export it as Markdown, JSON or CSV."""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING, cast

from rich.text import Text
from textual import events, on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, Vertical, VerticalScroll
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Input, Label, Markdown, Static

from providers.base import Message
from providers.registry import Target, TargetError, parse_target
from workbench.commands.models import list_everything
from workbench.export import ExportFormat, write_stored
from workbench.history import (
    STATUS_MARKS,
    Comparison,
    ComparisonSummary,
    StoredTurn,
    list_comparisons,
    load_comparison,
)
from workbench.sanitize import clean, clean_line
from workbench.tui import model_markdown
from workbench.tui.screens.history_dialogs import ExportFormatScreen, ReplaceSessionScreen
from workbench.tui.screens.picker import ModelPicker
from workbench.tui.widgets.pane import metrics_line

if TYPE_CHECKING:
    from workbench.tui.app import WorkbenchApp

PROMPT_CHARS = 44
TARGETS_CHARS = 30
MIN_PANE_WIDTH = 40
_MARK_STYLE = {"failed": "red", "cancelled": "magenta"}
"""As the live pane's header says them."""
# Control keys, never letters: on the list, what is typed goes to the search box, and a
# stray letter must not send requests or write files. They shadow the app's Ctrl+R (retry),
# Ctrl+O (switch model) and Ctrl+E (export the open session), which are refused over this
# screen anyway; priority, so they work from the search box too (End moves to its end).
_ACTIONS = [
    Binding("ctrl+r", "rerun", "Re-run", priority=True),
    Binding("ctrl+o", "rerun_other", "Re-run with…", priority=True),
    Binding("ctrl+e", "export", "Export…", priority=True),
]


class _ComparisonActions(Screen[None]):
    """Re-run and export, the same on the list and in the opened comparison."""

    @property
    def workbench(self) -> WorkbenchApp:
        return cast("WorkbenchApp", self.app)

    def selected(self) -> Comparison | None:
        raise NotImplementedError

    @work(exclusive=True, group="history-pick")
    async def action_export(self, kind: ExportFormat | None = None) -> None:
        """Export as `kind`, or as the format the user picks."""
        comparison = self._chosen("export")
        if comparison is None:
            return
        if kind is None:
            kind = await self.app.push_screen_wait(ExportFormatScreen())
            if kind is None:
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

    @work(exclusive=True, group="history-pick")
    async def action_rerun(self) -> None:
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
        await self._replay(comparison, targets, [pane.history for pane in comparison.panes])

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
        await self._replay(comparison, [parse_target(spec) for spec in chosen], histories)

    async def _replay(
        self, comparison: Comparison, targets: list[Target], histories: list[list[Message]]
    ) -> None:
        """Replace the open session's panes with the re-run, asked first if it has turns."""
        app = self.workbench
        prompts = max(
            (sum(m.role == "user" for m in p.conversation.turns) for p in app.panes), default=0
        )
        if prompts and not await app.push_screen_wait(ReplaceSessionScreen(prompts)):
            self.notify("Nothing re-run: the open conversation is kept")
            return
        app.replay(
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
    """What is typed on the list goes to the search box, so no letter is a key here."""

    def __init__(self) -> None:
        super().__init__()
        self.summaries: list[ComparisonSummary] = []

    def compose(self) -> ComposeResult:
        with Vertical(id="history"):
            yield Label("History — past comparisons and chats", classes="section")
            # Not selected on focus: the first letter typed on the list is already in it.
            yield Input(
                placeholder="search prompts and answers",
                id="history-search",
                select_on_focus=False,
            )
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
        help_ = "type to search · Enter open · Esc back"  # the footer has the rest
        self.query_one("#history-status", Static).update(Text(f"{status} · {help_}", "dim"))

    @on(Input.Changed, "#history-search")
    def searched(self) -> None:
        self.refresh_list()

    @on(Input.Submitted, "#history-search")
    def action_focus_list(self) -> None:
        self.query_one("#history-list", DataTable).focus()

    def action_search(self) -> None:
        self.query_one("#history-search", Input).focus()

    def on_key(self, event: events.Key) -> None:
        """Type to search: a character typed on the list starts (or goes on with) the
        search, in the box, as if the box had had the focus."""
        search = self.query_one("#history-search", Input)
        if search.has_focus or not event.is_printable or not event.character:
            return
        if event.key in self.app.active_bindings:  # `/`
            return
        event.stop()
        event.prevent_default()
        search.focus()
        search.insert_text_at_cursor(event.character)

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
        turn = f" · turn {c.turn}" if c.turn > 1 else ""
        title = Text(f"{when} · {c.origin}{turn}", "bold")
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
                        for part in _transcript(pane.transcript()):
                            yield _markdown(part) if isinstance(part, str) else _ended(part)
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
        marks.append(STATUS_MARKS.get(status, "…"), "green" if status == "done" else "red")
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


def _transcript(items: list[Message | StoredTurn]) -> list[str | Text]:
    """The turns as the live pane showed them: prompts quoted, answers as Markdown, and
    after a turn that failed or was cancelled, with what it had written, its mark and
    reason, as its error line said then. Markdown, and a line of plain text for each
    mark: the reason is data (a server's words), never parsed as Markdown."""
    shown: list[str | Text] = []
    parts: list[str] = []

    def flush() -> None:
        if parts:
            rule = "---\n\n" if shown else ""  # after a mark: the next turn's rule
            shown.append(rule + "\n\n---\n\n".join(parts))
            parts.clear()

    for item in items:
        if isinstance(item, Message):
            parts.append(_quoted(item.content) if item.role == "user" else _answer(item.content))
            continue
        parts.append(_quoted(item.prompt.content))
        if item.text.strip():
            parts.append(_answer(item.text))
        if item.status != "done":
            flush()
            mark = f"{STATUS_MARKS.get(item.status, '✗')} {item.status}"
            reason = f": {clean_line(item.error)}" if item.error else ""
            shown.append(Text(mark + reason, style=_MARK_STYLE.get(item.status, "red")))
    flush()
    return shown or ["*nothing was asked*"]


def _quoted(prompt: str) -> str:
    return "\n".join(f"> {line}" for line in clean(prompt).splitlines() or [""])


def _answer(text: str) -> str:
    return clean(text).rstrip()


def _markdown(text: str) -> Markdown:
    return Markdown(text, parser_factory=model_markdown.parser)  # its tags shown as text


def _ended(mark: Text) -> Static:
    line = Static(mark, classes="turn-ended")
    line.styles.padding = (0, 2)  # in line with the Markdown's text around it
    return line
