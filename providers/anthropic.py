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
    json_field,
    json_object,
    not_an_event_stream,
    redact,
    send,
    status_error,
    token_count,
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
        import anthropic as anthropic_sdk

        p = request.params
        # The body messages.create would send.
        body: dict[str, Any] = {
            "max_tokens": p.max_tokens or DEFAULT_MAX_TOKENS,
            "messages": [{"role": m.role, "content": m.content} for m in request.turns],
            "model": request.model,
            "stream": True,
        }
        if request.system:
            body["system"] = request.system
        # SDK 1.0 dropped the sampling arguments from its signature; the API still takes
        # them from models that support sampling, so they go in the body, and only when set.
        if p.temperature is not None:
            # Anthropic accepts 0..1; a setting above that is clamped rather than refused.
            body["temperature"] = min(max(p.temperature, 0.0), 1.0)
        if p.top_p is not None:
            body["top_p"] = p.top_p
        try:
            # The generic post with cast_to=object yields each event's JSON as decoded:
            # building a pydantic model per event was most of the CPU a stream cost, and
            # that CPU comes out of the UI's share of the GIL. Everything else (auth, URL,
            # timeouts, status errors, SSE, `event: error`, pings) is still the SDK's.
            response = await send(
                lambda: client.post(
                    "/v1/messages",
                    body=body,
                    cast_to=object,
                    stream=True,
                    stream_cls=anthropic_sdk.AsyncStream[object],
                )
            )
        except Exception as exc:
            raise self._translate(exc, request.model) from None
        input_tokens: int | None = None  # None: the server did not say (the engine estimates)
        output_tokens: int | None = None
        cached = 0
        stop_reason: str | None = None
        saw_start = saw_stop = False
        try:
            async for raw in response:
                event = json_object(raw, "the event")
                match json_field(event, "type", str):
                    case "message_start":
                        saw_start = True
                        message = json_object(event.get("message"), "`message`")
                        u = json_object(message.get("usage"), "`usage`")
                        read = token_count(u, "cache_read_input_tokens")
                        write = token_count(u, "cache_creation_input_tokens")
                        # input_tokens counts only the uncached part of the prompt.
                        uncached = token_count(u, "input_tokens")
                        if uncached is not None:
                            input_tokens = uncached + (read or 0) + (write or 0)
                        cached = read or 0
                        output_tokens = token_count(u, "output_tokens")
                    case "content_block_delta":
                        delta = json_object(event.get("delta"), "`delta`")
                        match json_field(delta, "type", str):
                            case "text_delta":
                                if text := json_field(delta, "text", str):
                                    yield TextDelta(text)
                            case "thinking_delta":
                                if thinking := json_field(delta, "thinking", str):
                                    yield ReasoningDelta(thinking)
                            case _:
                                pass
                    case "message_delta":
                        # Cumulative counts, not increments.
                        usage = json_field(event, "usage", dict) or {}
                        output_tokens = token_count(usage, "output_tokens") or output_tokens
                        delta = json_field(event, "delta", dict) or {}
                        stop_reason = json_field(delta, "stop_reason", str) or stop_reason
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
            error = transport_error(exc, self._where, mid_stream=mid_stream, https=self._https)
        elif isinstance(exc, anthropic_sdk.APIError):
            kind = _STREAM_ERROR_KINDS.get(_error_type(exc.body), "server")
            error = failed_mid_answer(kind, target, error_body_text(exc.body) or exc.message)
        elif isinstance(exc, ValueError | KeyError | TypeError | AttributeError):
            error = unreadable(self._where, "an event", exc)
        else:
            # Mid-stream, the SDK lets httpx2's own errors (ReadTimeout, ReadError...) through.
            error = transport_error(exc, self._where, mid_stream=mid_stream, https=self._https)
        return ProviderError(error.kind, redact(error.message, secrets), error.retry_after)


def _error_type(body: object) -> str:
    if isinstance(body, Mapping):
        inner = body.get("error", body)
        if isinstance(inner, Mapping):
            return str(inner.get("type", ""))
    return ""
