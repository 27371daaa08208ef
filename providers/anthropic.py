"""Anthropic's Messages API, and servers that speak it (llama-server's `/v1/messages`)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING, Any

from providers.base import (
    ChatRequest,
    Done,
    ErrorKind,
    ProviderError,
    ReasoningDelta,
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
    import anthropic as anthropic_sdk

DEFAULT_MAX_TOKENS = 4096
"""The Messages API requires max_tokens; this applies when the user set none."""

# Error types Anthropic sends in an `event: error` after the stream began with HTTP 200.
_STREAM_ERROR_KINDS: dict[str, ErrorKind] = {
    "overloaded_error": "overloaded",
    "rate_limit_error": "rate_limited",
    "api_error": "server",
    "invalid_request_error": "bad_request",
    "authentication_error": "auth",
    "permission_error": "auth",
    "not_found_error": "not_found",
    "request_too_large": "bad_request",
}


class AnthropicProvider(KeyedAPI):
    default_url = "https://api.anthropic.com"

    def __init__(
        self,
        name: str = "anthropic",
        *,
        api_key_env: str | None = "ANTHROPIC_API_KEY",
        **kwargs: Any,
    ) -> None:
        super().__init__(name, api_key_env=api_key_env, **kwargs)
        self._client: anthropic_sdk.AsyncAnthropic | None = None

    def _sdk(self) -> anthropic_sdk.AsyncAnthropic:
        if self._client is None:
            key = self._key()
            import anthropic as anthropic_sdk

            self._client = anthropic_sdk.AsyncAnthropic(
                api_key=key,
                base_url=self.base_url,
                max_retries=0,
                timeout=anthropic_sdk.Timeout(
                    self._read_timeout_s, connect=self._connect_timeout_s
                ),
            )
        return self._client

    async def stream(self, request: ChatRequest) -> AsyncIterator[StreamEvent]:
        client = self._sdk()
        p = request.params
        options: dict[str, Any] = {}
        if request.system:
            options["system"] = request.system
        # SDK 1.0 dropped the sampling arguments from its signature; the API still takes
        # them from models that support sampling, so they go in the body, and only when set.
        sampling: dict[str, float] = {}
        if p.temperature is not None:
            # Anthropic accepts 0..1; a setting above that is clamped rather than refused.
            sampling["temperature"] = min(max(p.temperature, 0.0), 1.0)
        if p.top_p is not None:
            sampling["top_p"] = p.top_p
        if sampling:
            options["extra_body"] = sampling
        messages: Any = [{"role": m.role, "content": m.content} for m in request.turns]
        try:
            response = await send(
                lambda: client.messages.create(
                    model=request.model,
                    messages=messages,
                    max_tokens=p.max_tokens or DEFAULT_MAX_TOKENS,
                    stream=True,
                    **options,
                )
            )
        except Exception as exc:
            raise self._translate(exc, request.model) from None
        input_tokens = cached = output_tokens = 0
        stop_reason: str | None = None
        saw_start = saw_stop = False
        try:
            async for event in response:
                match event.type:
                    case "message_start":
                        saw_start = True
                        u = event.message.usage
                        cache_read = u.cache_read_input_tokens or 0
                        cache_write = u.cache_creation_input_tokens or 0
                        # input_tokens counts only the uncached part of the prompt.
                        input_tokens = u.input_tokens + cache_read + cache_write
                        cached = cache_read
                        output_tokens = u.output_tokens or 0
                    case "content_block_delta":
                        delta = event.delta
                        if delta.type == "text_delta" and delta.text:
                            yield TextDelta(delta.text)
                        elif delta.type == "thinking_delta" and delta.thinking:
                            yield ReasoningDelta(delta.thinking)
                    case "message_delta":
                        # Cumulative counts, not increments.
                        output_tokens = event.usage.output_tokens or output_tokens
                        stop_reason = event.delta.stop_reason or stop_reason
                    case "message_stop":
                        saw_stop = True
                    case _:
                        pass
        except (asyncio.CancelledError, GeneratorExit):
            # GeneratorExit: the consumer stopped early (a guard); the connection still closes.
            await response.close()
            raise
        except Exception as exc:
            await response.close()
            raise self._translate(exc, request.model, mid_stream=True) from None
        if not saw_start:
            content_type = response.response.headers.get("content-type", "")
            if "event-stream" not in content_type:
                raise not_an_event_stream(self._where, content_type)
            raise ProviderError("protocol", f"{self._where} ended the stream without a message")
        if not saw_stop:
            raise cut_short(self._where)
        yield Usage(input_tokens, output_tokens, cached_input_tokens=cached)
        yield Done(stop_reason)

    def _translate(
        self, exc: BaseException, model: str, *, mid_stream: bool = False
    ) -> ProviderError:
        import anthropic as anthropic_sdk

        if isinstance(exc, ProviderError):
            return exc
        secrets = self._secrets
        target = f"{self.name}:{model}"
        if isinstance(exc, anthropic_sdk.APIStatusError) and exc.status_code >= 400:
            error = status_error(
                exc.status_code,
                error_body_text(exc.body) or exc.message,
                target=target,
                headers=exc.response.headers,
                key_env=self._api_key_env,
                not_found_hint=NOT_FOUND_HINT,
            )
        elif isinstance(exc, anthropic_sdk.APITimeoutError):
            error = self._timeout(exc)
        elif isinstance(exc, anthropic_sdk.APIConnectionError):
            error = transport_error(exc, self._where, mid_stream=mid_stream)
        elif isinstance(exc, anthropic_sdk.APIError):
            kind = _STREAM_ERROR_KINDS.get(_error_type(exc.body), "server")
            error = failed_mid_answer(kind, target, error_body_text(exc.body) or exc.message)
        elif isinstance(exc, ValueError | KeyError | TypeError | AttributeError):
            error = unreadable(self._where, "an event", exc)
        else:
            # Mid-stream, the SDK lets httpx2's own errors (ReadTimeout, ReadError...) through.
            error = transport_error(exc, self._where, mid_stream=mid_stream)
        return ProviderError(error.kind, redact(error.message, secrets), error.retry_after)


def _error_type(body: object) -> str:
    if isinstance(body, Mapping):
        inner = body.get("error", body)
        if isinstance(inner, Mapping):
            return str(inner.get("type", ""))
    return ""
