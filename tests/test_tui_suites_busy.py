"""A suite run in F8 while another process holds the history (another workbench writing):
the run goes on, the screen says at once that its results wait and why, and every one of
them is stored once the history frees. It used to sit at 0% without a word for SQLite's
30 s wait, then fail with nothing kept."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

import pytest
from textual.widgets import Static

from tests.tui_helpers import history_held, open_suite, toasts, wait_until
from workbench import locations
from workbench.config import Settings
from workbench.tui.app import WorkbenchApp, make_app
from workbench.tui.screens.suites import SuitesScreen

EMBEDDED = ["embedded:smollm2"]
NO_OLLAMA = {"OLLAMA_HOST": "127.0.0.1:9"}
ONE_CASE = """\
name: one-question
targets: [embedded:smollm2]
params: {temperature: 0, seed: 42, max_tokens: 8}
prompt: "{{question}}"
cases:
  - id: capital
    vars: {question: "What is the capital of France?"}
    expect: [{icontains: paris}]
"""


def _stored() -> tuple[int, int, float | None]:
    """Runs and case results in the history, and when the last run finished; read as
    another process would."""
    db = sqlite3.connect(locations.database_path())
    try:
        (runs, finished), (results,) = (
            db.execute("SELECT count(*), max(finished_at) FROM runs").fetchone(),
            db.execute("SELECT count(*) FROM case_results").fetchone(),
        )
        return int(runs), int(results), finished
    finally:
        db.close()


def _history_line(screen: SuitesScreen) -> str:
    """The line under the progress bar, when it is shown."""
    line = screen.query_one("#suite-history", Static)
    return str(line.content) if line.display else ""


@pytest.fixture
def app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> WorkbenchApp:
    monkeypatch.setenv("WORKBENCH_HOME", str(tmp_path))  # a history of its own, no runs yet
    return make_app(Settings(), EMBEDDED, env=NO_OLLAMA)


async def test_a_run_the_busy_history_holds_up_goes_on_says_so_and_is_stored_once_it_frees(
    app: WorkbenchApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    notes = toasts(app, monkeypatch)
    async with app.run_test(size=(140, 40)) as pilot:
        with history_held():
            screen = await open_suite(pilot, app, "offline-basics.yaml")
            assert screen.suite is not None
            cases = len(screen.suite.cases)
            await pilot.press("ctrl+r")
            # Said at once (within 5 s, not after SQLite's 30 s wait): in a toast, and on
            # the screen.
            await wait_until(pilot, lambda: any("Not stored yet" in n for n in notes), 5)
            assert any(n.startswith("Not stored yet") and "is busy" in n for n in notes), notes
            await wait_until(pilot, lambda: "Not stored yet" in _history_line(screen), 5)
            line = _history_line(screen)
            assert "is busy: another process" in line and str(locations.database_path()) in line
            assert "The run goes on" in line and "once the history takes them" in line
            # The run goes on: every answer comes, is shown, and is kept here, none stored.
            await wait_until(pilot, lambda: len(screen.results) == cases, 120)
            await wait_until(pilot, lambda: f"{cases} results kept here" in _history_line(screen))
            await wait_until(pilot, lambda: any(n.startswith("offline-basics: ") for n in notes))
            assert screen.running  # it is not over until the history has it
            answered_at = time.time()
            assert _stored() == (0, 0, None)
        # The history frees: the run, each result and the run's end are written, in order.
        await wait_until(pilot, lambda: _stored()[:2] == (1, cases), 10)
        await wait_until(pilot, lambda: not screen.running, 10)
        finished = _stored()[2]
        assert finished is not None and finished <= answered_at  # when it ended, not stored
        written = f"History written again: {cases} results that waited stored"
        await wait_until(pilot, lambda: written in notes, 5)
        assert _history_line(screen) == ""


async def test_leaving_with_results_the_history_has_not_taken_is_asked_about_first(
    app: WorkbenchApp, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Esc stopped the run and dropped what it had made: answers that cost money or time.
    Now it says what would go; a second Esc leaves without them. Ctrl+R meanwhile would
    have dropped them too: it is refused until they are stored."""
    (tmp_path / "suites").mkdir()
    (tmp_path / "suites" / "one-question.yaml").write_text(ONE_CASE)
    notes = toasts(app, monkeypatch)
    async with app.run_test(size=(140, 40)) as pilot:
        with history_held():
            screen = await open_suite(pilot, app, "one-question.yaml")
            await pilot.press("ctrl+r")
            await wait_until(pilot, lambda: any("Not stored yet" in n for n in notes), 5)
            await wait_until(pilot, lambda: len(screen.results) == 1, 60)
            await pilot.press("escape")
            await wait_until(pilot, lambda: any("Esc again leaves" in n for n in notes), 5)
            assert app.screen is screen
            assert "1 result of this run not stored yet (the history is busy)" in notes[-1]
            run_id = screen.run_id
            await pilot.press("ctrl+r")
            await wait_until(pilot, lambda: "Run again once the history" in notes[-1], 5)
            assert screen.run_id == run_id
        await wait_until(pilot, lambda: _stored()[:2] == (1, 1), 10)
        await wait_until(pilot, lambda: not screen.running, 10)
        assert _stored()[2] is not None  # finished
        await pilot.press("escape")  # all stored: Esc leaves at once
        await wait_until(pilot, lambda: app.screen is app.screen_stack[0], 5)


async def test_quitting_gives_the_results_the_history_has_not_taken_a_last_chance(
    app: WorkbenchApp, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """As the chat's turns have: the app waits a few seconds for the history as it closes."""
    (tmp_path / "suites").mkdir()
    (tmp_path / "suites" / "one-question.yaml").write_text(ONE_CASE)
    notes = toasts(app, monkeypatch)
    other = sqlite3.connect(locations.database_path(), isolation_level=None,
                            check_same_thread=False)  # fmt: skip
    other.execute("BEGIN IMMEDIATE")
    async with app.run_test(size=(140, 40)) as pilot:
        screen = await open_suite(pilot, app, "one-question.yaml")
        await pilot.press("ctrl+r")
        await wait_until(pilot, lambda: any("Not stored yet" in n for n in notes), 5)
        await wait_until(pilot, lambda: len(screen.results) == 1, 60)
        # The other process ends its write a moment after Ctrl+Q, while the app closes.
        threading.Timer(1.0, lambda: (other.execute("ROLLBACK"), other.close())).start()
        await pilot.press("ctrl+q")
    assert _stored()[:2] == (1, 1)


async def test_results_the_history_never_took_are_counted_for_the_cli_to_say(
    app: WorkbenchApp, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The other process writes on past the last try: the result is not lost without a
    word; the app counts it, and the CLI says so once the screen is gone."""
    (tmp_path / "suites").mkdir()
    (tmp_path / "suites" / "one-question.yaml").write_text(ONE_CASE)
    notes = toasts(app, monkeypatch)
    with history_held():
        async with app.run_test(size=(140, 40)) as pilot:
            screen = await open_suite(pilot, app, "one-question.yaml")
            await pilot.press("ctrl+r")
            await wait_until(pilot, lambda: any("Not stored yet" in n for n in notes), 5)
            await wait_until(pilot, lambda: len(screen.results) == 1, 60)
            await pilot.press("ctrl+q")
        assert app.unstored == 1
    assert _stored()[:2] == (0, 0)
