"""An embedded model's window is judged by the model's own count of the prompt as it is sent
(its chat template, its tokenizer), not by tiktoken's estimate, which runs ~30 % and more
short on digits: tiktoken reads up to three as one token, SmolLM2 spends a token on each.
Every count is checked against the one llama.cpp takes in for the same request, sent for real.
"""

from __future__ import annotations

import asyncio
import os
import threading
from typing import Any

import pytest

from providers.base import (
    ChatRequest,
    Done,
    GenParams,
    Message,
    ProviderError,
    StreamEvent,
    TextDelta,
    Usage,
)
from providers.embedded import EmbeddedProvider, smollm2_path
from providers.registry import Registry, parse_target
from workbench.config import Settings
from workbench.engine import context
from workbench.engine.conversation import Conversation
from workbench.engine.fanout import request_for
from workbench.wiring import make_registry

WINDOW = 768
REPLY = 16
TARGET = parse_target(f"embedded:smollm2@max_tokens={REPLY},temperature=0")
ENV = {"OLLAMA_HOST": "127.0.0.1:9"}
PAST_BY_EXACT = 10
"""Orders in a ledger that tiktoken puts inside the window and SmolLM2 past it."""


def ledger(orders: int) -> list[Message]:
    """Order numbers, phone numbers and amounts, as a user reads them out and the model notes
    them down."""
    c = Conversation(system="Be brief.")
    for i in range(orders):
        number, phone, due = 40_000 + 7_919 * i, 7_700_900_123 + 104_729 * i, 1_234.56 * (i + 1)
        c.ask(f"Order {number}: call 0{phone}, pay {due:.2f}.")
        c.answered(f"Noted: order {number}, phone 0{phone}, {due:.2f} due.")
    return c.messages()


@pytest.fixture(scope="module")
def registry() -> Registry:
    """A registry whose embedded SmolLM2 has a small window, loaded once for the module."""
    return make_registry(Settings(embedded_context=WINDOW), ENV)


async def loaded(registry: Registry) -> EmbeddedProvider:
    assert await context.window_of(registry, TARGET) == WINDOW  # loads the model
    provider = registry.get("embedded")
    assert isinstance(provider, EmbeddedProvider)
    return provider


async def events(provider: EmbeddedProvider, request: ChatRequest) -> list[StreamEvent]:
    return [e async for e in provider.stream(request)]


def usage(sent: list[StreamEvent]) -> Usage:
    (found,) = [e for e in sent if isinstance(e, Usage)]
    return found


def llama_cpp_prompt_tokens(messages: list[Message]) -> int:
    """The prompt tokens llama-cpp-python's own chat completion reports for these messages,
    sent for real to a copy of the model of its own, with room for them: the GGUF's template
    applied and tokenized by the library, not by us."""
    from llama_cpp import Llama

    cores = os.cpu_count() or 1
    llama = Llama(model_path=str(smollm2_path()), n_ctx=1024, n_threads_batch=cores, verbose=False)
    try:
        chat = [{"role": m.role, "content": m.content} for m in messages]
        answer: Any = llama.create_chat_completion(chat, max_tokens=1, temperature=0)
        return int(answer["usage"]["prompt_tokens"])
    finally:
        llama.close()


async def test_needed_is_the_prompt_llama_cpp_takes_in_where_the_estimate_falls_short(
    registry: Registry,
) -> None:
    provider = await loaded(registry)
    messages = ledger(PAST_BY_EXACT)
    taken = await asyncio.to_thread(llama_cpp_prompt_tokens, messages)
    assert context.needed(TARGET, messages, registry=registry) == taken + REPLY
    # The estimate put it inside the window; it is past it, and the model refuses it.
    assert context.fits(TARGET, messages, WINDOW)
    assert context.needed(TARGET, messages) < taken * 0.8
    assert not context.fits(TARGET, messages, WINDOW, registry=registry)
    with pytest.raises(ProviderError, match=f"the conversation is {taken} tokens"):
        await events(provider, request_for(TARGET, messages))


async def test_a_conversation_that_fits_to_the_last_token_is_sent_and_answered(
    registry: Registry,
) -> None:
    provider = await loaded(registry)
    history = ledger(PAST_BY_EXACT - 1)

    def asked(words: int) -> list[Message]:
        return [*history, Message("user", "Read every order back to me" + " now" * words)]

    words = 0  # one token a word: the request grows until it needs the whole window
    while context.needed(TARGET, asked(words + 1), registry=registry) <= WINDOW:
        words += 1
    assert context.needed(TARGET, asked(words), registry=registry) == WINDOW
    assert context.fits(TARGET, asked(words), WINDOW, registry=registry)
    assert not context.fits(TARGET, asked(words + 1), WINDOW, registry=registry)
    sent = await events(provider, request_for(TARGET, asked(words)))
    assert isinstance(sent[-1], Done)
    assert usage(sent).input_tokens == WINDOW - REPLY  # the prompt llama.cpp was given
    assert any(isinstance(e, TextDelta) and e.text.strip() for e in sent)


async def test_a_number_heavy_conversation_is_summarized_in_pieces_the_model_takes(
    registry: Registry,
) -> None:
    await loaded(registry)
    messages = ledger(2 * PAST_BY_EXACT)
    # Every piece is sent for real: the model refuses one past its window.
    assert await context.summarize(registry, TARGET, messages)
    plan = context.plan_summary(TARGET, messages, WINDOW, registry=registry)
    assert len(plan.pieces) > 1
    # No margin where the count is exact: the first piece fills the window as far as whole
    # exchanges go, and one more would not fit.
    first = plan.pieces[0]
    longer = range(first.start, first.stop + 2)
    assert context.needed(TARGET, plan.request(TARGET, first).messages, registry=registry) <= WINDOW
    assert context.needed(TARGET, plan.request(TARGET, longer).messages, registry=registry) > WINDOW


async def test_counting_while_the_model_answers_disturbs_neither(registry: Registry) -> None:
    provider = await loaded(registry)
    messages = ledger(4)
    counted = context.needed(TARGET, messages, registry=registry)
    question = Message("user", "Count from one to thirty, in words.")
    request = ChatRequest("smollm2", (question,), GenParams(max_tokens=64, temperature=0))

    def text(sent: list[StreamEvent]) -> str:
        return "".join(e.text for e in sent if isinstance(e, TextDelta))

    alone = text(await events(provider, request))
    done, counts = threading.Event(), list[int]()

    def count_meanwhile() -> None:  # as the TUI counts: in a thread, beside the engine's
        while not done.is_set():
            counts.append(context.needed(TARGET, messages, registry=registry))

    counting = asyncio.ensure_future(asyncio.to_thread(count_meanwhile))
    try:
        beside = text(await events(provider, request))
    finally:
        done.set()
        await counting
    assert beside == alone
    assert len(counts) > 10 and set(counts) == {counted}


def test_a_model_not_loaded_is_estimated_and_not_loaded_for_a_count() -> None:
    fresh = make_registry(Settings(embedded_context=WINDOW), ENV)
    messages = ledger(PAST_BY_EXACT)
    assert context.needed(TARGET, messages, registry=fresh) == context.needed(TARGET, messages)
    provider = fresh.get("embedded")
    assert isinstance(provider, EmbeddedProvider) and not provider.is_loaded("smollm2")


async def test_the_tui_asks_before_sending_what_only_the_exact_count_finds_too_long() -> None:
    """Before a prompt goes out, the pane's conversation is judged by the model's own count:
    the ledger that tiktoken puts inside the window opens the overflow choice instead of
    being sent to a model that would refuse it."""
    from tests.tui_helpers import send, wait_until
    from workbench.tui.app import make_app
    from workbench.tui.screens.overflow import OverflowScreen

    app = make_app(Settings(embedded_context=WINDOW), [TARGET.spec], env=ENV)
    async with app.run_test(size=(140, 40)) as pilot:
        (pane,) = app.panes
        await wait_until(pilot, lambda: pane.window == WINDOW, timeout_s=30)
        earlier = ledger(PAST_BY_EXACT)
        pane.conversation.system = earlier[0].content
        pane.conversation.turns = earlier[1:]
        await send(pilot, "What is due in all?")
        await wait_until(pilot, lambda: isinstance(app.screen, OverflowScreen), timeout_s=30)
        assert pane.result is None  # nothing was sent


class _RefusesSystemPrompts:
    """A chat template that refuses a system prompt on purpose, as Gemma-2's does
    (`raise_exception('System role not supported')`), around SmolLM2's own."""

    def __init__(self, template: Any) -> None:
        self.template = template

    def __call__(self, *, messages: list[dict[str, str]], **options: Any) -> Any:
        if any(m["role"] == "system" for m in messages):
            raise ValueError("System role not supported")
        return self.template(messages=messages, **options)


async def test_a_template_that_refuses_the_messages_fails_the_pane_not_the_app() -> None:
    """The count before a send renders the chat template too: its refusal is the request's
    to report, in its pane, as it was before prompts were counted exactly."""
    from tests.tui_helpers import send, wait_until
    from workbench.tui.app import make_app

    app = make_app(Settings(embedded_context=WINDOW), [TARGET.spec], env=ENV)
    async with app.run_test(size=(140, 40)) as pilot:
        (pane,) = app.panes
        await wait_until(pilot, lambda: pane.window == WINDOW, timeout_s=30)
        provider = await loaded(app.registry)
        for model in provider._loaded.values():
            model.formatter = _RefusesSystemPrompts(model.formatter)
        pane.conversation.system = "Be brief."
        await send(pilot, "hi")
        await wait_until(pilot, lambda: pane.result is not None and pane.result.finished, 30)
        assert app.is_running
        assert pane.result is not None and pane.result.status == "failed"
        assert "System role not supported" in (pane.result.error or "")


async def test_the_smallest_embedded_context_allowed_takes_a_question() -> None:
    """At `MIN_EMBEDDED_CONTEXT` a system prompt and a question fit, counted by the model
    itself, with room kept for an answer that scales with the window."""
    from workbench.config import MIN_EMBEDDED_CONTEXT

    registry = make_registry(Settings(embedded_context=MIN_EMBEDDED_CONTEXT), ENV)
    target = parse_target("embedded:smollm2")
    assert await context.window_of(registry, target) == MIN_EMBEDDED_CONTEXT
    asked = [Message("system", "Be brief."), Message("user", "What is the capital of France?")]
    assert context.fits(target, asked, MIN_EMBEDDED_CONTEXT, registry=registry)
    counted = context.needed(target, asked, registry=registry, window=MIN_EMBEDDED_CONTEXT)
    assert counted - context.reply_room(target, MIN_EMBEDDED_CONTEXT) < MIN_EMBEDDED_CONTEXT // 2
