"""OpenAI and every OpenAI-compatible server (llama-server, LM Studio, vLLM, OpenRouter)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
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

    @property
    def _max_tokens_field(self) -> str:
        """How the request names its output limit.

        OpenAI's reasoning models (o1, o3, o4-mini, gpt-5) answer 400 to `max_tokens`, which
        the API deprecates for `max_completion_tokens` on every chat model; compatible
        servers (llama-server, LM Studio, vLLM, OpenRouter) may know only `max_tokens`.
        They are reached through named endpoints, which may not be called "openai" (the
        registry refuses built-in names), so that name is the built-in provider — the
        official API, or whatever stands in for it at OPENAI_BASE_URL.
        """
        return "max_completion_tokens" if self.name == "openai" else "max_tokens"

    async def stream(self, request: ChatRequest) -> AsyncIterator[StreamEvent]:
        client = self._sdk()
        import openai as openai_sdk

        # The body chat.completions.create would send.
        body: dict[str, Any] = {
            "model": request.model,
            "messages": [{"role": m.role, "content": m.content} for m in request.messages],
            "stream": True,
            "stream_options": {"include_usage": True},
            **request.params.options(max_tokens=self._max_tokens_field),
        }
        try:
            # The generic post with cast_to=object yields each event's JSON as decoded:
            # building a pydantic model per chunk was most of the CPU a stream cost, and
            # that CPU comes out of the UI's share of the GIL. Everything else (auth, URL,
            # timeouts, status errors, SSE, in-stream error objects) is still the SDK's.
            response = await send(
                lambda: client.post(
                    "/chat/completions",
                    body=body,
                    cast_to=object,
                    options={"security": {"bearer_auth": True}},  # as create() asks
                    stream=True,
                    stream_cls=openai_sdk.AsyncStream[object],
                )
            )
        except Exception as exc:
            raise self._translate(exc, request.model) from None
        stop_reason: str | None = None
        saw_usage = saw_chunk = False
        try:
            async for raw in response:
                saw_chunk = True
                chunk = json_object(raw, "the chunk")
                for item in json_field(chunk, "choices", list) or ():
                    choice = json_object(item, "a choice")
                    delta = json_field(choice, "delta", dict)
                    if delta is not None:
                        reasoning = _reasoning_text(delta)
                        if reasoning:
                            yield ReasoningDelta(reasoning)
                        if content := json_field(delta, "content", str):
                            yield TextDelta(content)
                    if finish_reason := json_field(choice, "finish_reason", str):
                        stop_reason = finish_reason
                if "error" in chunk:
                    detail = error_body_text(chunk["error"])
                    raise failed_mid_answer("server", f"{self.name}:{request.model}", detail)
                if (usage := json_field(chunk, "usage", dict)) is not None:
                    saw_usage = True
                    yield _usage(usage)
                if isinstance(timings := chunk.get("timings"), dict):
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
            error = transport_error(exc, self._where, mid_stream=mid_stream, https=self._https)
        return ProviderError(error.kind, redact(error.message, secrets), error.retry_after)


def _reasoning_text(delta: dict[str, Any]) -> str | None:
    # llama-server, vLLM and DeepSeek name the thinking channel differently, and servers
    # disagree on its shape: a value that is not text is skipped, not taken as a broken chunk.
    for key in ("reasoning_content", "reasoning"):
        value = delta.get(key)
        if isinstance(value, str) and value:
            return value
    return None


def _usage(usage: dict[str, Any]) -> Usage:
    """A count the server left out is None (the engine estimates it), not an exact 0: some
    OpenAI-compatible servers send `usage` with only one of the two."""
    details = json_field(usage, "prompt_tokens_details", dict) or {}
    return Usage(
        input_tokens=token_count(usage, "prompt_tokens"),
        output_tokens=token_count(usage, "completion_tokens"),
        cached_input_tokens=token_count(details, "cached_tokens") or 0,
    )


def _llama_server_timings(timings: dict[str, Any]) -> ServerTimings:
    def seconds(key: str) -> float | None:
        value = timings.get(key)
        return float(value) / 1000 if isinstance(value, int | float) else None

    return ServerTimings(prompt_s=seconds("prompt_ms"), decode_s=seconds("predicted_ms"))
