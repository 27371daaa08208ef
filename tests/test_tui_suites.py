"""The suites screen: pick a shipped suite, run it on the embedded model, open a cell."""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.widgets import DataTable, OptionList, ProgressBar

from tests.tui_helpers import wait_until
from workbench.config import Settings
from workbench.tui.app import make_app
from workbench.tui.screens.suites import CellScreen, SuitesScreen, TextScreen


async def test_run_a_suite_open_a_cell_and_compare_with_its_previous_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WORKBENCH_HOME", str(tmp_path))  # no earlier run of the suite
    app = make_app(Settings(), ["embedded:smollm2"], env={"OLLAMA_HOST": "127.0.0.1:9"})
    async with app.run_test(size=(140, 40)) as pilot:
        await pilot.press("f8")
        await wait_until(pilot, lambda: isinstance(app.screen, SuitesScreen))
        screen = app.screen
        assert isinstance(screen, SuitesScreen)
        suites = screen.query_one("#suite-list", OptionList)
        index = next(i for i in range(suites.option_count)
                     if suites.get_option_at_index(i).id.endswith("offline-basics.yaml"))  # type: ignore[union-attr]  # fmt: skip
        suites.focus()
        suites.highlighted = index
        await pilot.press("enter")
        await wait_until(pilot, lambda: screen.suite is not None)
        assert screen.suite is not None
        cases = len(screen.suite.cases)
        await pilot.press("ctrl+r")
        await wait_until(pilot, lambda: len(screen.results) == cases, timeout_s=120)
        await pilot.pause(0.2)
        matrix = screen.query_one("#matrix", DataTable)
        assert matrix.row_count == cases
        assert screen.query_one(ProgressBar).progress == cases
        assert "✓" in str(matrix.get_cell_at((0, 1)))
        matrix.focus()
        matrix.move_cursor(row=0, column=1)
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
        await pilot.press("f9")
        await wait_until(pilot, lambda: isinstance(app.screen, TextScreen))
        assert isinstance(app.screen, TextScreen) and "offline-basics" in app.screen.markdown
        await pilot.press("escape")
        await wait_until(pilot, lambda: isinstance(app.screen, SuitesScreen))
        await pilot.press("escape")  # and Escape again goes back to the panes
        await wait_until(pilot, lambda: app.screen is app.screen_stack[0])
