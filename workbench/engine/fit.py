"""Will a local model fit this machine's memory? A rough verdict before anyone pulls 40 GB."""

from __future__ import annotations

from typing import Literal

Verdict = Literal["fits", "tight", "won't fit"]

# Weights plus runtime buffers and a modest KV cache; llama.cpp and Ollama land near this.
_OVERHEAD = 1.2


def estimated_memory(size_bytes: int) -> int:
    return int(size_bytes * _OVERHEAD)


def verdict(size_bytes: int, *, available_bytes: int, total_bytes: int) -> Verdict:
    need = estimated_memory(size_bytes)
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
