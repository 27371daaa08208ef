"""OpenAI and every OpenAI-compatible server (llama-server, LM Studio, vLLM, OpenRouter)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING, Any

from providers.base import (
    ChatRequest,
    Done,
    ProviderError,
    ReasoningDelta,
    ServerTimings,
    StreamEvent,
    TextDelta,
    Usage,
)
from providers.errors import (
    NOT_FOUND_HINT,
    cut_short,
    error_body_text,
    failed_mid_answer,
    not_an_event_stream,
    redact,
    send,
    status_error,
    transport_error,
    unreadable,
)
from providers.keyed import KeyedAPI

if TYPE_CHECKING:
    import openai as openai_sdk


class OpenAIProvider(KeyedAPI):
    """Chat completions, streamed, with `stream_options.include_usage`."""

    default_url = "https://api.openai.com/v1"

    def __init__(
        self, name: str = "openai", *, api_key_env: str | None = "OPENAI_API_KEY", **kwargs: Any
    ) -> None:
        super().__init__(name, api_key_env=api_key_env, **kwargs)
        self._client: openai_sdk.AsyncOpenAI | None = None

    def _sdk(self) -> openai_sdk.AsyncOpenAI:
        if self._client is None:
            key = self._key()
            import openai as openai_sdk

            self._client = openai_sdk.AsyncOpenAI(
                api_key=key,
                base_url=self.base_url,
                max_retries=0,
                timeout=openai_sdk.Timeout(self._read_timeout_s, connect=self._connect_timeout_s),
            )
        return self._client

    async def stream(self, request: ChatRequest) -> AsyncIterator[StreamEvent]:
        client = self._sdk()
        options: dict[str, Any] = request.params.options()
        messages: Any = [{"role": m.role, "content": m.content} for m in request.messages]
        try:
            response = await send(
                lambda: client.chat.completions.create(
                    model=request.model,
                    messages=messages,
                    stream=True,
                    stream_options={"include_usage": True},
                    **options,
                )
            )
        except Exception as exc:
            raise self._translate(exc, request.model) from None
        stop_reason: str | None = None
        saw_usage = saw_chunk = False
        try:
            async for chunk in response:
                saw_chunk = True
                for choice in chunk.choices:
                    delta = choice.delta
                    if delta is not None:
                        reasoning = _reasoning_text(delta)
                        if reasoning:
                            yield ReasoningDelta(reasoning)
                        if delta.content:
                            yield TextDelta(delta.content)
                    if choice.finish_reason:
                        stop_reason = choice.finish_reason
                extra = chunk.model_extra or {}
                if "error" in extra:
                    detail = error_body_text(extra["error"])
                    raise failed_mid_answer("server", f"{self.name}:{request.model}", detail)
                if chunk.usage is not None:
                    saw_usage = True
                    yield _usage(chunk.usage)
                if isinstance(timings := extra.get("timings"), Mapping):
                    yield _llama_server_timings(timings)
        except (asyncio.CancelledError, GeneratorExit):
            # GeneratorExit: the consumer stopped early (a guard); the connection still closes.
            await response.close()
            raise
        except ProviderError:
            await response.close()
            raise
        except Exception as exc:
            await response.close()
            raise self._translate(exc, request.model, mid_stream=True) from None
        content_type = response.response.headers.get("content-type", "")
        if not saw_chunk and "event-stream" not in content_type:
            raise not_an_event_stream(self._where, content_type)
        if stop_reason is None and not saw_usage:
            # The SDK ends quietly when the body ends, [DONE] or not; a finish_reason (or
            # the usage chunk that follows it) is what says the answer is complete.
            raise cut_short(self._where)
        yield Done(stop_reason)

    def _translate(
        self, exc: BaseException, model: str, *, mid_stream: bool = False
    ) -> ProviderError:
        import openai as openai_sdk

        if isinstance(exc, ProviderError):
            return exc
        secrets = self._secrets
        if isinstance(exc, openai_sdk.APIStatusError):
            error = status_error(
                exc.status_code,
                error_body_text(exc.body) or exc.message,
                target=f"{self.name}:{model}",
                headers=exc.response.headers,
                key_env=self._api_key_env,
                not_found_hint=NOT_FOUND_HINT,
            )
        elif isinstance(exc, openai_sdk.APIError) and not isinstance(
            exc, openai_sdk.APIConnectionError
        ):
            # An error object inside a stream that already answered 200.
            error = failed_mid_answer("server", f"{self.name}:{model}", exc.message)
        elif isinstance(exc, openai_sdk.APITimeoutError):
            error = self._timeout(exc)
        elif isinstance(exc, ValueError | KeyError | TypeError):
            error = unreadable(self._where, "a chunk", exc)
        else:
            error = transport_error(exc, self._where, mid_stream=mid_stream)
        return ProviderError(error.kind, redact(error.message, secrets), error.retry_after)


def _reasoning_text(delta: Any) -> str | None:
    extra = getattr(delta, "model_extra", None) or {}
    # llama-server, vLLM and DeepSeek name the thinking channel differently.
    for key in ("reasoning_content", "reasoning"):
        value = extra.get(key)
        if isinstance(value, str) and value:
            return value
    return None


def _usage(usage: Any) -> Usage:
    details = getattr(usage, "prompt_tokens_details", None)
    cached = getattr(details, "cached_tokens", None) or 0
    return Usage(
        input_tokens=int(usage.prompt_tokens or 0),
        output_tokens=int(usage.completion_tokens or 0),
        cached_input_tokens=int(cached),
    )


def _llama_server_timings(timings: Mapping[str, Any]) -> ServerTimings:
    def seconds(key: str) -> float | None:
        value = timings.get(key)
        return float(value) / 1000 if isinstance(value, int | float) else None

    return ServerTimings(prompt_s=seconds("prompt_ms"), decode_s=seconds("predicted_ms"))
