"""Limits on a stream that will not end: a server that streams forever, or far past max_tokens.

A read timeout catches a server that goes silent; these catch one that keeps talking.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from providers.base import ProviderError, ReasoningDelta, ServerTimings, StreamEvent, TextDelta

MAX_TIME_S = 600.0
"""How long one answer may stream, unless the caller passes the config's `max_time_s`."""
MAX_CHARS = 16_000_000
"""Output no model produces in one answer (~4 M tokens): past it, a stream is a runaway,
stopped before it fills memory, whatever max_tokens says."""
_CHARS_PER_TOKEN = 32
"""A generous ceiling on characters per token: real tokens average about four, so a stream
past max_tokens × this has ignored max_tokens, not merely overshot it."""
_SLACK_CHARS = 4096


def output_limit(max_tokens: int | None) -> int:
    """Characters (answer plus reasoning) after which a stream is stopped."""
    if max_tokens is None or max_tokens <= 0:
        return MAX_CHARS
    return min(max_tokens * _CHARS_PER_TOKEN + _SLACK_CHARS, MAX_CHARS)


class Guarded:
    """The events of `stream`, stopped with a `ProviderError` once it runs past `max_time_s`
    (kind `timeout`; a model load reported before the answer is not counted) or past
    `output_limit(max_tokens)` characters (kind `protocol`).

    The text that arrived is passed on before the error, so it is kept.
    """

    def __init__(
        self,
        stream: AsyncIterator[StreamEvent],
        where: str,
        *,
        max_time_s: float | None = MAX_TIME_S,
        max_tokens: int | None = None,
    ) -> None:
        self._stream = stream
        self._where = where
        self._max_time_s = max_time_s
        self._max_tokens = max_tokens
        self._limit = output_limit(max_tokens)
        self._chars = 0
        self._deadline: float | None = None

    def __aiter__(self) -> Guarded:
        return self

    async def __anext__(self) -> StreamEvent:
        if self._chars > self._limit:
            await self._close()
            raise ProviderError("protocol", self._overflow_message())
        if self._deadline is None and self._max_time_s is not None:
            self._deadline = asyncio.get_running_loop().time() + self._max_time_s
        timeout = asyncio.timeout_at(self._deadline)
        try:
            async with timeout:
                event = await anext(self._stream)
        except TimeoutError:
            if not timeout.expired():
                raise
            # The provider saw the cancellation and closed its response on the way out.
            await self._close()
            raise ProviderError(
                "timeout",
                f"{self._where} was stopped after {self._max_time_s:g} s (max_time_s in the"
                " config) — the model was still answering; the text so far is kept",
            ) from None
        if isinstance(event, TextDelta | ReasoningDelta):
            self._chars += len(event.text)
        elif self._deadline is not None and isinstance(event, ServerTimings):
            # Loading the model, or waiting for it, is not the answer's time.
            waited = (event.load_s or 0.0) + (event.queue_s or 0.0)
            self._deadline += waited if self._chars == 0 else 0.0
        return event

    def _overflow_message(self) -> str:
        if self._max_tokens is None:
            return (
                f"{self._where} sent over {self._limit:,} characters without end — a runaway"
                " stream, stopped; the text so far is kept"
            )
        return (
            f"{self._where} sent over {self._limit:,} characters for max_tokens="
            f"{self._max_tokens} — the server ignores max_tokens; stopped, the text so far"
            " is kept"
        )

    async def _close(self) -> None:
        closer = getattr(self._stream, "aclose", None)
        if closer is not None:
            await closer()
