"""Ollama's wire details as its Go server writes them: JSON escaping, times, durations."""

from __future__ import annotations

import json
import re
import time
from typing import Any

DEFAULT_KEEP_ALIVE_NS = 5 * 60 * 10**9  # OLLAMA_KEEP_ALIVE's default, 5m
FOREVER_NS = 2**63 - 1  # Go's math.MaxInt64 duration, for a negative keep_alive


def human_number(n: int) -> str:
    """Ollama's `format.HumanNumber`, which gives `parameter_size` (134,515,008 -> 135M)."""
    for scale, suffix in ((10**12, "T"), (10**9, "B"), (10**6, "M"), (10**3, "K")):
        if n >= scale:
            x = n / scale
            return (f"{x:.0f}" if x >= 100 else f"{x:.1f}" if x >= 10 else f"{x:.2f}") + suffix
    return str(n)


def go_json(value: Any) -> bytes:
    """JSON as Go's `json.Marshal` writes it: compact, UTF-8, with <, >, & escaped."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    for char, escaped in (
        ("<", "\\u003c"),
        (">", "\\u003e"),
        ("&", "\\u0026"),
        ("\u2028", "\\u2028"),
        ("\u2029", "\\u2029"),
    ):
        text = text.replace(char, escaped)
    return text.encode("utf-8")


def rfc3339(ns: int) -> str:
    """A UTC time as Go's `time.Time` marshals it: RFC 3339 with up to 9 fraction digits."""
    seconds, fraction = divmod(ns, 10**9)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
    digits = f"{fraction:09d}".rstrip("0")
    return f"{stamp}.{digits}Z" if digits else f"{stamp}Z"


_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_UNIT_NS = {
    "ns": 1,
    "us": 10**3,
    "µs": 10**3,
    "ms": 10**6,
    "s": 10**9,
    "m": 60 * 10**9,
    "h": 3600 * 10**9,
}


def keep_alive_ns(value: object) -> int:
    """`keep_alive` as Ollama's `api.Duration` reads it: seconds, or a Go duration string."""
    if value is None:
        return DEFAULT_KEEP_ALIVE_NS
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(f"Unsupported type: '{type(value).__name__}'")
    if isinstance(value, str):
        text = value.strip()
        sign = -1 if text.startswith("-") else 1
        body = text.lstrip("+-")
        parts = _DURATION_PART.findall(body)
        if body == "0":
            ns = 0
        elif not parts or "".join(n + u for n, u in parts) != body:
            raise ValueError(f'time: invalid duration "{value}"')
        else:
            ns = sign * round(sum(float(n) * _UNIT_NS[u] for n, u in parts))
    else:
        ns = round(value * 10**9)
    return FOREVER_NS if ns < 0 else ns


def ns_of(seconds: float | None) -> int:
    return max(round(seconds * 1e9), 1) if seconds else 0
