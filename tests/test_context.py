"""Context windows: shown per pane, and a conversation that outgrows one is summarized or
trimmed as the user chooses, before it is sent."""

from __future__ import annotations

import pytest
from textual.widgets import OptionList

from providers.base import Message, ProviderError
from providers.registry import Target, parse_target
from tests.tui_helpers import send, shown, wait_finished, wait_until
from workbench.config import Settings
from workbench.engine import context
from workbench.engine.conversation import Conversation
from workbench.engine.fanout import request_for
from workbench.tui.app import make_app
from workbench.tui.screens.overflow import OverflowScreen
from workbench.wiring import make_registry

# About 400 tokens each, by any tokenizer: two fit a 768-token window only one at a time.
LONG = "Remember this. " + "The quick brown fox jumps over the lazy dog. " * 40
LONGER = "And this too. " + "A journey of a thousand miles begins with a single step. " * 32
ENV = {"OLLAMA_HOST": "127.0.0.1:9"}


def test_summary_replaces_earlier_turns_and_rides_in_the_system_prompt() -> None:
    c = Conversation(system="Be brief.")
    for i in range(3):
        c.ask(f"question {i}")
        c.answered(f"answer {i}")
    assert c.summarized("We discussed three questions.", keep=1) == 4
    messages = c.messages()
    assert messages[0].role == "system"
    assert messages[0].content.endswith("Summary of the earlier conversation: "
                                        "We discussed three questions.")  # fmt: skip
    assert [m.content for m in messages[1:]] == ["question 2", "answer 2"]


def test_drop_oldest_removes_a_whole_exchange() -> None:
    c = Conversation()
    c.ask("a")
    c.answered("b")
    c.ask("c")
    assert c.drop_oldest() == 2
    assert c.messages() == [Message("user", "c")]


async def test_pane_shows_its_window_and_overflow_can_drop_old_turns() -> None:
    settings = Settings(embedded_context=768)
    app = make_app(settings, ["embedded:smollm2@max_tokens=16,temperature=0"], env=ENV)
    async with app.run_test(size=(140, 40)) as pilot:
        (pane,) = app.panes
        await wait_until(pilot, lambda: pane.window is not None)
        assert pane.window == 768
        await send(pilot, LONG)
        await wait_finished(pilot)
        assert "ctx " in shown(pane, "metrics") and "/768" in shown(pane, "metrics")
        await send(pilot, LONGER)
        await wait_until(pilot, lambda: isinstance(app.screen, OverflowScreen))
        options = app.screen.query_one(OptionList)
        options.highlighted = 1  # drop the oldest turns
        await pilot.press("enter")
        turns = pane.conversation.turns
        await wait_until(pilot, lambda: len(turns) == 2 and turns[0].content.startswith("And"))
        await wait_finished(pilot)
        assert pane.result is not None and pane.result.status == "done"
        assert pane.conversation.turns[0].content.startswith("And this too")
        assert "oldest turns dropped" in pane._document


async def test_auto_summarize_replaces_turns_with_the_models_summary() -> None:
    settings = Settings(embedded_context=768, auto_summarize=True)
    app = make_app(settings, ["embedded:smollm2@max_tokens=24,temperature=0"], env=ENV)
    async with app.run_test(size=(140, 40)) as pilot:
        (pane,) = app.panes
        await wait_until(pilot, lambda: pane.window is not None)
        await send(pilot, LONG)
        await wait_finished(pilot)
        first = pane.result
        await send(pilot, LONGER)
        await wait_until(pilot, lambda: pane.conversation.summary is not None, timeout_s=60)
        # The summary comes before the turn it makes room for: until that starts, the pane
        # still holds the first turn's result, finished.
        await wait_until(pilot, lambda: pane.result is not first, timeout_s=60)
        await wait_finished(pilot)
        assert pane.conversation.summary
        assert pane.conversation.turns[0].content == LONGER.strip()
        assert "earlier turns summarized" in pane._document
        assert pane.result is not None and pane.result.status == "done"


async def test_a_conversation_past_a_small_window_is_summarized_whole() -> None:
    # The conversation alone is past the window, so the whole of it, plus the instruction,
    # could never be sent: it is summarized in pieces (see tests/test_summarize_chunks.py).
    registry = make_registry(Settings(embedded_context=512), ENV)
    target = parse_target("embedded:smollm2@max_tokens=24,temperature=0")
    c = Conversation(system="Be brief.")
    for i in range(8):
        c.ask(f"Note {i}: the locker code for room {i} is {1000 + 37 * i}. " * 3)
        c.answered(f"Noted: room {i} has locker code {1000 + 37 * i}, as you said. " * 2)
    assert not context.fits(target, c.messages(), 512)
    summary = await context.summarize(registry, target, c.messages())
    assert summary
    assert c.summarized(summary) == 16
    assert context.fits(target, c.messages(), 512)


async def test_a_turn_too_long_to_summarize_says_to_drop_it_instead() -> None:
    registry = make_registry(Settings(embedded_context=512), ENV)
    target = parse_target("embedded:smollm2@max_tokens=24,temperature=0")
    messages = [Message("user", LONG), Message("assistant", LONGER)]
    with pytest.raises(ProviderError, match="drop the earlier turns instead"):
        await context.summarize(registry, target, messages)


def test_a_target_with_its_own_system_prompt_still_gets_the_summary() -> None:
    """The summary stands for turns no longer sent: a target's own system prompt replaces
    the conversation's, but not the summary it carries."""
    c = Conversation(system="Be kind.")
    c.ask("What is the code word?")
    c.answered("The code word is heron.")
    c.summarized("The user asked for the code word; it is heron.")
    c.ask("What was the code word?")
    target = Target("embedded", "smollm2", system="Be terse.")
    (system, *turns) = request_for(target, c.messages()).messages
    assert system.role == "system" and system.content.startswith("Be terse.")
    assert "it is heron" in system.content and "Be kind." not in system.content
    assert [m.content for m in turns] == ["What was the code word?"]


async def test_a_conversation_with_no_turns_is_not_summarized() -> None:
    """Only the new prompt is too long: there is nothing earlier to summarize, and a
    made-up summary would only lengthen the request."""
    registry = make_registry(Settings(embedded_context=512), ENV)
    target = parse_target("embedded:smollm2@max_tokens=16")
    with pytest.raises(ProviderError, match="no earlier turns to summarize"):
        await context.summarize(registry, target, [Message("system", "Be brief.")])
    with pytest.raises(ProviderError, match="no earlier turns to summarize"):
        await context.summarize(registry, target, [])


def test_a_second_summary_replaces_the_first_it_was_made_with() -> None:
    c = Conversation()
    c.ask("a")
    c.answered("b")
    c.summarized("The user said a.")
    assert "The user said a." in c.messages()[0].content  # the next summary is asked with it
    c.ask("c")
    c.answered("d")
    c.summarized("The user said a, then c.")
    assert c.summary == "The user said a, then c."
    assert c.messages()[0].content.count("The user said a") == 1


def test_the_room_kept_for_an_answer_is_at_most_a_quarter_of_the_window() -> None:
    """512 tokens kept for an answer took a whole 512-token window: no prompt ever fitted."""
    asked = [Message("system", "Be brief."), Message("user", "What is the capital of France?")]
    unset, capped = parse_target("embedded:smollm2"), parse_target("embedded:smollm2@max_tokens=16")
    assert context.fits(unset, asked, 512)
    assert context.needed(unset, asked, window=512) == context.needed(capped, asked) - 16 + 128
    assert context.needed(unset, asked) == context.needed(unset, asked, window=4096)  # 512
    assert context.needed(capped, asked, window=512) == context.needed(capped, asked)


def test_advice_for_a_prompt_too_long_names_the_window_settings_that_help() -> None:
    """Ollama runs a model with a smaller window than it was trained for (4k by default):
    `ollama_num_ctx` gives it more."""
    ollama = context.too_long_advice(parse_target("ollama:llama3.2:1b@max_tokens=64"))
    assert ollama == (
        "a shorter prompt, or a smaller max_tokens (it is 64), or a larger ollama_num_ctx in "
        "the config, if the model allows"
    )
    assert "embedded_context" in context.too_long_advice(parse_target("embedded:smollm2"))
    blind = context.too_long_advice(parse_target("ollama:llama3.2:1b"), blind=True)
    assert blind == "a shorter prompt"  # the setting would say which runtime it is
