"""One request to many targets at once, each measured where its bytes arrive."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterable, Sequence

from providers.base import (
    ChatRequest,
    Done,
    Message,
    Provider,
    ProviderError,
    ReasoningDelta,
    ServerTimings,
    Status,
    TextDelta,
    Usage,
)
from providers.embedded import EmbeddedProvider
from providers.registry import Registry, Target, TargetError
from workbench.engine import pricing, tokens
from workbench.engine.conversation import SUMMARY_NOTE
from workbench.engine.guards import MAX_TIME_S, Guarded
from workbench.engine.result import TargetResult

OnUpdate = Callable[[TargetResult], None]


def request_for(target: Target, messages: Sequence[Message]) -> ChatRequest:
    """The messages with the target's own system prompt, if it has one, in front of them in
    place of the conversation's. The summary of earlier turns that the conversation's
    carries stays: it stands for turns no longer sent."""
    if target.system is not None:
        system = target.system
        for m in messages:
            if m.role == "system" and (at := m.content.find(SUMMARY_NOTE)) >= 0:
                note = m.content[at:]
                system = f"{system}\n\n{note}" if system else note
        messages = [Message("system", system), *(m for m in messages if m.role != "system")]
    return ChatRequest(model=target.model, messages=tuple(messages), params=target.params)


async def stream_target(
    target: Target,
    provider: Provider,
    request: ChatRequest,
    result: TargetResult,
    *,
    on_update: OnUpdate | None = None,
    clock: Callable[[], float] = time.perf_counter,
    live_estimates: bool = True,
    max_time_s: float | None = MAX_TIME_S,
) -> TargetResult:
    """Stream one target into `result`, which is complete however the stream ends.

    Cancellation marks the result cancelled (keeping its partial text) and propagates.
    With `live_estimates` off (nobody watches the counts tick), tokens are estimated once at
    the end, and only if the provider did not report them. A stream that outlasts
    `max_time_s` or runs far past max_tokens is stopped (see `guards.Guarded`).
    """
    counter = tokens.estimator_for(target.provider, target.model) if live_estimates else None
    if counter is not None:
        result.input_tokens = counter.count_messages(request.messages)
    started = result.started_at = clock()

    def notify() -> None:
        if on_update is not None:
            on_update(result)

    answered = False  # Done came; the result is "done" once its counts and cost are final
    try:
        refuse_private(target, request, result)
        await provider.prepare()  # an SDK's import and set-up are not the model's latency
        started = result.started_at = clock()
        ended = False  # the provider has reported the usage that comes at the end
        events = Guarded(
            provider.stream(request),
            f"{target.provider}:{target.model}",
            max_time_s=max_time_s,
            max_tokens=request.params.max_tokens,
        )
        async for event in events:
            elapsed = clock() - started
            match event:
                case TextDelta(text):
                    if not text:
                        continue
                    if result.ttft_s is None:
                        result.ttft_s = elapsed
                    if result.first_token_s is None:
                        result.first_token_s = elapsed
                    result.status = "streaming"
                    result.add_text(text)
                    if counter is not None and not result.output_exact:
                        result.output_tokens += counter.count(text)
                case ReasoningDelta(text):
                    if not text:
                        continue
                    if result.first_token_s is None:
                        result.first_token_s = elapsed
                    result.status = "streaming"
                    result.reasoning += text
                    # Providers count reasoning among the output tokens: so does the estimate.
                    if counter is not None and not result.output_exact:
                        result.output_tokens += counter.count(text)
                case Usage():
                    # A count the server left out keeps our estimate; the other is its own.
                    ended = True
                    if event.input_tokens is not None:
                        result.input_tokens, result.input_exact = event.input_tokens, event.exact
                    if event.output_tokens is not None:
                        result.output_tokens = event.output_tokens
                        result.output_exact = event.exact
                    result.cached_input_tokens = event.cached_input_tokens
                case ServerTimings(queue_s=float(waited)):
                    if result.first_token_s is None:
                        # Another request had the model: its answer is not this one's latency.
                        started += waited
                        result.started_at, result.queue_s = started, waited
                case ServerTimings():
                    # A model load reported before the request (not at the end, as Ollama
                    # reports the load inside its TTFT) is a one-time cost, not the
                    # request's latency: the clock starts once it is over.
                    # Timings of the prompt or the answer come with the end, usage or not.
                    ended = ended or event.prompt_s is not None or event.decode_s is not None
                    first = result.load_s is None and result.first_token_s is None and not ended
                    if event.load_s and first:
                        started += event.load_s
                        result.started_at, result.load_apart = started, True
                    result.load_s = event.load_s
                    result.server_prompt_s = event.prompt_s
                    result.server_decode_s = event.decode_s
                case Status(text):
                    result.notes.append(text)
                case Done(reason):
                    result.e2e_s = elapsed
                    result.stop_reason = reason
                    answered = True
            notify()
        if not answered:
            raise ProviderError(
                "connection", f"{target.provider} closed the stream before the answer was finished"
            )
    except asyncio.CancelledError:
        _end(result, clock() - started, "cancelled")
        raise
    except ProviderError as exc:
        _end(result, clock() - started, "failed", exc.kind, exc.message)
        result.retry_after_s = exc.retry_after
    except TargetError as exc:
        _end(result, clock() - started, "failed", "bad_request", str(exc))
    except Exception as exc:  # a bug in an adapter must not take the other targets down
        _end(result, clock() - started, "failed", "protocol", f"{type(exc).__name__}: {exc}")
    finally:
        # Its count comes with the end of the answer: one cut short is counted here.
        own = None if result.input_exact else _own_prompt_count(provider, target, request.messages)
        if own is not None:
            result.input_tokens, result.input_exact = own, True
        if counter is None and not result.tokens_exact:
            late = tokens.estimator_for(target.provider, target.model)
            if not result.input_exact:
                result.input_tokens = late.count_messages(request.messages)
            if not result.output_exact:
                result.output_tokens = late.count(result.text)
        result.cost = pricing.cost_of(result)
        # Finished only now: whoever keeps a result when it finishes (`ask` stores it then)
        # gets its estimated counts and its cost, not the zeros and None before them.
        if answered and not result.finished:
            result.status = "done"
        notify()
    return result


def refuse_private(target: Target, request: ChatRequest, result: TargetResult) -> None:
    """Private prompts, and the answers to them, never leave this machine."""
    if result.is_local or not any(m.private for m in request.messages):
        return
    raise ProviderError(
        "bad_request",
        f"not sent: the conversation holds a private prompt, and {target.provider} is a "
        "cloud target — private prompts go only to local models (start a new chat, or "
        "switch this pane to a local model)",
    )


def _end(
    result: TargetResult, elapsed: float, status: str, kind: str | None = None, message: str = ""
) -> None:
    result.e2e_s = elapsed
    result.status = status  # type: ignore[assignment]
    if kind is not None:
        result.error_kind = kind
        result.error = message


def new_result(target: Target, registry: Registry) -> TargetResult:
    try:
        source = price_source(registry, target.provider)
    except TargetError:
        source = pricing.PriceSource()
    return TargetResult(
        target=target.spec,
        name=target.name,
        provider=target.provider,
        model=target.model,
        is_local=source.is_local,
        price_source=source,
    )


def price_source(registry: Registry, name: str) -> pricing.PriceSource:
    """How to price a provider's targets: local ones are free, cloud ones by id or URL."""
    if registry.is_local(name):
        return pricing.PriceSource(is_local=True)
    kind, url = registry.kind(name), registry.base_url(name)
    official = {"openai": "https://api.openai.com/v1", "anthropic": "https://api.anthropic.com"}
    if name == kind and url == official.get(kind):
        return pricing.PriceSource(provider_id=kind)
    # genai-prices matches on the host; a password in the URL is no business of it.
    return pricing.PriceSource(api_url=registry.shown_url(name))


async def prepare_all(registry: Registry, targets: Iterable[Target]) -> None:
    """Set up every target's provider before any target's clock starts.

    A provider's set-up is an SDK's import (openai ~1 s, anthropic ~3 s), and it holds the
    loop: done in a target's own turn, it ran on the clocks of the targets already sent, and
    the first target listed looked the slowest. A provider that cannot be set up says why
    when its target runs."""
    for name in dict.fromkeys(t.provider for t in targets):
        with contextlib.suppress(TargetError, ProviderError):
            await registry.get(name).prepare()


async def fanout(
    registry: Registry,
    targets: Sequence[Target],
    messages: Sequence[Message],
    *,
    on_update: OnUpdate | None = None,
    live_estimates: bool = True,
    max_time_s: float | None = MAX_TIME_S,
    results: list[TargetResult] | None = None,
) -> list[TargetResult]:
    """Send the messages to every target concurrently; one failing never stops the others.

    The results come back in target order. If the fan-out itself is cancelled, every
    target under way is marked cancelled with what it had produced so far; a caller that
    wants the results then passes `results`, filled before anything is awaited.
    """
    results = [] if results is None else results
    results[:] = [new_result(t, registry) for t in targets]
    await prepare_all(registry, targets)

    async def one(target: Target, result: TargetResult) -> None:
        try:
            provider = registry.get(target.provider)
        except (TargetError, ProviderError) as exc:
            kind = exc.kind if isinstance(exc, ProviderError) else "bad_request"
            result.status, result.error_kind, result.error = "failed", kind, str(exc)
            result.cost = pricing.cost_of(result)
            if on_update is not None:
                on_update(result)
            return
        request = request_for(target, messages)
        await stream_target(
            target,
            provider,
            request,
            result,
            on_update=on_update,
            live_estimates=live_estimates,
            max_time_s=max_time_s,
        )

    tasks = [asyncio.create_task(one(t, r)) for t, r in zip(targets, results, strict=True)]
    try:
        await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return results


def _own_prompt_count(
    provider: Provider, target: Target, messages: Sequence[Message]
) -> int | None:
    """The model's own count of the prompt, chat template and all, where it can give one
    without loading anything (an embedded model already loaded): a request cancelled before
    its usage came is still counted exactly, not estimated without the template."""
    if not isinstance(provider, EmbeddedProvider):
        return None
    count = provider.prompt_counter(target.model)
    if count is None:
        return None
    try:
        return count(messages)
    except Exception:  # a template that refuses these messages: the request will say so
        return None
