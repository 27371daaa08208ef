"""`workbench run SUITE`: cases × targets, asserted, stored, compared with a baseline.

Exit status 0 only when every assertion passed and, with --baseline, nothing regressed:
it drops into CI as it is. 1 when something failed or regressed, 2 when the command could
not do what it was asked (a bad suite, target, baseline or report path), 130 on Ctrl+C and
143 on SIGTERM (a CI job cancelled or timed out).

`--baseline latest` and `--baseline previous` both name the latest earlier finished run of
the same suite (by its `name:`) on the targets about to run: the run being made is the latest, so
the baseline is the one before it, and a CI job per target sharing one history compares
each target with its own last run. A baseline that shares no case × target with this run
(or none at all) is found out before anything runs: nothing runs and the exit status is 2.

A run stopped by Ctrl+C or SIGTERM still writes its report, which says it was interrupted
and lists each request not made (in JUnit as an `<error>`), so that it never reads as a pass
and a CI step that publishes it never picks up an earlier run's instead.

`--resume RUN_ID` finishes a run of the suite the run started, as it was then: a file that
has become another suite, or whose cases or settings have changed, is refused (its results
would be judged by two suites). One process makes a run at a time (`claim.py`).

A report goes to `--out FILE`, in the format `--report` names or else the one the file's
extension names (.json, .csv, .xml for JUnit, .md). Without `--out` it goes to stdout, and
then stdout holds the report alone (`--report json | jq` works): the results table and the
comparison go to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import os
import signal
import sqlite3
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from rich.cells import cell_len
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table
from rich.text import Text

from providers.registry import Registry, Target, TargetError
from workbench import locations
from workbench import store as store_module
from workbench.commands import format as fmt
from workbench.config import Endpoint, Settings
from workbench.engine.pricing import format_usd
from workbench.sanitize import clean_line
from workbench.store import Store, is_busy
from workbench.suites import compare, report
from workbench.suites.claim import RunBusy, claimed
from workbench.suites.loader import load_suite
from workbench.suites.recorder import WAIT_S, HistoryRefused, RunRecorder
from workbench.suites.runner import Job, plan, run_jobs, skipped_private, suite_targets
from workbench.suites.runs import (
    KEYWORDS,
    SUITE_HASH,
    CaseResult,
    RunInfo,
    case_results,
    resolve_pair,
    resolve_run,
    run_pairs,
    start_run,
    suite_hashes,
)
from workbench.suites.schema import Suite
from workbench.suites.source import SuiteError
from workbench.wiring import make_registry

REPORT_SUFFIXES = {".json": "json", ".csv": "csv", ".xml": "junit", ".md": "md"}


class UsageError(Exception):
    """The command line asks for something that cannot be done: said before anything runs."""


_SAY_BUSY_AFTER_S = 1.0
"""How long the run's first write waits, silent, for a history another process writes to."""


class Terminated(Exception):
    """SIGTERM arrived while the suite ran: it stops as Ctrl+C stops it."""


class NotStored(Exception):
    """The history did not take the run's results: the message says why. `busy`: another
    process held it past the wait, and it may take them later (`--resume`)."""

    def __init__(self, why: str, *, busy: bool) -> None:
        super().__init__(why)
        self.busy = busy


def run_command(args: argparse.Namespace, settings: Settings) -> int:
    store = Store(locations.database_path())
    try:
        store.require_writable()  # a run is kept there, and its report read back from there
        with contextlib.ExitStack() as held:
            return _run(args, settings, store, held)
    except (SuiteError, TargetError, LookupError, UsageError, RunBusy) as exc:
        print(f"workbench run: {exc}", file=sys.stderr)
        return 2
    finally:
        store.close()


def _run(
    args: argparse.Namespace, settings: Settings, store: Store, held: contextlib.ExitStack
) -> int:
    """`held` keeps the run claimed (`claim.py`) until the command ends."""
    _check_references(args)
    kind = report_format(args.report, args.out)
    if args.out is not None:
        check_writable(args.out)
    # With the report on stdout, everything meant for a person goes to stderr.
    human = sys.stderr if kind is not None and args.out is None else sys.stdout
    source = _source(args, store, held)
    if args.out is not None:
        _check_out_is_no_input(args.out, source.path, store.path)
    suite, registry, targets = _load(source, settings, from_flags=bool(args.run_targets))
    _check_size(suite, len(targets), source.repeat)
    resumed = source.resumed
    if resumed is not None:
        _check_same_suite(resumed, suite, source.path)
    skip_unsupported = bool(args.skip_unsupported) or bool(
        resumed is not None and resumed.options.get("skip_unsupported")
    )
    _check_unsupported(suite, source.path, skip_unsupported)
    planned = plan(suite, targets, source.repeat, is_local=registry.is_local)
    baseline = None
    if args.baseline is not None:
        pairs = {(job.case.id, job.target.spec) for job in planned}
        baseline = _baseline(store, args.baseline, suite.name, pairs, resumed)
    if resumed is not None:
        run_id = resumed.id
    else:
        run_id = uuid.uuid4().hex[:12]
        held.enter_context(claimed(run_id))
        _start(store, run_id, suite, source, targets, args, skip_unsupported)
    if skipped := skipped_private(suite, targets, registry.is_local):
        print(f"workbench run: {skipped}", file=sys.stderr)
    stop: NotStored | None = None
    try:
        done = {(r.case_id, r.target, r.attempt) for r in source.previous}
        jobs = [job for job in planned if job.key not in done]
        results = source.previous + asyncio.run(
            _run_with_progress(suite, jobs, registry, store, run_id, args, settings)
        )
        unfinished, stopped = None, 0
    except (KeyboardInterrupt, Terminated, NotStored) as exc:
        # The history would not take the results: what it took is kept, as after Ctrl+C.
        stop = exc if isinstance(exc, NotStored) else None
        stopped = 1 if stop else 143 if isinstance(exc, Terminated) else 130
        results = case_results(store, run_id)
        made = {(r.case_id, r.target, r.attempt) for r in results}
        unfinished = report.Unfinished(run_id, [j.key for j in planned if j.key not in made])
    _print_results(suite.name, run_id, results, human, unfinished)
    report_failed = kind is not None and not _report(
        kind, args.out, suite.name, run_id, results, unfinished
    )
    if unfinished is not None:
        how = f"Stopped, {stop}." if stop else "Terminated:" if stopped == 143 else "Interrupted:"
        when = "Once it is done, finish" if stop and stop.busy else "Finish"
        _say(f"{how} {len(results)} results kept, {len(unfinished.not_run)} not run. "
             f"{when} with: workbench run --resume {run_id}", sys.stderr)  # fmt: skip
        return stopped
    regressed = 0
    if baseline is not None:
        comparison = compare.compare_runs(store, baseline, resolve_run(store, run_id))
        regressed = len(comparison.regressions)
        _say(compare.as_markdown(comparison), human)
    if report_failed:
        return 2
    failed = len(report.failed(results))
    return 0 if failed == 0 and regressed == 0 else 1


def _start(
    store: Store,
    run_id: str,
    suite: Suite,
    source: _Source,
    targets: list[Target],
    args: argparse.Namespace,
    skip_unsupported: bool,
) -> None:
    """Record a new run, with what `--resume` needs to finish it as it began."""
    options = {"repeat": source.repeat, "concurrency": args.concurrency, "cache": args.cache,
               SUITE_HASH: suite_hashes(suite)}  # fmt: skip
    if skip_unsupported:
        options["skip_unsupported"] = True
    run = RunInfo(run_id, time.time(), None, suite.name, str(source.path.resolve()),
                  [t.spec for t in targets], options)  # fmt: skip
    try:
        with store.waiting_at_most(_SAY_BUSY_AFTER_S):
            start_run(store, run)
    except sqlite3.OperationalError as error:
        if not is_busy(error):
            raise
        # Said before the wait, not after it: a run that sits silent looks hung in a CI log.
        print(f"workbench run: the history database {store.path} is busy (another process "
              f"is writing to it); waiting up to {store.busy_timeout_s:g} s before the "
              "suite starts", file=sys.stderr, flush=True)  # fmt: skip
        start_run(store, run)


@dataclass
class _Source:
    """What `workbench run` was asked to run: a suite file, or a run to finish."""

    path: Path
    specs: list[str]
    """The targets given (`-t`, or the resumed run's); none for the suite's own."""
    repeat: int | None
    previous: list[CaseResult]
    """The results a resumed run has already: their requests are not made again."""
    resumed: RunInfo | None = None


def _check_references(args: argparse.Namespace) -> None:
    """`--baseline "$BASE"` with BASE unset in CI: read as no baseline, the run would go on
    with no regression gate, and pass."""
    for flag, ref, otherwise in (
        ("--baseline", args.baseline, "leave --baseline out to run with no comparison"),
        ("--resume", args.resume, "leave --resume out to start a new run"),
    ):
        if ref is not None and not ref.strip():
            raise UsageError(f"{flag} is empty (an unset variable?): give a run id, latest or "
                             f"previous, or {otherwise}")  # fmt: skip


def _source(args: argparse.Namespace, store: Store, held: contextlib.ExitStack) -> _Source:
    if args.resume:
        resumed = resolve_run(store, args.resume)
        if args.suite:
            _check_suite_file(resumed, Path(args.suite))
        held.enter_context(claimed(resumed.id))
        # Read once the run is ours: until then another process could be adding to it.
        previous = case_results(store, resumed.id)
        repeat = resumed.options.get("repeat")
        return _Source(Path(resumed.suite_path), resumed.targets, repeat, previous, resumed)
    if args.suite:
        return _Source(Path(args.suite), args.run_targets or [], args.repeat, [])
    raise UsageError("name a suite file, or --resume RUN_ID")


def _check_suite_file(resumed: RunInfo, given: Path) -> None:
    """`run SUITE --resume ID` is accepted when SUITE is the run's own file, as a CI script
    may well name it beside the run, and refused otherwise: it either means another run
    (drop --resume) or a mistake, and silently running the run's own suite instead hides
    both. A file of the same content elsewhere is still another file: the run records where
    its suite is, and that is what it resumes."""
    with contextlib.suppress(OSError):
        if os.path.samefile(given, resumed.suite_path):
            return
    raise UsageError(
        f"run {resumed.id} is a run of {resumed.suite_path}, not {given}: drop {given} to "
        f"finish it, or drop --resume to start a new run of {given}"
    )


def _check_same_suite(resumed: RunInfo, suite: Suite, path: Path) -> None:
    """Refuse to finish a run with a suite file that is no longer the suite it started: its
    stored results were judged by the file as it was, the rest would be by the file as it
    is, and the report would mix the two. A run stored before suites were hashed can only
    be told by its suite's name."""
    start_new = f"start a new run: workbench run {path}"
    if suite.name != resumed.suite:
        raise UsageError(f"run {resumed.id} is of suite {resumed.suite!r}, but {path} is now "
                         f"suite {suite.name!r}; {start_new}")  # fmt: skip
    then = resumed.options.get(SUITE_HASH)
    if not isinstance(then, dict):
        return
    now = suite_hashes(suite)
    parts = {"cases": "its cases", "settings": "its prompt, system prompt, params or repeat"}
    changed = [said for part, said in parts.items() if then.get(part) != now[part]]
    if changed:
        raise UsageError(f"suite {suite.name!r} in {path} has changed since run {resumed.id} "
                         f"started: {' and '.join(changed)} differ; the results it has were judged "
                         f"by the file as it was; {start_new}")  # fmt: skip


def _load(
    source: _Source, settings: Settings, *, from_flags: bool
) -> tuple[Suite, Registry, list[Target]]:
    """The suite, a registry that knows its servers, and the targets it runs on."""
    path, specs = source.path, source.specs
    suite = load_suite(path, known_providers=None, targets_given=bool(specs))
    if suite.endpoints:  # a promptfoo config's apiBaseUrl servers
        extra = {n: Endpoint(kind="openai", base_url=url) for n, url in suite.endpoints.items()}
        settings = settings.model_copy(update={"endpoints": settings.endpoints | extra})
    registry = make_registry(settings)
    for name in suite.endpoints:
        registry.kind(name)
    if not specs:  # -t replaces the suite's targets: theirs need not name known providers
        suite = load_suite(path, known_providers=registry.names)
    targets = suite_targets(suite, specs or None)
    if not targets:
        raise UsageError("the suite names no targets; give some with -t")
    for spec, target in zip(specs or suite.targets, targets, strict=True):
        try:
            registry.kind(target.provider)
        except TargetError as exc:
            raise TargetError(f"-t {spec}: {exc}" if from_flags else str(exc)) from None
    _check_distinct(specs or suite.targets, targets, from_flags)
    return suite, registry, targets


def _check_distinct(specs: list[str], targets: list[Target], from_flags: bool) -> None:
    """A run keeps one result per case × target × attempt: a target named twice would have
    its second answers refused by the history midway through the run, its first ones paid
    for. Asking one target more than once is what --repeat is for."""
    named: dict[str, str] = {}
    flag = "-t " if from_flags else ""
    for spec, target in zip(specs, targets, strict=True):
        if (first := named.get(target.spec)) is not None:
            same = "" if first == spec else f" (as {flag}{first})"
            raise UsageError(f"{flag}{spec} is named twice{same}: each target is run once per "
                             "case; to ask it again, use --repeat N")  # fmt: skip
        named[target.spec] = spec


MAX_REQUESTS = 100_000
"""More than a day of requests at any concurrency a laptop drives; past it, a --repeat or
`repeat:` is a typo (an extra 0 or three), and the plan alone would fill the memory."""


def _check_size(suite: Suite, targets: int, repeat: int | None) -> None:
    per_target = sum(repeat or case.repeat or suite.repeat for case in suite.cases)
    if per_target * targets > MAX_REQUESTS:
        raise UsageError(f"this run would make {per_target * targets:,} requests ({per_target:,} "
                         f"on each of {targets} targets); the most one run makes is "
                         f"{MAX_REQUESTS:,}: check --repeat and the suite's repeat")  # fmt: skip


def _check_out_is_no_input(out: Path, suite: Path, history: Path) -> None:
    """A report written over the suite it ran, or over the history holding the run, would
    destroy what it reports on."""
    inputs = [("the suite file", suite)] + [
        ("the history database", Path(f"{history}{end}")) for end in ("", "-wal", "-shm")
    ]
    for what, path in inputs:
        with contextlib.suppress(OSError):
            if os.path.samefile(out, path):
                raise UsageError(f"--out {out}: that is {what}; name another file for the report")


def _check_unsupported(suite: Suite, path: Path, skip_unsupported: bool) -> None:
    """Refuse a suite with checks that cannot run, unless told to skip them; say which are."""
    if suite.unchecked and not skip_unsupported:
        raise UsageError(_unchecked_refusal(path, suite.unchecked))
    for line in suite.unsupported:
        if line in suite.unchecked:
            print(f"workbench run: not checked (--skip-unsupported): {line}", file=sys.stderr)
        else:
            print(f"workbench run: not supported, skipped: {line}", file=sys.stderr)


def _report(
    kind: str,
    out: Path | None,
    name: str,
    run_id: str,
    results: list[CaseResult],
    unfinished: report.Unfinished | None,
) -> bool:
    """Write the report; False, having said why, where it could not be written."""
    try:
        _write_report(kind, out, name, run_id, results, unfinished)
    except OSError as exc:
        _say(f"workbench run: could not write the report to {out or 'stdout'}: "
             f"{exc.strerror or exc}; the results are kept in run {run_id} "
             "(workbench history)", sys.stderr)  # fmt: skip
        return False
    return True


def _say(text: str, out: TextIO) -> None:
    """A line for a reader who may have gone (`| head`): then nothing more is printed, and
    the exit status stays the run's own."""
    try:
        print(text, file=out, flush=True)
    except BrokenPipeError:
        fmt.discard(out)


def _unchecked_refusal(path: Path, lines: list[str]) -> str:
    """Why a promptfoo config whose checks include some we cannot run does not run as it is:
    its tests would pass on the checks that are left, where promptfoo could fail them."""
    listed = "".join(f"\n  {clean_line(line)}" for line in lines)
    return (
        f"{path}: these promptfoo checks cannot be run here, so the tests that use them "
        f"could pass where promptfoo fails them:{listed}\nRemove them, or run with "
        "--skip-unsupported to run the rest: a test none of whose checks can run is then "
        "reported as not checked (JUnit <skipped>), never as passed"
    )


def report_format(kind: str | None, out: Path | None) -> str | None:
    """--report, else the format --out's extension names: `--out junit.xml` is enough."""
    if kind is not None or out is None:
        return kind
    if inferred := REPORT_SUFFIXES.get(out.suffix.lower()):
        return inferred
    raise UsageError(
        f"--out {out}: cannot tell the report format from the file name; add --report "
        "csv|json|junit|md, or end the name in .csv, .json, .xml (JUnit) or .md"
    )


def check_writable(out: Path) -> None:
    """Found out before the suite runs, not after its requests have been made and paid for."""
    folder = out.parent
    if out.is_dir():
        raise UsageError(f"--out {out}: that is a folder; name a file in it")
    if not folder.is_dir():
        raise UsageError(f"--out {out}: the folder {folder} does not exist; create it first")
    if not os.access(folder, os.W_OK | os.X_OK) or (out.exists() and not os.access(out, os.W_OK)):
        raise UsageError(f"--out {out}: no permission to write there")


def _baseline(
    store: Store, ref: str, suite: str, pairs: set[tuple[str, str]], resumed: RunInfo | None
) -> RunInfo:
    """The run to compare with, found before anything runs: a baseline that shares no case
    × target with this run would only be found wanting once every request was made (and
    paid for). `latest` and `previous` mean the same here: the latest run of this suite
    before the one being made (or resumed) on its targets (`compare.pick_baseline`)."""
    if ref not in KEYWORDS:
        baseline = resolve_run(store, ref)
        if resumed is not None and baseline.id == resumed.id:
            raise UsageError(f"--baseline {ref}: that is the run being resumed; compare it "
                             "with an earlier run, or drop --baseline")  # fmt: skip
        if baseline.suite != suite:
            print(f"workbench run: warning: the baseline {baseline.id} is a run of suite "
                  f"{baseline.suite!r}, not {suite!r}: cases are matched by id alone",
                  file=sys.stderr)  # fmt: skip
        common = pairs & run_pairs(store, baseline.id)
        if not common:
            theirs, ours = baseline.targets, {t for _, t in pairs}
            raise UsageError(
                f"--baseline {ref}: run {baseline.id} has no case × target in common with this "
                f"run, so nothing could be compared: it ran on {compare.targets_text(theirs)}, "
                f"this run is on {compare.targets_text(ours)}; name a run of these targets, or "
                "use --baseline latest"
            )
        if warning := compare.uncovered(baseline, pairs, common):
            print(f"workbench run: warning: {warning}", file=sys.stderr)
        return baseline
    try:
        baseline, warning = compare.pick_baseline(
            store, suite, pairs, before=resumed.created_at if resumed else None
        )
    except LookupError as exc:
        raise UsageError(f"--baseline {ref}: {exc}; run it once on these targets without "
                         "--baseline to make one") from None  # fmt: skip
    if warning:
        print(f"workbench run: warning: {warning}", file=sys.stderr)
    return baseline


async def _run_with_progress(
    suite: Suite,
    jobs: list[Job],
    registry: Registry,
    store: Store,
    run_id: str,
    args: argparse.Namespace,
    settings: Settings,
) -> list[CaseResult]:
    """The results, each stored as it comes by a `RunRecorder`: a write that waits for
    another process's never holds up the streams, whose timings it would skew."""
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.fields[failed]} failed"), TimeRemainingColumn())  # fmt: skip
    with Progress(*columns, console=fmt.console(sys.stderr), transient=True) as progress:
        task = progress.add_task(clean_line(suite.name), total=len(jobs), failed=0)
        failed = 0

        def on_result(result: CaseResult) -> None:
            nonlocal failed
            failed += not result.passed and not result.skipped
            progress.update(task, advance=1, failed=failed)

        def say(said: str | None) -> None:  # on the recorder's thread; Rich's console locks
            if said is not None:
                progress.console.print(Text(f"workbench run: {said}", style="yellow"))

        recorder = RunRecorder(store.path, run_id, say)  # `_start` or `--resume` stored the run
        terminated = _on_sigterm()
        try:
            async with recorder:
                results = await recorder.alongside(run_jobs(
                    suite, jobs, registry, store, run_id,
                    concurrency=args.concurrency or suite.concurrency,
                    local_concurrency=settings.local_concurrency, cache=args.cache,
                    on_result=on_result, max_time_s=settings.max_time_s, record=recorder.result,
                ))  # fmt: skip
                recorder.finish()
                await _all_stored(recorder, progress.console)
                return results
        except HistoryRefused as exc:
            raise NotStored(str(exc), busy=False) from None
        except asyncio.CancelledError:
            if terminated.is_set():
                raise Terminated from None
            raise
        finally:
            if not recorder.settled:  # stopped: what came last has its one chance
                recorder.flush(WAIT_S)
            # A signal that comes only now, every request made, stops nothing: the run is
            # whole, and is reported as such.
            with contextlib.suppress(asyncio.CancelledError):
                await registry.aclose()


async def _all_stored(recorder: RunRecorder, console: Console) -> None:
    """Every request is made: the results that wait for a busy history get as long as a
    write would wait for it (`BUSY_TIMEOUT_S`), then the run stops for `--resume`."""
    wait_s = store_module.BUSY_TIMEOUT_S
    stored = asyncio.ensure_future(recorder.stored())
    try:
        # Most often every row goes at once; the wait is said only when it is one.
        done, _ = await asyncio.wait({stored}, timeout=_SAY_BUSY_AFTER_S)
        if not done:
            kept = fmt.plural(recorder.waiting, "result")
            said = (f"workbench run: every request is made; waiting up to {wait_s:g} s for the "
                    f"history to take the {kept} kept here")  # fmt: skip
            console.print(Text(said, style="yellow"))
            done, _ = await asyncio.wait({stored}, timeout=max(wait_s - _SAY_BUSY_AFTER_S, 0))
        if not done:
            why = recorder.trouble or f"the history database {recorder.path} is busy"
            raise NotStored(why, busy=True)
        stored.result()  # raises why the history refused the run
    finally:
        stored.cancel()
        await asyncio.gather(stored, return_exceptions=True)


def _on_sigterm() -> asyncio.Event:
    """SIGTERM (a CI job cancelled or timed out) stops the run as Ctrl+C does, by cancelling
    it, so that the results made are kept and the report written; killed outright, the run
    left no report, and a CI step publishing one found an earlier run's. The event is set
    once it has come."""
    came = asyncio.Event()
    task = asyncio.current_task()

    def stop() -> None:
        if task is not None and not came.is_set():  # once: a second must not cut the cleanup
            came.set()
            task.cancel()

    # Not on Windows, which has no SIGTERM to handle; and for this loop only, which ends
    # with the run.
    with contextlib.suppress(NotImplementedError, RuntimeError):
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop)
    return came


def _print_results(
    suite: str,
    run_id: str,
    results: list[CaseResult],
    out: TextIO,
    unfinished: report.Unfinished | None = None,
) -> None:
    console = fmt.console(out)
    pending = unfinished.not_run if unfinished else []
    targets = list(dict.fromkeys([*(r.target for r in results), *(t for _, t, _ in pending)]))
    case_ids = list(dict.fromkeys([*(r.case_id for r in results), *(c for c, _, _ in pending)]))
    grid = {(c.case_id, c.target): c for c in report.cells(results)}
    totals = report.totals(results)
    figures = [(t.pass_label, fmt.seconds(t.p50_s), fmt.seconds(t.p90_s), t.cost_label)
               for t in totals]  # fmt: skip
    # Each target's column of the matrix gets an equal share of the width beside the case
    # column, and the summary's target column what its figures leave (`_fit_names`). The
    # case column is never narrower than its header, which would wrap to `cas`/`e`.
    case_width = max(min(max((cell_len(clean_line(c)) for c in case_ids), default=4), 30), 4)
    share = (console.width - 1 - (case_width + 3)) // max(len(targets), 1) - 3
    beside = sum(max(cell_len(s) for s in column) + 2 for column in zip(*figures, strict=True))
    names, summary_names, legend = _fit_names(
        targets, share, console.width - beside - 2, len(totals)
    )
    table = Table(title=f"{clean_line(suite)} — run {run_id}", header_style="bold")
    table.add_column("case", min_width=case_width, max_width=case_width, overflow="fold")
    for name in names:
        table.add_column(Text(name), overflow="fold")
    left = report.not_run_counts(unfinished)
    for case_id in case_ids:
        row: list[Text | str] = [Text(clean_line(case_id))]
        for target in targets:
            cell = grid.get((case_id, target))
            text = report.cell_label(cell, left.get((case_id, target), 0))
            row.append(Text(text, style=_style(cell)))
        table.add_row(*row)
    console.print(table)
    if note := report.partly_checked_note(results):
        console.print(Text(f"* {note}", style="yellow"))
    summary = Table(box=None, header_style="bold")
    for column in ("target", "pass rate", "p50", "p90", "cost"):
        summary.add_column(column, justify="left" if column == "target" else "right",
                           no_wrap=column == "target")  # fmt: skip
    for name, row_figures in zip(summary_names, figures, strict=True):
        summary.add_row(Text(name), *row_figures)
    console.print(summary)
    for line in legend:
        console.print(Text(line, style="dim"))
    _print_failures(results, console)
    cached = sum(r.cached for r in results)
    if cached:
        console.print(f"{cached} answers came from the cache.")


def _fit_names(
    targets: list[str], width: int, summary_width: int, summed: int
) -> tuple[list[str], list[str], list[str]]:
    """The targets' names for the matrix's columns, the first `summed` for the summary's
    rows (a target a stopped run never got to has none), and a legend.

    Names that fit are shown whole. Otherwise each target is numbered and its name
    shortened without cutting a setting's value (`fmt.fit_target`); unless the summary
    shows every name whole, the legend spells each out, so that two targets that differ
    only in a dropped setting stay apart."""
    full = [clean_line(t) for t in targets]
    if all(cell_len(n) <= min(width, summary_width) for n in full):
        return full, full[:summed], []
    marks = [f"[{n}] " for n in range(1, len(full) + 1)]
    names, summary_names = (
        [mark + fmt.fit_target(name, max(room, 12) - len(mark))
         for mark, name in zip(marks, full, strict=True)]
        for room in (width, summary_width)
    )  # fmt: skip
    legend = [mark + name for mark, name in zip(marks, full, strict=True)]
    whole = summary_names == legend and summed == len(full)
    return names, summary_names[:summed], [] if whole else legend


def _print_failures(results: list[CaseResult], console: Console) -> None:
    """One line per failed case × target and reason, saying which attempts it stands for; a
    target whose requests all failed alike (a missing API key, private mode) gets one line
    for all of them, not one per case."""
    unanswered: dict[tuple[str, str], list[CaseResult]] = {}
    answered = []
    for r in report.failed(results):
        if r.result.status != "done":
            unanswered.setdefault((r.target, report.unanswered(r)), []).append(r)
        else:
            answered.append(r)
    for first, attempts, why in report.grouped(answered, results):
        console.print(Text(f"✗ {clean_line(first.case_id)} × {clean_line(first.target)}"
                           f"{attempts}: {clean_line(why)}", style="red"))  # fmt: skip
    for (target, why), group in unanswered.items():
        cases = len({r.case_id for r in group})
        if len(group) == 1:
            line = f"{group[0].case_id} × {target}: no answer: {why}"
        else:
            times = f" ({len(group)} requests)" if len(group) != cases else ""
            line = f"{target}: no answer to {cases} case{'s' if cases != 1 else ''}{times}: {why}"
        console.print(Text(f"✗ {clean_line(line)}", style="red"))
    if unchecked := report.skipped(results):
        console.print(Text(f"– {len(unchecked)} answers not checked: every check of their "
                           "case is a promptfoo check workbench cannot run",
                           style="yellow"))  # fmt: skip


def _style(cell: report.Cell | None) -> str:
    if cell is not None and cell.passed:
        return "green"
    return "yellow" if cell is not None and cell.skipped else "red"


def _write_report(
    kind: str,
    out: Path | None,
    suite: str,
    run_id: str,
    results: list[CaseResult],
    unfinished: report.Unfinished | None,
) -> None:
    text = {
        "md": lambda: report.markdown(suite, run_id, results, unfinished),
        "json": lambda: report.as_json(suite, run_id, results, unfinished),
        "csv": lambda: report.as_csv(results, unfinished),
        "junit": lambda: report.as_junit(suite, results, unfinished),
    }[kind]()
    if out is not None:
        out.write_text(text, encoding="utf-8")
        _say(f"Report written to {out}", sys.stderr)
        return
    if sys.stdout is None:  # started with it closed (`>&-`): Python gives None
        raise OSError(errno.EBADF, "stdout is closed")
    try:
        sys.stdout.write(text)
        sys.stdout.flush()  # here, where a reader gone away is known for what it is
    except BrokenPipeError:
        # `| head`: the reader took what it wanted. Not a report path that failed: the run
        # keeps its own exit status, as `ask | head` does.
        fmt.discard(sys.stdout)


def compare_command(args: argparse.Namespace) -> int:
    """`latest` is the newest run of a suite and `previous` the one before it. The suite is
    the one the other argument names by id, or with no ids the suite that ran last: plain
    `workbench compare` is that suite's previous run against its latest."""
    store = Store(locations.database_path())
    try:
        before, after = resolve_pair(store, args.before, args.after)
        if before.id == after.id:  # `compare latest`: an empty comparison, which passes
            after_ref = "latest" if args.after == "previous" else args.after
            print(f"workbench compare: both sides are run {before.id} — did you mean "
                  f"`workbench compare previous {after_ref}`?", file=sys.stderr)  # fmt: skip
            return 2
        if warning := compare.suite_mismatch(before, after):
            print(f"workbench compare: {warning}", file=sys.stderr)
        comparison = compare.compare_runs(store, before, after)
    except LookupError as exc:
        print(f"workbench compare: {exc}", file=sys.stderr)
        return 2
    finally:
        store.close()
    print(compare.as_json(comparison) if args.json else compare.as_markdown(comparison))
    return 1 if comparison.regressions else 0


def history_command(args: argparse.Namespace) -> int:
    from workbench.suites.runs import list_runs

    store = Store(locations.database_path())
    try:
        found = list_runs(store, 1_000_000 if args.search else args.limit)
        if args.search:
            words = args.search.casefold()
            found = [i for i in found if words in " ".join([i.suite, *i.targets]).casefold()]
        runs = [(info, case_results(store, info.id)) for info in found[: args.limit]]
    finally:
        store.close()
    console = fmt.console(sys.stdout)
    if not runs:
        console.print(
            f"No suite run's suite or targets contain {args.search!r} (prompts and answers: "
            "--chats)"
            if args.search
            else f"No suite runs yet: workbench run {_example_suite()}",
            soft_wrap=True,  # a path to copy stays on one line
        )
        return 0
    table = Table(box=None, header_style="bold")
    for column in ("run", "date", "suite", "targets", "pass rate", "cost"):
        table.add_column(column)
    for info, results in runs:
        passed = sum(r.passed for r in results)
        costs = [r.result.cost.usd for r in results if r.result.cost and r.result.cost.usd]
        state = "" if info.finished_at else " (unfinished)"
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(info.created_at))
        targets = Text(clean_line(", ".join(info.targets)))
        suite = Text(clean_line(info.suite) + state)
        table.add_row(info.id, when, suite, targets, f"{passed}/{len(results)}",
                      format_usd(sum(costs)))  # fmt: skip
    console.print(table)
    return 0


def _example_suite() -> str:
    """The shipped offline suite, as a path that works from the current folder."""
    shipped = Path("prompts") / "offline-basics.yaml"
    if shipped.is_file():
        return str(shipped)
    checkout = Path(__file__).resolve().parents[2] / shipped
    return str(checkout) if checkout.is_file() else "SUITE.yaml"
