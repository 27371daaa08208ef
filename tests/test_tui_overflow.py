"""A prompt that does not fit a pane's context window: what is offered, what is kept, and
what is sent. Each test drives the app with Pilot and loopback servers."""

from __future__ import annotations

import pytest
from textual.pilot import Pilot
from textual.widgets import Label, OptionList

from providers.base import Message
from tests.tui_helpers import (
    NO_KEYS,
    send,
    toasts,
    wait_finished,
    wait_until,
)
from workbench.config import Settings
from workbench.engine import context
from workbench.engine.conversation import Conversation
from workbench.tui.app import WorkbenchApp, make_app
from workbench.tui.screens.overflow import OverflowScreen
from workbench.tui.widgets.pane import Pane

WINDOW = 768
SMOLLM2 = "embedded:smollm2@max_tokens=16,temperature=0"


async def _embedded(pilot: Pilot[None], app: WorkbenchApp) -> Pane:
    """The app's one pane, once its SmolLM2 is loaded with a window of WINDOW tokens (from
    then on its prompts are counted exactly), a few turns into a conversation."""
    (pane,) = app.panes
    await wait_until(pilot, lambda: pane.window == WINDOW, timeout_s=30)
    pane.conversation.system = "Be brief."
    for i, fact in enumerate(["The vault opens with PELICAN.", "The boat is called Heron."]):
        pane.conversation.ask(f"Remember fact {i + 1}: {fact}")
        pane.conversation.answered(f"Noted: {fact}")
    return pane


def _needed(app: WorkbenchApp, pane: Pane, conversation: Conversation, prompt: str) -> int:
    asked = [*conversation.messages(), Message("user", prompt)]
    return context.needed(pane.target, asked, registry=app.registry)


async def _choose(pilot: Pilot[None], app: WorkbenchApp, choice: str) -> None:
    await wait_until(pilot, lambda: isinstance(app.screen, OverflowScreen), timeout_s=30)
    options = app.screen.query_one(OptionList)
    options.highlighted = options.get_option_index(choice)
    await pilot.press("enter")


async def _settled(pilot: Pilot[None], pane: Pane) -> None:
    """Until the pane says it was not sent the prompt, or has the model's answer to it."""

    def settled() -> bool:
        answered = pane.result is not None and pane.result.finished
        return answered or "not sent" in pane._document

    await wait_until(pilot, settled, timeout_s=60)
    await pilot.pause(0.2)


async def test_a_prompt_still_too_long_after_summarizing_is_not_sent_but_the_summary_stays(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    app = make_app(Settings(embedded_context=WINDOW), [SMOLLM2], env=NO_KEYS)
    errors = toasts(app, monkeypatch, severity="error")
    async with app.run_test(size=(140, 40)) as pilot:
        pane = await _embedded(pilot, app)
        # The prompt fits beside a one-token summary to the last token, and so beside no
        # real one: one token a word, it grows until it needs the whole window.
        floor = Conversation(pane.conversation.system, summary=".")
        prompt = "Read both facts back to me"
        while _needed(app, pane, floor, prompt + " now") <= WINDOW:
            prompt += " now"
        assert _needed(app, pane, floor, prompt) == WINDOW
        await send(pilot, prompt)
        await _choose(pilot, app, "summarize")
        await _settled(pilot, pane)
        assert pane.result is None  # nothing went to the model, which would refuse it
        summary = pane.conversation.summary
        assert summary and pane.conversation.turns == []  # summarized, and that is kept
        assert _needed(app, pane, pane.conversation, prompt) > WINDOW
        assert "summarized to fit" not in pane._document
        (note,) = errors
        assert "even with 4 earlier turns summarized" in note and "a shorter prompt" in note
        assert f"the context window is {WINDOW:,}" in note


@pytest.mark.parametrize("choice", ["drop", "summarize"])
async def test_a_prompt_too_long_alone_loses_no_turns_and_is_not_sent(
    choice: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Dropping every turn, or summarizing them, cannot make room for a prompt that is past
    the window on its own: the conversation is left as it was and the user told why."""
    app = make_app(Settings(embedded_context=WINDOW), [SMOLLM2], env=NO_KEYS)
    errors = toasts(app, monkeypatch, severity="error")
    async with app.run_test(size=(140, 40)) as pilot:
        pane = await _embedded(pilot, app)
        turns = list(pane.conversation.turns)
        prompt = "Read this back to me. " + "The quick brown fox jumps over the lazy dog. " * 80
        assert _needed(app, pane, Conversation(), prompt) > WINDOW
        await send(pilot, prompt)
        await _choose(pilot, app, choice)
        await _settled(pilot, pane)
        assert pane.result is None
        assert pane.conversation.turns == turns and pane.conversation.summary is None
        (note,) = errors
        assert "even with no earlier turns" in note and "a shorter prompt" in note
        assert "a smaller max_tokens (it is 16)" in note and "a larger embedded_context" in note


async def test_a_short_first_prompt_fits_a_512_token_window() -> None:
    """A fixed 512 tokens kept for the answer filled the window before any prompt: the
    first question opened the overflow dialog, and nothing in it could help."""
    app = make_app(Settings(embedded_context=512), ["embedded:smollm2@temperature=0"], env=NO_KEYS)
    async with app.run_test(size=(140, 40)) as pilot:
        (pane,) = app.panes
        await wait_until(pilot, lambda: pane.window == 512, timeout_s=30)
        await send(pilot, "What is the capital of France? One word.")
        await wait_until(
            pilot,
            lambda: isinstance(app.screen, OverflowScreen) or pane.result is not None,
            timeout_s=30,
        )
        assert not isinstance(app.screen, OverflowScreen)
        await wait_finished(pilot)
        assert pane.result is not None and pane.result.status == "done"


async def test_a_prompt_too_long_with_no_earlier_turns_is_offered_only_what_helps() -> None:
    """With no turns, summarizing or dropping them cannot make room: the dialog says what
    can, and offers neither."""
    app = make_app(Settings(embedded_context=512), [SMOLLM2], env=NO_KEYS)
    async with app.run_test(size=(140, 40)) as pilot:
        (pane,) = app.panes
        await wait_until(pilot, lambda: pane.window == 512, timeout_s=30)
        await send(pilot, "Read this back to me. " + "The quick brown fox jumps. " * 80)
        await wait_until(pilot, lambda: isinstance(app.screen, OverflowScreen), timeout_s=30)
        said = str(app.screen.query_one(Label).content)
        assert "no earlier turns to summarize or drop" in said, said
        assert "a shorter prompt" in said and "a smaller max_tokens (it is 16)" in said
        assert "a larger embedded_context" in said
        options = app.screen.query_one(OptionList)
        ids = [options.get_option_at_index(i).id for i in range(options.option_count)]
        assert ids == ["send", "skip"]
        await pilot.press("escape")
        await pilot.pause(0.2)
        assert pane.result is None and pane.conversation.turns == []


async def test_the_overflow_dialog_and_note_in_blind_mode_give_no_window_size(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    app = make_app(Settings(embedded_context=WINDOW), [SMOLLM2], env=NO_KEYS)
    errors = toasts(app, monkeypatch, severity="error")
    async with app.run_test(size=(140, 40)) as pilot:
        pane = await _embedded(pilot, app)
        await pilot.press("f2")
        prompt = "Read this back to me. " + "The quick brown fox jumps over the lazy dog. " * 80
        await send(pilot, prompt)
        await wait_until(pilot, lambda: isinstance(app.screen, OverflowScreen), timeout_s=30)
        said = str(app.screen.query_one(Label).content)
        assert said == "The conversation no longer fits Model A's context window.", said
        await _choose(pilot, app, "drop")
        await _settled(pilot, pane)
        (note,) = errors
        assert "Model A" in note and "a shorter prompt" in note
        for hint in (f"{WINDOW}", "max_tokens", "embedded", "smollm"):
            assert hint not in note and hint not in pane._document, hint
