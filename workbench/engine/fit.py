"""Will a local model fit this machine's memory? A rough verdict before anyone pulls 40 GB."""

from __future__ import annotations

from typing import Literal

Verdict = Literal["fits", "tight", "won't fit"]

# Compute buffers and the runtime on top of the weights; llama.cpp and Ollama land near this.
_OVERHEAD = 1.1


DEFAULT_CONTEXT = 8192
"""The context a memory estimate assumes when the user names none (capped at the model's)."""


def estimated_memory(
    size_bytes: int, kv_bytes_per_token: int | None = None, context: int = 0
) -> int:
    """Weights (with runtime buffers) plus the KV cache for `context` tokens."""
    return int(size_bytes * _OVERHEAD) + (kv_bytes_per_token or 0) * context


def verdict(need: int, *, available_bytes: int, total_bytes: int) -> Verdict:
    if need <= available_bytes * 0.8:
        return "fits"
    if need <= total_bytes * 0.9:
        return "tight"
    return "won't fit"


def machine_memory() -> tuple[int, int]:
    """(available, total) bytes of RAM."""
    import psutil

    memory = psutil.virtual_memory()
    return int(memory.available), int(memory.total)
