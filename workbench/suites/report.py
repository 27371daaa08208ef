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
from workbench.export import csv_cell
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
    def partly_checked(self) -> bool:
        """Some of its checks could not be run (`--skip-unsupported`), and some could: its
        verdict rests on the checks that ran, so it is marked, never shown as a plain pass."""
        return not self.skipped and any(unchecked(r) for r in self.results)

    @property
    def latencies(self) -> list[float]:
        return [s for r in self.results if (s := e2e_s(r)) is not None]

    @property
    def output_tokens(self) -> int | None:
        """The median answer's, beside the median latency (of several attempts, the lower
        middle one: a count that was); None when no attempt was answered."""
        counts = [n for r in self.results if (n := output_tokens(r)) is not None]
        return statistics.median_low(counts) if counts else None

    @property
    def output_exact(self) -> bool:
        """Every answered attempt's count is the provider's, not our estimate."""
        return all(r.result.output_exact for r in self.results if output_tokens(r) is not None)

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
    cost_estimated: bool = False
    """Some of the cost was priced from estimated token counts (the server sent none)."""

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
        label = cost_text(self.cost_usd, self.is_local, answered=self.answered)
        return "~" + label if self.cost_estimated and label.startswith("$") else label


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


@dataclass(frozen=True, slots=True)
class Unfinished:
    """A run stopped before its end (Ctrl+C): what it did not get to, so that a report of
    it does not read as a clean pass of the part that ran."""

    run_id: str
    not_run: list[tuple[str, str, int]]
    """(case, target, attempt) of every request not made, in plan order."""

    @property
    def message(self) -> str:
        return (f"not run: the run was interrupted; finish it with: workbench run --resume "
                f"{self.run_id}")  # fmt: skip


def not_run_counts(unfinished: Unfinished | None) -> dict[tuple[str, str], int]:
    """How many attempts of each case × target a stopped run did not make."""
    counts: dict[tuple[str, str], int] = {}
    for case_id, target, _ in unfinished.not_run if unfinished else []:
        counts[(case_id, target)] = counts.get((case_id, target), 0) + 1
    return counts


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
        estimated = any(r.result.cost.estimated for r in rs if not r.cached and r.result.cost)
        out.append(Totals(target, len(rs), sum(r.passed for r in rs), percentile(latencies, 50),
                          percentile(latencies, 90), known, rs[0].result.is_local,
                          answered, sum(r.skipped for r in rs), estimated))  # fmt: skip
    return out


def cost_text(usd: float | None, local: bool, *, answered: bool = True) -> str:
    if local:
        return "local"
    if usd is None:
        return "price unknown" if answered else "–"
    return format_usd(usd)


def markdown(
    suite: str, run_id: str, results: Sequence[CaseResult], unfinished: Unfinished | None = None
) -> str:
    pending = unfinished.not_run if unfinished else []
    targets = list(dict.fromkeys([*(r.target for r in results), *(t for _, t, _ in pending)]))
    lines = [f"# {clean_line(suite)} — run {run_id}", ""]
    if unfinished is not None:
        lines += [f"**Interrupted**: {len(pending)} of {len(results) + len(pending)} requests "
                  f"not run; finish it with `workbench run --resume {run_id}`.", ""]  # fmt: skip
    lines += ["| case | " + " | ".join(_md(t) for t in targets) + " |"]
    lines += ["|---" * (len(targets) + 1) + "|"]
    grid = {(c.case_id, c.target): c for c in cells(results)}
    left = not_run_counts(unfinished)
    for case_id in dict.fromkeys([*(r.case_id for r in results), *(c for c, _, _ in pending)]):
        row = [_md(case_id)]
        for target in targets:
            key = (case_id, target)
            row.append(cell_label(grid.get(key), left.get(key, 0)))
        lines.append("| " + " | ".join(row) + " |")
    if note := partly_checked_note(results):
        lines += ["", f"\\* {note}"]
    lines += ["", "| target | pass rate | p50 | p90 | cost |", "|---|---|---|---|---|"]
    for t in totals(results):
        lines.append(f"| {_md(t.target)} | {t.pass_label} | "
                     f"{fmt.seconds(t.p50_s)} | {fmt.seconds(t.p90_s)} | "
                     f"{t.cost_label} |")  # fmt: skip
    listed = (
        ("Failures", grouped(failed(results), results)),
        ("Not checked", grouped(skipped(results), results)),
    )
    for title, groups in listed:
        if groups:
            lines += ["", f"## {title}", ""]
        for first, attempts, why in groups:
            lines.append(f"- **{_md(first.case_id)}** × {_md(first.target)}"
                         f"{attempts}: {_md(why)}")  # fmt: skip
    cached = sum(r.cached for r in results)
    if cached:
        lines += ["", f"{cached} answers came from the cache (--cache)."]
    return "\n".join(lines) + "\n"


def _md(text: str) -> str:
    """Text from a suite or an answer as one Markdown table cell or list item: a `|` would
    end the cell, and `<` could open an HTML tag the page then renders or hides."""
    return clean_line(text).replace("\\", "\\\\").replace("|", "\\|").replace("<", "\\<")


def failed(results: Sequence[CaseResult]) -> list[CaseResult]:
    """The results that failed: not passed, and not merely left unchecked."""
    return [r for r in results if not r.passed and not r.skipped]


def skipped(results: Sequence[CaseResult]) -> list[CaseResult]:
    return [r for r in results if r.skipped]


def unchecked(r: CaseResult) -> list[str]:
    """The checks of an answer that could not be run, when others of its checks did."""
    if r.result.status != "done" or r.skipped:
        return []
    return [o.assertion for o in r.outcomes if o.skipped]


def partly_checked_note(results: Sequence[CaseResult]) -> str:
    """What a `*` beside a verdict means, with the checks not run; '' when none is marked."""
    partly = [r for r in results if unchecked(r)]
    if not partly:
        return ""
    names = list(dict.fromkeys(a for r in partly for a in unchecked(r)))
    shown = "; ".join(clean_line(n) for n in names[:3]) + ("; …" if len(names) > 3 else "")
    answers = f"{len(partly)} answer{'s' if len(partly) != 1 else ''}"
    return (f"not every check ran (--skip-unsupported): {answers} judged without {shown}; "
            "the verdict is that of the checks that ran")  # fmt: skip


def grouped(
    listed: Sequence[CaseResult], results: Sequence[CaseResult]
) -> list[tuple[CaseResult, str, str]]:
    """One entry per case × target and reason among `listed`, with the attempts it stands
    for (out of that cell's in `results`): with --repeat, three attempts failing alike are
    one line, ` (all 3 attempts)`, not three lines that cannot be told apart."""
    attempts: dict[tuple[str, str], set[int]] = {}
    for r in results:
        attempts.setdefault((r.case_id, r.target), set()).add(r.attempt)
    groups: dict[tuple[str, str, str], list[CaseResult]] = {}
    for r in listed:
        groups.setdefault((r.case_id, r.target, failure_reason(r)), []).append(r)
    return [
        (group[0], attempts_note(group, len(attempts.get(key[:2], ()))), key[2])
        for key, group in groups.items()
    ]


def attempts_note(group: Sequence[CaseResult], total: int) -> str:
    """` (attempt 2 of 3)`, ` (attempts 1, 3 of 3)`, ` (all 3 attempts)`; '' with no repeats."""
    total = max(total, len(group))
    if total <= 1:
        return ""
    if len(group) == total:
        return f" (all {total} attempts)"
    numbers = ", ".join(str(n) for n in sorted(r.attempt + 1 for r in group))
    return f" (attempt{'s' if len(group) > 1 else ''} {numbers} of {total})"


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
    """`✓ 1.20s 8 tok`; a `*` after the mark when some of its checks could not be run
    (`partly_checked_note` says which)."""
    mark = "✓" if cell.passed else "–" if cell.skipped else "✗"
    if cell.partly_checked:
        mark += "*"
    if len(cell.results) > 1 and not cell.skipped:
        mark += f" {cell.passes}/{len(cell.results)}"
    latency = percentile(cell.latencies, 50)
    cached = " (cached)" if all(r.cached for r in cell.results) else ""
    count = cell.output_tokens
    tokens = "–" if count is None else f"{fmt.tokens(count, cell.output_exact)} tok"
    not_checked = " not checked" if cell.skipped else ""
    return f"{mark} {fmt.seconds(latency)} {tokens}{cached}{not_checked}"


def cell_label(cell: Cell | None, not_run: int) -> str:
    """A cell of the matrix, and the attempts of it an interrupted run did not make."""
    if cell is None:
        return "not run" if not_run else "–"
    return cell_text(cell) + (f", {not_run} not run" if not_run else "")


def as_json(
    suite: str, run_id: str, results: Sequence[CaseResult], unfinished: Unfinished | None = None
) -> str:
    pending = unfinished.not_run if unfinished else []
    return json.dumps(
        {
            "suite": suite,
            "run": run_id,
            # A stopped run's results are some of its cases: these say so, and which are not.
            "interrupted": unfinished is not None,
            "not_run": [{"case": c, "target": t, "attempt": a} for c, t, a in pending],
            "resume": f"workbench run --resume {run_id}" if unfinished else None,
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
                    "output_tokens_exact": r.result.output_exact,
                    "cost_usd": r.result.cost.usd if r.result.cost else None,
                    "cost_estimated": bool(r.result.cost and r.result.cost.estimated),
                    "not_checked": [o.assertion for o in r.outcomes if o.skipped],
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
                    "cost_estimated": t.cost_estimated,
                    "local": t.is_local,
                }
                for t in totals(results)
            ],
        },
        indent=2,
        ensure_ascii=False,
    )


def as_csv(results: Sequence[CaseResult], unfinished: Unfinished | None = None) -> str:
    """One row per case attempt; one too, with status `not run`, for each a stopped run did
    not make."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["case", "target", "attempt", "passed", "cached", "status", "e2e_s",
                     "ttft_s", "output_tokens", "cost_usd", "failed_assertions",
                     "skipped", "not_checked", "output_tokens_exact",
                     "cost_estimated"])  # fmt: skip
    for r in results:
        failing = "; ".join(o.assertion for o in r.outcomes if not o.passed and not o.skipped)
        writer.writerow([csv_cell(r.case_id), csv_cell(r.target), r.attempt, r.passed,
                         r.cached, r.result.status, e2e_s(r), r.result.ttft_s,
                         output_tokens(r), r.result.cost.usd if r.result.cost else "",
                         csv_cell(failing), r.skipped,
                         csv_cell("; ".join(o.assertion for o in r.outcomes if o.skipped)),
                         r.result.output_exact,
                         bool(r.result.cost and r.result.cost.estimated)])  # fmt: skip
    for case_id, target, attempt in unfinished.not_run if unfinished else []:
        writer.writerow([csv_cell(case_id), csv_cell(target), attempt, False, False, "not run",
                         "", "", "", "", "", False, "", "", ""])  # fmt: skip
    return out.getvalue()


def as_junit(
    suite: str, results: Sequence[CaseResult], unfinished: Unfinished | None = None
) -> str:
    """One testsuite per target, one testcase per case attempt: CI systems read this. A
    result none of whose checks could be run is `<skipped>`, never a pass; one that passed
    with some of its checks not run says which in its `<system-out>`, which CI systems show
    beside the test (a testcase's `<properties>` is outside the JUnit schema many check
    against). A request a stopped run never made is an `<error>`, so that a CI step which
    publishes the report whatever the exit status does not show the run as a pass."""
    pending, why = (unfinished.not_run, unfinished.message) if unfinished else ([], "")
    root = ET.Element("testsuites", name=_xml(suite))
    for target in dict.fromkeys([*(r.target for r in results), *(t for _, t, _ in pending)]):
        mine = [r for r in results if r.target == target]
        left = [(c, a) for c, t, a in pending if t == target]
        node = ET.SubElement(root, "testsuite", name=_xml(target),
                             tests=str(len(mine) + len(left)),
                             failures=str(len(failed(mine))), errors=str(len(left)),
                             skipped=str(len(skipped(mine))))  # fmt: skip
        for r in mine:
            case = ET.SubElement(node, "testcase", classname=_xml(target),
                                 name=_xml(_case_name(r.case_id, r.attempt)))  # fmt: skip
            # How long the test took, failed or not; left out (it is optional) when unknown.
            if r.result.e2e_s is not None:
                case.set("time", f"{r.result.e2e_s:.3f}")
            if r.skipped:
                ET.SubElement(case, "skipped", message=_xml(failure_reason(r)))
            elif not r.passed:
                failure = ET.SubElement(case, "failure", message=_xml(failure_reason(r)))
                failure.text = _xml(clean(r.result.text))
            if not_run := unchecked(r):
                verdict = "passed" if r.passed else "failed"
                ET.SubElement(case, "system-out").text = _xml(
                    f"{verdict} on the checks that ran; not checked (--skip-unsupported): "
                    + "; ".join(not_run)
                )
        for case_id, attempt in left:
            case = ET.SubElement(node, "testcase", classname=_xml(target),
                                 name=_xml(_case_name(case_id, attempt)))  # fmt: skip
            ET.SubElement(case, "error", type="interrupted", message=_xml(why))
    return ET.tostring(root, encoding="unicode", xml_declaration=True)


def _case_name(case_id: str, attempt: int) -> str:
    return case_id if attempt == 0 else f"{case_id}#{attempt + 1}"


def _xml(text: str) -> str:
    """XML 1.0 cannot carry most control characters at all, even escaped."""
    return clean(text)
