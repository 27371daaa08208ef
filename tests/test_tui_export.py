"""Ctrl+E's export of the open chat, and a stored chat's exports, driven with Pilot and a
loopback server: failed turns are shown, and the turn is numbered as History numbers it."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from textual.pilot import Pilot
from textual.widgets import TextArea

from providers.base import Message
from tests.tui_helpers import (
    NO_KEYS,
    Loop,
    assert_in_order,
    pick_typed,
    send,
    wait_finished,
    wait_until,
)
from workbench import locations
from workbench.config import Settings
from workbench.export import (
    CSV_COLUMNS,
    PaneRecord,
    comparison_markdown,
    stored_csv,
    stored_json,
    stored_markdown,
)
from workbench.history import StoredTurn, list_comparisons, load_comparison
from workbench.tui.app import make_app
from workbench.tui.screens.system_prompt import SystemPromptEditor
from workbench.tui.widgets.prompt import PromptBox

LOCAL = "embedded:smollm2@max_tokens=4,temperature=0"


async def _chat(pilot: Pilot[None], loop: Loop, *turns: tuple[str, str]) -> None:
    """Each (mode, prompt): the server set to `mode`, the prompt sent and ended."""
    for mode, prompt in turns:
        loop.mode = mode
        await send(pilot, prompt)
        await wait_finished(pilot)


async def test_exports_show_failed_turns_and_the_turn_history_shows(home: Path, loop: Loop) -> None:
    app = loop.app("loop:m")
    async with app.run_test(size=(140, 40)) as pilot:
        await _chat(pilot, loop, ("up", "one"), ("down", "two"), ("cut", "three"), ("up", "four"))
        await pilot.press("ctrl+e")  # the open chat
        exports = locations.data_dir() / "exports"
        await wait_until(pilot, lambda: exports.is_dir() and any(exports.iterdir()), 5)
        (live,) = [p.read_text(encoding="utf-8") for p in exports.iterdir()]
        store = app.store
        (latest, *_) = list_comparisons(store)
        comparison = load_comparison(store, latest.batch)
    assert comparison is not None and latest.turn == comparison.turn == 4
    (pane,) = comparison.panes
    down, cut = (t.error for t in pane.turns if t.status == "failed")
    assert down and cut

    for markdown in (stored_markdown(comparison), live):
        said = [
            "> one", "back up", "> two", f"✗ failed:** {down}",
            "> three", "half an", f"✗ failed:** {cut}", "> four", "back up",
        ]  # fmt: skip
        assert_in_order(markdown, said)
        assert markdown.count("✗") == 2
        assert "chat · turn 4" in markdown

    document = json.loads(stored_json(comparison))
    assert document["turn"] == 4
    (exported,) = document["panes"]
    assert exported["turn"] == 4
    turns = [(t["prompt"], t["status"], t["error"]) for t in exported["turns"]]
    assert turns == [
        ("one", "done", None), ("two", "failed", down), ("three", "failed", cut),
        ("four", "done", None),
    ]  # fmt: skip
    assert exported["turns"][2]["answer"] == "half an "

    header, row = list(csv.reader(io.StringIO(stored_csv(comparison))))
    record = dict(zip(CSV_COLUMNS, row, strict=True))
    assert tuple(header) == CSV_COLUMNS and record["turn"] == "4"  # it counted 2: one, four


async def test_exports_say_which_model_answered_and_under_which_system_prompt(
    home: Path, loop: Loop
) -> None:
    """The pane is named for its model and system prompt as they are now: turns asked
    before a switch, or under another system prompt, say so where they come."""
    app = loop.app("loop:m")
    async with app.run_test(size=(140, 40)) as pilot:
        await _system_prompt(pilot, "Be brief.")
        await _chat(pilot, loop, ("up", "one"))
        await pick_typed(pilot, "ctrl+o", "loop:n")
        await wait_until(pilot, lambda: app.panes[0].target.model == "n")
        await _system_prompt(pilot, "Be thorough.")
        app.query_one(PromptBox).focus()
        await _chat(pilot, loop, ("up", "two"))
        await pilot.press("ctrl+e")
        exports = locations.data_dir() / "exports"
        await wait_until(pilot, lambda: exports.is_dir() and any(exports.iterdir()), 5)
        (live,) = [p.read_text(encoding="utf-8") for p in exports.iterdir()]
        (latest, *_) = list_comparisons(app.store)
        comparison = load_comparison(app.store, latest.batch)
    assert comparison is not None
    for markdown in (live, stored_markdown(comparison)):
        assert_in_order(markdown, [
            "## loop:n", "*System:* Be brief.", "> one", "*Answered by loop:m:*", "back up",
            "*System, from here:* Be thorough.", "> two", "back up",
        ])  # fmt: skip
        assert markdown.count("Answered by") == 1  # the answer to "two" is the pane's own


async def _system_prompt(pilot: Pilot[None], text: str) -> None:
    app = pilot.app
    await pilot.press("ctrl+t")
    await wait_until(pilot, lambda: isinstance(app.screen, SystemPromptEditor))
    app.screen.query_one(TextArea).text = text
    await pilot.press("ctrl+s")
    await wait_until(pilot, lambda: not isinstance(app.screen, SystemPromptEditor))


async def test_export_with_nothing_to_export_writes_no_file() -> None:
    app = make_app(Settings(), [LOCAL], env=NO_KEYS)
    exports = locations.data_dir() / "exports"
    before = set(exports.glob("*.md"))
    async with app.run_test(size=(120, 32), notifications=True) as pilot:
        await pilot.press("ctrl+d")  # its model may still be loading: the app survives that
        await wait_until(pilot, lambda: not app.panes, 5)
        await pilot.press("ctrl+e")
        await pilot.pause(0.2)
        assert set(exports.glob("*.md")) == before
        assert "Nothing to export" in app.export_screenshot().replace("&#160;", " ")


def test_a_turn_cancelled_before_any_answer_is_marked_without_an_empty_reason() -> None:
    turn = StoredTurn(Message("user", "hi"), "", "cancelled", None, "b1", "loop:m", None)
    failed = StoredTurn(Message("user", "again"), "", "failed", "HTTP 503", "b2", "loop:m", None)
    markdown = comparison_markdown([PaneRecord("loop:m", None, [turn, failed], None)])
    assert_in_order(markdown, ["> hi", "**⊘ cancelled**\n", "> again", "**✗ failed:** HTTP 503"])
    assert "cancelled:" not in markdown
