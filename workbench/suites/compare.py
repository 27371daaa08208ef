"""Two runs side by side: what regressed, what got fixed, which answers changed, and how
latency and cost moved per target."""

from __future__ import annotations

import difflib
import json
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from workbench.commands import format as fmt
from workbench.engine.pricing import format_usd
from workbench.sanitize import clean, clean_line
from workbench.store import Store
from workbench.suites.report import Cell, cells, totals
from workbench.suites.runs import RunInfo, case_results, run_pairs, runs_of

ChangeKind = Literal["pass→fail", "fail→pass", "answer changed", "new", "gone"]


@dataclass(frozen=True, slots=True)
class Change:
    case_id: str
    target: str
    kind: ChangeKind
    diff: str = ""


@dataclass(frozen=True, slots=True)
class Delta:
    target: str
    p50_before: float | None
    p50_after: float | None
    cost_before: float | None
    cost_after: float | None


@dataclass(frozen=True, slots=True)
class Comparison:
    before: RunInfo
    after: RunInfo
    changes: list[Change]
    deltas: list[Delta]

    @property
    def regressions(self) -> list[Change]:
        return [c for c in self.changes if c.kind == "pass→fail"]


def compare_runs(store: Store, before: RunInfo, after: RunInfo) -> Comparison:
    """Raises LookupError when the runs share no case × target, or are one run: such a
    comparison lists everything as new or gone, or nothing at all, and finding no
    regression, would pass a CI gate unseen."""
    if before.id == after.id:
        raise LookupError(
            f"both sides are run {before.id} ({before.suite!r}): a run compared with itself "
            "shows no change"
        )
    old = {(c.case_id, c.target): c for c in cells(case_results(store, before.id))}
    new = {(c.case_id, c.target): c for c in cells(case_results(store, after.id))}
    if not old.keys() & new.keys():
        why = "were the cases renamed, or the targets changed with -t?"
        if before.suite != after.suite:
            why = "they are runs of different suites"
        raise LookupError(
            f"nothing to compare: runs {before.id} ({before.suite!r}) and {after.id} "
            f"({after.suite!r}) have no case × target in common; {why}"
        )
    changes = []
    for key in dict.fromkeys([*old, *new]):
        a, b = old.get(key), new.get(key)
        if a is None or b is None:
            changes.append(Change(*key, "new" if a is None else "gone"))
        elif a.passed and not b.passed:
            changes.append(Change(*key, "pass→fail", _diff(a, b)))
        elif b.passed and not a.passed:
            changes.append(Change(*key, "fail→pass", _diff(a, b)))
        elif _answer(a) != _answer(b):
            changes.append(Change(*key, "answer changed", _diff(a, b)))
    t_old = {t.target: t for t in totals(case_results(store, before.id))}
    t_new = {t.target: t for t in totals(case_results(store, after.id))}
    deltas = [
        Delta(
            target,
            t_old[target].p50_s,
            t_new[target].p50_s,
            t_old[target].cost_usd,
            t_new[target].cost_usd,
        )
        for target in t_new
        if target in t_old
    ]
    return Comparison(before, after, changes, deltas)


_SEARCHED = 1000
"""Earlier runs looked through for a baseline, newest first."""


def pick_baseline(
    store: Store, suite: str, pairs: set[tuple[str, str]], *, before: float | None = None
) -> tuple[RunInfo, str]:
    """The run a run of `suite` with these case × target pairs is compared with, and a
    warning or ''.

    The latest earlier finished run of the suite that ran every target of this one on some
    of its cases: a CI matrix, one job per target sharing one history, compares each target
    with its own last run, not with the other job's. Failing that, the latest that shares
    any case × target, with a warning naming the targets it cannot compare. A run stopped
    halfway only when no finished one will do, with a warning. LookupError, saying which
    runs there are and on which targets, when no run shares any.
    """
    earlier = runs_of(store, suite, before=before, limit=_SEARCHED)
    if not earlier:
        raise LookupError(f"suite {suite!r} has no earlier run to compare with")
    targets = {t for _, t in pairs}
    # A run stopped before it finished only when no finished one will do: the cases it did
    # not run would all show as new.
    for runs in ([r for r in earlier if r.finished_at], [r for r in earlier if not r.finished_at]):
        if (chosen := _sharing(store, runs, pairs, targets)) is not None:
            run, warning = chosen
            if run.finished_at is None:
                stopped = f"the baseline {run.id} was stopped before it finished"
                warning = f"{warning}; {stopped}" if warning else stopped
            return run, warning
    raise LookupError(
        f"no earlier run of suite {suite!r} ran its cases on {targets_text(targets)}: "
        f"{_runs_text(earlier)}"
    )


def _sharing(
    store: Store, runs: list[RunInfo], pairs: set[tuple[str, str]], targets: set[str]
) -> tuple[RunInfo, str] | None:
    """The latest of `runs` with every target of `pairs` on some case, else the latest
    sharing any case × target (with a warning), else None."""
    partial: tuple[RunInfo, set[tuple[str, str]]] | None = None
    for run in runs:
        common = pairs & run_pairs(store, run.id)
        if common and {t for _, t in common} == targets:
            return run, ""
        if common and partial is None:
            partial = (run, common)
    if partial is not None:
        return partial[0], uncovered(partial[0], pairs, partial[1])
    return None


def uncovered(baseline: RunInfo, pairs: set[tuple[str, str]], common: set[tuple[str, str]]) -> str:
    """A warning naming this run's targets that the baseline has no result for, or ''."""
    missing = {t for _, t in pairs} - {t for _, t in common}
    if not missing:
        return ""
    whose = "that target's" if len(missing) == 1 else "those targets'"
    return (
        f"the baseline {baseline.id} has no result for {targets_text(missing)}: {whose} "
        "cases are compared with nothing (they show as new)"
    )


def targets_text(targets: Iterable[str]) -> str:
    return ", ".join(clean_line(t) for t in sorted(set(targets))) or "no target"


def _runs_text(runs: list[RunInfo]) -> str:
    """`its runs with results: 2 on A (latest ID, DATE); 1 on B, C (…)`, newest first."""
    groups: dict[tuple[str, ...], list[RunInfo]] = {}
    for run in runs:  # newest first, so each group's first run is its latest
        groups.setdefault(tuple(sorted(run.targets)), []).append(run)
    said = []
    for targets, group in list(groups.items())[:3]:
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(group[0].created_at))
        said.append(f"{len(group)} on {targets_text(targets)} (latest {group[0].id}, {when})")
    more = f"; and runs on {len(groups) - 3} other sets of targets" if len(groups) > 3 else ""
    return "its runs with results: " + "; ".join(said) + more


def suite_mismatch(before: RunInfo, after: RunInfo) -> str:
    """A warning when the runs are of two suites, or ''. Not refused: a renamed suite is
    still worth comparing, and its cases are matched by id."""
    if before.suite == after.suite:
        return ""
    return (
        f"warning: comparing runs of different suites, {before.suite!r} ({before.id}) and "
        f"{after.suite!r} ({after.id}): cases are matched by id alone"
    )


def _answer(cell: Cell) -> str:
    return cell.results[0].result.text.strip()


def _diff(a: Cell, b: Cell, width: int = 6) -> str:
    lines = difflib.unified_diff(
        clean(_answer(a)).splitlines(), clean(_answer(b)).splitlines(), "before", "after",
        lineterm="", n=1,
    )  # fmt: skip
    return "\n".join(list(lines)[2 : 2 + width * 2])


def _arrow(before: float | None, after: float | None, unit: str) -> str:
    if before is None or after is None:
        return "–"
    change = after - before
    # Slower and dearer are worse: ▲ marks both, so the eye finds regressions.
    mark = "▲" if change > 0 else "▼" if change < 0 else "="
    shown = fmt.seconds(abs(change)) if unit == "s" else format_usd(abs(change))
    return f"{mark} {shown}"


def as_markdown(c: Comparison) -> str:
    lines = [f"# {clean_line(c.after.suite)}: {c.before.id[:8]} → {c.after.id[:8]}", ""]
    regressions = c.regressions
    fixed = sum(ch.kind == "fail→pass" for ch in c.changes)
    changed = sum(ch.kind == "answer changed" for ch in c.changes)
    lines.append(f"**{len(regressions)} regressed**, {fixed} fixed, {changed} answers changed.")
    for change in c.changes:
        lines += ["", f"- `{change.kind}` **{clean_line(change.case_id)}** × "
                      f"{clean_line(change.target)}"]  # fmt: skip
        if change.diff:
            lines += ["", "  ```diff", *("  " + line for line in change.diff.splitlines()),
                      "  ```"]  # fmt: skip
    lines += [
        "",
        "| target | p50 before | p50 after | Δ latency | cost before | cost after | Δ cost |",
        "|---|---|---|---|---|---|---|",
    ]
    for d in c.deltas:
        lines.append(
            f"| {clean_line(d.target)} | {fmt.seconds(d.p50_before)} | {fmt.seconds(d.p50_after)}"
            f" | {_arrow(d.p50_before, d.p50_after, 's')} | {_usd(d.cost_before)} | "
            f"{_usd(d.cost_after)} | {_arrow(d.cost_before, d.cost_after, '$')} |"
        )
    return "\n".join(lines) + "\n"


def _usd(value: float | None) -> str:
    return "–" if value is None else format_usd(value)


def as_json(c: Comparison) -> str:
    return json.dumps(
        {
            "before": c.before.id,
            "after": c.after.id,
            "regressed": len(c.regressions),
            "changes": [
                {"case": ch.case_id, "target": ch.target, "kind": ch.kind, "diff": ch.diff}
                for ch in c.changes
            ],
            "targets": [
                {
                    "target": d.target,
                    "p50_before_s": d.p50_before,
                    "p50_after_s": d.p50_after,
                    "cost_before_usd": d.cost_before,
                    "cost_after_usd": d.cost_after,
                }
                for d in c.deltas
            ],
        },
        indent=2,
        ensure_ascii=False,
    )
