"""A prompt on its way to the panes, driven with Pilot and a loopback server: Enter while the
panes answer, or while the last prompt is still being sent (a summary making room for it),
sends nothing and says why; Esc stops either; Ctrl+R waits for the send. Each test failed
before its fix."""

from __future__ import annotations

from textual.pilot import Pilot

from providers.base import Message
from tests.tui_helpers import Loop, send, transcript_text, wait_finished, wait_until
from workbench.engine import context
from workbench.engine.context import SUMMARY_PROMPT
from workbench.engine.conversation import Conversation
from workbench.tui.app import WorkbenchApp
from workbench.tui.widgets.pane import Pane
from workbench.tui.widgets.prompt import PromptBox

FIRST = "Remember these words for later:" + (
    " apple river stone candle harbour violin meadow lantern copper falcon" * 3
)
"""A first turn long enough that summarizing it makes room for the next prompt."""


def _box(app: WorkbenchApp) -> PromptBox:
    return app.query_one(PromptBox)


def _notes(app: WorkbenchApp) -> list[str]:
    return [n.message for n in app._notifications]


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


# --- Enter while the panes answer ---------------------------------------------------------


async def test_enter_while_every_pane_answers_sends_nothing_and_keeps_the_prompt(
    loop: Loop,
) -> None:
    loop.held = {"a", "b"}
    app = loop.app("loop:a", "loop:b")
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
    app = loop.app("loop:slow", "loop:fast")
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


# --- while the last prompt is still being sent ---------------------------------------------


async def _summarizing(pilot: Pilot[None], loop: Loop, app: WorkbenchApp, prompt: str) -> Pane:
    """The app's one pane, one turn in, sent `prompt` with a window it fits only once that
    turn is summarized: the summary (asked of the loop server, which holds it) under way."""
    (pane,) = app.panes
    await send(pilot, FIRST)
    await wait_finished(pilot)

    def needed(conversation: Conversation) -> int:
        asked = [*conversation.messages(), Message("user", prompt)]
        return context.needed(pane.target, asked, registry=app.registry)

    least = needed(Conversation(summary="."))
    whole = needed(pane.conversation)
    assert whole - least > 20  # between the two, a summary makes room
    pane.window = (least + whole) // 2
    loop.held = {pane.target.model}
    await _enter(pilot, prompt)
    await wait_until(pilot, lambda: loop.asked[-1] == SUMMARY_PROMPT, 10)
    await pilot.pause(0.2)
    assert app._sending and not pane.busy  # the prompt waits for the summary, in no pane
    return pane


async def test_enter_while_a_summary_makes_room_says_so_and_esc_stops_it(loop: Loop) -> None:
    """Enter's refusal said the models were "still answering" and to press Esc, which
    cancelled only panes that were answering: none was, and the summary went on."""
    app = loop.app("loop:a@max_tokens=8", auto_summarize=True)
    async with app.run_test(size=(140, 40), notifications=True) as pilot:
        pane = await _summarizing(pilot, loop, app, "second")
        turns, result, asked = list(pane.conversation.turns), pane.result, len(loop.asked)
        await _enter(pilot, "third")
        await pilot.pause(0.2)
        (note,) = [n for n in _notes(app) if n.startswith("Not sent")]
        assert "the last prompt is still being sent (summarizing loop:a" in note, note
        assert "still answering" not in note and "Esc" in note
        assert _box(app).text == "third"

        await pilot.press("escape")
        await wait_until(pilot, lambda: not app._sending, 5)
        loop.release.set()  # what the server would have gone on with is not taken in
        await pilot.pause(0.5)
        # Nothing lost: the turns the summary was to replace, and the pane as it was.
        assert pane.conversation.turns == turns and pane.conversation.summary is None
        assert pane.result is result and not pane.busy and len(loop.asked) == asked
        assert any("↑" in n for n in _notes(app) if "cancelled" in n.lower())
        box = _box(app)
        box.clear()
        box.focus()
        await pilot.press("up")
        assert box.text == "second"  # the prompt that was being sent

        # Sent again, it is summarized for and answered.
        loop.held = set()
        await pilot.press("enter")
        await wait_until(pilot, lambda: pane.result is not result, 10)
        await wait_finished(pilot)
        assert pane.conversation.summary == "back up"
        assert [m.content for m in pane.conversation.turns] == ["second", "back up"]


async def test_ctrl_r_while_the_last_prompt_is_being_sent_is_refused(loop: Loop) -> None:
    """The retry made the pane busy, and the prompt on its way then skipped it: it went to
    the other panes only."""
    app = loop.app("loop:a@max_tokens=8", auto_summarize=True)
    async with app.run_test(size=(140, 40), notifications=True) as pilot:
        pane = await _summarizing(pilot, loop, app, "second")
        turns, asked = list(pane.conversation.turns), len(loop.asked)
        await pilot.press("ctrl+r")
        await pilot.pause(0.5)
        (note,) = [n for n in _notes(app) if "retried" in n.lower()]
        assert "still being sent" in note and "Esc" in note
        assert not pane.busy and len(loop.asked) == asked
        assert pane.conversation.turns == turns
        await pilot.press("escape")
        await wait_until(pilot, lambda: not app._sending, 5)


async def test_a_turn_that_failed_stays_marked_in_the_pane_after_the_next(loop: Loop) -> None:
    """The metrics line says why a turn failed only until the next one: the transcript
    keeps the mark, and a half answer does not read as a short whole one."""
    app = loop.app("loop:m")
    async with app.run_test(size=(140, 40)) as pilot:
        for mode, prompt in (("down", "one"), ("cut", "two"), ("up", "three")):
            loop.mode = mode
            await send(pilot, prompt)
            await wait_finished(pilot)
        lines = [line for line in transcript_text(app.panes[0]).splitlines() if line.strip()]
    marks = [line for line in lines if line.startswith("✗ failed: ")]
    assert lines[lines.index("▌ one") + 1] == marks[0]
    assert "the server is overloaded (HTTP 503)" in marks[0]
    assert lines[lines.index("▌ two") + 1 : lines.index("▌ two") + 3] == ["half an", marks[1]]
    assert "closed the stream before the answer was finished" in marks[1]
    assert len(marks) == 2 and lines[-1] == "back up"
