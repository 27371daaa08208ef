"""What a reviewer found driving the real TUI: each test drives the app with Pilot, the real
embedded model and loopback servers, and failed before its fix."""

from __future__ import annotations

import threading

import pytest
from pytest_httpserver import HTTPServer
from textual.pilot import Pilot
from textual.screen import Screen
from textual.widgets import Input, TextArea
from werkzeug import Request, Response

from tests.fault_servers import WIRES, Stall
from tests.tui_helpers import Loop, send, shown, wait_finished, wait_until
from workbench import locations
from workbench.config import Settings
from workbench.tui.app import WorkbenchApp, make_app
from workbench.tui.screens.picker import ModelPicker
from workbench.tui.screens.system_prompt import SystemPromptEditor
from workbench.tui.screens.vote import VoteScreen
from workbench.tui.widgets.pane import Pane
from workbench.tui.widgets.prompt import PromptBox
from workbench.tui.widgets.streamed import Transcript

NO_KEYS = {"OLLAMA_HOST": "127.0.0.1:9"}
LOCAL = "embedded:smollm2@max_tokens=4,temperature=0"


def _app(loop: Loop | None, *targets: str) -> WorkbenchApp:
    return loop.app(*targets) if loop else make_app(Settings(), list(targets), env=NO_KEYS)


async def _pick_typed(pilot: Pilot[None], key: str, target: str) -> None:
    """Open the picker with `key`, move to its text box with Tab and type `target`."""
    await pilot.press(key)
    await wait_until(pilot, lambda: isinstance(pilot.app.screen, ModelPicker))
    await pilot.press("tab")
    assert isinstance(pilot.app.focused, Input)
    await pilot.press(*target, "enter")
    await wait_until(pilot, lambda: not isinstance(pilot.app.screen, ModelPicker))


async def _answered(pilot: Pilot[None], pane: Pane) -> None:
    await wait_until(pilot, lambda: pane.result is not None and pane.result.finished)


def _status(pane: Pane) -> str | None:
    return pane.result.status if pane.result is not None else None


def _summary(app: WorkbenchApp) -> str:
    return str(app.query_one("#summary").content)  # type: ignore[attr-defined]


def _on_screen(pane: Pane) -> str:
    return "\n".join(pane.query_one(Transcript).plain_lines())


async def test_a_private_prompt_recalled_with_up_is_still_private() -> None:
    app = _app(None, LOCAL, "openai:gpt-4o-mini")
    async with app.run_test(size=(160, 40)) as pilot:
        local, cloud = app.panes
        box = app.query_one(PromptBox)
        box.focus()
        await pilot.press("f5")
        await send(pilot, "my secret salary is 100k")
        await _answered(pilot, local)
        assert not box.private
        await pilot.press(*"draft", "up")
        assert box.text == "my secret salary is 100k"
        assert box.private and "private" in str(box.border_title)
        await pilot.press("down")  # back to the draft, which is not private
        assert box.text == "draft" and not box.private
        assert "private" not in str(box.border_title)
        await pilot.press("up")
        assert box.private
        await pilot.press("enter")
        await wait_until(pilot, lambda: len(local.conversation.turns) == 4, 30)
        await _answered(pilot, local)
        assert cloud.result is None and cloud.conversation.turns == []
        assert cloud.transcript.count("a private prompt was not sent") == 2
        assert all(m.private for m in local.conversation.turns)


async def test_tab_reaches_the_pickers_text_box_and_a_typed_target_is_added() -> None:
    app = _app(None, LOCAL)
    async with app.run_test(size=(120, 32)) as pilot:
        await _pick_typed(pilot, "ctrl+n", "embedded:smollm2@max_tokens=3,label=typed")
        await wait_until(pilot, lambda: len(app.panes) == 2)
        assert app.panes[-1].target.name == "typed"
        assert app.panes[-1].target.params.max_tokens == 3


async def test_ctrl_d_removes_the_pane_from_the_prompt_box_which_keeps_delete() -> None:
    app = _app(None, LOCAL, LOCAL)
    async with app.run_test(size=(120, 32)) as pilot:
        box = app.query_one(PromptBox)
        box.focus()
        await pilot.press(*"abc", "home", "delete")
        assert box.text == "bc"
        assert app.screen.active_bindings["ctrl+d"].binding.description == "Remove"  # footer
        await pilot.press("ctrl+d")
        await wait_until(pilot, lambda: len(app.panes) == 1, 5)
        assert box.text == "bc" and app.focused is box
        # Over another screen the key is that screen's: delete-right in the editor.
        await pilot.press("ctrl+t")
        await wait_until(pilot, lambda: isinstance(app.screen, SystemPromptEditor))
        await pilot.press(*"xyz", "home", "ctrl+d")
        assert app.screen.query_one(TextArea).text == "yz" and len(app.panes) == 1


async def test_ctrl_r_sends_a_failed_prompt_again_once_the_server_is_back(loop: Loop) -> None:
    app = _app(loop, "loop:m")
    async with app.run_test(size=(120, 32)) as pilot:
        (pane,) = app.panes
        await send(pilot, "first")
        await wait_finished(pilot)
        loop.mode = "down"
        await send(pilot, "second")
        await wait_until(pilot, lambda: _status(pane) == "failed")
        await wait_finished(pilot)
        assert [m.content for m in pane.conversation.turns] == ["first", "back up"]
        loop.mode = "up"
        await pilot.press("ctrl+r")
        await wait_until(pilot, lambda: _status(pane) == "done", 10)
        await wait_finished(pilot)
        # The failed prompt, not the exchange before it.
        turns = [m.content for m in pane.conversation.turns]
        assert turns == ["first", "back up", "second", "back up"]
        assert loop.asked == ["first", "second", "second"]
        assert "done" in shown(pane, "header")


async def test_blind_mode_names_no_model_in_a_pane_old_or_new(loop: Loop) -> None:
    app = _app(loop, "loop:y", LOCAL)
    async with app.run_test(size=(160, 40)) as pilot:
        await send(pilot, "hi")
        await wait_finished(pilot)
        await _pick_typed(pilot, "ctrl+o", "loop:z")  # the current pane: the first
        switched = app.panes[0]
        await wait_until(pilot, lambda: "switched from" in switched.transcript)
        await pilot.press("f2")
        await wait_until(pilot, lambda: all(p.blind_name for p in app.panes))
        for pane in app.panes:
            for text in (pane.transcript, _on_screen(pane)):
                assert "loop:" not in text and "smollm2" not in text
                assert "hidden in blind mode" in text
        await _pick_typed(pilot, "ctrl+o", LOCAL)
        await wait_until(pilot, lambda: switched.target.provider == "embedded")
        await pilot.pause(0.1)
        for text in (switched.transcript, _on_screen(switched)):
            assert "model switched" in text
            assert "loop:" not in text and "smollm2" not in text
        assert shown(switched, "header").startswith("Model ")


async def test_a_pane_added_in_a_blind_round_is_named_by_letter_and_not_voted_on(
    loop: Loop,
) -> None:
    app = _app(loop, "loop:y", "loop:z")
    async with app.run_test(size=(160, 40)) as pilot:
        await pilot.press("f2")
        await send(pilot, "hi")
        await wait_finished(pilot)
        await _pick_typed(pilot, "ctrl+n", "loop:w")
        await wait_until(pilot, lambda: len(app.panes) == 3)
        (added,) = [p for p in app.panes if p.target.model == "w"]
        assert added.blind_name == "C"
        for text in (shown(added, "header"), _on_screen(added)):
            assert "loop:" not in text
        await pilot.press("f3")
        await wait_until(pilot, lambda: isinstance(app.screen, VoteScreen))
        assert isinstance(app.screen, VoteScreen)
        assert sorted(app.screen.names) == ["A", "B"]


async def test_the_blind_vote_is_on_the_panes_the_last_prompt_went_to() -> None:
    """A cloud pane kept out of a private prompt still shows the round before: it is not
    voted on as if it had answered this one."""
    app = _app(None, LOCAL, "openai:gpt-4o-mini")
    async with app.run_test(size=(160, 40)) as pilot:
        local, cloud = app.panes
        await pilot.press("f2")
        await send(pilot, "first, to both")
        await wait_finished(pilot)
        assert cloud.result is not None  # it answered (with its missing key) the first
        app.query_one(PromptBox).focus()
        await pilot.press("f5")  # private: local models only
        await send(pilot, "second, private")
        await wait_until(pilot, lambda: len(local.conversation.turns) == 4, 30)
        await wait_finished(pilot)
        await pilot.press("f3")
        await wait_until(pilot, lambda: isinstance(app.screen, VoteScreen))
        assert isinstance(app.screen, VoteScreen)
        assert app.screen.names == [local.blind_name]


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
    app = _app(Loop(httpserver.url_for("/v1")), "loop:a")
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
        await wait_until(pilot, lambda: all("line 79" in _on_screen(p) for p in app.panes))
        await pilot.pause(0.5)  # the scrollbars catch up
        more.set()
        await wait_finished(pilot)
        assert layouts == 0
        assert all(p.query_one(Transcript).scrollable for p in app.panes)  # the track shows


async def test_private_mode_is_in_the_command_palette() -> None:
    app = _app(None, LOCAL)
    async with app.run_test(size=(120, 32)) as pilot:
        await pilot.press("ctrl+p")
        await pilot.pause(0.2)
        await pilot.press(*"Private mode")
        await pilot.pause(0.5)  # the palette searches as it is typed
        await pilot.press("enter")
        await wait_until(pilot, lambda: app.registry.private, 5)
        title = str(app.query_one("#title").content)  # type: ignore[attr-defined]
        assert "private: local targets only" in title


async def test_a_switched_pane_is_ready_with_no_figures_of_the_old_model(loop: Loop) -> None:
    app = _app(loop, "loop:y")
    async with app.run_test(size=(120, 32)) as pilot:
        (pane,) = app.panes
        await send(pilot, "hi")
        await wait_finished(pilot)
        assert "done" in shown(pane, "header") and "in 5 / out 2" in shown(pane, "metrics")
        await _pick_typed(pilot, "ctrl+o", LOCAL)
        await wait_until(pilot, lambda: pane.target.provider == "embedded")
        await wait_until(pilot, lambda: not pane.has_class("loading"))
        header = shown(pane, "header")
        assert header.startswith("embedded:smollm2") and "ready" in header and "done" not in header
        assert "out 2" not in shown(pane, "metrics")


async def test_a_reopened_system_prompt_editor_types_after_the_text() -> None:
    app = _app(None, LOCAL)
    async with app.run_test(size=(120, 32)) as pilot:
        for words in ("Be brief.", " Answer in French."):
            await pilot.press("ctrl+t")
            await wait_until(pilot, lambda: isinstance(app.screen, SystemPromptEditor))
            await pilot.press(*words, "ctrl+s")
            await wait_until(pilot, lambda: not isinstance(app.screen, SystemPromptEditor))
        assert app.system_prompt == "Be brief. Answer in French."


async def test_the_summary_goes_with_its_panes_and_follows_the_width(loop: Loop) -> None:
    app = _app(loop, "loop:y", LOCAL)
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


async def test_export_with_nothing_to_export_writes_no_file() -> None:
    app = _app(None, LOCAL)
    exports = locations.data_dir() / "exports"
    before = set(exports.glob("*.md"))
    async with app.run_test(size=(120, 32), notifications=True) as pilot:
        await pilot.press("ctrl+d")  # its model may still be loading: the app survives that
        await wait_until(pilot, lambda: not app.panes, 5)
        await pilot.press("ctrl+e")
        await pilot.pause(0.2)
        assert set(exports.glob("*.md")) == before
        assert "Nothing to export" in app.export_screenshot().replace("&#160;", " ")
