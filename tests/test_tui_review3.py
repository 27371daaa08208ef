"""A third review's findings, driving the real TUI with Pilot and loopback servers: Ctrl+C's
toast, a prompt sent while panes answer, a pane whose provider has no key, what a blind
round gives away, and exports that leave out failed turns. Each test failed before its fix."""

from __future__ import annotations

import csv
import io
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from pytest_httpserver import HTTPServer
from textual.pilot import Pilot
from werkzeug import Request, Response

from providers.registry import parse_target
from tests.fault_servers import WIRES, Cut, Endless, threaded_server
from tests.tui_helpers import send, shown, wait_finished, wait_until
from workbench.config import Endpoint, Settings
from workbench.export import CSV_COLUMNS, stored_csv, stored_json, stored_markdown
from workbench.history import list_comparisons, load_comparison
from workbench.tui.app import WorkbenchApp, make_app
from workbench.tui.screens.costs import CostsScreen
from workbench.tui.screens.history import HistoryScreen
from workbench.tui.widgets.prompt import PromptBox

NO_KEYS = {"OLLAMA_HOST": "127.0.0.1:9"}
SLOW_S = 120
"""How long a held answer goes on: keys typed while panes stream can take seconds each on
a busy machine."""


@dataclass
class Loop:
    """An OpenAI-compatible server on loopback. `mode` is "up" (answers `back up`), "down"
    (503) or "cut" (half an answer, then the connection closes); the models named in `held`
    stream endlessly until `release` is set."""

    url: str
    mode: str = "up"
    held: set[str] = field(default_factory=set)
    release: threading.Event = field(default_factory=threading.Event)
    asked: list[str] = field(default_factory=list)
    """The last user message of each request, in order."""


@pytest.fixture(scope="module")
def make_httpserver() -> Iterator[HTTPServer]:
    with threaded_server() as server:  # a held stream blocks no other request
        yield server


@pytest.fixture
def loop(httpserver: HTTPServer) -> Iterator[Loop]:
    wire = WIRES["openai"]
    server = Loop(httpserver.url_for("/v1"))

    def answer(request: Request) -> Response:
        body: dict[str, Any] = json.loads(request.get_data() or b"{}")
        messages = body.get("messages") or [{}]
        server.asked.append(str(messages[-1].get("content", "")))
        if body.get("model") in server.held:
            endless = Endless(wire.text("la "), server.release, limit_s=SLOW_S)
            return wire.stream("partial ", then=[endless])
        if server.mode == "down":
            return wire.error(503, "the server is down")
        if server.mode == "cut":
            return wire.stream("half an ", then=[Cut()])
        return wire.stream("back ", "up")

    httpserver.expect_request(wire.path).respond_with_handler(answer)
    try:
        yield server
    finally:
        server.release.set()


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A data dir of this test's own: its exports and history hold only what it made."""
    monkeypatch.setenv("WORKBENCH_HOME", str(tmp_path))
    return tmp_path


def _app(loop: Loop, *targets: str, env: dict[str, str] | None = None) -> WorkbenchApp:
    endpoints = {"loop": Endpoint(kind="openai", base_url=loop.url)}
    return make_app(Settings(endpoints=endpoints), list(targets), env=env or NO_KEYS)


def _on_screen(app: WorkbenchApp) -> str:
    return app.export_screenshot().replace("&#160;", " ")


def _notes(app: WorkbenchApp) -> list[str]:
    return [n.message for n in app._notifications]


# --- 1. Ctrl+C's toast ---------------------------------------------------------------


async def test_ctrl_c_says_how_to_quit_in_words_not_markup(loop: Loop) -> None:
    """`Press [b]ctrl+q[/b] to quit the app`: the app shows every toast as plain text, and
    Textual's own message is markup."""
    app = _app(loop, "loop:a")
    async with app.run_test(size=(120, 32), notifications=True) as pilot:
        await pilot.press("ctrl+c")
        await wait_until(pilot, lambda: bool(_notes(app)), 5)
        await pilot.pause(0.2)
        screen = _on_screen(app)
        assert "Press Ctrl+Q to quit the app" in screen and "Do you want to quit?" in screen
        assert "[b]" not in screen and "[/b]" not in screen
        assert "[b]" not in _notes(app)[-1]


# --- 2. Enter while panes are answering -------------------------------------------------


def _box(app: WorkbenchApp) -> PromptBox:
    return app.query_one(PromptBox)


async def _enter(pilot: Pilot[None], prompt: str) -> None:
    """The prompt put in the box whole, then Enter: typed while panes stream, each key
    waits for a repaint."""
    app = pilot.app
    assert isinstance(app, WorkbenchApp)
    _box(app).load_text(prompt)
    _box(app).focus()
    await pilot.press("enter")


async def _streaming(pilot: Pilot[None], app: WorkbenchApp, *models: str) -> None:
    """Until the panes of `models` show part of their endless answers."""
    panes = [p for p in app.panes if p.target.model in models]
    await wait_until(
        pilot, lambda: all(p.result is not None and "la" in p.result.text for p in panes), 10
    )


async def test_enter_while_every_pane_answers_sends_nothing_and_keeps_the_prompt(
    loop: Loop,
) -> None:
    loop.held = {"a", "b"}
    app = _app(loop, "loop:a", "loop:b")
    async with app.run_test(size=(140, 40), notifications=True) as pilot:
        await send(pilot, "first")
        await _streaming(pilot, app, "a", "b")
        await _enter(pilot, "second")
        await pilot.pause(0.3)
        assert _box(app).text == "second"  # nothing to recover with ↑
        (note,) = [n for n in _notes(app) if "second" in n or "not sent" in n.lower()]
        assert "not sent" in note.lower() and "Esc" in note
        assert loop.asked == ["first", "first"]
        for pane in app.panes:
            assert [m.content for m in pane.conversation.turns] == ["first"]


async def test_enter_while_some_panes_answer_sends_to_none_until_they_are_done(
    loop: Loop,
) -> None:
    """The prompt went to the idle panes only, and the conversations went apart."""
    loop.held = {"slow"}
    app = _app(loop, "loop:slow", "loop:fast")
    async with app.run_test(size=(140, 40), notifications=True) as pilot:
        await send(pilot, "first")
        await _streaming(pilot, app, "slow")
        fast = next(p for p in app.panes if p.target.model == "fast")
        await wait_until(pilot, lambda: fast.result is not None and not fast.busy, 10)
        await _enter(pilot, "second")
        await pilot.pause(0.3)
        assert _box(app).text == "second"
        assert loop.asked == ["first", "first"]
        assert [m.content for m in fast.conversation.turns] == ["first", "back up"]
        notes = [n for n in _notes(app) if "not sent" in n.lower()]
        assert len(notes) == 1 and "loop:slow" in notes[0]
        # Esc cancels the slow one; then Enter sends the prompt still in the box to both.
        await pilot.press("escape")
        await wait_until(pilot, lambda: not any(p.busy for p in app.panes), 10)
        loop.held = set()
        _box(app).focus()
        await pilot.press("enter")
        await wait_finished(pilot)
        assert sorted(loop.asked[2:]) == ["second", "second"]
        assert _box(app).text == ""
        for pane in app.panes:
            assert [m.content for m in pane.conversation.turns if m.role == "user"][-1] == "second"


# --- 3. a pane whose provider has no key says so at once ----------------------------------


async def test_a_pane_without_its_api_key_says_which_to_set_before_anything_is_sent(
    loop: Loop,
) -> None:
    app = _app(loop, "openai:gpt-4o-mini", "loop:a")
    async with app.run_test(size=(160, 40)) as pilot:
        await pilot.pause(0.2)
        keyless, other = app.panes
        assert "needs OPENAI_API_KEY" in shown(keyless, "header")
        error = shown(keyless, "error")
        assert "OPENAI_API_KEY is not set" in error and "export" in error
        assert shown(other, "header").endswith("ready") and not other.query_one("#error").display
        assert loop.asked == []
        added = await app.add_pane(parse_target("anthropic:claude-3-5-haiku-latest"))
        await pilot.pause(0.1)
        assert "needs ANTHROPIC_API_KEY" in shown(added, "header")
        assert "ANTHROPIC_API_KEY is not set" in shown(added, "error")
        # Blind: it would say which letter is the cloud model, until the reveal.
        await pilot.press("f2")
        await wait_until(pilot, lambda: all(p.blind_name for p in app.panes), 5)
        await pilot.pause(0.1)
        screen = _on_screen(app)
        assert "API_KEY" not in screen and "needs" not in screen
        assert not any(p.query_one("#error").display for p in app.panes)
        await pilot.press("f2")
        await wait_until(pilot, lambda: "needs OPENAI_API_KEY" in shown(keyless, "header"), 5)
        assert "OPENAI_API_KEY is not set" in shown(keyless, "error")


async def test_a_pane_with_its_api_key_set_is_ready(loop: Loop) -> None:
    env = {**NO_KEYS, "OPENAI_API_KEY": "sk-test-not-a-real-key"}
    app = _app(loop, "openai:gpt-4o-mini", env=env)
    async with app.run_test(size=(160, 40)) as pilot:
        await pilot.pause(0.2)
        (pane,) = app.panes
        assert shown(pane, "header").endswith("cloud · ready")
        assert not pane.query_one("#error").display


# --- 4. a blind round gives nothing away until the vote -----------------------------------


async def test_export_history_and_costs_wait_for_the_vote_in_a_blind_round(
    home: Path, loop: Loop
) -> None:
    app = _app(loop, "loop:a", "loop:b")
    async with app.run_test(size=(140, 40), notifications=True) as pilot:
        await pilot.press("f2")
        await send(pilot, "hi")
        await wait_finished(pilot)
        exports = home / "exports"
        for key in ("ctrl+e", "f9", "f10"):
            await pilot.press(key)
            await pilot.pause(0.3)
            assert app.screen is app.screen_stack[0], key
        # The palette calls the actions themselves, past the keys.
        for action in (app.action_export, app.action_history, app.action_costs):
            action()
            await pilot.pause(0.2)
            assert app.screen is app.screen_stack[0]
        assert not exports.exists() or not list(exports.iterdir())
        refusals = [n for n in _notes(app) if "after the vote" in n]
        assert len(refusals) == 6 and all("F2" in n for n in refusals)
        await pilot.press("f2")  # leaving blind mode reveals the names
        await pilot.press("f9")
        await wait_until(pilot, lambda: isinstance(app.screen, HistoryScreen), 5)
        await pilot.press("escape")
        await wait_until(pilot, lambda: app.screen is app.screen_stack[0], 5)
        await pilot.press("f10")
        await wait_until(pilot, lambda: isinstance(app.screen, CostsScreen), 5)
        await pilot.press("escape")
        await wait_until(pilot, lambda: app.screen is app.screen_stack[0], 5)
        await pilot.press("ctrl+e")
        await wait_until(pilot, lambda: exports.is_dir() and any(exports.iterdir()), 5)


# --- 5. exports show failed turns, numbered as History numbers them ---------------------


async def _chat(pilot: Pilot[None], loop: Loop, *turns: tuple[str, str]) -> None:
    """Each (mode, prompt): the server set to `mode`, the prompt sent and ended."""
    for mode, prompt in turns:
        loop.mode = mode
        await send(pilot, prompt)
        await wait_finished(pilot)


async def test_exports_show_failed_turns_and_the_turn_history_shows(home: Path, loop: Loop) -> None:
    app = _app(loop, "loop:m")
    async with app.run_test(size=(140, 40)) as pilot:
        await _chat(pilot, loop, ("up", "one"), ("down", "two"), ("cut", "three"), ("up", "four"))
        await pilot.press("ctrl+e")  # the open chat
        exports = home / "exports"
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
        at = 0
        for part in said:
            assert part in markdown[at:], f"{part!r} missing, or out of order, in {markdown!r}"
            at = markdown.index(part, at) + len(part)
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
