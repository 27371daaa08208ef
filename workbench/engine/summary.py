"""Who won each figure once every pane has finished."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from workbench.engine.result import TargetResult


@dataclass(frozen=True, slots=True)
class Win:
    figure: str
    winners: tuple[str, ...]
    """Every target that reached the best value; more than one is a tie."""
    value: str


def winners(results: Sequence[TargetResult]) -> list[Win]:
    """Fastest TTFT, highest tok/s, cheapest, longest answer — among the targets that answered."""
    done = [r for r in results if r.status == "done"]
    if len(done) < 2:
        return []
    wins: list[Win] = []

    def best(
        figure: str,
        key: Callable[[TargetResult], float | None],
        show: Callable[[float], str],
        lowest: bool,
    ) -> None:
        scored = [(value, r) for r in done if (value := key(r)) is not None]
        if not scored:
            return
        value = (min if lowest else max)(v for v, _ in scored)
        tied = tuple(r.name for v, r in scored if v == value)
        wins.append(Win(figure, tied, show(value)))

    best("fastest TTFT", lambda r: r.ttft_s, lambda v: f"{v:.2f}s", lowest=True)
    best("highest tok/s", lambda r: r.output_tps, lambda v: f"{v:.0f} tok/s", lowest=False)
    best(
        "cheapest",
        lambda r: r.cost.usd if r.cost and r.cost.usd is not None else None,
        lambda v: "$0 local" if v == 0 else f"${v:.6f}".rstrip("0"),
        lowest=True,
    )
    best("longest answer", lambda r: float(r.output_tokens), lambda v: f"{v:.0f} tok", False)
    return wins
