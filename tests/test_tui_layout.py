"""What a pane shows as its answer grows, its model changes and the terminal is resized. Each test
drives the app with Pilot, the real embedded model or loopback servers."""

from __future__ import annotations

import html
import re
import threading
from collections.abc import Callable

import pytest
from pytest_httpserver import HTTPServer
from textual.screen import Screen
from textual.widgets import Static
from werkzeug import Request, Response

from tests.fault_servers import WIRES, Stall
from tests.tui_helpers import (
    Loop,
    app_for,
    pick_typed,
    screen_text,
    send,
    shown,
    transcript_text,
    wait_finished,
    wait_until,
)
from workbench.tui.app import WorkbenchApp
from workbench.tui.screens.history_dialogs import ExportFormatScreen, ReplaceSessionScreen
from workbench.tui.screens.overflow import OverflowScreen
from workbench.tui.widgets.pane import metrics_line
from workbench.tui.widgets.prompt import PromptBox
from workbench.tui.widgets.streamed import Transcript

LOCAL = "embedded:smollm2@max_tokens=4,temperature=0"


def _summary(app: WorkbenchApp) -> str:
    return str(app.query_one("#summary").content)  # type: ignore[attr-defined]


async def test_an_answer_that_outgrows_its_pane_lays_out_nothing(
    httpserver: HTTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A layout repaints every pane: in the middle of four streams, a frame of ~20 ms that
    keys wait behind. The scrollbar's track showing once the text overflows used to cause
    one per pane (a CSS class restyled the scrollbar widget)."""
    wire = WIRES["openai"]
    lines = [f"line {i}\n\n" for i in range(80)]
    more = threading.Event()  # the answers overflow, then wait: still streaming

    def answer(request: Request) -> Response:
        return wire.stream(*lines, then=[Stall(more, 10), *map(wire.text, "end"), *wire.end()])

    httpserver.expect_request(wire.path).respond_with_handler(answer)
    app = app_for(Loop(httpserver.url_for("/v1")), "loop:a")
    layouts = 0
    refresh_layout = Screen._refresh_layout

    def counted(screen: Screen[object], *args: object, **kwargs: object) -> None:
        nonlocal layouts
        layouts += any(pane.busy for pane in app.panes)  # the summary may lay out at the end
        refresh_layout(screen, *args, **kwargs)  # type: ignore[arg-type]

    async with app.run_test(size=(120, 32)) as pilot:
        await pilot.pause(0.5)
        box = app.query_one(PromptBox)
        box.focus()
        await pilot.press(*"go")
        await pilot.pause(0.2)
        monkeypatch.setattr(Screen, "_refresh_layout", counted)
        await pilot.press("enter")
        await wait_until(pilot, lambda: all("line 79" in transcript_text(p) for p in app.panes))
        await pilot.pause(0.5)  # the scrollbars catch up
        more.set()
        await wait_finished(pilot)
        assert layouts == 0
        assert all(p.query_one(Transcript).scrollable for p in app.panes)  # the track shows


async def test_a_switched_pane_is_ready_with_no_figures_of_the_old_model(loop: Loop) -> None:
    app = app_for(loop, "loop:y")
    async with app.run_test(size=(120, 32)) as pilot:
        (pane,) = app.panes
        await send(pilot, "hi")
        await wait_finished(pilot)
        assert "done" in shown(pane, "header") and "in 5 / out 2" in shown(pane, "metrics")
        await pick_typed(pilot, "ctrl+o", LOCAL)
        await wait_until(pilot, lambda: pane.target.provider == "embedded")
        await wait_until(pilot, lambda: not pane.has_class("loading"))
        header = shown(pane, "header")
        assert header.startswith("embedded:smollm2") and "ready" in header and "done" not in header
        assert "out 2" not in shown(pane, "metrics")


async def test_the_summary_goes_with_its_panes_and_follows_the_width(loop: Loop) -> None:
    app = app_for(loop, "loop:y", LOCAL)
    async with app.run_test(size=(120, 32)) as pilot:
        await send(pilot, "hi")
        await wait_finished(pilot)
        await wait_until(pilot, lambda: "fastest TTFT" in _summary(app), 5)
        await pilot.resize_terminal(80, 24)
        await wait_until(pilot, lambda: "fastest" not in _summary(app), 5)
        assert "TTFT:" in _summary(app)
        # Narrow, a long name loses whole settings, not half of one (`@max_…`).
        assert "embedded:smollm2@…" in _summary(app) and "@max_" not in _summary(app)
        await pilot.press("ctrl+d")
        await wait_until(pilot, lambda: len(app.panes) == 1, 5)
        assert _summary(app) == ""
        await pilot.resize_terminal(120, 32)
        await pilot.pause(0.2)
        assert _summary(app) == ""  # a resize does not bring it back


async def test_a_narrow_summary_tells_two_settings_of_one_model_apart(loop: Loop) -> None:
    """Both were `loop:a@temperature=0,…`: which of them won could not be read."""
    app = app_for(loop, "loop:a@temperature=0,max_tokens=40", "loop:a@temperature=0,top_p=0.5")
    async with app.run_test(size=(80, 24)) as pilot:
        await send(pilot, "hi")
        await wait_finished(pilot)
        await wait_until(pilot, lambda: "TTFT:" in _summary(app), 5)
        summary = _summary(app)
        assert "@max_tokens=40" in summary or "@top_p=0.5" in summary, summary


async def test_narrow_headers_tell_two_settings_of_one_model_apart(loop: Loop) -> None:
    """Both read `loop:a@temperature=0,…`: which pane was which setting could not be seen."""
    app = app_for(loop, "loop:a@temperature=0,max_tokens=40", "loop:a@temperature=0,top_p=0.5")
    async with app.run_test(size=(80, 24)) as pilot:
        first, second = app.panes
        await wait_until(pilot, lambda: "max_tokens=40" in shown(first, "header"), 5)
        assert "top_p=0.5" in shown(second, "header")
        await pilot.press("ctrl+d")  # alone, it is cut as before
        await wait_until(pilot, lambda: len(app.panes) == 1, 5)
        await pilot.resize_terminal(40, 24)
        await wait_until(pilot, lambda: "@…" in shown(app.panes[0], "header"), 5)


async def test_the_context_figure_survives_a_metrics_line_cut_at_the_panes_edge(
    loop: Loop,
) -> None:
    app = loop.app("loop:a", "loop:b")
    async with app.run_test(size=(140, 40)) as pilot:
        await send(pilot, "hi")
        await wait_finished(pilot)
        pane = app.panes[0]
        assert pane.result is not None
        # What a local model that had to load shows: a full line.
        pane.result.load_s, pane.memory_bytes = 2.5, 1_500_000_000
        pane.window = 8  # 7 of 8 tokens used: past the warning mark
        pane.render_metrics()
        await pilot.pause(0.1)
        metrics = pane.query_one("#metrics", Static)
        visible = metrics.render_line(0).text
        # The full line does not fit: the short form, or fewer figures, stand in for it.
        full = metrics_line(pane.result, pane.memory_bytes, window=8).plain
        assert len(full) > metrics.size.width and visible.strip() != full
        assert "ctx 7/8" in visible
        ctx = next(s for s in metrics.render_line(0) if "ctx" in s.text)
        assert ctx.style is not None and ctx.style.bold


async def test_widening_the_terminal_brings_the_full_metrics_back_at_once(loop: Loop) -> None:
    app = loop.app("loop:a", "loop:b")
    async with app.run_test(size=(80, 32)) as pilot:
        await send(pilot, "hi")
        await wait_finished(pilot)
        assert all("TTFT" not in shown(p, "metrics") for p in app.panes)  # compact
        await pilot.resize_terminal(200, 32)
        await wait_until(pilot, lambda: all("TTFT" in shown(p, "metrics") for p in app.panes), 5)
        assert all("in 5 / out 2" in shown(p, "metrics") for p in app.panes)


@pytest.mark.parametrize(
    ("dialog", "said"),
    [
        (lambda: ReplaceSessionScreen(3), ["prompt again.", "esc Keep it"]),
        (ExportFormatScreen, ["esc Don't export  m Markdown"]),
        (lambda: OverflowScreen("loop:m", 9000, 4096), ["esc Skip this pane"]),
    ],
    ids=["replace", "export", "overflow"],
)
async def test_a_dialog_at_80_columns_shows_all_it_says_and_its_keys(
    loop: Loop, dialog: Callable[[], Screen[object]], said: list[str]
) -> None:
    app = loop.app("loop:m")
    async with app.run_test(size=(80, 24)) as pilot:
        app.push_screen(dialog())
        await pilot.pause(0.2)
        rows = html.unescape(re.sub(r"<[^>]*>", "", screen_text(app)))
        for text in said:
            assert text in rows
