"""A history the TUI cannot write to just now (another process holds it) or at all (a
newer workbench's): the app carries on, says so, and loses no turn it could keep."""

from __future__ import annotations

import sqlite3

from tests.tui_helpers import Loop, screen_text, send, wait_finished, wait_until
from workbench import locations
from workbench.store import COMPAT_TABLE
from workbench.tui.history_writer import RETRY_S


def _count(batch: str) -> int:
    db = sqlite3.connect(locations.database_path())
    try:
        row = db.execute("SELECT count(*) FROM responses WHERE batch = ?", (batch,)).fetchone()
        return int(row[0])
    finally:
        db.close()


async def test_a_turn_a_busy_history_turns_away_is_written_once_it_is_free(loop: Loop) -> None:
    app = loop.app("loop:a")
    async with app.run_test(size=(120, 32), notifications=True) as pilot:
        blocker = sqlite3.connect(locations.database_path(), isolation_level=None)
        blocker.execute("BEGIN EXCLUSIVE")  # another workbench, writing for a long while
        try:
            await send(pilot, "hi")
            await wait_finished(pilot)
            batch = app.panes[0].batch_id
            await wait_until(pilot, lambda: "Not stored yet" in screen_text(app), 5)
            assert "is busy" in screen_text(app)
            await send(pilot, "and again")  # the app still answers, and keeps both turns
            await wait_finished(pilot)
            assert _count(batch) == 0
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        await wait_until(pilot, lambda: _count(batch) == 1, RETRY_S * 3)
        await wait_until(pilot, lambda: "History written again (2 turns" in screen_text(app), 5)


async def test_a_history_a_newer_workbench_took_over_is_said_once_and_nothing_breaks(
    loop: Loop,
) -> None:
    app = loop.app("loop:a")
    async with app.run_test(size=(120, 32), notifications=True) as pilot:
        with sqlite3.connect(locations.database_path()) as db:  # migrated past us meanwhile
            version = int(db.execute("PRAGMA user_version").fetchone()[0])
            (readable_from,) = db.execute(f"SELECT readable_from FROM {COMPAT_TABLE}").fetchone()
            db.execute(f"PRAGMA user_version = {version + 50}")
            db.execute(f"UPDATE {COMPAT_TABLE} SET readable_from = ?", (version + 50,))
        try:
            await send(pilot, "hi")
            await wait_finished(pilot)
            await wait_until(pilot, lambda: "not being stored" in screen_text(app), 5)
            await send(pilot, "still here")
            await wait_finished(pilot)
            assert app.panes[0].result is not None and app.panes[0].result.text == "back up"
        finally:
            with sqlite3.connect(locations.database_path()) as db:
                db.execute(f"PRAGMA user_version = {version}")
                db.execute(f"UPDATE {COMPAT_TABLE} SET readable_from = ?", (readable_from,))
