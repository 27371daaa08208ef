"""Will a local model fit this machine's memory? A rough verdict before anyone pulls 40 GB."""

from __future__ import annotations

from typing import Literal

Verdict = Literal["fits", "tight", "won't fit"]

# Compute buffers and the runtime on top of the weights; llama.cpp and Ollama land near this.
_OVERHEAD = 1.1


DEFAULT_CONTEXT = 8192
"""The context a memory estimate assumes when the user names none and the window the model
runs with is unknown (capped at the model's)."""


def sizing_context(
    runs_with: int | None, trained: int | None, asked: int | None = None
) -> tuple[int, bool]:
    """The context to size a KV cache for, and whether it is the model's longest instead of
    `asked`: what was asked, else the window the model runs with (the KV cache a runtime
    allocates), else DEFAULT_CONTEXT; never past what the model was trained for, as no
    runtime reads further. A server's window (llama-server's `n_ctx`) is its setting, not
    the model's longest: a larger one asked is sized as asked."""
    most = trained or runs_with
    if asked is None:
        context = runs_with or min(most or DEFAULT_CONTEXT, DEFAULT_CONTEXT)
        return (min(context, most) if most else context), False
    if trained is not None and asked > trained:
        return trained, True
    return asked, False


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
