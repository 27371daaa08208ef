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
    """Exact when the provider reported usage, otherwise the estimate."""


def tpot_s(t: Timing) -> float | None:
    """Time per output token after the first: (E2E - TTFT) / (output_tokens - 1)."""
    if t.ttft_s is None or t.e2e_s is None or t.output_tokens <= 1:
        return None
    return max(t.e2e_s - t.ttft_s, 0.0) / (t.output_tokens - 1)


def output_tps(t: Timing) -> float | None:
    """Output tokens per second over the whole request: output_tokens / E2E."""
    if t.e2e_s is None or t.e2e_s <= 0 or t.output_tokens <= 0:
        return None
    return t.output_tokens / t.e2e_s


def decode_tps(t: Timing) -> float | None:
    """Tokens per second once the first one arrived: (output_tokens - 1) / (E2E - TTFT)."""
    if t.ttft_s is None or t.e2e_s is None or t.output_tokens <= 1:
        return None
    span = t.e2e_s - t.ttft_s
    if span <= 0:
        return None
    return (t.output_tokens - 1) / span
