"""Figures as people read them: seconds, rates, token counts, bytes; errors on a line
that already names their target."""

from __future__ import annotations

from typing import TextIO

from rich.console import Console

from workbench.engine.result import TargetResult
from workbench.sanitize import clean_line


def seconds(value: float | None) -> str:
    if value is None:
        return "–"
    if value < 1:
        return f"{value * 1000:.0f}ms"
    return f"{value:.2f}s"


def rate(value: float | None) -> str:
    return "–" if value is None else f"{value:.1f}"


def tokens(count: int, exact: bool) -> str:
    return f"{count}" if exact else f"~{count}"


def size(n: int | None) -> str:
    if n is None:
        return "–"
    step = 1024.0
    value = float(n)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if value < step or unit == "TB":
            return f"{value:.0f} {unit}" if unit in ("B", "KB", "MB") else f"{value:.1f} {unit}"
        value /= step
    return f"{n} B"


def count(n: int | None) -> str:
    """Context sizes the way model cards write them: 8k, 128k, 200k."""
    if n is None:
        return "–"
    for unit in (1024, 1000):
        if n >= unit and n % unit == 0:
            return f"{n // unit}k"
    return f"{n / 1000:.0f}k" if n >= 10_000 else f"{n:,}"


def count_short(n: int) -> str:
    """Token counts in a tight space: 950, 1.2k, 8k, 128k."""
    if n < 1000:
        return str(n)
    if n < 10_000:
        return f"{n / 1000:.1f}k".replace(".0k", "k")
    return f"{n / 1000:.0f}k"


def console_width(out: object) -> int | None:
    """Let a table use the terminal's width, or a wide page when written to a pipe or file."""
    isatty = getattr(out, "isatty", None)
    return None if isatty is not None and isatty() else 160


def cost(result: TargetResult) -> str:
    return result.cost.label if result.cost else "–"


def console(out: TextIO) -> Console:
    """A Rich console that prints model text as text: no markup, no highlighting, no emoji."""
    return Console(
        file=out,
        width=console_width(out),
        markup=False,
        highlight=False,
        emoji=False,
        soft_wrap=True,
    )


def error_text(result: TargetResult) -> str:
    """The result's error on one clean line, on a line that names its target already."""
    return clean_line(result.error_here)
