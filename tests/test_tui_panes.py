"""Panes in the real app: blind mode shows nothing that tells its models apart, the pane the
keys act on is marked, a pane is one Tab stop, and a pane's lines fit its width. Each test
failed before its fix."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from pytest_httpserver import HTTPServer
from textual.pilot import Pilot
from textual.widgets import Static

from providers.registry import parse_target
from tests.fault_servers import WIRES
from tests.tui_helpers import send, shown, wait_finished, wait_until
from workbench.config import Endpoint, Settings
from workbench.engine.result import TargetResult
from workbench.tui.app import WorkbenchApp, make_app
from workbench.tui.widgets.pane import Pane, metrics_line
from workbench.tui.widgets.prompt import PromptBox

NO_KEYS = {"OLLAMA_HOST": "127.0.0.1:9"}
CLOUD = ("openai:gpt-4o-mini", "anthropic:claude-3-5-haiku-latest")
"""Targets that need no server: without their keys, a prompt fails at once."""


@pytest.fixture
def loop(httpserver: HTTPServer) -> Iterator[str]:
    """An OpenAI-compatible server on loopback that answers `back up`, with usage."""
    wire = WIRES["openai"]
    httpserver.expect_request(wire.path).respond_with_handler(
        lambda request: wire.stream("back ", "up")
    )
    yield httpserver.url_for("/v1")


def _app(*targets: str, url: str | None = None) -> WorkbenchApp:
    endpoints = {"loop": Endpoint(kind="openai", base_url=url)} if url else {}
    return make_app(Settings(endpoints=endpoints), list(targets), env=NO_KEYS)


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


async def test_blind_metrics_show_no_token_counts_until_the_reveal(loop: str) -> None:
    """Token counts differ by tokenizer: `in 9 / out 2` beside `in 5 / out 2` hints at
    which family each model is."""
    app = _app("loop:a", "loop:b", url=loop)
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
    result.started_at = time.perf_counter() - 1.0  # 50 tokens in the 1 s since it was sent
    live = metrics_line(result, window=8192).plain
    assert live.startswith("TTFT 500ms · ~50 tok/s · ctx ~239/8k · in 189 / out ~50"), live
    result.status, result.e2e_s, result.output_exact = "done", 1.0, True
    assert metrics_line(result, window=8192).plain.startswith(
        "TTFT 500ms · 50 tok/s · ctx 239/8k · in 189 / out 50"
    )
