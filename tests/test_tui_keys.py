"""Keys, the command palette and dialogs: each reaches what it names from where the user
is. Each test drives the app with Pilot, the real embedded model or loopback servers."""

from __future__ import annotations

from textual.pilot import Pilot
from textual.widgets import TextArea

from tests.tui_helpers import (
    Loop,
    app_for,
    pick_typed,
    screen_text,
    send,
    shown,
    wait_finished,
    wait_until,
)
from workbench import locations
from workbench.tui.screens.system_prompt import SystemPromptEditor
from workbench.tui.widgets.pane import Pane
from workbench.tui.widgets.prompt import PromptBox

LOCAL = "embedded:smollm2@max_tokens=4,temperature=0"


async def _answered(pilot: Pilot[None], pane: Pane) -> None:
    await wait_until(pilot, lambda: pane.result is not None and pane.result.finished)


def _status(pane: Pane) -> str | None:
    return pane.result.status if pane.result is not None else None


async def test_a_private_prompt_recalled_with_up_is_still_private() -> None:
    app = app_for(None, LOCAL, "openai:gpt-4o-mini")
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
    app = app_for(None, LOCAL)
    async with app.run_test(size=(120, 32)) as pilot:
        await pick_typed(pilot, "ctrl+n", "embedded:smollm2@max_tokens=3,label=typed")
        await wait_until(pilot, lambda: len(app.panes) == 2)
        assert app.panes[-1].target.name == "typed"
        assert app.panes[-1].target.params.max_tokens == 3


async def test_ctrl_d_removes_the_pane_from_the_prompt_box_which_keeps_delete() -> None:
    app = app_for(None, LOCAL, LOCAL)
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
    app = app_for(loop, "loop:m")
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


async def test_private_mode_is_in_the_command_palette() -> None:
    app = app_for(None, LOCAL)
    async with app.run_test(size=(120, 32)) as pilot:
        await pilot.press("ctrl+p")
        await pilot.pause(0.2)
        await pilot.press(*"Private mode")
        await pilot.pause(0.5)  # the palette searches as it is typed
        await pilot.press("enter")
        await wait_until(pilot, lambda: app.registry.private, 5)
        title = str(app.query_one("#title").content)  # type: ignore[attr-defined]
        assert "private: local targets only" in title


async def test_a_reopened_system_prompt_editor_types_after_the_text() -> None:
    app = app_for(None, LOCAL)
    async with app.run_test(size=(120, 32)) as pilot:
        for words in ("Be brief.", " Answer in French."):
            await pilot.press("ctrl+t")
            await wait_until(pilot, lambda: isinstance(app.screen, SystemPromptEditor))
            await pilot.press(*words, "ctrl+s")
            await wait_until(pilot, lambda: not isinstance(app.screen, SystemPromptEditor))
        assert app.system_prompt == "Be brief. Answer in French."


async def test_the_palette_has_one_leaderboard_and_one_screenshot_that_works(
    loop: Loop,
) -> None:
    app = loop.app("loop:a")
    saved = locations.screenshots_dir()
    before = set(saved.glob("*.svg")) if saved.is_dir() else set()
    async with app.run_test(size=(120, 32), notifications=True) as pilot:
        titles = [c.title for c in app.get_system_commands(app.screen)]
        assert titles.count("Leaderboard") == 1
        assert titles.count("Screenshot") == 1
        await pilot.press("ctrl+p")
        await pilot.pause(0.2)
        await pilot.press(*"Screenshot")
        await pilot.pause(0.5)  # the palette searches as it is typed
        await pilot.press("enter")
        await wait_until(pilot, lambda: saved.is_dir() and set(saved.glob("*.svg")) > before, 5)
        await pilot.pause(0.3)
        assert "Failed to save screenshot" not in screen_text(app)
