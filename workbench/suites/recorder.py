"""A suite run's rows on their way to the history, for a run that must not wait for it (F8,
`workbench run`).

Another process (another workbench) can hold the history's write lock for a long while. The
run goes on meanwhile, since its answers cost money or minutes, and a stream held up while a
write waits would have its timings skewed: each row (the run, each case result, its end) is
kept here, in order, until the history takes it. A write waits `WAIT_S`
for the lock, on a thread of its own, so that neither the engine's streams nor the UI wait
with it; rows turned away are tried again every `RETRY_S`. A history that will never take
them (a newer workbench's, one made read-only meanwhile) stops the run, as it did before.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Literal, TypeVar

from providers.base import Message
from workbench.commands import format as fmt
from workbench.store import (
    SchemaTooNewError,
    Store,
    StoreUnavailableError,
    is_busy,
    why_not_written,
)
from workbench.suites.runs import CaseResult, RunInfo, add_case_result, finish_run, start_run

WAIT_S = 0.25
"""How long one write waits for another process's write before the rows wait here."""
RETRY_S = 1.0
"""How often the rows that wait are tried again."""

Kind = Literal["run", "result", "end"]
_T = TypeVar("_T")


class HistoryRefused(Exception):
    """The history will not take the run, now or later: the message says why."""


def may_clear(error: sqlite3.Error) -> bool:
    """Whether a write that failed may go later: the history is busy, or its disk full."""
    return is_busy(error) or getattr(error, "sqlite_errorname", "") == "SQLITE_FULL"


class RunRecorder:
    """Keeps a run's rows, from the run itself on, and writes them oldest first as soon as
    the history takes them.

    On the engine's loop: `async with` it, hand it each `result` and the `finish`, and await
    the run's work through `alongside`, which stops that work if the history refuses the run.
    `say` (called from any thread) gets words for the person when rows start waiting and
    once they are written, and None whenever `trouble` or `waiting` changed otherwise."""

    def __init__(
        self,
        path: Path,
        run_id: str,
        say: Callable[[str | None], object],
        *,
        start: RunInfo | None = None,
    ) -> None:
        """`start`: the run, to be written first; None when the history has it already (the
        CLI writes it before its first request, and a resumed run is there)."""
        self.path = path
        self.run_id = run_id
        self._say = say
        self._rows: deque[tuple[Kind, Callable[[Store], None]]] = deque()
        self._lock = threading.Lock()
        """Held while the store is used: by the writing thread, or by `flush`."""
        self._store: Store | None = None
        self.trouble: str | None = None
        """Why the rows wait, in words; None while the history takes them."""
        self._since = 0.0
        """When the first write that failed began (`time.monotonic`)."""
        self.run_stored = start is None
        """The run itself is in the history (so `--resume` can finish it)."""
        self._wake = asyncio.Event()
        self._empty = asyncio.Event()
        self._writer: asyncio.Task[None] | None = None
        if start is not None:
            self._add("run", lambda store: start_run(store, start))

    @property
    def waiting(self) -> int:
        """Case results kept here that the history has not taken yet."""
        return sum(kind == "result" for kind, _ in list(self._rows))

    @property
    def settled(self) -> bool:
        """Every row is in the history."""
        return not self._rows

    def result(self, case: CaseResult, messages: Sequence[Message], key: str | None) -> None:
        """A `runner.Record`: keeps the case result, to be written in its turn."""
        self._add("result", lambda store: add_case_result(store, self.run_id, case, messages, key))

    def finish(self) -> None:
        ended = time.time()
        self._add("end", lambda store: finish_run(store, self.run_id, ended))

    def _add(self, kind: Kind, write: Callable[[Store], None]) -> None:
        self._rows.append((kind, write))
        self._empty.clear()
        self._wake.set()

    # --- on the engine's loop ------------------------------------------------------------

    async def __aenter__(self) -> RunRecorder:
        self._writer = asyncio.create_task(self._keep_writing())
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Stop writing; what is still kept here stays, for `flush`."""
        if self._writer is not None:
            self._writer.cancel()
            await asyncio.gather(self._writer, return_exceptions=True)
        # A write under way on the thread ends within WAIT_S; the store is closed after it.
        await asyncio.to_thread(self.flush, None)

    async def alongside(self, work: Awaitable[_T]) -> _T:
        """`work`'s result; or, once the history has refused the run, `HistoryRefused`, and
        `work` is cancelled (its answers could not be kept)."""
        assert self._writer is not None, "async with the recorder first"
        task = asyncio.ensure_future(work)
        try:
            await asyncio.wait({task, self._writer}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            if not task.done():
                task.cancel()
                # Unwound before the caller goes on: it closes the clients `work` streams on.
                await asyncio.gather(task, return_exceptions=True)
        if self._writer.done() and not self._writer.cancelled():
            self._writer.result()  # raises why the history refused the run
        return task.result()

    async def stored(self) -> None:
        """Once every row is in the history (see `alongside`)."""
        await self.alongside(self._empty.wait())

    async def _keep_writing(self) -> None:
        while True:
            self._wake.clear()  # set again by a row added while these are written
            if not await asyncio.to_thread(self._write_waiting, WAIT_S):
                await asyncio.sleep(RETRY_S)  # the history is busy: the rows wait
                continue
            if not self._rows:
                self._empty.set()
            await self._wake.wait()

    # --- on a thread of their own ------------------------------------------------------------

    def flush(self, wait_s: float | None) -> None:
        """Write what is kept here, waiting up to `wait_s` for the history (None: not at all),
        then close the store: as the screen closes, the rows' last chance."""
        if wait_s is not None and self._rows:
            with contextlib.suppress(HistoryRefused):  # as before: the rows are lost
                self._write_waiting(wait_s)
        with self._lock:
            if self._store is not None:
                self._store.close()
                self._store = None

    def _write_waiting(self, wait_s: float) -> bool:
        """Write the rows kept here, oldest first; False when one had to stay (the history
        is busy): it and the rest are tried again later."""
        written = 0
        with self._lock:
            began = time.monotonic()
            try:
                if self._store is None:
                    self._store = Store(self.path, opening_wait_s=wait_s)
                while self._rows:
                    kind, write = self._rows[0]
                    with self._store.waiting_at_most(wait_s):
                        write(self._store)
                    self._rows.popleft()
                    written += kind == "result"
                    self.run_stored = self.run_stored or kind == "run"
            except sqlite3.Error as error:
                if not may_clear(error):
                    raise HistoryRefused(why_not_written(error, self.path)) from error
                self._waits(error, began, wait_s)
                return False
            except SchemaTooNewError as error:
                raise HistoryRefused(why_not_written(error, self.path)) from error
            except (StoreUnavailableError, OSError) as error:
                raise HistoryRefused(str(error)) from error
        if self.trouble is not None:
            self.trouble = None
            what = f"{fmt.plural(written, 'result')} that waited" if written else "the run"
            self._say(f"History written again: {what} stored")
        return True

    def _waits(self, error: sqlite3.Error, began: float, wait_s: float) -> None:
        first = self.trouble is None
        if first:
            self._since = began
        busy_s = time.monotonic() - self._since
        waited = max(wait_s, round(busy_s, 1) if busy_s < 10 else round(busy_s))
        self.trouble = why_not_written(error, self.path, waited, retried=True)
        if first:
            self._say(f"Not stored yet: {self.trouble}. The run goes on: its results wait "
                      "here and are stored once the history takes them")  # fmt: skip
        else:
            self._say(None)
