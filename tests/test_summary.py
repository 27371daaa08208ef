"""Who won each figure, ties included."""

from __future__ import annotations

from workbench.engine.pricing import Cost
from workbench.engine.result import TargetResult
from workbench.engine.summary import winners


def _done(name: str, ttft: float, e2e: float, tokens: int, usd: float | None) -> TargetResult:
    r = TargetResult(name, name, "p", "m", usd == 0, status="done", output_tokens=tokens,
                     input_exact=True, output_exact=True, ttft_s=ttft, e2e_s=e2e)  # fmt: skip
    r.cost = Cost("local", 0.0) if usd == 0 else Cost("priced", usd) if usd else Cost("unknown")
    return r


def test_each_figure_has_its_winner() -> None:
    results = [
        _done("local", ttft=0.2, e2e=2.0, tokens=100, usd=0),
        _done("cloud", ttft=0.5, e2e=1.0, tokens=300, usd=0.002),
    ]
    wins = {w.figure: w for w in winners(results)}
    assert wins["fastest TTFT"].winners == ("local",)
    assert (
        wins["highest tok/s"].winners == ("cloud",) and wins["highest tok/s"].value == "300 tok/s"
    )
    assert wins["cheapest"].winners == ("local",) and wins["cheapest"].value == "$0 local"
    assert wins["longest answer"].winners == ("cloud",)


def test_equal_values_are_a_tie() -> None:
    results = [_done("a", 0.2, 1.0, 10, 0), _done("b", 0.3, 1.0, 10, 0)]
    wins = {w.figure: w for w in winners(results)}
    assert wins["cheapest"].winners == ("a", "b")
    assert wins["longest answer"].winners == ("a", "b")


def test_unknown_prices_do_not_win_cheapest() -> None:
    results = [_done("a", 0.2, 1.0, 10, None), _done("b", 0.3, 1.0, 10, 0.01)]
    wins = {w.figure: w for w in winners(results)}
    assert wins["cheapest"].winners == ("b",)


def test_failed_targets_and_single_answers_have_no_summary() -> None:
    failed = TargetResult("x", "x", "p", "m", False, status="failed")
    assert winners([_done("a", 0.2, 1.0, 10, 0), failed]) == []
