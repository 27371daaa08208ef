"""Figures as people read them: seconds, rates, token counts, bytes."""

from __future__ import annotations

from workbench.engine.result import TargetResult


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
    if n is None:
        return "–"
    if (n >= 1000 and n % 1000 == 0) or n >= 10_000:
        return f"{n / 1000:.0f}k"
    return f"{n:,}"


def cost(result: TargetResult) -> str:
    return result.cost.label if result.cost else "–"
