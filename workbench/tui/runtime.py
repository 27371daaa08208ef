"""Interpreter settings that keep the UI answering while four panes stream.

The UI thread and the engine thread share one GIL (DESIGN §4). Two defaults of CPython's
cost the UI its worst latencies under bench/tui_stream.py, and are changed while the app runs:

- The cycle collector ran ~700 times while four panes streamed 2 000 tokens each, and its
  full collections, walking every object the app holds (Textual's widgets, the SDKs), paused
  the UI for up to 85 ms. What is alive once start-up is over is frozen out of its walk,
  collections are made rare, and one runs when an answer is complete.
- Every 5 ms the thread holding the GIL is made to hand it over. The engine wants it for a
  moment per chunk (2 000 chunks a second); each handover cut a frame of the UI in pieces,
  and a frame that scrolls four panes took 25–50 ms instead of ~10. At 20 ms a frame runs
  through; the engine's chunks wait in the socket buffers meanwhile, and none is lost.
"""

from __future__ import annotations

import gc
import sys

GC_THRESHOLDS = (10_000, 50, 1_000)
"""Allocations before a young collection, and young/middle collections before the next
generation's; CPython's defaults are (700, 10, 10)."""
SWITCH_INTERVAL_S = 0.02
"""How long a thread may hold the GIL while another waits; CPython's default is 0.005."""

_saved: tuple[tuple[int, int, int], float] | None = None


def settle() -> None:
    """Start-up is over: what is alive now lives as long as the app."""
    global _saved
    gc.collect()
    gc.freeze()
    if _saved is None:
        _saved = (gc.get_threshold(), sys.getswitchinterval())
    gc.set_threshold(*GC_THRESHOLDS)
    sys.setswitchinterval(SWITCH_INTERVAL_S)


def keep() -> None:
    """What start-up loaded since `settle` (the SDKs the panes use) lives as long as the
    app too: out of the collector's walk, without another full collection."""
    gc.freeze()


def collect(*, frozen_too: bool = False) -> None:
    """The streams are done: collect what they left while no one is waiting.

    `frozen_too` when something that lived since start-up has gone (a removed pane): its
    cycles are frozen, out of the collector's sight, so everything is unfrozen, collected
    (~140 ms with four panes, against ~40 for the rest) and frozen again."""
    if frozen_too:
        gc.unfreeze()
    gc.collect()
    if frozen_too:
        gc.freeze()


def restore() -> None:
    """The app is closing (a test's app, say): give the interpreter its defaults back."""
    global _saved
    gc.unfreeze()
    if _saved is not None:
        thresholds, interval = _saved
        gc.set_threshold(*thresholds)
        sys.setswitchinterval(interval)
        _saved = None
