"""Panes in the real app: blind mode shows nothing that tells its models apart, the pane the
keys act on is marked, a pane is one Tab stop, a pane's lines fit its width, a pane whose
provider has no API key says so, an Ollama pane learns its model's window, and a thinking
model's rate shows as it reasons. Each test failed before its fix."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from textual.pilot import Pilot
from textual.widgets import Static

from providers.embedded import EmbeddedProvider
from providers.ollama import DEFAULT_NUM_CTX
from providers.registry import parse_target
from tests.ollama_server import OllamaServer
from tests.tui_helpers import Loop, send, shown, wait_finished, wait_until
from workbench import locations
from workbench.config import Settings
from workbench.engine.result import TargetResult
from workbench.tui.app import WorkbenchApp, make_app
from workbench.tui.screens.costs import CostsScreen
from workbench.tui.screens.history import HistoryScreen
from workbench.tui.widgets.pane import Pane, metrics_line
from workbench.tui.widgets.prompt import PromptBox

NO_KEYS = {"OLLAMA_HOST": "127.0.0.1:9"}
CLOUD = ("openai:gpt-4o-mini", "anthropic:claude-3-5-haiku-latest")
"""Targets that need no server: without their keys, a prompt fails at once."""


def _app(*targets: str) -> WorkbenchApp:
    return make_app(Settings(), list(targets), env=NO_KEYS)


def _on_screen(app: WorkbenchApp) -> str:
    return app.export_screenshot().replace("&#160;", " ")


def _border(pane: Pane) -> tuple[str, str]:
    edge, color = pane.styles.border_top
    return edge, color.hex


# --- 1. blind mode: no loading state, no token counts --------------------------------


async def _watch_load(pilot: Pilot[None], pane: Pane, other: Pane) -> tuple[int, int]:
    """Frames a pane's real model load (~0.3 s here) lasted, and in how many of them the
    pane looked loading: its class, its border against `other`'s, its header."""
    app = pilot.app
    assert isinstance(app, WorkbenchApp)
    frames = looked = 0
    for _ in range(1000):  # 20 s at most
        if frames and pane.model_state is None:
            break
        if pane.model_state is not None:
            frames += 1
            looked += pane.has_class("loading") or _border(pane) != _border(other)
            looked += "loading" in shown(pane, "header") or "loading" in _on_screen(app)
        await pilot.pause(0.02)
    assert frames, "the model loaded before the pane was drawn: nothing was watched"
    return frames, looked


async def test_a_model_loading_in_a_blind_round_looks_like_any_other_pane_until_the_reveal() -> (
    None
):
    """A pane added to a blind round got the yellow `loading` border while its embedded
    model loaded: only a local model loads, so that said which letter it was. Each app has
    a registry of its own, so the model loads for real in each."""
    app = _app(*CLOUD)
    async with app.run_test(size=(160, 40)) as pilot:
        pane = await app.add_pane(parse_target("embedded:smollm2"))
        other = next(p for p in app.panes if p is not pane and p is not app.current)
        _, looked = await _watch_load(pilot, pane, other)
        assert looked  # out of blind mode, the load shows
    app = _app(*CLOUD)
    async with app.run_test(size=(160, 40)) as pilot:
        await pilot.press("f2")
        await wait_until(pilot, lambda: all(p.blind_name for p in app.panes))
        pane = await app.add_pane(parse_target("embedded:smollm2"))
        other = next(p for p in app.panes if p is not pane and p is not app.current)
        _, looked = await _watch_load(pilot, pane, other)
        assert pane.blind_name and looked == 0


async def test_blind_metrics_show_no_token_counts_until_the_reveal(loop: Loop) -> None:
    """Token counts differ by tokenizer: `in 9 / out 2` beside `in 5 / out 2` hints at
    which family each model is."""
    app = loop.app("loop:a", "loop:b")
    async with app.run_test(size=(160, 40)) as pilot:
        await pilot.press("f2")
        await send(pilot, "hi")
        await wait_finished(pilot)
        for pane in app.panes:
            metrics = shown(pane, "metrics")
            assert "TTFT" in metrics and "in 5" not in metrics and "out 2" not in metrics
        await pilot.resize_terminal(80, 40)  # compact: `5→2`
        await wait_until(pilot, lambda: all("TTFT" not in shown(p, "metrics") for p in app.panes))
        assert all("→" not in shown(p, "metrics") for p in app.panes)
        await pilot.press("f2")  # the reveal
        await wait_until(pilot, lambda: all("5→2" in shown(p, "metrics") for p in app.panes), 5)


# --- 2. the current pane is marked ----------------------------------------------------


def _marked(app: WorkbenchApp) -> list[bool]:
    return [pane.has_class("current") for pane in app.panes]


async def test_the_pane_the_keys_act_on_is_marked_while_the_prompt_has_the_focus() -> None:
    """Ctrl+D, Ctrl+R, Ctrl+F act on the current pane, and nothing showed which one it was
    while the user typed in the prompt box."""
    app = _app(*CLOUD, "openai:gpt-4.1-mini")
    async with app.run_test(size=(160, 40)) as pilot:
        first, second, third = app.panes
        box = app.query_one(PromptBox)
        assert app.focused is box
        assert _marked(app) == [True, False, False]
        # Plain in a screenshot: a heavy border, on one pane only.
        assert _on_screen(app).count("┏") == 1
        assert _border(first) != _border(second) == _border(third)
        await pilot.click(second)
        box.focus()
        await pilot.pause()
        assert app.current is second and _marked(app) == [False, True, False]
        await pilot.press("ctrl+d")  # the marked one goes; the first is current again
        await wait_until(pilot, lambda: len(app.panes) == 2)
        assert app.panes == [first, third] and _marked(app) == [True, False]
        await app.add_pane(parse_target("openai:gpt-4o"))
        await pilot.pause()
        assert _marked(app) == [True, False, False]
        await pilot.press("ctrl+f")  # keep the first: one pane left, nothing to tell apart
        await wait_until(pilot, lambda: len(app.panes) == 1)
        assert _marked(app) == [False] and "┏" not in _on_screen(app)


# --- 3. one Tab stop a pane, and its keys scroll it ------------------------------------


async def test_each_pane_is_one_tab_stop() -> None:
    """Tab went to a pane and then to the text inside it: two stops a pane, and the first
    of them did not scroll."""
    app = _app(*CLOUD)
    async with app.run_test(size=(120, 30)) as pilot:
        first, second = app.panes
        box = app.query_one(PromptBox)
        stops = []
        for _ in range(3):
            await pilot.press("tab")
            stops.append(app.focused)
        assert stops == [first, second, box]


async def test_the_keys_scroll_a_focused_pane() -> None:
    app = _app(*CLOUD)
    async with app.run_test(size=(120, 30)) as pilot:
        pane = app.panes[0]
        for line in range(60):
            await pane.note(f"line {line}")
        body = pane._body
        # Following the text, which moves into view at the next scroll period.
        await wait_until(pilot, lambda: 0 < body.max_scroll_y == body.scroll_y, 5)
        await pilot.press("tab")
        assert app.focused is pane
        await pilot.press("pageup")
        await wait_until(pilot, lambda: body.scroll_y < body.max_scroll_y, 5)
        assert not body.follow
        await pilot.press("home")
        await wait_until(pilot, lambda: body.scroll_y == 0, 5)
        await pilot.press("down", "pagedown")
        await wait_until(pilot, lambda: body.scroll_y > 1, 5)
        await pilot.press("end")
        await wait_until(pilot, lambda: body.scroll_y == body.max_scroll_y, 5)
        assert body.follow


# --- 4. a pane's lines use its whole width, and never cut a figure -------------------------


def _finished() -> TargetResult:
    """What a local model's finished answer shows in a compact pane:
    `401ms · 56 t/s · ctx 309/8k · 189→120 · 316 MB`, 46 cells."""
    result = TargetResult("embedded:m", "embedded:m", "embedded", "m", is_local=True)
    result.status, result.ttft_s, result.e2e_s = "done", 0.401, 2.14
    result.input_tokens, result.output_tokens = 189, 120
    result.input_exact = result.output_exact = True
    return result


def test_a_metrics_line_too_long_in_full_keeps_every_figure_in_short() -> None:
    """Short forms before dropped figures: the memory figure, last, went first."""
    result, memory = _finished(), 316 * 2**20
    full = metrics_line(result, memory, window=8192).plain
    short = "401ms · 56 t/s · ctx 309/8k · 189→120 · 316 MB"
    assert full.endswith("· local · 316 MB") and len(full) > len(short)
    assert metrics_line(result, memory, window=8192, width=len(full)).plain == full
    assert metrics_line(result, memory, window=8192, width=len(short)).plain == short
    assert metrics_line(result, memory, window=8192, width=len(short) - 1).plain.endswith("…")


async def test_a_full_metrics_line_is_whole_and_one_cell_more_drops_a_figure() -> None:
    """At 150×42 with three panes the line was one cell longer than the first pane had: the
    memory figure showed as `316 …`, which reads as a different figure."""
    app = _app(*CLOUD, "openai:gpt-4.1-mini")
    async with app.run_test(size=(150, 42)) as pilot:
        full = metrics_line(_finished(), 316 * 2**20, compact=True, window=8192).plain
        assert full == "401ms · 56 t/s · ctx 309/8k · 189→120 · 316 MB"
        rooms = []
        for pane in app.panes:
            pane.result, pane.memory_bytes, pane.window = _finished(), 316 * 2**20, 8192
            pane.render_metrics()

        def drawn() -> bool:  # a busy machine may take more than a frame to lay them out
            lines = [p.query_one("#metrics", Static).render_line(0).text for p in app.panes]
            return all(line.strip().startswith("401ms") for line in lines)

        await wait_until(pilot, drawn)
        for pane in app.panes:
            metrics = pane.query_one("#metrics", Static)
            room = metrics.content_region.width
            rooms.append(room)
            visible = metrics.render_line(0).text.strip()
            if len(full) <= room:
                assert visible == full
            else:  # whole figures give way, and `…` says some did
                assert "316 MB" not in visible and "316" not in visible, visible
                assert visible.endswith("…") and len(visible) <= room
                assert visible.startswith("401ms · 56 t/s · ctx 309/8k"), visible
        assert len(full) in rooms and len(full) - 1 in rooms  # exactly full, one cell over


async def test_a_header_that_fills_its_pane_shows_the_whole_name() -> None:
    """The header's room was reckoned two cells short (the border counted twice): a name
    that fitted lost its settings."""
    # With its key set, so that the header says `ready` (a key not set is said there).
    env = {**NO_KEYS, "OPENAI_API_KEY": "sk-test-not-a-real-key"}
    app = make_app(Settings(), [CLOUD[0]], env=env)
    async with app.run_test(size=(60, 24)) as pilot:
        (pane,) = app.panes
        await pilot.pause()
        header = pane.query_one("#header", Static)
        room = header.content_region.width
        tail = " · cloud · ready"
        head = "openai:gpt-4o-mini@temperature=0,seed="
        name = head + "1" * (room - len(tail) - len(head))
        pane.target = parse_target(name)
        pane.render_header()
        await pilot.pause()
        assert shown(pane, "header") == name + tail
        assert len(name + tail) == room


async def test_a_pane_added_to_a_blind_round_is_never_drawn_under_its_name(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """It was mounted, and its header drawn, under its model's name, then given a letter."""
    named: list[str] = []
    render = Pane.render_header

    def render_header(self: Pane) -> None:
        named.append(self.display_name)
        render(self)

    monkeypatch.setattr(Pane, "render_header", render_header)
    app = _app(*CLOUD)
    async with app.run_test(size=(160, 40)) as pilot:
        await pilot.press("f2")
        await wait_until(pilot, lambda: all(p.blind_name for p in app.panes))
        named.clear()
        pane = await app.add_pane(parse_target("openai:gpt-4o"))
        await pilot.pause()
        assert pane.blind_name == "C" and named
        assert all(name.startswith("Model ") for name in named), named


def test_the_rate_means_the_same_while_streaming_and_once_done_and_says_when_estimated() -> None:
    """The live figure was the decode rate, and the final one tokens over E2E: a model with a
    slow first token read 98 tok/s as it streamed, then 50 once it was done."""
    result = _finished()
    result.status, result.e2e_s = "streaming", None
    result.ttft_s, result.output_tokens, result.output_exact = 0.5, 50, False
    result.first_token_s = result.ttft_s  # no reasoning: the first token is the answer's
    result.started_at = time.perf_counter() - 1.0  # 50 tokens in the 1 s since it was sent
    live = metrics_line(result, window=8192).plain
    assert live.startswith("TTFT 500ms · ~50 tok/s · ctx ~239/8k · in 189 / out ~50"), live
    result.status, result.e2e_s, result.output_exact = "done", 1.0, True
    assert metrics_line(result, window=8192).plain.startswith(
        "TTFT 500ms · 50 tok/s · ctx 239/8k · in 189 / out 50"
    )


# --- 5. a pane whose provider has no key says so at once ----------------------------------


async def test_a_pane_without_its_api_key_says_which_to_set_before_anything_is_sent(
    loop: Loop,
) -> None:
    app = loop.app("openai:gpt-4o-mini", "loop:a")
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
    app = loop.app("openai:gpt-4o-mini", env=env)
    async with app.run_test(size=(160, 40)) as pilot:
        await pilot.pause(0.2)
        (pane,) = app.panes
        assert shown(pane, "header").endswith("cloud · ready")
        assert not pane.query_one("#error").display


async def test_private_mode_takes_the_missing_key_note_off_a_cloud_pane_until_it_is_off() -> None:
    """Private mode on left `needs OPENAI_API_KEY` and its error line up: the pane was told it
    no longer needed the key, and not drawn again."""
    app = _app(CLOUD[0], "embedded:smollm2")
    async with app.run_test(size=(160, 40)) as pilot:
        await pilot.pause(0.2)
        cloud, _ = app.panes
        assert "needs OPENAI_API_KEY" in shown(cloud, "header")
        app.action_private()  # what the palette's "Private mode" runs
        await pilot.pause(0.1)
        assert app.registry.private
        assert "needs" not in shown(cloud, "header") and shown(cloud, "header").endswith("ready")
        assert not cloud.query_one("#error").display
        assert "OPENAI_API_KEY" not in _on_screen(app)
        app.action_private()
        await pilot.pause(0.1)
        assert "needs OPENAI_API_KEY" in shown(cloud, "header")
        assert "OPENAI_API_KEY is not set" in shown(cloud, "error")


# --- 6. a blind round gives nothing away until the vote -----------------------------------


async def test_export_history_and_costs_wait_for_the_vote_in_a_blind_round(
    home: Path, loop: Loop
) -> None:
    app = loop.app("loop:a", "loop:b")
    async with app.run_test(size=(140, 40), notifications=True) as pilot:
        await pilot.press("f2")
        await send(pilot, "hi")
        await wait_finished(pilot)
        exports = locations.data_dir() / "exports"
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
        refusals = [n.message for n in app._notifications if "after the vote" in n.message]
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


# --- 7. an Ollama pane's window, once its model has loaded --------------------------------

OLLAMA_MODEL = "smollm2:135m"
SERVER_DEFAULT = 2048
"""The window the server runs a model with, as `OLLAMA_CONTEXT_LENGTH=2048 ollama serve`
would: not Ollama's documented default, which is all the workbench can assume before."""


@pytest.fixture
def ollama_2k(embedded: EmbeddedProvider) -> Iterator[OllamaServer]:
    """A fresh Ollama on loopback, nothing loaded, that runs models with a 2k window."""
    with OllamaServer(embedded, default_num_ctx=SERVER_DEFAULT) as server:
        yield server


async def test_an_ollama_panes_window_is_read_again_once_a_turn_has_loaded_its_model(
    ollama_2k: OllamaServer,
) -> None:
    """Read only as the pane was added, before its model had loaded, the window stayed the
    assumed 4096 for the session, and the overflow guard let 2k–4k conversations through for
    Ollama to cut without a word."""
    target = f"ollama:{OLLAMA_MODEL}@max_tokens=4"
    app = make_app(Settings(), [target], env={"OLLAMA_HOST": ollama_2k.host})
    async with app.run_test(size=(140, 40)) as pilot:
        (pane,) = app.panes
        await wait_until(pilot, lambda: pane.window == DEFAULT_NUM_CTX, 30)  # nothing loaded
        await send(pilot, "hi")
        await wait_finished(pilot)
        assert pane.result is not None and pane.result.status == "done"
        await wait_until(pilot, lambda: pane.window == SERVER_DEFAULT, 10)
        await wait_until(pilot, lambda: "/2k" in shown(pane, "metrics"), 5)  # was /4k


# --- 8. a thinking model's rate, while it reasons -----------------------------------------


async def test_a_thinking_models_rate_shows_while_it_reasons(loop: Loop) -> None:
    """The live rate waited for the answer's first token (TTFT), though the reasoning before
    it counts among the output tokens, in the estimate and in the final rate."""
    loop.mode = "think"
    app = loop.app("loop:a")
    async with app.run_test(size=(140, 40)) as pilot:
        (pane,) = app.panes
        await send(pilot, "hi")
        await wait_until(pilot, lambda: pane.result is not None and bool(pane.result.reasoning), 10)
        await wait_until(pilot, lambda: "tok/s" in shown(pane, "metrics"), 5)
        assert pane.result is not None and pane.result.ttft_s is None  # no answer yet
        assert "~" in shown(pane, "metrics").split("tok/s")[0]  # as estimated as the count
        await pilot.press("escape")
        await wait_until(pilot, lambda: not pane.busy, 10)
