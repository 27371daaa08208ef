"""The interpreter settings the TUI runs with, and that it gives them back."""

from __future__ import annotations

import gc
import sys
import weakref

from workbench.tui import runtime


class Cycle:
    def __init__(self) -> None:
        self.me = self


def test_settings_apply_while_the_app_runs_and_are_given_back() -> None:
    thresholds, interval = gc.get_threshold(), sys.getswitchinterval()
    runtime.settle()
    try:
        assert gc.get_threshold() == runtime.GC_THRESHOLDS
        assert sys.getswitchinterval() == runtime.SWITCH_INTERVAL_S
        assert gc.get_freeze_count() > 0
    finally:
        runtime.restore()
    assert gc.get_threshold() == thresholds
    assert sys.getswitchinterval() == interval
    assert gc.get_freeze_count() == 0


def test_garbage_from_before_the_freeze_is_collected_between_answers() -> None:
    """A pane removed after start-up is a cycle the frozen collector would never see."""
    node = Cycle()
    ref = weakref.ref(node)
    runtime.settle()
    try:
        del node
        gc.collect()
        assert ref() is not None  # frozen: out of the collector's walk
        runtime.collect()
        assert ref() is not None  # the usual collection, after an answer, leaves it
        runtime.collect(frozen_too=True)
        assert ref() is None
    finally:
        runtime.restore()


def test_what_start_up_loads_after_the_settle_is_kept_out_of_the_walk_too() -> None:
    """The SDKs the panes use are imported after `settle`: `keep` freezes them as well."""
    runtime.settle()
    try:
        before = gc.get_freeze_count()
        loaded = [Cycle() for _ in range(100)]
        runtime.keep()
        assert gc.get_freeze_count() >= before + len(loaded)
    finally:
        runtime.restore()
