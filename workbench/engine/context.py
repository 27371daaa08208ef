"""How big each target's context window is, and whether a conversation still fits it."""

from __future__ import annotations

from collections.abc import Sequence

from providers.base import Message, ProviderError
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


async def summarize(registry: Registry, target: Target, messages: Sequence[Message]) -> str:
    """The target's own summary of the conversation; raises ProviderError if it cannot."""
    from workbench.engine.fanout import new_result, request_for, stream_target

    result = new_result(target, registry)
    asked = [*messages, Message("user", SUMMARY_PROMPT)]
    provider = registry.get(target.provider)
    await stream_target(target, provider, request_for(target, asked), result, live_estimates=False)
    if result.status != "done" or not result.text.strip():
        raise ProviderError(
            "server", f"{target.name} could not summarize: {result.error or result.status}"
        )
    return result.text.strip()
