"""`workbench ask`: one prompt to every target at once; answers, then a metrics table."""

from __future__ import annotations

import asyncio
import json
import sys
import uuid
from collections.abc import Sequence
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
from workbench.store import Store


class _Printer:
    """Streams a single target's answer live; with several, prints each as it finishes."""

    def __init__(self, out: TextIO, single: bool) -> None:
        self._out = out
        self._single = single
        self._shown: dict[str, int] = {}
        """Parts of each target's answer already written."""
        self._held = ""
        self._finished: set[int] = set()
        self.closed = False
        """The reader went away (`| head`): nothing more is written."""

    def update(self, result: TargetResult) -> None:
        if self.closed:
            return
        try:
            self._update(result)
        except BrokenPipeError:
            self.closed = True
            fmt.discard(self._out)

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
    """Exit status 0 when every target answered, 1 when any failed or was cancelled.

    Cancelled (Ctrl-C), it prints and stores every target's result so far, the unfinished
    ones marked cancelled with their partial text, then lets the cancellation propagate.
    If the reader of `out` goes away (`| head`), printing stops quietly; every target still
    runs to its end and is stored, and the exit status is still the targets' own.
    """
    out = out or sys.stdout
    printer = None if as_json else _Printer(out, single=len(targets) == 1)
    batch = uuid.uuid4().hex

    def update(result: TargetResult) -> None:
        if printer is not None:
            printer.update(result)
        if store is not None and result.finished and id(result) not in stored:
            stored.add(id(result))
            sent = request_for(_target_of(result, targets), messages).messages
            store.add_response(result, sent, origin="ask", batch=batch)

    stored: set[int] = set()
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
        _report(results, as_json, out, printer)
        raise
    _report(results, as_json, out, printer)
    return 0 if all(r.status == "done" for r in results) else 1


def _report(
    results: Sequence[TargetResult], as_json: bool, out: TextIO, printer: _Printer | None
) -> None:
    if printer is not None and printer.closed:
        return
    try:
        if as_json:
            for result in results:
                out.write(json.dumps(result.to_json(), ensure_ascii=False) + "\n")
        else:
            print_metrics(results, out)
        out.flush()  # here, not in Python's flush at exit, which would complain
    except BrokenPipeError:
        fmt.discard(out)


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
