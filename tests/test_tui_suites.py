"""The suites screen: pick a shipped suite, run it on the embedded model, open a cell;
a promptfoo config with checks that cannot run here is asked about before it runs."""

from __future__ import annotations

import asyncio
import re
import shutil
import time
from pathlib import Path

import pytest
from rich.text import Text
from textual.coordinate import Coordinate
from textual.pilot import Pilot
from textual.screen import ModalScreen
from textual.widgets import DataTable, Input, OptionList, ProgressBar, Static

from tests.test_promptfoo import RUBRIC
from tests.tui_helpers import Loop, open_suite, toasts, wait_until
from workbench import locations
from workbench.config import Settings, load_settings
from workbench.store import Store
from workbench.suites.claim import RunBusy, claimed
from workbench.suites.runs import (
    SUITE_HASH,
    RunInfo,
    list_runs,
    resolve_run,
    start_run,
    suite_hashes,
)
from workbench.tui.app import WorkbenchApp, make_app
from workbench.tui.screens.suites import CellScreen, SuitesScreen, TextScreen


async def test_run_a_suite_open_a_cell_and_compare_with_its_previous_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WORKBENCH_HOME", str(tmp_path))  # no earlier run of the suite
    app = make_app(Settings(), ["embedded:smollm2"], env={"OLLAMA_HOST": "127.0.0.1:9"})
    async with app.run_test(size=(140, 40)) as pilot:
        screen = await open_suite(pilot, app, "offline-basics.yaml")
        assert screen.suite is not None
        cases = len(screen.suite.cases)
        assert not screen.query_one(ProgressBar).display  # idle, it would animate
        await pilot.press("ctrl+r")
        await wait_until(pilot, lambda: len(screen.results) == cases, timeout_s=120)
        await pilot.pause(0.2)
        matrix = screen.query_one("#matrix", DataTable)
        assert matrix.row_count == cases
        assert screen.query_one(ProgressBar).progress == cases
        assert "✓" in str(matrix.get_cell_at(Coordinate(0, 1)))
        assert matrix.cursor_coordinate == Coordinate(0, 1)  # on a result, not a case id
        matrix.focus()
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, CellScreen))
        await pilot.press("escape")
        await wait_until(pilot, lambda: isinstance(app.screen, SuitesScreen))

        await pilot.press("f9")
        await pilot.pause(0.2)
        assert app.screen is screen  # nothing to compare with: a warning, no screen
        await pilot.press("ctrl+r")  # a second run
        finished = "SELECT COUNT(*) FROM runs WHERE finished_at IS NOT NULL"
        await wait_until(pilot, lambda: app.store.db.execute(finished).fetchone() == (2,), 120)
        # Stored finished (on the recorder's thread) a moment before the screen hears of it:
        # F9 in between is told the run is still going.
        await wait_until(pilot, lambda: not screen.running)
        await pilot.press("f9")
        await wait_until(pilot, lambda: isinstance(app.screen, TextScreen))
        assert isinstance(app.screen, TextScreen) and "offline-basics" in app.screen.markdown
        await pilot.press("escape")
        await wait_until(pilot, lambda: isinstance(app.screen, SuitesScreen))
        await pilot.press("escape")  # and Escape again goes back to the panes
        await wait_until(pilot, lambda: app.screen is app.screen_stack[0])


CHECKOUT_PROMPTS = Path(__file__).resolve().parent.parent / "prompts"
TARGET = "embedded:smollm2@temperature=0,max_tokens=8"  # its settings stay together in the field


@pytest.fixture
def rubric_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A home with no run yet, and the RUBRIC config among its suites; the config's path."""
    monkeypatch.setenv("WORKBENCH_HOME", str(tmp_path))
    path = tmp_path / "suites" / "promptfooconfig.yaml"
    path.parent.mkdir()
    path.write_text(RUBRIC)
    return path


async def ask_to_run(pilot: Pilot[None], app: WorkbenchApp) -> str:
    """Pick the RUBRIC config, set its target, press Run; what the question put then says."""
    screen = await open_suite(pilot, app, "promptfooconfig.yaml")
    assert "cannot be checked here" in str(screen.query_one("#suite-info", Static).content)
    screen.query_one("#suite-targets", Input).value = TARGET
    await pilot.press("ctrl+r")
    await wait_until(pilot, lambda: isinstance(app.screen, ModalScreen), timeout_s=10)
    return " ".join(str(w.content) for w in app.screen.query(Static))


async def test_a_check_that_cannot_run_is_asked_about_then_shown_not_checked(
    rubric_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from workbench.cli import build_parser
    from workbench.commands.run import run_command

    app = make_app(Settings(), ["embedded:smollm2"], env={"OLLAMA_HOST": "127.0.0.1:9"})
    async with app.run_test(size=(140, 40)) as pilot:
        question = await ask_to_run(pilot, app)
        assert "tests[0] 'judged only': assertion 'llm-rubric' cannot be checked here" in question
        assert "tests[1] 'judged and checked': assertion 'llm-rubric'" in question
        assert "never as passed" in question
        screen = app.screen_stack[-2]
        assert isinstance(screen, SuitesScreen)
        app.screen.query_one(OptionList).highlighted = 0  # run, with them not checked
        await pilot.press("enter")
        finished = "SELECT COUNT(*) FROM runs WHERE finished_at IS NOT NULL"
        await wait_until(pilot, lambda: app.store.db.execute(finished).fetchone() == (1,), 120)
        await wait_until(pilot, lambda: not screen.running)
        target = screen.results[0].target
        matrix = screen.query_one("#matrix", DataTable)
        judged = matrix.get_cell("judged only", target)
        assert isinstance(judged, Text) and "not checked" in judged.plain
        assert "✓" not in judged.plain and "✗" not in judged.plain
        assert str(judged.style) not in ("red", "green")  # neither a failure nor a pass
        checked = matrix.get_cell("judged and checked", target)
        assert isinstance(checked, Text) and "✓*" in checked.plain  # its llm-rubric did not run
        note, shown = str(screen.query_one("#suite-totals", Static).content).split("\n", 1)
        assert note.startswith("* not every check ran (--skip-unsupported): 1 answer judged "
                               "without llm-rubric 'names Paris'")  # fmt: skip
        label = re.fullmatch(rf"{re.escape(target)}: (.*) · p50 .*\n", shown)
        assert label is not None and label[1] == "1/1 (100%), 1 not checked"
        (run,) = list_runs(app.store)
        assert run.options.get("skip_unsupported") is True  # so `--resume` runs it alike
    capsys.readouterr()
    args = build_parser().parse_args(["run", str(rubric_home), "-t", TARGET,
                                      "--skip-unsupported"])  # fmt: skip
    assert await asyncio.to_thread(run_command, args, load_settings()) == 0  # its own loop
    summary = capsys.readouterr().out  # the same figures as the CLI's summary shows
    assert re.search(rf"^ *{re.escape(target)} +{re.escape(label[1])} ", summary, re.MULTILINE)


async def test_choosing_not_to_run_runs_nothing(rubric_home: Path) -> None:
    app = make_app(Settings(), ["embedded:smollm2"], env={"OLLAMA_HOST": "127.0.0.1:9"})
    async with app.run_test(size=(140, 40)) as pilot:
        await ask_to_run(pilot, app)
        screen = app.screen_stack[-2]
        assert isinstance(screen, SuitesScreen)
        app.screen.query_one(OptionList).highlighted = 1  # don't run
        await pilot.press("enter")
        await wait_until(pilot, lambda: app.screen is screen)
        await pilot.press("ctrl+r")  # asked again; Escape is "don't run" too
        await wait_until(pilot, lambda: isinstance(app.screen, ModalScreen), timeout_s=10)
        await pilot.press("escape")
        await wait_until(pilot, lambda: app.screen is screen)
        await pilot.pause(1)
        assert not screen.running and screen.run_id is None and screen.results == []
        assert screen.query_one("#matrix", DataTable).row_count == 0
        assert list_runs(app.store) == []


async def test_f8_lists_suites_from_where_promptfoo_and_earlier_runs_keep_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """F8 looked only in ./prompts, the checkout's prompts/ and <data dir>/suites: not in
    ./suites, not at ./promptfooconfig.yaml, not at a suite run from anywhere else."""
    monkeypatch.setenv("WORKBENCH_HOME", str(tmp_path / "home"))
    project, elsewhere = tmp_path / "project", tmp_path / "elsewhere"
    (project / "suites").mkdir(parents=True)
    elsewhere.mkdir()
    (project / "suites" / "mine.yaml").write_text(RUBRIC)
    (project / "promptfooconfig.yaml").write_text(RUBRIC)
    (elsewhere / "promptfooconfig.yaml").write_text(RUBRIC)
    with Store(locations.database_path()) as store:  # as `workbench run` there records it
        start_run(store, RunInfo("r1", time.time(), None, "far", str(elsewhere /
                                 "promptfooconfig.yaml"), ["embedded:smollm2"], {}))  # fmt: skip
    monkeypatch.chdir(project)
    app = make_app(Settings(), ["embedded:smollm2"], env={"OLLAMA_HOST": "127.0.0.1:9"})
    async with app.run_test(size=(140, 40)) as pilot:
        await pilot.press("f8")
        await wait_until(pilot, lambda: isinstance(app.screen, SuitesScreen))
        suites = app.screen.query_one("#suite-list", OptionList)
        listed = [suites.get_option_at_index(i) for i in range(suites.option_count)]
        paths = [Path(o.id or "") for o in listed]
        for path in (project / "suites" / "mine.yaml", project / "promptfooconfig.yaml",
                     elsewhere / "promptfooconfig.yaml"):  # fmt: skip
            assert paths.count(path) == 1, paths
        labels = {str(o.prompt) for o in listed}
        assert {"project/promptfooconfig.yaml", "elsewhere/promptfooconfig.yaml"} <= labels
        assert "offline-basics.yaml" in labels  # the checkout's prompts/ still


async def test_a_picked_suite_puts_the_keys_in_its_targets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What is set next, before Ctrl+R: typing went to the list, and did nothing."""
    monkeypatch.setenv("WORKBENCH_HOME", str(tmp_path / "home"))
    app = make_app(Settings(), ["embedded:smollm2"], env={"OLLAMA_HOST": "127.0.0.1:9"})
    async with app.run_test(size=(140, 40)) as pilot:
        screen = await open_suite(pilot, app, "offline-basics.yaml")
        field = screen.query_one("#suite-targets", Input)
        await wait_until(pilot, lambda: app.focused is field, 5)
        field.value = ""
        await pilot.press(*"loop:x")
        assert field.value == "loop:x"


async def test_f8_tells_a_copy_of_the_shipped_suites_from_the_checkouts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both in a folder called prompts: each was listed as `prompts/offline-basics.yaml`."""
    monkeypatch.setenv("WORKBENCH_HOME", str(tmp_path / "home"))
    checkout = CHECKOUT_PROMPTS
    project = tmp_path / "project"
    (project / "prompts").mkdir(parents=True)
    shutil.copy(checkout / "offline-basics.yaml", project / "prompts")
    monkeypatch.chdir(project)
    app = make_app(Settings(), ["embedded:smollm2"], env={"OLLAMA_HOST": "127.0.0.1:9"})
    async with app.run_test(size=(140, 40)) as pilot:
        await pilot.press("f8")
        await wait_until(pilot, lambda: isinstance(app.screen, SuitesScreen))
        suites = app.screen.query_one("#suite-list", OptionList)
        labels = [str(suites.get_option_at_index(i).prompt) for i in range(suites.option_count)]
        assert len(set(labels)) == len(labels), labels
        ours = f"{checkout.parent.name}/prompts/offline-basics.yaml"
        assert {"project/prompts/offline-basics.yaml", ours} <= set(labels)


async def _suite_running(pilot: Pilot[None], app: WorkbenchApp, loop: Loop) -> SuitesScreen:
    """The suites screen, running the shipped offline suite on `loop:m`."""
    screen = await open_suite(pilot, app, "offline-basics.yaml")
    screen.query_one("#suite-targets", Input).value = "loop:m"
    await pilot.press("ctrl+r")
    # Asked, and the run is in the store: its row is written on a thread of its own, which
    # a busy machine can run after the first request went out.
    await wait_until(pilot, lambda: bool(loop.asked), 10)
    await wait_until(pilot, lambda: screen.recorder is not None and screen.recorder.run_stored, 10)
    return screen


def _held(loop: Loop, monkeypatch: pytest.MonkeyPatch) -> tuple[WorkbenchApp, list[str]]:
    """An app on a loop server that holds its answers, and the notes the app will show."""
    loop.held = {"a", "m"}  # the pane's model, and the suite's
    app = loop.app("loop:a")
    return app, toasts(app, monkeypatch)


async def test_suites_compare_waits_for_the_run_to_finish(
    loop: Loop, monkeypatch: pytest.MonkeyPatch
) -> None:
    app, notes = _held(loop, monkeypatch)
    async with app.run_test(size=(140, 40)) as pilot:
        screen = await _suite_running(pilot, app, loop)
        await pilot.press("f9")
        await pilot.pause(0.3)
        assert app.screen is screen and not isinstance(app.screen, TextScreen)
        assert any("still going" in note for note in notes)
        loop.release.set()


async def test_escape_during_a_suite_run_says_how_to_finish_it(
    loop: Loop, monkeypatch: pytest.MonkeyPatch
) -> None:
    app, notes = _held(loop, monkeypatch)
    async with app.run_test(size=(140, 40)) as pilot:
        screen = await _suite_running(pilot, app, loop)
        await pilot.press("escape")
        await wait_until(pilot, lambda: app.screen is app.screen_stack[0], 5)
        assert any(f"workbench run --resume {screen.run_id}" in note for note in notes)
        loop.release.set()


async def test_a_suite_run_in_the_tui_is_claimed_and_hashed_as_the_cli_does(
    loop: Loop, monkeypatch: pytest.MonkeyPatch
) -> None:
    """So that `workbench run --resume` of it is kept out while it runs, and can tell later
    whether the file is still the suite it ran."""
    app, _ = _held(loop, monkeypatch)
    async with app.run_test(size=(140, 40)) as pilot:
        screen = await _suite_running(pilot, app, loop)
        assert screen.run_id is not None and screen.suite is not None
        with pytest.raises(RunBusy), claimed(screen.run_id):
            pass
        options = resolve_run(app.store, screen.run_id).options
        assert options[SUITE_HASH] == suite_hashes(screen.suite)
        loop.release.set()
