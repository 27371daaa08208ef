"""How big each target's context window is, and whether a conversation still fits it."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from providers.base import ChatRequest, GenParams, Message, Provider, ProviderError
from providers.embedded import EmbeddedProvider
from providers.ollama import OllamaProvider
from providers.registry import Registry, Target, TargetError
from workbench.engine import pricing, tokens
from workbench.engine.conversation import with_summary
from workbench.engine.fanout import price_source
from workbench.engine.result import TargetResult

REPLY_RESERVE = 512
"""Room kept for the answer when the target sets no max_tokens: this, or a quarter of a
smaller window (see `reply_room`)."""
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
        if provider.is_local:  # llama-server, vLLM, LM Studio list it with the model
            listed = {m.id: m.context_length for m in await provider.list_models()}
            if listed.get(target.model):
                return listed[target.model]
    except ProviderError:
        return None
    return pricing.context_window(target.model, price_source(registry, target.provider))


def reply_room(target: Target, window: int | None) -> int:
    """Room kept for the answer: the target's max_tokens, else REPLY_RESERVE, but at most a
    quarter of the window where it is known. A fixed 512 would take a whole 512-token window
    before any prompt, and a model with no max_tokens goes on to the window's end anyway."""
    if target.params.max_tokens:
        return target.params.max_tokens
    return REPLY_RESERVE if window is None else min(REPLY_RESERVE, window // 4)


def needed(
    target: Target,
    messages: Sequence[Message],
    *,
    registry: Registry | None = None,
    window: int | None = None,
) -> int:
    """Tokens the request will take: its prompt and room for the reply (`reply_room`, for
    the target's `window` if known). The prompt is counted exactly where the model can (an
    embedded model loaded in `registry`), else estimated.

    An exact count needs no margin: it includes the chat template's opening of the reply, and
    the embedded provider stops at max_tokens before the last token sampled is evaluated, so a
    prompt and max_tokens that add up to the window fill it to the last token and no further."""
    from workbench.engine.fanout import request_for

    prompt = request_for(target, messages).messages  # with the target's own system prompt
    counted = tokens.counter_for(target, registry).count_messages(prompt)
    return counted + reply_room(target, window)


def fits(
    target: Target,
    messages: Sequence[Message],
    window: int | None,
    *,
    registry: Registry | None = None,
) -> bool:
    return window is None or needed(target, messages, registry=registry, window=window) <= window


def too_long_advice(target: Target, *, blind: bool = False) -> str:
    """What makes room for a prompt too long for its target's window even alone. In blind
    mode only what names nothing of the model: its settings and its runtime would."""
    ways = ["a shorter prompt"]
    if not blind and target.params.max_tokens:
        ways.append(f"a smaller max_tokens (it is {target.params.max_tokens:,})")
    if not blind and target.provider == "embedded":
        ways.append("a larger embedded_context in the config, if the model allows")
    if not blind and target.provider == "ollama":  # Ollama runs a model below its trained window
        ways.append("a larger ollama_num_ctx in the config, if the model allows")
    return ", or ".join(ways)


SUMMARY_PROMPT = (
    "Summarize our conversation so far in a short paragraph for your own later reference. "
    "Keep names, numbers, facts and decisions; leave out pleasantries."
)
SUMMARY_TOKENS = 256
"""Room kept for the summary, and the most asked of it, when the target sets no smaller
max_tokens (at most a quarter of the window)."""
ESTIMATE_SLACK = 8
"""An estimated summary request fills the window to all but 1/this: the estimate runs a
little short of a model's own tokenizer and chat template (SmolLM2's by ~10 % on words, ~30 %
and more on digits, one token each). A request counted exactly by the model needs none."""


async def summarize(registry: Registry, target: Target, messages: Sequence[Message]) -> str:
    """The target's own summary of the whole conversation; raises ProviderError if it cannot.

    A conversation too long for one request with room for the summary is summarized in
    pieces, oldest first (see `plan_summary`): each request after the first carries the
    summary so far in its system prompt, and the last one's answer is the summary of all.
    """
    from workbench.engine.fanout import request_for

    if not any(m.role != "system" for m in messages):
        # The prompt alone is too long: a summary of nothing would only lengthen the request.
        raise ProviderError(
            "bad_request",
            f"{target.name} has no earlier turns to summarize: the prompt alone does not fit "
            "its context window — shorten it",
        )
    provider = registry.get(target.provider)
    window = await window_of(registry, target)
    if window is None:
        request = request_for(target, [*messages, Message("user", SUMMARY_PROMPT)])
        return await _summary(registry, target, provider, request, window)
    summary: str | None = None
    while True:
        # Planned again after each piece: the summary so far may be longer than foreseen.
        plan = await asyncio.to_thread(
            plan_summary, target, messages, window, summary, registry=registry
        )
        piece = plan.pieces[0]
        request = plan.request(target, piece, summary)
        summary = await _summary(registry, target, provider, request, window)
        if len(plan.pieces) == 1:
            return summary
        messages = [*plan.head, *plan.turns[piece.stop :]]


async def _summary(
    registry: Registry,
    target: Target,
    provider: Provider,
    request: ChatRequest,
    window: int | None,
) -> str:
    """The answer to one summary request. One cut at its max_tokens (stop reason "length") is
    kept whole: the room was paid for, and the words past the last full stop are as likely
    as any to be the names and numbers a summary is for, so trimming them is no gain.

    A thinking model may spend the whole room on its reasoning and write nothing: it is
    asked once more with all the room the request leaves in the window. A longer summary
    than planned is no harm there: the pieces are planned again around the summary given."""
    result = await _ask(registry, target, provider, request)
    given = request.params.max_tokens
    if _thought_out(result) and window is not None:
        counter = tokens.counter_for(target, registry)
        sent = await asyncio.to_thread(counter.count_messages, request.messages)
        spare = window - sent - (0 if counter.exact else window // ESTIMATE_SLACK)
        if given is not None and spare > given:
            given = spare
            params = replace(request.params, max_tokens=spare)
            result = await _ask(registry, target, provider, replace(request, params=params))
    if result.status == "done" and result.text.strip():
        return result.text.strip()
    if _thought_out(result):
        room = f"all {given:,} tokens it was given" if given else "its whole answer"
        raise ProviderError(
            "server",
            f"{target.name} could not summarize: it spent {room} thinking and wrote no "
            "summary — drop the earlier turns instead, or start a new conversation",
        )
    raise ProviderError(
        "server", f"{target.name} could not summarize: {result.error or result.status}"
    )


async def _ask(
    registry: Registry, target: Target, provider: Provider, request: ChatRequest
) -> TargetResult:
    from workbench.engine.fanout import new_result, stream_target

    result = new_result(target, registry)
    await stream_target(target, provider, request, result, live_estimates=False)
    return result


def _thought_out(result: TargetResult) -> bool:
    """It reasoned until its max_tokens ran out and answered nothing."""
    cut = result.stop_reason in ("length", "max_tokens")  # OpenAI and Ollama; Anthropic
    return result.status == "done" and cut and bool(result.reasoning) and not result.text.strip()


@dataclass(frozen=True)
class SummaryPlan:
    """Which turns each summary request covers, for a conversation and a window."""

    params: GenParams
    """The target's settings, max_tokens capped to the room for the summary."""
    head: tuple[Message, ...]
    """The system prompt (carrying any earlier summary), sent with every piece."""
    turns: tuple[Message, ...]
    pieces: tuple[range, ...]
    """Indices into `turns`, oldest first: every turn in exactly one, in whole exchanges."""

    def request(self, target: Target, piece: range, summary: str | None = None) -> ChatRequest:
        """The request that summarizes `piece`, with the summary so far in its system prompt."""
        from workbench.engine.fanout import request_for

        turns = self.turns[piece.start : piece.stop]
        asked = request_for(target, [*self.head, *turns, Message("user", SUMMARY_PROMPT)])
        messages = _carrying(asked.messages, summary) if summary else asked.messages
        return replace(asked, messages=tuple(messages), params=self.params)


def plan_summary(
    target: Target,
    messages: Sequence[Message],
    window: int,
    summary: str | None = None,
    *,
    registry: Registry | None = None,
) -> SummaryPlan:
    """Split the turns, oldest first, into runs of whole exchanges (a request never opens
    with an answer), each as long as fits `window` with room for the summary (and, where
    its size is estimated rather than counted by the model, 1/ESTIMATE_SLACK to spare). The
    first run carries `summary` (the summary so far, if any), each later one room for a
    summary as long as the one asked for. ProviderError if an exchange does not fit even
    alone."""
    room = min(target.params.max_tokens or SUMMARY_TOKENS, window // 4)
    # Capped whether the target sets max_tokens or not: the pieces after the first are planned
    # for a summary of `room` tokens, and a longer one (the provider's default lets a model
    # ramble on) would crowd the next piece's turns out, or push it past the window.
    params = replace(target.params, max_tokens=room)
    head = tuple(m for m in messages if m.role == "system")
    turns = tuple(m for m in messages if m.role != "system")
    plan = SummaryPlan(params, head, turns, ())
    counter = tokens.counter_for(target, registry)
    limit = window - room - (0 if counter.exact else window // ESTIMATE_SLACK)

    def fitting(start: int, carried: str | None, reserve: int) -> int | None:
        # Whole requests counted as sent, not a sum of per-turn costs: a chat template need
        # not cost the same for a turn wherever it stands (SmolLM2's adds a system prompt to
        # a request that has none).
        def fits(end: int) -> bool:
            sent = plan.request(target, range(start, end), carried).messages
            return counter.count_messages(sent) + reserve <= limit

        return _longest(start, len(turns), fits)

    pieces: list[range] = []
    start = 0
    while start < len(turns) or not pieces:
        # Later pieces carry a summary of up to `room` tokens: a one-token stand-in, and room.
        found = fitting(start, ".", room) if pieces else fitting(start, summary, 0)
        end = start if found is None else found
        while start < end < len(turns) and turns[end].role != "user":
            end -= 1  # whole exchanges: the next piece opens with a question
        if found is None or end == start < len(turns):
            latest = not any(m.role == "user" for m in turns[start + 1 :])
            raise ProviderError(
                "bad_request",
                f"{target.name} could not summarize: even "
                f"{'the latest' if latest else 'an earlier'} turn does not fit its "
                f"{window:,}-token context window with room for a summary — drop the earlier "
                "turns instead, or start a new conversation",
            )
        pieces.append(range(start, end))
        start = end
    return replace(plan, pieces=tuple(pieces))


def _longest(start: int, stop: int, fits: Callable[[int], bool]) -> int | None:
    """The largest end in [start, stop] for which `fits(end)` holds, None if not even `start`
    does; `fits` holds up to some end and not past it (a longer request is never shorter).
    A binary search: each probe counts a whole request, so a long conversation costs
    O(log n) counts per piece, not one per turn."""
    if not fits(start):
        return None
    low, high = start, stop  # fits(low) holds; the answer is in [low, high]
    while low < high:
        middle = (low + high + 1) // 2
        if fits(middle):
            low = middle
        else:
            high = middle - 1
    return low


def _carrying(messages: Sequence[Message], summary: str) -> list[Message]:
    """The messages with `summary` at the end of their system prompt (made if there is none)."""
    if messages and messages[0].role == "system":
        first = replace(messages[0], content=with_summary(messages[0].content, summary))
        return [first, *messages[1:]]
    return [Message("system", with_summary("", summary)), *messages]
