"""Suites in the TUI: pick a suite, choose targets, run with live progress, browse the
matrix, open a cell for the whole answer and why it failed, compare with the last run."""

from __future__ import annotations

import contextlib
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.css.query import NoMatches
from textual.message import Message
from textual.screen import ModalScreen, Screen
from textual.widgets import (
    Button,
    DataTable,
    Footer,
    Input,
    Label,
    Markdown,
    OptionList,
    ProgressBar,
    Static,
)
from textual.widgets.option_list import Option

from providers.registry import Registry, TargetError, split_targets
from workbench import locations
from workbench.commands import format as fmt
from workbench.config import Settings
from workbench.engine.runner import EngineThread
from workbench.sanitize import clean, clean_line
from workbench.store import Store
from workbench.suites import compare, report
from workbench.suites.claim import RunBusy, claimed
from workbench.suites.loader import load_suite
from workbench.suites.recorder import HistoryRefused, RunRecorder
from workbench.suites.runner import plan, run_jobs, skipped_private, suite_targets
from workbench.suites.runs import (
    SUITE_HASH,
    CaseResult,
    RunInfo,
    list_runs,
    resolve_run,
    run_pairs,
    suite_hashes,
)
from workbench.suites.schema import Suite
from workbench.suites.source import SuiteError
from workbench.tui import model_markdown
from workbench.tui.history_writer import CLOSING_WAIT_S
from workbench.tui.screens.unchecked import UncheckedScreen

PROMPTFOO_NAMES = ("promptfooconfig.yaml", "promptfooconfig.yml")
"""The names promptfoo itself looks for in the current folder."""


def suite_files(folders: list[Path]) -> list[Path]:
    found: list[Path] = []
    for folder in folders:
        if folder.is_dir():
            found += sorted(p for p in folder.glob("*.y*ml") if p.suffix in (".yaml", ".yml"))
    return found


def default_folders() -> list[Path]:
    checkout = Path(__file__).resolve().parents[3] / "prompts"
    here = Path.cwd()
    return [here / "prompts", here / "suites", checkout, locations.data_dir() / "suites"]


def known_suites(recent: int = 20) -> list[Path]:
    """What F8 lists: the suites in `default_folders`, a promptfoo config in the current
    folder (promptfoo's default name), and the suites of recent runs, wherever they are,
    so that one run as `workbench run PATH` can be run again here. Each file once."""
    found = suite_files(default_folders())
    found += [p for p in (Path.cwd() / n for n in PROMPTFOO_NAMES) if p.is_file()]
    store = Store(locations.database_path(), opening_wait_s=0)  # reads: a busy one will do
    try:
        found += [p for run in list_runs(store, recent) if (p := Path(run.suite_path)).is_file()]
    finally:
        store.close()
    unique: dict[Path, Path] = {}
    for path in found:
        unique.setdefault(path.resolve(), path)
    return list(unique.values())


def _labels(paths: list[Path]) -> list[str]:
    """File names, with as many of their folders as tell apart files of one name
    (`project/promptfooconfig.yaml`; a copy of the shipped suites in ./prompts beside the
    checkout's: `project/prompts/basics.yaml`, `main/prompts/basics.yaml`)."""
    depth = [1] * len(paths)
    while True:
        labels = ["/".join(p.parts[-d:]) for p, d in zip(paths, depth, strict=True)]
        clashing = {label for label in labels if labels.count(label) > 1}
        grew = False
        for i, (path, label) in enumerate(zip(paths, labels, strict=True)):
            if label in clashing and depth[i] < len(path.parts):
                depth[i] += 1
                grew = True
        if not grew:
            return labels


class SuitesScreen(Screen[None]):
    BINDINGS = [
        Binding("escape", "back", "Back"),
        Binding("ctrl+r", "run", "Run"),
        Binding("f9", "compare", "Compare with previous"),
    ]

    def __init__(
        self, registry: Registry, engine: EngineThread, settings: Settings | None = None
    ) -> None:
        super().__init__()
        self.read_only = False
        """The history is read-only to this user: runs, kept there, cannot be made."""
        self.registry = registry
        self.engine = engine
        self.settings = settings or Settings()
        self.suite: Suite | None = None
        self.results: list[CaseResult] = []
        self.run_id: str | None = None
        self.running = False
        """A run is under way: `results` holds only the cases finished so far."""
        self.recorder: RunRecorder | None = None
        """The last run's rows on their way to the history (see `recorder.py`)."""
        self._leaving = False
        """Esc was pressed once with results not stored yet: again leaves without them."""

    @dataclass
    class HistoryNews(Message):
        """The run's rows started waiting for the history, or went, or wait on."""

        said: str | None
        """Words for a toast, or None: only the line under the progress bar changes."""

    def compose(self) -> ComposeResult:
        with Horizontal(id="suites-body"):
            with Vertical(id="suite-list-column"):
                yield Label("Suites", classes="section")
                files = known_suites()
                labels = zip(files, _labels(files), strict=True)
                yield OptionList(*[Option(n, id=str(p)) for p, n in labels], id="suite-list")
            with Vertical(id="suite-main"):
                yield Static("Pick a suite", id="suite-info")
                with Horizontal(id="suite-controls"):
                    yield Input(placeholder="targets, comma-separated (default: the suite's)",
                                id="suite-targets")  # fmt: skip
                    yield Button("Run", id="run", variant="primary")
                progress = ProgressBar(id="suite-progress", show_eta=True)
                progress.display = False  # with no total, an idle bar animates as if at work
                yield progress
                history = Static(id="suite-history")  # shown while rows wait for it
                history.display = False
                yield history
                yield DataTable(id="matrix", cursor_type="cell", zebra_stripes=True)
                yield Static(id="suite-totals")
        yield Footer()

    @on(OptionList.OptionSelected, "#suite-list")
    def pick(self, event: OptionList.OptionSelected) -> None:
        path = Path(event.option.id or "")
        try:
            self.suite = load_suite(path, known_providers=self.registry.names)
        except SuiteError as exc:
            self.suite = None
            self.query_one("#suite-info", Static).update(Text(str(exc), style="red"))
            return
        s = self.suite
        info = Text(f"{clean_line(s.name)}", style="bold")
        info.append(f" · {len(s.cases)} cases · targets: {', '.join(s.targets) or '—'}", "dim")
        if s.description:
            info.append(f"\n{clean_line(s.description)}")
        for line in s.unsupported:
            if line in s.unchecked:  # "… cannot be checked here": asked about before it runs
                info.append(f"\n{clean_line(line)}", style="yellow")
            else:
                info.append(f"\nnot supported, skipped: {clean_line(line)}", style="yellow")
        self.query_one("#suite-info", Static).update(info)
        targets = self.query_one("#suite-targets", Input)
        targets.value = ", ".join(s.targets)
        targets.focus()  # what is set next, before Ctrl+R; typing into the list did nothing

    @on(Button.Pressed, "#run")
    def pressed(self) -> None:
        self.action_run()

    def action_run(self) -> None:
        if self.recorder is not None and self.recorder.waiting:
            # A new run would stop this one's writes, and its results kept here with them.
            kept = fmt.plural(self.recorder.waiting, "result")
            self.notify(f"Run again once the history has taken the last run's {kept}",
                        severity="warning")  # fmt: skip
            return
        self._run()

    @work(exclusive=True, group="suite-run")
    async def _run(self) -> None:
        suite = self.suite
        if suite is None:
            self.notify("Pick a suite first", severity="warning")
            return
        if self.read_only:
            # A run is kept in the history, and its report read back from there.
            self.notify("Suites cannot run here: the history is read-only to you",
                        severity="error")  # fmt: skip
            return
        specs = split_targets(self.query_one("#suite-targets", Input).value)
        try:
            targets = suite_targets(suite, specs or None)
            for target in targets:
                self.registry.kind(target.provider)
        except TargetError as exc:
            self.notify(str(exc), severity="error")
            return
        # As `workbench run` records it, so that `workbench run --resume` can tell whether
        # the file is still this suite.
        options: dict[str, object] = {SUITE_HASH: suite_hashes(suite)}
        if suite.unchecked:  # as `workbench run`: not run unless the user lets them go unchecked
            if not await self.app.push_screen_wait(UncheckedScreen(suite.name, suite.unchecked)):
                self.notify(f"{suite.name}: not run", severity="warning")
                return
            options["skip_unsupported"] = True
        jobs = plan(suite, targets, None, is_local=self.registry.is_local)
        if skipped := skipped_private(suite, targets, self.registry.is_local):
            self.notify(skipped)
        bar = self.query_one(ProgressBar)
        bar.update(total=len(jobs), progress=0)
        bar.display = True
        self.results = []
        self.run_id = run_id = uuid.uuid4().hex[:12]
        path = str(suite.path.resolve()) if suite.path else ""
        info = RunInfo(run_id, time.time(), None, suite.name, path, [t.spec for t in targets],
                       options)  # fmt: skip

        # The history may be busy (another workbench writing): the run goes on, and its rows
        # wait in the recorder until the history takes them.
        def say(said: str | None) -> None:  # from the recorder's thread
            self.post_message(self.HistoryNews(said))

        history = locations.database_path()
        self.recorder = recorder = RunRecorder(history, run_id, say, start=info)
        self._leaving = False

        def arrived(result: CaseResult) -> None:  # on the engine thread
            self.app.call_from_thread(self._arrived, result)

        settings = self.settings

        async def go() -> None:
            with claimed(run_id):  # a `--resume` of it meanwhile is kept out
                async with recorder:
                    await recorder.alongside(run_jobs(
                        suite, jobs, self.registry, None, run_id, on_result=arrived,
                        local_concurrency=settings.local_concurrency,
                        max_time_s=settings.max_time_s, record=recorder.result,
                    ))  # fmt: skip
                    recorder.finish()
                    self.post_message(self.Answered(suite.name))
                    await recorder.stored()

        self.running = True
        try:
            await self.engine.run(go())
        # The history will not take the run (read-only, a newer workbench's), or another
        # process is making it.
        except (HistoryRefused, RunBusy, OSError) as exc:
            self._not_run(suite, str(exc))
            return
        finally:
            self.running = False
            self._show_history()
        self._show()

    def _not_run(self, suite: Suite, why: str) -> None:
        self.notify(f"{suite.name}: not run to the end: {why}", severity="error")

    @dataclass
    class Answered(Message):
        """Every answer of the run is in (the history may not have taken them yet)."""

        suite: str

    @on(Answered)
    def answered(self, event: Answered) -> None:
        self._show()
        self.notify(f"{event.suite}: {_outcome(self.results)}")

    @on(HistoryNews)
    def history_news(self, event: HistoryNews) -> None:
        if event.said is not None:
            waits = self.recorder is not None and self.recorder.trouble is not None
            self.notify(event.said, severity="warning" if waits else "information", timeout=8)
        self._show_history()

    def _show_history(self) -> None:
        """The line under the progress bar: what waits for the history, and why."""
        recorder = self.recorder
        with contextlib.suppress(NoMatches):
            line = self.query_one("#suite-history", Static)
            # Not running: the run was refused, and said so (`_not_run`).
            if recorder is None or recorder.trouble is None or not self.running:
                line.display = False
                self._leaving = False
                return
            kept = fmt.plural(recorder.waiting, "result")
            said = (f"Not stored yet ({kept} kept here): {recorder.trouble}. The run goes on; "
                    "they are stored once the history takes them")  # fmt: skip
            line.update(Text(said, "yellow"))
            line.display = True

    def _arrived(self, result: CaseResult) -> None:
        self.results.append(result)
        self._show(advance=1)
        self._show_history()

    def _show(self, advance: int = 0) -> None:
        # A result can arrive after the screen was left, its widgets gone: it is in the
        # store, and the screen has nothing left to show it in.
        with contextlib.suppress(NoMatches):
            self.query_one(ProgressBar).advance(advance)
            self._render_matrix()

    def _render_matrix(self) -> None:
        table = self.query_one("#matrix", DataTable)
        row, column = table.cursor_coordinate
        table.clear(columns=True)
        targets = list(dict.fromkeys(r.target for r in self.results))
        table.add_column("case", key="case")
        for target in targets:
            table.add_column(Text(clean_line(target)), key=target)
        grid = {(c.case_id, c.target): c for c in report.cells(self.results)}
        for case_id in dict.fromkeys(r.case_id for r in self.results):
            cells: list[Text] = [Text(clean_line(case_id))]
            for target in targets:
                cell = grid.get((case_id, target))
                if cell is None:
                    cells.append(Text("…", style="dim"))
                else:
                    cells.append(Text(report.cell_text(cell), style=_style(cell)))
            table.add_row(*cells, key=case_id)
        # Rebuilt as each result comes: the cursor stays on its cell, and starts on a result,
        # not on the case column, where Enter opens nothing.
        table.move_cursor(row=row, column=max(1, column))
        totals = Text()
        if note := report.partly_checked_note(self.results):
            totals.append(f"* {note}\n", style="yellow")
        for t in report.totals(self.results):
            totals.append(f"{clean_line(t.target)}: ", style="bold")
            totals.append(f"{t.pass_label} · p50 {fmt.seconds(t.p50_s)} · {t.cost_label}\n")
        self.query_one("#suite-totals", Static).update(totals)

    @on(DataTable.CellSelected, "#matrix")
    def open_cell(self, event: DataTable.CellSelected) -> None:
        case_id = str(event.cell_key.row_key.value)
        target = str(event.cell_key.column_key.value)
        mine = [r for r in self.results if r.case_id == case_id and r.target == target]
        if mine:
            self.app.push_screen(CellScreen(mine))

    def action_back(self) -> None:
        """Leave; a run under way stops with the screen, and can be finished from the CLI.
        Results a busy history has not taken yet are asked about first: they go with it."""
        recorder = self.recorder
        if recorder is not None and recorder.waiting and not self._leaving:
            self._leaving = True
            self.notify(f"{fmt.plural(recorder.waiting, 'result')} of this run not stored yet "
                        "(the history is busy): Esc again leaves without them",
                        severity="warning", timeout=10)  # fmt: skip
            return
        if self.running and self.run_id is not None:
            if recorder is not None and not recorder.run_stored:
                said = "Suite run stopped before the history took any of it: nothing was stored"
            else:
                said = f"Suite run stopped; finish it with: workbench run --resume {self.run_id}"
            self.notify(said, severity="warning", timeout=10)
        self.app.pop_screen()

    def on_unmount(self) -> None:
        """The results a busy history has not taken: one more try as the screen closes (the
        app quitting), unless Esc was pressed again to leave without them."""
        if (recorder := self.recorder) is not None and not recorder.settled:
            # Only for results: a run with none to keep is not worth holding the app up.
            last_try = recorder.waiting and not self._leaving
            recorder.flush(CLOSING_WAIT_S if last_try else None)
            from workbench.tui.app import WorkbenchApp  # it imports this screen

            if isinstance(self.app, WorkbenchApp):  # said by the CLI once the app is gone
                self.app.unstored += recorder.waiting

    def action_compare(self) -> None:
        if self.run_id is None:
            self.notify("Run the suite first", severity="warning")
            return
        if self.running:  # its cases still running would show as gone from the previous run
            stored = self.recorder is None or self.recorder.trouble is None
            going = "is still going" if stored else "is not stored yet (the history is busy)"
            self.notify(f"The run {going}: compare once it has finished", severity="warning")
            return
        store = Store(locations.database_path(), opening_wait_s=0)  # reads: a busy one will do
        try:
            after = resolve_run(store, self.run_id)
            if after.finished_at is None:
                raise LookupError("The run did not finish: compare once it has finished")
            # The run of this suite before this one, however many runs came after it, on
            # these targets (as `workbench run --baseline latest` picks it).
            before, warning = compare.pick_baseline(
                store, after.suite, run_pairs(store, after.id), before=after.created_at
            )
            text = compare.as_markdown(compare.compare_runs(store, before, after))
            if warning:
                text = f"Note: {clean_line(warning)}.\n\n{text}"
        except LookupError as exc:
            self.notify(str(exc), severity="warning")
            return
        finally:
            store.close()
        self.app.push_screen(TextScreen("Compared with the previous run", text))


def _style(cell: report.Cell) -> str:
    """As `workbench run` shows it: a cell not checked is neither a pass nor a failure."""
    if cell.passed:
        return "green"
    return "yellow" if cell.skipped else "red"


def _outcome(results: list[CaseResult]) -> str:
    """`3/4 passed`, over the answers that were checked, and how many were not."""
    unchecked = len(report.skipped(results))
    passed = sum(r.passed for r in results)
    label = f"{passed}/{len(results) - unchecked} passed"
    return label + (f", {unchecked} not checked" if unchecked else "")


class CellScreen(ModalScreen[None]):
    """One case × target: the whole answer, and why each assertion passed or failed."""

    BINDINGS = [Binding("escape", "dismiss", "Close")]

    def __init__(self, results: list[CaseResult]) -> None:
        super().__init__()
        self.results = results

    def compose(self) -> ComposeResult:
        with VerticalScroll(classes="dialog"):
            first = self.results[0]
            yield Label(f"{clean_line(first.case_id)} × {clean_line(first.target)}",
                        classes="section", markup=False)  # fmt: skip
            for r in self.results:
                verdicts = Text()
                for o in r.outcomes:
                    mark, style = ("✓ ", "green") if o.passed else ("✗ ", "red")
                    if o.skipped:
                        mark, style = "– ", "yellow"
                    verdicts.append(mark, style)
                    verdicts.append(clean_line(o.assertion))
                    if not o.passed:
                        verdicts.append(f" — {clean_line(o.reason)}", style="dim")
                    verdicts.append("\n")
                if r.result.error:
                    verdicts.append(f"{r.result.status}: {clean_line(r.result.error)}\n", "red")
                yield Static(verdicts)
                yield Markdown(
                    clean(r.result.text) or "*(no answer)*", parser_factory=model_markdown.parser
                )
            yield Label("Esc close", classes="help")


class TextScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape", "dismiss", "Close")]

    def __init__(self, title: str, markdown: str) -> None:
        super().__init__()
        self.title_text = title
        self.markdown = markdown

    def compose(self) -> ComposeResult:
        with VerticalScroll(classes="dialog"):
            yield Label(self.title_text, classes="section")
            yield Markdown(self.markdown, parser_factory=model_markdown.parser)
            yield Label("Esc close", classes="help")
