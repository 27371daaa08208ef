"""Suite runs in the store: each case result is written the moment it ends.

A run records its suite file and targets, so `--resume` can finish what a crash or Ctrl+C
left undone, and `compare` can line two runs up case by case.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from providers.base import Message
from workbench.engine.pricing import Cost
from workbench.engine.result import TargetResult
from workbench.store import Store, exactness
from workbench.suites.assertions import Outcome
from workbench.suites.schema import Suite


@dataclass(frozen=True, slots=True)
class RunInfo:
    id: str
    created_at: float
    finished_at: float | None
    suite: str
    suite_path: str
    targets: list[str]
    options: dict[str, Any]


@dataclass(slots=True)
class CaseResult:
    case_id: str
    target: str
    attempt: int
    result: TargetResult
    outcomes: list[Outcome]
    cached: bool = False

    @property
    def skipped(self) -> bool:
        """Answered, but not one of its checks could be run (promptfoo checks workbench
        lacks): neither passed nor failed."""
        answered = self.result.status == "done"
        return answered and bool(self.outcomes) and all(o.skipped for o in self.outcomes)

    @property
    def passed(self) -> bool:
        """Answered, and every check that ran passed; never true of a skipped result."""
        if self.result.status != "done" or self.skipped:
            return False
        return all(o.passed or o.skipped for o in self.outcomes)


def start_run(store: Store, run: RunInfo) -> None:
    with store.transaction():
        store.db.execute(
            "INSERT INTO runs (id, created_at, suite, suite_path, targets, options) "
            "VALUES (?,?,?,?,?,?)",
            (run.id, run.created_at, run.suite, run.suite_path, json.dumps(run.targets),
             json.dumps(run.options)),
        )  # fmt: skip


def finish_run(store: Store, run_id: str, at: float | None = None) -> None:
    """Mark the run finished, `at` when it did (now by default: a write that had to wait
    for a busy history says when the run ended, not when the history took it)."""
    finished = time.time() if at is None else at
    with store.transaction():
        store.db.execute("UPDATE runs SET finished_at = ? WHERE id = ?", (finished, run_id))


def add_case_result(
    store: Store,
    run_id: str,
    case: CaseResult,
    messages: Sequence[Message],
    request_key: str | None,
) -> None:
    """The response and its verdict, in one transaction: a crash keeps both or neither."""
    outcomes = [
        {"assertion": o.assertion, "passed": o.passed, "reason": o.reason}
        | ({"skipped": True} if o.skipped else {})
        for o in case.outcomes
    ]
    with store.transaction():
        # A cached answer is recorded again for this run, but it cost nothing this time.
        origin = "cached" if case.cached else "suite"
        response_id = store.insert_response(
            case.result, messages, origin, run_id, None if case.cached else request_key
        )
        store.db.execute(
            "INSERT INTO case_results (run_id, case_id, target, attempt, response_id, passed, "
            "outcomes, cached) VALUES (?,?,?,?,?,?,?,?)",
            (run_id, case.case_id, case.target, case.attempt, response_id, int(case.passed),
             json.dumps(outcomes), int(case.cached)),
        )  # fmt: skip


def run_info(store: Store, run_id: str) -> RunInfo | None:
    row = store.db.execute(
        "SELECT id, created_at, finished_at, suite, suite_path, targets, options FROM runs "
        "WHERE id = ?",
        (run_id,),
    ).fetchone()
    return _info(row) if row else None


KEYWORDS = ("latest", "previous")
_COLUMNS = "id, created_at, finished_at, suite, suite_path, targets, options"
_HAS_RESULTS = "EXISTS (SELECT 1 FROM case_results c WHERE c.run_id = runs.id)"


def resolve_run(store: Store, ref: str, suite: str | None = None) -> RunInfo:
    """A run id (or a unique prefix of one), `latest` or `previous`.

    `latest` is the newest run of a suite and `previous` the one before it, so the two are
    always runs of the same suite: of `suite` (matched by its name) when given, else of the
    suite that ran last.
    """
    if ref not in KEYWORDS:
        rows = store.db.execute(
            f"SELECT {_COLUMNS} FROM runs WHERE id LIKE ?", (ref + "%",)
        ).fetchall()
        if len(rows) != 1:
            raise LookupError(f"no run {ref!r}" if not rows else f"{ref!r} names several runs")
        return _info(rows[0])
    if suite is None:
        suite = _last_suite(store)
        if suite is None:
            raise LookupError("there are no suite runs yet: workbench run SUITE makes one")
    runs = runs_of(store, suite, limit=2)
    index = KEYWORDS.index(ref)
    if len(runs) <= index:
        so_far = "it has no run with results yet" if not runs else "it has run only once"
        raise LookupError(f"there is no {ref} run of suite {suite!r}: {so_far}")
    return runs[index]


def resolve_pair(store: Store, before: str, after: str) -> tuple[RunInfo, RunInfo]:
    """The two runs `compare` lines up. `latest` and `previous` are runs of the suite that
    the other side names by id, or, with no ids, of the suite that ran last."""
    named = [resolve_run(store, ref) for ref in (before, after) if ref not in KEYWORDS]
    # One suite for both sides, even if another suite's run starts meanwhile.
    suite = named[0].suite if named else _last_suite(store)
    return resolve_run(store, before, suite), resolve_run(store, after, suite)


def _last_suite(store: Store) -> str | None:
    """The suite of the newest run that has results (see `runs_of`)."""
    row = store.db.execute(
        f"SELECT suite FROM runs WHERE {_HAS_RESULTS} ORDER BY created_at DESC LIMIT 1"
    ).fetchone()
    return str(row[0]) if row else None


def runs_of(
    store: Store, suite: str, *, before: float | None = None, limit: int = 50
) -> list[RunInfo]:
    """Runs of the suite with this name that have results, newest first; only those started
    before `before`.

    A run with no result yet (one under way, or one that stopped before its first case
    ended) is left out: it has nothing to compare, so as `latest`, `previous` or a
    `--baseline` it could only make an empty comparison. It stays in `list_runs` (history)
    and can still be named by id, and finished with `--resume`.
    """
    rows = store.db.execute(
        f"SELECT {_COLUMNS} FROM runs WHERE suite = ? AND created_at < ? AND {_HAS_RESULTS} "
        "ORDER BY created_at DESC LIMIT ?",
        (suite, float("inf") if before is None else before, limit),
    ).fetchall()
    return [_info(r) for r in rows]


def run_pairs(store: Store, run_id: str) -> set[tuple[str, str]]:
    """The case × target pairs a run has results for: what a comparison can line up."""
    rows = store.db.execute(
        "SELECT DISTINCT case_id, target FROM case_results WHERE run_id = ?", (run_id,)
    ).fetchall()
    return {(str(case), str(target)) for case, target in rows}


def list_runs(store: Store, limit: int = 50) -> list[RunInfo]:
    rows = store.db.execute(
        f"SELECT {_COLUMNS} FROM runs ORDER BY created_at DESC LIMIT ?",
        (limit,),
    ).fetchall()
    return [_info(r) for r in rows]


def case_results(store: Store, run_id: str) -> list[CaseResult]:
    rows = store.db.execute(
        """SELECT c.case_id, c.target, c.attempt, c.outcomes, c.cached, r.provider, r.model,
                  r.is_local, r.status, r.text, r.input_tokens, r.output_tokens,
                  r.tokens_exact, r.input_tokens_exact, r.output_tokens_exact, r.ttft_s, r.e2e_s,
                  r.first_token_s, r.cost_usd, r.cost_kind, r.error_kind, r.error
           FROM case_results c JOIN responses r ON r.id = c.response_id
           WHERE c.run_id = ? ORDER BY c.id""",
        (run_id,),
    ).fetchall()
    return [_case(row) for row in rows]


def cached_response(store: Store, request_key: str) -> TargetResult | None:
    """The latest successful answer to exactly this request, if one is stored."""
    row = store.db.execute(
        """SELECT target, provider, model, is_local, status, text, input_tokens, output_tokens,
                  tokens_exact, input_tokens_exact, output_tokens_exact, ttft_s, e2e_s,
                  first_token_s, cost_usd, cost_kind, error_kind, error
           FROM responses WHERE request_key = ? AND status = 'done'
           ORDER BY id DESC LIMIT 1""",
        (request_key,),
    ).fetchone()
    if row is None:
        return None
    return _result(row[0], *row[1:])


def _info(row: sqlite3.Row | tuple[Any, ...]) -> RunInfo:
    id_, created, finished, suite, path, targets, options = row
    return RunInfo(id_, created, finished, suite, path, json.loads(targets), json.loads(options))


def _case(row: tuple[Any, ...]) -> CaseResult:
    case_id, target, attempt, outcomes, cached, *response = row
    result = _result(target, *response)
    verdicts = [
        Outcome(o["passed"], o["assertion"], o["reason"], bool(o.get("skipped")))
        for o in json.loads(outcomes)
    ]
    return CaseResult(case_id, target, attempt, result, verdicts, bool(cached))


def _result(
    target: str, provider: str, model: str, is_local: int, status: str, text: str,
    input_tokens: int, output_tokens: int, exact: int, input_exact: int | None,
    output_exact: int | None, ttft: float | None, e2e: float | None,
    first_token: float | None, usd: float | None,
    cost_kind: str | None, error_kind: str | None, error: str | None,
) -> TargetResult:  # fmt: skip
    result = TargetResult(target, target, provider, model, bool(is_local))
    result.status = status  # type: ignore[assignment]
    result.text, result.input_tokens, result.output_tokens = text, input_tokens, output_tokens
    result.input_exact, result.output_exact = exactness(exact, input_exact, output_exact)
    result.ttft_s, result.e2e_s, result.first_token_s = ttft, e2e, first_token
    result.error_kind, result.error = error_kind, error
    if cost_kind is not None:
        # Not stored, but it follows from the counts it was priced from (`pricing.cost_of`).
        estimated = not result.tokens_exact
        result.cost = Cost(cost_kind, usd, estimated=estimated)  # type: ignore[arg-type]
    return result


SUITE_HASH = "suite_sha256"
"""The run option holding `suite_hashes` of the suite as the run started it."""


def suite_hashes(suite: Suite) -> dict[str, str]:
    """What tells whether a suite file is still the suite a run started: a sha256 of its
    cases and one of the rest that decides what is asked and how it is judged. Left out:
    its targets (a run keeps its own, and `--resume` runs those), its description and
    concurrency, which change no result."""
    settings = suite.model_dump(
        mode="json", exclude={"cases", "targets", "description", "concurrency", "endpoints"}
    )
    cases = [case.model_dump(mode="json") for case in suite.cases]
    return {"settings": _sha256(settings), "cases": _sha256(cases)}


def _sha256(data: object) -> str:
    text = json.dumps(data, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


def messages_key(target: str, messages: Sequence[Message]) -> str:
    """What makes two requests identical: the target spec (model and settings) and messages."""
    body = json.dumps([target, [[m.role, m.content] for m in messages]], ensure_ascii=False)
    return hashlib.sha256(body.encode()).hexdigest()
