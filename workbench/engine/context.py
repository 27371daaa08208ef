"""How big each target's context window is, and whether a conversation still fits it."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import replace

from providers.base import GenParams, Message, ProviderError
from providers.embedded import EmbeddedProvider
from providers.ollama import OllamaProvider
from providers.registry import Registry, Target, TargetError
from workbench.engine import pricing, tokens
from workbench.engine.fanout import price_source

REPLY_RESERVE = 512
"""Room kept for the answer when the target sets no max_tokens."""
WARN_AT = 0.8
"""Share of the window past which a pane warns."""


async def window_of(registry: Registry, target: Target) -> int | None:
    """The context window in tokens, from the runtime itself or genai-prices; None if unknown."""
    try:
        provider = registry.get(target.provider)
    except (TargetError, ProviderError):
        return None
    try:
        if isinstance(provider, EmbeddedProvider):
            await provider.load(target.model)
            return provider.context_length(target.model)
        if isinstance(provider, OllamaProvider):
            return await provider.context_length(target.model)
    except ProviderError:
        return None
    return pricing.context_window(target.model, price_source(registry, target.provider))


def needed(target: Target, messages: Sequence[Message]) -> int:
    """Tokens the request will take: the messages (estimated) and room for the reply."""
    estimate = tokens.estimator_for(target.provider, target.model).count_messages(messages)
    return estimate + (target.params.max_tokens or REPLY_RESERVE)


def fits(target: Target, messages: Sequence[Message], window: int | None) -> bool:
    return window is None or needed(target, messages) <= window


SUMMARY_PROMPT = (
    "Summarize our conversation so far in a short paragraph for your own later reference. "
    "Keep names, numbers, facts and decisions; leave out pleasantries."
)
SUMMARY_TOKENS = 256
"""Room kept for the summary when the target sets no smaller max_tokens (at most a quarter
of the window)."""
ESTIMATE_SLACK = 8
"""A summary request fills the window to all but 1/this: the estimate runs a little short of
a model's own tokenizer and chat template (SmolLM2's by up to ~10 %)."""


async def summarize(registry: Registry, target: Target, messages: Sequence[Message]) -> str:
    """The target's own summary of the conversation; raises ProviderError if it cannot.

    The conversation is already too long for the window, so the request leaves out the
    oldest turns until it fits with room for the summary: the summary covers the newest
    turns that fit (and the system prompt, which carries any earlier summary).
    """
    from workbench.engine.fanout import new_result, request_for, stream_target

    provider = registry.get(target.provider)
    params = target.params
    window = await window_of(registry, target)
    if window is not None:
        params, messages = await asyncio.to_thread(_fitted, target, messages, window)
    request = request_for(target, [*messages, Message("user", SUMMARY_PROMPT)])
    result = new_result(target, registry)
    await stream_target(
        target, provider, replace(request, params=params), result, live_estimates=False
    )
    if result.status != "done" or not result.text.strip():
        raise ProviderError(
            "server", f"{target.name} could not summarize: {result.error or result.status}"
        )
    return result.text.strip()


def _fitted(
    target: Target, messages: Sequence[Message], window: int
) -> tuple[GenParams, list[Message]]:
    """The target's settings (max_tokens capped to the room for the summary) and the newest
    turns that fit `window` with that room; ProviderError if not even the last turn does."""
    from workbench.engine.fanout import request_for

    params = target.params
    room = min(params.max_tokens or SUMMARY_TOKENS, window // 4)
    if params.max_tokens is not None:  # unset stays unset: the provider's default
        params = replace(params, max_tokens=room)
    head = [m for m in messages if m.role == "system"]
    turns = [m for m in messages if m.role != "system"]
    estimator = tokens.estimator_for(target.provider, target.model)
    framing = estimator.count_messages([])
    fixed = request_for(target, [*head, Message("user", SUMMARY_PROMPT)]).messages
    total = estimator.count_messages(fixed) + room + window // ESTIMATE_SLACK
    costs = [estimator.count_messages([m]) - framing for m in turns]
    total += sum(costs)
    start = 0
    # Oldest first, and whole exchanges: an answer without its question would open the request.
    while start < len(turns) - 1 and (total > window or (start and turns[start].role != "user")):
        total -= costs[start]
        start += 1
    if total > window:
        raise ProviderError(
            "bad_request",
            f"{target.name} could not summarize: even the latest turn does not fit its "
            f"{window:,}-token context window with room for a summary — drop the earlier "
            "turns instead, or start a new conversation",
        )
    return params, [*head, *turns[start:]]
