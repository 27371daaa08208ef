"""A run's results as a matrix and per-target totals, in Markdown, JSON, CSV and JUnit XML."""

from __future__ import annotations

import csv
import io
import json
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from xml.etree import ElementTree as ET

from workbench.commands import format as fmt
from workbench.engine.pricing import format_usd
from workbench.sanitize import clean, clean_line
from workbench.suites.assertions import NOT_CHECKED
from workbench.suites.runs import CaseResult


@dataclass(frozen=True, slots=True)
class Cell:
    """One case × target: every repeat of it."""

    case_id: str
    target: str
    results: list[CaseResult]

    @property
    def passes(self) -> int:
        return sum(r.passed for r in self.results)

    @property
    def passed(self) -> bool:
        return self.passes == len(self.results)

    @property
    def skipped(self) -> bool:
        """No check of it could be run, in any attempt (see `CaseResult.skipped`)."""
        return all(r.skipped for r in self.results)

    @property
    def latencies(self) -> list[float]:
        return [s for r in self.results if (s := e2e_s(r)) is not None]

    @property
    def output_tokens(self) -> int | None:
        """The first answer's; None when no attempt was answered."""
        return next((n for r in self.results if (n := output_tokens(r)) is not None), None)

    @property
    def cost_usd(self) -> float | None:
        costs = [r.result.cost.usd if r.result.cost else None for r in self.results]
        return None if any(c is None for c in costs) else sum(c or 0 for c in costs)


@dataclass(frozen=True, slots=True)
class Totals:
    target: str
    cases: int
    passed: int
    p50_s: float | None
    p90_s: float | None
    cost_usd: float | None
    is_local: bool
    answered: bool = True
    """False when every request failed before the model produced anything: then there is no
    cost at all, rather than a price we do not know."""
    skipped: int = 0
    """Results none of whose checks could be run: counted neither as passed nor failed."""

    @property
    def checked(self) -> int:
        return self.cases - self.skipped

    @property
    def pass_rate(self) -> float:
        return self.passed / self.checked if self.checked else 0.0

    @property
    def pass_label(self) -> str:
        """`3/4 (75%)`, and how many were not checked, if any."""
        label = f"{self.passed}/{self.checked} ({self.pass_rate:.0%})"
        return label + (f", {self.skipped} not checked" if self.skipped else "")

    @property
    def cost_label(self) -> str:
        return cost_text(self.cost_usd, self.is_local, answered=self.answered)


def e2e_s(r: CaseResult) -> float | None:
    """End to end is to the end of the answer: a failed request has none, only the time it
    took to fail, which would read as a fast answer."""
    return r.result.e2e_s if r.result.status == "done" else None


def output_tokens(r: CaseResult) -> int | None:
    """None for a request that failed before producing any; a cut-off answer keeps its count."""
    result = r.result
    return result.output_tokens if result.status == "done" or result.output_tokens else None


def percentile(values: Sequence[float], q: float) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(sorted(values), n=100, method="inclusive")[int(q) - 1]


def cells(results: Sequence[CaseResult]) -> list[Cell]:
    grouped: dict[tuple[str, str], list[CaseResult]] = {}
    for r in results:
        grouped.setdefault((r.case_id, r.target), []).append(r)
    return [Cell(case, target, rs) for (case, target), rs in grouped.items()]


def totals(results: Sequence[CaseResult]) -> list[Totals]:
    by_target: dict[str, list[CaseResult]] = {}
    for r in results:
        by_target.setdefault(r.target, []).append(r)
    out = []
    for target, rs in by_target.items():
        latencies = [s for r in rs if (s := e2e_s(r)) is not None]
        # A cached answer cost nothing this run; a request with no Cost failed before the
        # model produced anything, so it cost nothing either.
        costs = [r.result.cost.usd for r in rs if not r.cached and r.result.cost]
        answered = bool(costs) or any(r.cached for r in rs)
        known = None if not answered or None in costs else sum(c or 0 for c in costs)
        out.append(Totals(target, len(rs), sum(r.passed for r in rs), percentile(latencies, 50),
                          percentile(latencies, 90), known, rs[0].result.is_local,
                          answered, sum(r.skipped for r in rs)))  # fmt: skip
    return out


def cost_text(usd: float | None, local: bool, *, answered: bool = True) -> str:
    if local:
        return "local"
    if usd is None:
        return "price unknown" if answered else "–"
    return format_usd(usd)


def markdown(suite: str, run_id: str, results: Sequence[CaseResult]) -> str:
    targets = list(dict.fromkeys(r.target for r in results))
    lines = [f"# {clean_line(suite)} — run {run_id}", ""]
    lines += ["| case | " + " | ".join(clean_line(t) for t in targets) + " |"]
    lines += ["|---" * (len(targets) + 1) + "|"]
    grid = {(c.case_id, c.target): c for c in cells(results)}
    for case_id in dict.fromkeys(r.case_id for r in results):
        row = [clean_line(case_id)]
        for target in targets:
            cell = grid.get((case_id, target))
            row.append(cell_text(cell) if cell else "–")
        lines.append("| " + " | ".join(row) + " |")
    lines += ["", "| target | pass rate | p50 | p90 | cost |", "|---|---|---|---|---|"]
    for t in totals(results):
        lines.append(f"| {clean_line(t.target)} | {t.pass_label} | "
                     f"{fmt.seconds(t.p50_s)} | {fmt.seconds(t.p90_s)} | "
                     f"{t.cost_label} |")  # fmt: skip
    for title, listed in (("Failures", failed(results)), ("Not checked", skipped(results))):
        if listed:
            lines += ["", f"## {title}", ""]
        for r in listed:
            lines.append(f"- **{clean_line(r.case_id)}** × {clean_line(r.target)}: "
                         f"{clean_line(failure_reason(r))}")  # fmt: skip
    cached = sum(r.cached for r in results)
    if cached:
        lines += ["", f"{cached} answers came from the cache (--cache)."]
    return "\n".join(lines) + "\n"


def failed(results: Sequence[CaseResult]) -> list[CaseResult]:
    """The results that failed: not passed, and not merely left unchecked."""
    return [r for r in results if not r.passed and not r.skipped]


def skipped(results: Sequence[CaseResult]) -> list[CaseResult]:
    return [r for r in results if r.skipped]


def failure_reason(r: CaseResult) -> str:
    """Why a result did not pass: its request's error, said once (not once per check), or
    each check that failed, or why it was not checked."""
    if r.result.status != "done":
        return f"no answer: {unanswered(r)}"
    if r.skipped:
        return "; ".join(o.assertion for o in r.outcomes) + f": {NOT_CHECKED}"
    why = [o for o in r.outcomes if not o.passed and not o.skipped]
    return "; ".join(f"{o.assertion}: {o.reason}" for o in why)


def unanswered(r: CaseResult) -> str:
    """How a request that got no answer ended: its status and error, said of its target."""
    error = f": {r.result.error_here}" if r.result.error else ""
    return f"{r.result.status}{error}"


def cell_text(cell: Cell) -> str:
    mark = "✓" if cell.passed else "–" if cell.skipped else "✗"
    if len(cell.results) > 1 and not cell.skipped:
        mark += f" {cell.passes}/{len(cell.results)}"
    latency = percentile(cell.latencies, 50)
    cached = " (cached)" if all(r.cached for r in cell.results) else ""
    tokens = "–" if cell.output_tokens is None else f"{cell.output_tokens} tok"
    unchecked = " not checked" if cell.skipped else ""
    return f"{mark} {fmt.seconds(latency)} {tokens}{cached}{unchecked}"


def as_json(suite: str, run_id: str, results: Sequence[CaseResult]) -> str:
    return json.dumps(
        {
            "suite": suite,
            "run": run_id,
            "results": [
                {
                    "case": r.case_id,
                    "target": r.target,
                    "attempt": r.attempt,
                    "passed": r.passed,
                    "skipped": r.skipped,
                    "cached": r.cached,
                    "status": r.result.status,
                    "text": r.result.text,
                    "error": r.result.error,
                    "e2e_s": e2e_s(r),
                    "ttft_s": r.result.ttft_s,
                    "output_tokens": output_tokens(r),
                    "cost_usd": r.result.cost.usd if r.result.cost else None,
                    "assertions": [
                        {
                            "assertion": o.assertion,
                            "passed": o.passed,
                            "reason": o.reason,
                            "skipped": o.skipped,
                        }
                        for o in r.outcomes
                    ],
                }
                for r in results
            ],
            "totals": [
                {
                    "target": t.target,
                    "cases": t.cases,
                    "passed": t.passed,
                    "skipped": t.skipped,
                    "p50_s": t.p50_s,
                    "p90_s": t.p90_s,
                    "cost_usd": t.cost_usd,
                    "local": t.is_local,
                }
                for t in totals(results)
            ],
        },
        indent=2,
        ensure_ascii=False,
    )


def as_csv(results: Sequence[CaseResult]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["case", "target", "attempt", "passed", "cached", "status", "e2e_s",
                     "ttft_s", "output_tokens", "cost_usd", "failed_assertions",
                     "skipped"])  # fmt: skip
    for r in results:
        failing = "; ".join(o.assertion for o in r.outcomes if not o.passed and not o.skipped)
        writer.writerow([r.case_id, r.target, r.attempt, r.passed, r.cached, r.result.status,
                         e2e_s(r), r.result.ttft_s, output_tokens(r),
                         r.result.cost.usd if r.result.cost else "", failing,
                         r.skipped])  # fmt: skip
    return out.getvalue()


def as_junit(suite: str, results: Sequence[CaseResult]) -> str:
    """One testsuite per target, one testcase per case attempt: CI systems read this. A
    result none of whose checks could be run is `<skipped>`, never a pass."""
    root = ET.Element("testsuites", name=_xml(suite))
    for target in dict.fromkeys(r.target for r in results):
        mine = [r for r in results if r.target == target]
        node = ET.SubElement(root, "testsuite", name=_xml(target), tests=str(len(mine)),
                             failures=str(len(failed(mine))),
                             skipped=str(len(skipped(mine))))  # fmt: skip
        for r in mine:
            name = r.case_id if r.attempt == 0 else f"{r.case_id}#{r.attempt + 1}"
            case = ET.SubElement(node, "testcase", classname=_xml(target), name=_xml(name))
            # How long the test took, failed or not; left out (it is optional) when unknown.
            if r.result.e2e_s is not None:
                case.set("time", f"{r.result.e2e_s:.3f}")
            if r.skipped:
                ET.SubElement(case, "skipped", message=_xml(failure_reason(r)))
            elif not r.passed:
                failure = ET.SubElement(case, "failure", message=_xml(failure_reason(r)))
                failure.text = _xml(clean(r.result.text))
    return ET.tostring(root, encoding="unicode", xml_declaration=True)


def _xml(text: str) -> str:
    """XML 1.0 cannot carry most control characters at all, even escaped."""
    return clean(text)
