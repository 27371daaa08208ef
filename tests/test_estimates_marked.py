"""A figure worked out from an estimated token count is marked `~` wherever it is shown:
`ask`'s rates, a suite's cells and totals, and the JSON and CSV reports say which."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import replace

from workbench.commands.ask import print_metrics
from workbench.engine.pricing import Cost
from workbench.engine.result import TargetResult
from workbench.suites import report
from workbench.suites.runs import CaseResult

COUNTS = (9, 36, 23)
"""Three attempts' output tokens: the cell shows the median, 23, beside the median latency."""


def answer(output_tokens: int, *, exact: bool) -> TargetResult:
    """A finished answer as an OpenAI-compatible server left it, with or without usage."""
    result = TargetResult("llamacpp:m", "llamacpp:m", "llamacpp", "m", is_local=False)
    estimated = Cost("priced", 0.0001 * output_tokens, estimated=not exact)
    return replace(result, status="done", text="The sea.", input_tokens=30,
                   output_tokens=output_tokens, input_exact=exact, output_exact=exact,
                   ttft_s=0.2, first_token_s=0.2, e2e_s=0.2 + 0.01 * output_tokens,
                   stop_reason="stop", cost=estimated)  # fmt: skip


def attempts(*, exact: bool) -> list[CaseResult]:
    return [CaseResult("sea", "llamacpp:m", i, answer(n, exact=exact), [])
            for i, n in enumerate(COUNTS)]  # fmt: skip


def test_a_cell_shows_the_median_count_marked_when_estimated() -> None:
    (exact,) = report.cells(attempts(exact=True))
    assert exact.output_tokens == 23  # was the first attempt's, whatever the others said
    assert report.cell_text(exact).endswith(" 23 tok")
    (estimated,) = report.cells(attempts(exact=False))
    assert report.cell_text(estimated).endswith(" ~23 tok")


def test_totals_and_reports_say_a_cost_or_count_is_estimated() -> None:
    (exact,) = report.totals(attempts(exact=True))
    assert exact.cost_label == "$0.0068"
    (estimated,) = report.totals(attempts(exact=False))
    assert estimated.cost_label == "~$0.0068"
    results = json.loads(report.as_json("s", "r", attempts(exact=False)))
    assert {r["output_tokens_exact"] for r in results["results"]} == {False}
    assert {r["cost_estimated"] for r in results["results"]} == {True}
    assert results["totals"][0]["cost_estimated"] is True
    rows = list(csv.DictReader(io.StringIO(report.as_csv(attempts(exact=False)))))
    assert {(r["output_tokens_exact"], r["cost_estimated"]) for r in rows} == {("False", "True")}


def test_ask_marks_rates_worked_out_from_an_estimate() -> None:
    out = io.StringIO()
    print_metrics([answer(21, exact=True), replace(answer(21, exact=False), name="est")], out)
    exact, estimated = out.getvalue().splitlines()[1:3]
    tpot, rate = "10ms", f"{21 / 0.41:.1f}"
    assert f" {tpot} " in exact and f" {rate} " in exact and "~" not in exact
    assert f" ~{tpot} " in estimated and f" ~{rate} " in estimated
