"""A history the TUI cannot write to just now (another process holds it) or at all (a
newer workbench's): the app carries on, says so, and loses no turn it could keep."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager

from textual.widgets import Input

from tests.tui_helpers import (
    Loop,
    history_held,
    open_suite,
    screen_text,
    send,
    wait_finished,
    wait_until,
)
from workbench import locations
from workbench.store import COMPAT_TABLE
from workbench.tui.history_writer import RETRY_S
from workbench.tui.screens.vote import VoteScreen


def _count(batch: str) -> int:
    db = sqlite3.connect(locations.database_path())
    try:
        row = db.execute("SELECT count(*) FROM responses WHERE batch = ?", (batch,)).fetchone()
        return int(row[0])
    finally:
        db.close()


@contextmanager
def _newer_history() -> Iterator[None]:
    """A newer workbench has migrated the history past this one (and left it so)."""
    with sqlite3.connect(locations.database_path()) as db:
        version = int(db.execute("PRAGMA user_version").fetchone()[0])
        (readable_from,) = db.execute(f"SELECT readable_from FROM {COMPAT_TABLE}").fetchone()
        db.execute(f"PRAGMA user_version = {version + 50}")
        db.execute(f"UPDATE {COMPAT_TABLE} SET readable_from = ?", (version + 50,))
    try:
        yield
    finally:
        with sqlite3.connect(locations.database_path()) as db:
            db.execute(f"PRAGMA user_version = {version}")
            db.execute(f"UPDATE {COMPAT_TABLE} SET readable_from = ?", (readable_from,))


async def test_a_turn_a_busy_history_turns_away_is_written_once_it_is_free(loop: Loop) -> None:
    app = loop.app("loop:a")
    async with app.run_test(size=(120, 32), notifications=True) as pilot:
        with history_held():
            await send(pilot, "hi")
            await wait_finished(pilot)
            batch = app.panes[0].batch_id
            await wait_until(pilot, lambda: "Not stored yet" in screen_text(app), 5)
            said = next(n.message for n in app._notifications if "Not stored yet" in n.message)
            assert "is busy" in said and "try again" not in said  # the app tries again
            await send(pilot, "and again")  # the app still answers, and keeps both turns
            await wait_finished(pilot)
            assert _count(batch) == 0
        await wait_until(pilot, lambda: _count(batch) == 1, RETRY_S * 3)
        await wait_until(pilot, lambda: "History written again (2 turns" in screen_text(app), 5)


async def test_a_history_a_newer_workbench_took_over_is_said_once_and_nothing_breaks(
    loop: Loop,
) -> None:
    app = loop.app("loop:a")
    async with app.run_test(size=(120, 32), notifications=True) as pilot:
        with _newer_history():
            await send(pilot, "hi")
            await wait_finished(pilot)
            await wait_until(pilot, lambda: "not being stored" in screen_text(app), 5)
            await send(pilot, "still here")
            await wait_finished(pilot)
            assert app.panes[0].result is not None and app.panes[0].result.text == "back up"
            said = [n.message for n in app._notifications if "not being stored" in n.message]
            assert len(said) == 1


async def test_a_vote_a_busy_history_turns_away_is_said_and_holds_nothing_up(
    loop: Loop,
) -> None:
    """The vote waited out the store's whole busy timeout on the UI loop: 30 s frozen."""
    app = loop.app("loop:a", "loop:b")
    async with app.run_test(size=(120, 32), notifications=True) as pilot:
        await pilot.press("f2")
        await send(pilot, "hi")
        await wait_finished(pilot)
        await pilot.press("f3")
        await wait_until(pilot, lambda: isinstance(app.screen, VoteScreen), 5)
        with history_held():
            started = time.monotonic()
            await pilot.press("enter")
            await wait_until(pilot, lambda: "The vote was not stored" in screen_text(app), 10)
            assert time.monotonic() - started < 5
        assert "is busy" in screen_text(app)


async def test_a_suite_run_the_history_will_not_take_is_said_and_the_app_lives_on(
    loop: Loop,
) -> None:
    """The suites screen's run let the store's error out of its worker: the app died."""
    app = loop.app("loop:a")
    async with app.run_test(size=(140, 40), notifications=True) as pilot:
        screen = await open_suite(pilot, app, "offline-basics.yaml")
        screen.query_one("#suite-targets", Input).value = "loop:m"
        with _newer_history():
            await pilot.press("ctrl+r")
            await wait_until(pilot, lambda: "not run to the end" in screen_text(app), 10)
            assert "newer llm-workbench" in screen_text(app)
            assert app.is_running and not screen.running


async def test_quitting_waits_for_the_turns_a_busy_history_has_not_taken(loop: Loop) -> None:
    """Ctrl+Q gave them 5 s of blank screen, then dropped them: the lock outlasted that."""
    app = loop.app("loop:a")
    async with app.run_test(size=(120, 32), notifications=True) as pilot:
        with history_held():
            await send(pilot, "keep me")
            await wait_finished(pilot)
            batch = app.panes[0].batch_id
            await wait_until(pilot, lambda: "Not stored yet" in screen_text(app), 5)
            await pilot.press("ctrl+q")
            await wait_until(pilot, lambda: "Quitting once" in screen_text(app), 5)
            await pilot.pause(1)
            assert app.is_running  # waiting, and saying so
        await wait_until(pilot, lambda: not app.is_running, 10)
    assert _count(batch) == 1 and app.unstored == 0


async def test_a_second_ctrl_q_quits_without_them_and_counts_them(loop: Loop) -> None:
    app = loop.app("loop:a")
    with history_held():
        async with app.run_test(size=(120, 32), notifications=True) as pilot:
            await send(pilot, "let me go")
            await wait_finished(pilot)
            await wait_until(pilot, lambda: "Not stored yet" in screen_text(app), 5)
            await pilot.press("ctrl+q")
            await wait_until(pilot, lambda: "Quitting once" in screen_text(app), 5)
            await pilot.press("ctrl+q")
            await wait_until(pilot, lambda: not app.is_running, 5)
    assert app.unstored == 1
