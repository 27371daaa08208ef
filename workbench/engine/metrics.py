"""Latency and throughput, one definition used everywhere (DESIGN §4).

Times are seconds on the `time.perf_counter()` clock, measured from just before the request
was sent. Follows GenAI-Perf and llmperf.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Timing:
    """What the clock saw for one request."""

    ttft_s: float | None
    """To the first non-empty text delta; None when no text arrived."""
    e2e_s: float | None
    """To `Done` (or to the failure/cancel, for a stream that did not finish)."""
    output_tokens: int
    """Exact when the provider reported usage, otherwise the estimate. A thinking model's
    reasoning tokens are among them, as every provider counts them."""
    first_token_s: float | None = None
    """To the first token of any kind, reasoning or answer; None means at TTFT. A thinking
    model decodes from its first reasoning token: timed from TTFT, its reasoning tokens
    would count as made in no time, and its rate come out high."""


def _decoding_from(t: Timing) -> float | None:
    return t.first_token_s if t.first_token_s is not None else t.ttft_s


def tpot_s(t: Timing) -> float | None:
    """Time per output token after the first: (E2E - first token) / (output_tokens - 1)."""
    first = _decoding_from(t)
    if first is None or t.e2e_s is None or t.output_tokens <= 1:
        return None
    return max(t.e2e_s - first, 0.0) / (t.output_tokens - 1)


def output_tps(t: Timing) -> float | None:
    """Output tokens per second over the whole request: output_tokens / E2E."""
    if t.e2e_s is None or t.e2e_s <= 0 or t.output_tokens <= 0:
        return None
    return t.output_tokens / t.e2e_s


def decode_tps(t: Timing) -> float | None:
    """Tokens per second once the first one arrived: (output_tokens - 1) / (E2E - first
    token)."""
    first = _decoding_from(t)
    if first is None or t.e2e_s is None or t.output_tokens <= 1:
        return None
    span = t.e2e_s - first
    if span <= 0:
        return None
    return (t.output_tokens - 1) / span
