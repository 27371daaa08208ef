"""`workbench ask`: one prompt to every target at once; answers, then a metrics table."""

from __future__ import annotations

import asyncio
import errno
import io
import json
import sqlite3
import sys
import threading
import time
import uuid
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import TextIO

from rich.table import Table
from rich.text import Text

from providers.base import Message
from providers.registry import Registry, Target
from workbench.commands import format as fmt
from workbench.engine.fanout import fanout, request_for
from workbench.engine.guards import MAX_TIME_S
from workbench.engine.result import TargetResult
from workbench.sanitize import clean, clean_line, unfinished_escape
from workbench.store import SchemaTooNewError, Store, is_busy, why_not_written


class _Output:
    """Where the answers are printed, and whether they can be: a reader that goes away
    (`| head`) is its own business; a full disk or a closed stdout loses what the user
    asked to see, which the command then says, and counts as a failure."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.closed = False
        """Nothing more is written (the reader went away, or writing failed)."""
        self.failure: str | None = None
        """Why the answers could not be printed, when that is a failure."""

    def lost(self, why: str) -> None:
        self.closed = True
        self.failure = self.failure or why

    def failed(self, error: OSError) -> None:
        """A write failed: stop writing, here and in Python's flush at exit."""
        self.closed = True
        fmt.discard(self.out)
        if error.errno != errno.EPIPE:
            self.failure = self.failure or (error.strerror or str(error))


class _Printer:
    """Streams a single target's answer live; with several, prints each as it finishes."""

    def __init__(self, output: _Output, single: bool) -> None:
        self._output = output
        self._out = output.out
        self._single = single
        self._shown: dict[str, int] = {}
        """Parts of each target's answer already written."""
        self._held = ""
        self._finished: set[int] = set()

    def update(self, result: TargetResult) -> None:
        if self._output.closed:
            return
        try:
            self._update(result)
        except OSError as error:
            self._output.failed(error)

    def _update(self, result: TargetResult) -> None:
        key = id(result)
        if self._single:
            # Only the parts that arrived since the last update: O(new text) per update.
            finished = result.finished  # before the text: a finished answer's text is whole
            new, self._shown[result.target] = result.text_since(self._shown.get(result.target, 0))
            text = self._held + new
            # An escape sequence split between updates is cleaned whole, with its next part.
            cut = len(text) if finished else unfinished_escape(text)
            self._held = text[cut:]
            if cut:
                self._out.write(clean(text[:cut]))
                self._out.flush()
            if finished and key not in self._finished:
                self._finished.add(key)
                self._out.write("\n")
            return
        if result.finished and key not in self._finished:
            self._finished.add(key)
            header = f"── {clean_line(result.name)} ({result.status}) "
            self._out.write(f"{header:─<72}\n")
            if result.text:
                self._out.write(clean(result.text).rstrip("\n") + "\n")
            self._out.write("\n")
            self._out.flush()


class _Recorder:
    """Stores each result as it finishes, on a thread of its own: a write that waits for a
    busy database (up to the store's busy timeout) must not hold up the streams still
    running, whose clocks are read on this loop."""

    _LOOK_S = 0.25
    """How long a write waits for a busy history before it looks again whether the command
    was interrupted: SQLite's own wait cannot be cut short from another thread."""

    def __init__(self, store: Store, targets: Sequence[Target], messages: Sequence[Message]):
        self._store = store
        self._targets = targets
        self._messages = messages
        self._batch = uuid.uuid4().hex
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="workbench-store")
        self._writes: list[Future[None]] = []
        self._stored: set[int] = set()
        self.failures: dict[str, list[str]] = {}
        """Why answers were not stored, and whose."""
        self._waited_s = store.busy_timeout_s
        self._gave_up = False
        self._said_wait: float | None = None
        self._interrupted = threading.Event()

    def add(self, result: TargetResult) -> None:
        if id(result) not in self._stored:
            self._stored.add(id(result))
            self._writes.append(self._writer.submit(self._write, result))

    def interrupt(self) -> None:
        """Ctrl+C: writes waiting for a busy history stop waiting; the ones that can be
        made at once still are."""
        self._interrupted.set()

    def _write(self, result: TargetResult) -> None:
        sent = request_for(_target_of(result, self._targets), self._messages).messages
        began = time.monotonic()
        while True:
            # Waited once already: the answers after it try without waiting again, or
            # each would add the whole wait.
            left = 0.0 if self._gave_up else self._waited_s - (time.monotonic() - began)
            try:
                with self._store.waiting_at_most(max(min(left, self._LOOK_S), 0.0)):
                    self._store.add_response(result, sent, origin="ask", batch=self._batch)
                return
            except (sqlite3.Error, SchemaTooNewError) as error:
                busy = isinstance(error, sqlite3.Error) and is_busy(error)
                if busy and left > self._LOOK_S and not self._interrupted.is_set():
                    continue
                if busy and self._said_wait is None:
                    # Said once, so that every answer it kept out is named on one line.
                    waited = max(round(time.monotonic() - began, 1), 0.1)
                    self._said_wait = min(waited, self._waited_s)
                self._gave_up = self._gave_up or busy
                why = why_not_written(error, self._store.path, self._said_wait or self._waited_s)
            except Exception as error:  # a bug of ours: said, not lost inside the thread
                why = f"could not be stored: {type(error).__name__}: {error}"
            self.failures.setdefault(why, []).append(result.name)
            return

    def settle(self) -> None:
        """Wait for every write: the streams are over, so waiting holds nothing up."""
        wait(self._writes)
        self._writer.shutdown()


async def run_ask(
    registry: Registry,
    targets: Sequence[Target],
    messages: Sequence[Message],
    *,
    as_json: bool = False,
    out: TextIO | None = None,
    store: Store | None = None,
    max_time_s: float = MAX_TIME_S,
) -> int:
    """Exit status 0 when every target answered and what was asked for was printed and
    stored; 1 when any target failed or was cancelled, or the answers could not be printed
    (a full disk, no stdout) or stored (a busy or read-only history), which it says on
    stderr.

    Cancelled (Ctrl-C), it prints and stores every target's result so far, the unfinished
    ones marked cancelled with their partial text, then lets the cancellation propagate.
    If the reader of `out` goes away (`| head`), printing stops quietly; every target still
    runs to its end and is stored, and the exit status is still the targets' own.
    """
    output = _Output(out or sys.stdout or io.StringIO())
    if out is None and sys.stdout is None:  # started with it closed (`>&-`): Python gives None
        output.lost("stdout is closed")
    printer = None if as_json else _Printer(output, single=len(targets) == 1)
    recorder = None if store is None else _Recorder(store, targets, messages)

    def update(result: TargetResult) -> None:
        if printer is not None:
            printer.update(result)
        if recorder is not None and result.finished:
            recorder.add(result)

    results: list[TargetResult] = []
    try:
        # Nobody watches token counts tick here: estimate once at the end, if at all.
        await fanout(
            registry, targets, messages, on_update=update, live_estimates=False,
            max_time_s=max_time_s, results=results,
        )  # fmt: skip
    except asyncio.CancelledError:
        for result in results:
            if not result.finished:  # cancelled before its stream began
                result.status = "cancelled"
                update(result)
        if recorder is not None:
            recorder.interrupt()
        _report(results, as_json, output)
        kept = "" if _settle(recorder, output) else "; the answers so far are kept"
        print(f"workbench ask: interrupted{kept}", file=sys.stderr)
        raise
    _report(results, as_json, output)
    unwritten = _settle(recorder, output)
    if unwritten or any(r.status != "done" for r in results):
        return 1
    return 0


def _settle(recorder: _Recorder | None, output: _Output) -> bool:
    """Wait for the stores, then say what could not be printed or stored; True if any."""
    if recorder is not None:
        recorder.settle()
    if output.failure is not None:
        if recorder is None:
            kept = ""
        elif recorder.failures:
            kept = "; nor could they be stored:"
        else:
            kept = "; they are stored (workbench history --chats)"
        print(f"workbench ask: cannot print the answers ({output.failure}){kept}",
              file=sys.stderr)  # fmt: skip
    failures = recorder.failures if recorder is not None else {}
    for why, names in failures.items():
        whose = "the answers above were" if output.failure is None else "the answers were"
        print(f"workbench ask: {whose} not stored ({', '.join(names)}): {why}", file=sys.stderr)
    return output.failure is not None or bool(failures)


def _report(results: Sequence[TargetResult], as_json: bool, output: _Output) -> None:
    if output.closed:
        return
    out = output.out
    try:
        if as_json:
            for result in results:
                out.write(json.dumps(result.to_json(), ensure_ascii=False) + "\n")
        else:
            print_metrics(results, out)
        out.flush()  # here, not in Python's flush at exit, which would complain
    except OSError as error:
        output.failed(error)


def _target_of(result: TargetResult, targets: Sequence[Target]) -> Target:
    return next(t for t in targets if t.spec == result.target)


def print_metrics(results: Sequence[TargetResult], out: TextIO) -> None:
    console = fmt.console(out)
    table = Table(box=None, pad_edge=False, header_style="bold")
    for column in ("target", "status", "TTFT", "E2E", "TPOT", "tok/s", "in", "out", "cost"):
        left = column in ("target", "status")
        table.add_column(column, justify="left" if left else "right", overflow="fold")
    for r in results:
        table.add_row(
            Text(clean_line(r.name)),
            Text(r.status),
            fmt.seconds(r.ttft_s),
            fmt.seconds(r.e2e_s),
            ("" if r.output_exact or r.tpot_s is None else "~") + fmt.seconds(r.tpot_s),
            fmt.rate(r.output_tps, r.output_exact),
            fmt.tokens(r.input_tokens, r.input_exact),
            fmt.tokens(r.output_tokens, r.output_exact),
            fmt.cost(r),
        )
    console.print(table)
    for r in results:
        # Ollama reports a load on every answer, ~1 ms once the model is in memory.
        if r.load_s and r.load_s >= 0.01:
            where = "not counted in TTFT" if r.load_apart else "inside TTFT"
            console.print(Text(f"  {clean_line(r.name)}: model load {fmt.seconds(r.load_s)} "
                               f"({where})"))  # fmt: skip
        if r.queue_s:
            waited = fmt.seconds(r.queue_s)
            console.print(Text(f"  {clean_line(r.name)}: waited {waited} for the model another "
                               "target had (not counted in TTFT)"))  # fmt: skip
    for r in results:
        if r.error:
            console.print(Text(f"✗ {clean_line(r.name)}: {fmt.error_text(r)}"), style="red")
