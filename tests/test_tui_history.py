"""The history screen, driven with Pilot: a real chat with the embedded model, found again,
opened, exported and re-run."""

from __future__ import annotations

import io
import time
from pathlib import Path

import pytest
from textual.pilot import Pilot
from textual.widgets import DataTable, Input, Markdown, Static

from providers.base import Message
from providers.registry import parse_target
from tests.tui_helpers import Loop, assert_in_order, send, wait_finished, wait_until
from workbench import locations
from workbench.commands.ask import run_ask
from workbench.config import Endpoint, Settings
from workbench.history import list_comparisons, load_comparison
from workbench.store import Store
from workbench.tui.app import WorkbenchApp, make_app
from workbench.tui.screens.history import ComparisonView, HistoryScreen
from workbench.tui.screens.history_dialogs import ExportFormatScreen, ReplaceSessionScreen
from workbench.tui.screens.picker import ModelPicker
from workbench.wiring import make_registry

NO_KEYS = {"OLLAMA_HOST": "127.0.0.1:9"}
SMOL = "embedded:smollm2@temperature=0,max_tokens=6"
OTHER = "embedded:smollm2@max_tokens=4"
SLOW_S = 300
"""A generous bound: the machine these run on may be busy with much else."""


def _shown_body(view: ComparisonView) -> list[str]:
    """What each pane's body shows, in order: the Markdown and the lines between it."""
    bodies = []
    for body in view.query(".pane-body"):
        parts = []
        for child in body.children:
            if isinstance(child, Markdown):
                parts.append(child.source)
            elif isinstance(child, Static):
                parts.append(str(child.content))
        bodies.append("\n".join(parts))
    return bodies


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A data dir of this test's own, so the list holds only what the test asked."""
    monkeypatch.setenv("WORKBENCH_HOME", str(tmp_path))
    return tmp_path


def _on_main_screen(app: WorkbenchApp) -> bool:
    return len(app.screen_stack) == 1


async def _replace_when_asked(pilot: Pilot[None]) -> None:
    """The open conversation has turns: the re-run asks before replacing it; say yes."""
    await wait_until(pilot, lambda: isinstance(pilot.app.screen, ReplaceSessionScreen))
    await pilot.press("down", "enter")  # past "Keep", which is offered first


async def _chat(pilot: Pilot[None], *prompts: str) -> None:
    """Each prompt sent and answered in turn."""
    for prompt in prompts:
        await send(pilot, prompt)
        await wait_finished(pilot, SLOW_S)


async def _open_history(pilot: Pilot[None], app: WorkbenchApp) -> HistoryScreen:
    await pilot.press("f9")
    await wait_until(pilot, lambda: isinstance(app.screen, HistoryScreen))
    assert isinstance(app.screen, HistoryScreen)
    return app.screen


async def test_find_open_export_and_rerun_a_chat(home: Path) -> None:
    app = make_app(Settings(), [SMOL], env=NO_KEYS)
    async with app.run_test(size=(140, 40)) as pilot:
        await _chat(pilot, "My name is Ada.", "What is my name, zebra?")
        (pane,) = app.panes
        assert pane.result is not None
        asked_tokens = pane.result.input_tokens

        history = await _open_history(pilot, app)
        table = history.query_one("#history-list", DataTable)
        assert table.row_count == 2

        await pilot.press(*"zebra")  # typed on the list: it goes to the search box
        await wait_until(pilot, lambda: table.row_count == 1)
        assert isinstance(app.screen, HistoryScreen)
        await pilot.press("enter", "enter")  # to the list, then open the row
        await wait_until(pilot, lambda: isinstance(app.screen, ComparisonView))
        shown = " ".join(m.source or "" for m in app.screen.query(Markdown))
        assert "My name is Ada." in shown and "What is my name, zebra?" in shown

        for key in "mjc":
            await pilot.press("ctrl+e")
            await wait_until(pilot, lambda: isinstance(app.screen, ExportFormatScreen))
            await pilot.press(key)
            await wait_until(pilot, lambda: isinstance(app.screen, ComparisonView))
        exports = home / "exports"
        await wait_until(pilot, lambda: len(list(exports.glob("comparison-*"))) == 3)
        assert sorted(p.suffix for p in exports.iterdir()) == [".csv", ".json", ".md"]

        await pilot.press("ctrl+r")
        await _replace_when_asked(pilot)
        await wait_until(pilot, lambda: _on_main_screen(app) and len(app.panes) == 1)
        (rerun,) = app.panes
        assert rerun is not pane
        await wait_until(pilot, lambda: rerun.result is not None, SLOW_S)
        await wait_finished(pilot, SLOW_S)
        assert rerun.result is not None and rerun.result.status == "done"
        assert rerun.result.text.strip()
        turns = rerun.conversation.turns
        assert [m.role for m in turns] == ["user", "assistant", "user", "assistant"]
        assert turns[0].content == "My name is Ada."
        # The model was sent the whole chat again, token for token.
        assert rerun.result.input_tokens == asked_tokens
        latest = list_comparisons(app.store)
        assert len(latest) == 3
        assert (latest[0].prompt, latest[0].turn) == ("What is my name, zebra?", 2)


async def test_rerun_with_other_targets_from_the_list(home: Path) -> None:
    app = make_app(Settings(), [SMOL], env=NO_KEYS)
    async with app.run_test(size=(140, 40)) as pilot:
        await _chat(pilot, "Name a colour.")

        await _open_history(pilot, app)
        await pilot.press("ctrl+o")
        for spec in (OTHER, SMOL):
            await wait_until(pilot, lambda: isinstance(app.screen, ModelPicker))
            picker = app.screen
            picker.query_one("#custom", Input).focus()
            await pilot.press(*spec, "enter")
            await wait_until(pilot, lambda shown=picker: app.screen is not shown)
        await wait_until(pilot, lambda: isinstance(app.screen, ModelPicker))
        await pilot.press("escape")  # done choosing
        await _replace_when_asked(pilot)
        await wait_until(pilot, lambda: _on_main_screen(app) and len(app.panes) == 2)
        assert [p.target.spec for p in app.panes] == [OTHER, SMOL]
        await wait_until(pilot, lambda: all(p.result is not None for p in app.panes), SLOW_S)
        await wait_finished(pilot, SLOW_S)
        for pane in app.panes:
            assert pane.result is not None and pane.result.status == "done"
            assert pane.conversation.turns[0].content == "Name a colour."
        assert [sorted(c.targets) for c in list_comparisons(app.store)] == [
            sorted([OTHER, SMOL]),
            [SMOL],
        ]


async def test_a_private_turn_rerun_with_a_cloud_model_stays_local(home: Path) -> None:
    app = make_app(Settings(), [SMOL], env=NO_KEYS)
    async with app.run_test(size=(140, 40)) as pilot:
        await pilot.press("f5")
        await _chat(pilot, "My PIN is 4321.", "Say hi.")
        stored = load_comparison(app.store, list_comparisons(app.store)[0].batch)
        assert stored is not None and [m.private for m in stored.history] == [True, True]

        await _open_history(pilot, app)
        await pilot.press("ctrl+o")
        for spec in ("openai:gpt-4o-mini", SMOL):
            await wait_until(pilot, lambda: isinstance(app.screen, ModelPicker))
            picker = app.screen
            picker.query_one("#custom", Input).focus()
            await pilot.press(*spec, "enter")
            await wait_until(pilot, lambda shown=picker: app.screen is not shown)
        await wait_until(pilot, lambda: isinstance(app.screen, ModelPicker))
        await pilot.press("escape")
        await _replace_when_asked(pilot)
        await wait_until(pilot, lambda: _on_main_screen(app) and len(app.panes) == 2)
        await wait_until(pilot, lambda: all(p.result is not None for p in app.panes), SLOW_S)
        await wait_finished(pilot, SLOW_S)
        cloud, local = app.panes
        assert [m.content for m in cloud.sent] == ["Say hi."]  # the PIN never left
        assert "4321" in " ".join(m.content for m in local.sent)
        assert local.result is not None and local.result.status == "done"


async def test_rerun_of_an_endpoint_no_longer_configured_keeps_the_panes(
    home: Path, closed_port: int
) -> None:
    gone = Settings(
        endpoints={"gone": Endpoint(kind="openai", base_url=f"http://127.0.0.1:{closed_port}/v1")}
    )
    registry = make_registry(gone, NO_KEYS)
    store = Store(locations.database_path())
    try:
        await run_ask(registry, [parse_target("gone:m")], [Message("user", "Hello?")],
                      out=io.StringIO(), store=store)  # fmt: skip
    finally:
        store.close()
        await registry.aclose()

    app = make_app(Settings(), [SMOL], env=NO_KEYS)  # the endpoint is gone from the config
    async with app.run_test(size=(140, 40)) as pilot:
        (pane,) = app.panes
        await _open_history(pilot, app)
        table = app.screen.query_one("#history-list", DataTable)
        assert table.row_count == 1
        await pilot.press("ctrl+r")  # the open session has no turns: nothing to ask
        await app.workers.wait_for_complete()  # the re-run has decided, whatever it did
        await pilot.pause()
        assert isinstance(app.screen, HistoryScreen)  # still here, to pick other targets
        assert app.panes == [pane]


async def test_rerun_gives_each_target_its_own_conversation(home: Path, closed_port: int) -> None:
    """A target whose first turn failed was never given an answer: re-run, it goes on from
    where it was, not from the conversation another target had."""
    down = Settings(
        endpoints={"down": Endpoint(kind="openai", base_url=f"http://127.0.0.1:{closed_port}/v1")}
    )
    app = make_app(down, [SMOL, "down:m"], env=NO_KEYS)
    async with app.run_test(size=(140, 40)) as pilot:
        await _chat(pilot, "My name is Ada.", "What is my name?")
        assert [p.result.status for p in app.panes if p.result] == ["done", "failed"]

        await _open_history(pilot, app)
        await pilot.press("ctrl+r")  # the newest row: the second turn
        await _replace_when_asked(pilot)
        await wait_until(pilot, lambda: _on_main_screen(app) and len(app.panes) == 2)
        await wait_until(pilot, lambda: all(p.result is not None for p in app.panes), SLOW_S)
        await wait_finished(pilot, SLOW_S)
        sent = {p.target.provider: [(m.role, m.content) for m in p.sent] for p in app.panes}
        assert sent["down"] == [("user", "What is my name?")]
        assert [role for role, _ in sent["embedded"]] == ["user", "assistant", "user"]
        assert sent["embedded"][0] == ("user", "My name is Ada.")


async def test_typing_on_the_fresh_list_searches_and_runs_no_action(home: Path) -> None:
    """Typed straight after F9, a word's letters are a search, never the re-run or export
    they once were bound to (`Germany`: `m` exported, `r` replaced the session)."""
    app = make_app(Settings(), [SMOL], env=NO_KEYS)
    async with app.run_test(size=(140, 40)) as pilot:
        await _chat(pilot, "Name a colour.", "Where is Germany?")
        (pane,) = app.panes
        turns = list(pane.conversation.turns)

        history = await _open_history(pilot, app)
        table = history.query_one("#history-list", DataTable)
        assert table.has_focus and table.row_count == 2
        await pilot.press(*"Germany", "o", "c", "j")  # every old action key, typed
        search = history.query_one("#history-search", Input)
        assert search.value == "Germanyocj" and search.has_focus
        await pilot.press(*["backspace"] * 3)
        await wait_until(pilot, lambda: table.row_count == 1)
        await app.workers.wait_for_complete()
        await pilot.pause()

        assert app.screen is history  # no picker, no dialog, not back on the main screen
        assert not (home / "exports").exists()
        assert app.panes == [pane] and pane.conversation.turns == turns
        assert len(list_comparisons(app.store)) == 2  # nothing was sent again


async def test_rerun_over_an_open_conversation_asks_and_no_keeps_it(home: Path) -> None:
    app = make_app(Settings(), [SMOL], env=NO_KEYS)
    async with app.run_test(size=(140, 40)) as pilot:
        await _chat(pilot, "Name a colour.")
        (pane,) = app.panes
        turns = list(pane.conversation.turns)

        history = await _open_history(pilot, app)
        await pilot.press(*"colour")  # the search box has the focus: Ctrl+R works there too
        await pilot.press("ctrl+r")
        await wait_until(pilot, lambda: isinstance(app.screen, ReplaceSessionScreen))
        await pilot.press("escape")  # keep it
        await wait_until(pilot, lambda: app.screen is history)
        await pilot.press("enter", "ctrl+r")  # to the list; once more, from there
        await wait_until(pilot, lambda: isinstance(app.screen, ReplaceSessionScreen))
        await pilot.press("enter")  # the first choice: keep
        await wait_until(pilot, lambda: app.screen is history)
        await app.workers.wait_for_complete()
        await pilot.pause()

        assert app.panes == [pane] and pane.conversation.turns == turns
        assert len(list_comparisons(app.store)) == 1  # nothing was sent


async def test_an_opened_chat_shows_its_failed_turns_as_the_pane_did(
    home: Path, loop: Loop
) -> None:
    """A turn that failed is taken back out of the conversation (it is not sent again), so
    the later turns' messages do not have it, and a partial answer kept in it reads like a
    whole one: opened from history, each is shown with its mark and reason, as it ended."""
    app = loop.app("loop:m")
    async with app.run_test(size=(140, 40)) as pilot:
        await _chat(pilot, "one")
        loop.mode = "down"
        await _chat(pilot, "two")
        (pane,) = app.panes
        assert pane.result is not None and pane.result.error
        down = pane.result.error
        loop.mode = "cut"
        await _chat(pilot, "three")
        assert pane.result is not None and pane.result.error
        assert (pane.result.status, pane.result.text) == ("failed", "half an ")
        cut = pane.result.error
        loop.mode = "up"
        await _chat(pilot, "four")

        await _open_history(pilot, app)
        await pilot.press("enter")  # the newest row: the last turn, carrying the others
        await wait_until(pilot, lambda: isinstance(app.screen, ComparisonView))
        assert isinstance(app.screen, ComparisonView)
        (body,) = _shown_body(app.screen)
        said = [
            "> one", "back up", "> two", f"✗ failed: {down}",
            "> three", "half an", f"✗ failed: {cut}", "> four", "back up",
        ]  # fmt: skip
        assert_in_order(body, said)
        assert body.count("✗") == 2  # the turns that were answered are not marked


async def test_a_retried_turn_is_listed_with_its_turn_in_its_round(home: Path, loop: Loop) -> None:
    """Ctrl+R on a pane whose turns failed: the answer belongs to the round it retries
    (one row, every pane), and that round is turn 2 of the chat, whatever the pane's own
    conversation, which lost its failed turns, says."""
    loop.mode = "down"
    app = loop.app("loop:m", SMOL)  # the first pane is the current one: Ctrl+R's
    async with app.run_test(size=(140, 40)) as pilot:
        await _chat(pilot, "My name is Ada.", "What is my name?")
        looped = app.panes[0]
        assert looped.result is not None and looped.result.status == "failed"
        failed = looped.result
        loop.mode = "up"
        await pilot.press("ctrl+r")
        await wait_until(pilot, lambda: looped.result is not failed, 10)
        await wait_finished(pilot)
        assert looped.result is not None and looped.result.status == "done"

        history = await _open_history(pilot, app)
        table = history.query_one("#history-list", DataTable)
        origin, prompt = str(table.get_row_at(0)[1]), str(table.get_row_at(0)[3])
        assert (origin, prompt) == ("chat · turn 2", "What is my name?")
        assert table.row_count == 2  # the two prompts: the retry has no row of its own
        (latest, first) = list_comparisons(app.store)
        assert sorted(latest.targets) == sorted(["loop:m", SMOL])
        assert latest.statuses == ("done", "done")  # each pane as its turn ended
        assert (first.turn, sorted(first.statuses)) == (1, ["done", "failed"])


async def test_a_new_chat_is_a_conversation_of_its_own(home: Path, loop: Loop) -> None:
    """After New chat (Ctrl+L) the turns count from 1 again, and the chat before is not
    shown as part of the new one."""
    app = loop.app("loop:m")
    async with app.run_test(size=(140, 40)) as pilot:
        await _chat(pilot, "one", "two")
        await pilot.press("ctrl+l")
        await wait_until(pilot, lambda: not app.panes[0].conversation.turns)
        await _chat(pilot, "three")
        listed = list_comparisons(app.store)
        assert [(s.prompt, s.turn) for s in listed] == [("three", 1), ("two", 2), ("one", 1)]
        newest = load_comparison(app.store, listed[0].batch)
        assert newest is not None
        (pane,) = newest.panes
        assert [t.prompt.content for t in pane.turns] == ["three"]


async def test_an_opened_chat_shows_tags_in_prompts_and_answers_as_written(
    home: Path, loop: Loop
) -> None:
    """Read as HTML by markdown-it, a tag would be left out: `What does  do?`."""
    app = loop.app("loop:m")
    async with app.run_test(size=(140, 40)) as pilot:
        await _chat(pilot, "What does <blink>this</blink> do?")
        await _open_history(pilot, app)
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, ComparisonView))
        await pilot.pause(0.3)
        screen = app.export_screenshot()
    shown = screen.replace("&#160;", " ")
    assert "&lt;blink&gt;this&lt;/blink&gt;" in shown


async def test_a_turn_streaming_at_new_chat_is_stored_cancelled_at_once(home: Path) -> None:
    """Cleared by Ctrl+L mid-stream, the turn was stored only when the app quit: History
    did not have it until then."""
    app = make_app(Settings(), ["embedded:smollm2@max_tokens=400"], env=NO_KEYS)
    async with app.run_test(size=(140, 40)) as pilot:
        (pane,) = app.panes
        await send(pilot, "Write a long story about a lighthouse keeper.")
        await wait_until(pilot, lambda: pane.result is not None and bool(pane.result.text))
        await pilot.press("ctrl+l")
        await wait_until(pilot, lambda: not pane.conversation.turns and pane.result is None)
        rows = app.store.db.execute("SELECT status, text FROM responses").fetchall()
        assert [status for status, _ in rows] == ["cancelled"]
        assert rows[0][1]  # what it had written is kept


async def test_quitting_mid_stream_stores_every_pane_cancelled_with_its_partial_text(
    loop: Loop,
) -> None:
    loop.held = {"a", "b"}
    app = loop.app("loop:a", "loop:b")
    async with app.run_test(size=(120, 32)) as pilot:
        await send(pilot, "hi")
        panes = app.panes
        await wait_until(
            pilot, lambda: all(p.result is not None and "la" in p.result.text for p in panes), 10
        )
        batch = panes[0].batch_id
        started = time.monotonic()
        await pilot.press("ctrl+q")
    assert time.monotonic() - started < 5  # quitting stays quick
    with Store(locations.database_path()) as store:
        rows = store.responses(batch)
    assert sorted(str(r["target"]) for r in rows) == ["loop:a", "loop:b"]
    for row in rows:
        assert row["status"] == "cancelled"
        assert str(row["text"]).startswith("partial la")
