"""Runs a suite: cases × targets × repeats, bounded per provider, stored as each ends.

A local runtime answers one request at a time anyway, so local providers default to one at
once; cloud providers to four. A rate-limited request waits (Retry-After, else backoff) and
tries again; one failing target never stops the others.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from providers.base import Message, ProviderError
from providers.registry import Registry, Target, TargetError
from workbench.engine import pricing
from workbench.engine.fanout import new_result, stream_target
from workbench.engine.fanout import request_for as _request_for
from workbench.engine.guards import MAX_TIME_S
from workbench.engine.result import TargetResult
from workbench.store import Store
from workbench.suites.assertions import check_all
from workbench.suites.loader import is_private, render_messages
from workbench.suites.runs import (
    CaseResult,
    add_case_result,
    cached_response,
    messages_key,
)
from workbench.suites.schema import Case, Suite

CLOUD_CONCURRENCY = 4
RATE_LIMIT_RETRIES = 3
_MAX_BACKOFF_S = 30.0

Record = Callable[[CaseResult, Sequence[Message], str | None], None]
"""Stores a case result, with the messages its request sent and its request key."""


@dataclass(frozen=True, slots=True)
class Job:
    case: Case
    target: Target
    attempt: int

    @property
    def key(self) -> tuple[str, str, int]:
        return (self.case.id, self.target.spec, self.attempt)


def suite_targets(suite: Suite, specs: Sequence[str] | None) -> list[Target]:
    """The targets to run, each carrying the suite's params unless it sets its own."""
    from providers.base import GenParams
    from providers.registry import parse_target

    shared = GenParams(**suite.params.model_dump())
    targets = []
    for spec in specs or suite.targets:
        t = parse_target(spec)
        targets.append(Target(t.provider, t.model, shared.merged(t.params), t.system, t.label))
    return targets


def plan(
    suite: Suite,
    targets: Sequence[Target],
    repeat: int | None,
    *,
    is_local: Callable[[str], bool] | None = None,
) -> list[Job]:
    """Every case × target × repeat; private cases only on targets `is_local` accepts.

    Without `is_local`, private cases are planned everywhere, and the engine refuses to
    send them to a cloud target (the job then fails instead of being skipped).
    """
    return [
        Job(case, target, attempt)
        for case in suite.cases
        for target in targets
        if is_local is None or not is_private(suite, case) or is_local(target.provider)
        for attempt in range(repeat or case.repeat or suite.repeat)
    ]


def skipped_private(
    suite: Suite, targets: Sequence[Target], is_local: Callable[[str], bool]
) -> str:
    """A line saying which private cases cloud targets skip, or ''."""
    private = [c.id for c in suite.cases if is_private(suite, c)]
    cloud = [f"{t.provider}:{t.model}" for t in targets if not is_local(t.provider)]
    if not private or not cloud:
        return ""
    return (
        f"{len(private)} private case{'s' if len(private) != 1 else ''} run on local "
        f"targets only; skipped for {', '.join(cloud)}"
    )


async def run_jobs(
    suite: Suite,
    jobs: Sequence[Job],
    registry: Registry,
    store: Store | None,
    run_id: str,
    *,
    concurrency: int | None = None,
    local_concurrency: int = 1,
    cache: bool = False,
    on_result: Callable[[CaseResult], None] | None = None,
    max_time_s: float = MAX_TIME_S,
    record: Record | None = None,
) -> list[CaseResult]:
    """Run every job; results come back in job order, and each is stored as it ends: in
    `store`, or handed to `record`, which stores it (the TUI's, once a busy history frees).
    `cache` reads `store`."""
    if record is None:
        if store is None:
            raise ValueError("run_jobs stores its results in a store, or hands them to record")
        record = functools.partial(add_case_result, store, run_id)
    limits: dict[str, asyncio.Semaphore] = {}

    def slots(provider: str) -> int:
        local = registry.is_local(provider)
        return max(1, concurrency or (local_concurrency if local else CLOUD_CONCURRENCY))

    def limit(provider: str) -> asyncio.Semaphore:
        if provider not in limits:
            limits[provider] = asyncio.Semaphore(slots(provider))
        return limits[provider]

    async def one(job: Job) -> CaseResult:
        messages = render_messages(suite, job.case)
        request = _request_for(job.target, messages)
        key = messages_key(job.target.spec, request.messages)
        outcome = None
        if cache and store is not None and job.target.params.temperature == 0:
            stored = cached_response(store, key)
            if stored is not None:
                verdicts = check_all(job.case.expect, stored, job.case.unchecked)
                outcome = CaseResult(job.case.id, job.target.spec, job.attempt, stored,
                                     verdicts, cached=True)  # fmt: skip
        if outcome is None:
            async with limit(job.target.provider):
                result = await _with_retries(job.target, registry, messages, max_time_s)
            verdicts = check_all(job.case.expect, result, job.case.unchecked)
            outcome = CaseResult(job.case.id, job.target.spec, job.attempt, result, verdicts)
        record(outcome, request.messages, key)
        if on_result is not None:
            on_result(outcome)
        return outcome

    # A few workers per provider, not a task per job: 100 000 cases stay 100 000 small
    # Job records, never 100 000 waiting tasks.
    results: list[CaseResult | None] = [None] * len(jobs)
    queues: dict[str, list[int]] = {}
    for index, job in enumerate(jobs):
        queues.setdefault(job.target.provider, []).append(index)

    async def worker(indices: Iterator[int]) -> None:
        for index in indices:  # shared by the provider's workers: each takes the next job
            results[index] = await one(jobs[index])

    workers = []
    for provider, indices in queues.items():
        shared = iter(indices)
        workers += [worker(shared) for _ in range(min(slots(provider), len(indices)))]
    await asyncio.gather(*workers)
    return [r for r in results if r is not None]


async def _with_retries(
    target: Target, registry: Registry, messages: list[Message], max_time_s: float
) -> TargetResult:
    try:
        provider = registry.get(target.provider)
    except (ProviderError, TargetError) as exc:
        # Refused before anything is sent (private mode, say): this target's case fails here,
        # with the reason, and the others run on.
        result = new_result(target, registry)
        kind = exc.kind if isinstance(exc, ProviderError) else "bad_request"
        result.status, result.error_kind, result.error = "failed", kind, str(exc)
        result.cost = pricing.cost_of(result)
        return result
    for attempt in range(RATE_LIMIT_RETRIES + 1):
        result = new_result(target, registry)
        request = _request_for(target, messages)
        await stream_target(
            target, provider, request, result, live_estimates=False, max_time_s=max_time_s
        )
        if result.error_kind != "rate_limited" or attempt == RATE_LIMIT_RETRIES:
            return result
        wait = result.retry_after_s if result.retry_after_s is not None else 2.0**attempt
        await asyncio.sleep(min(wait, _MAX_BACKOFF_S))
    raise AssertionError("unreachable")
