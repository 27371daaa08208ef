"""SVG snapshots of the screens, with deterministic content (no live timings).

After a reviewed change to how the app looks: `python -m pytest tests/test_snapshots.py
--snapshot-update`, then look at the new SVGs before committing them.
"""

from __future__ import annotations

from typing import Any

import pytest
from textual.pilot import Pilot

from tests.tui_helpers import send, wait_finished, wait_until
from workbench.config import Settings
from workbench.tui.app import WorkbenchApp, make_app
from workbench.tui.screens.picker import ModelPicker
from workbench.tui.widgets.prompt import PromptBox

GiB = 1024**3
ENV = {"OLLAMA_HOST": "127.0.0.1:9"}


def _app(*targets: str) -> WorkbenchApp:
    app = make_app(Settings(), list(targets), env=ENV)
    app.memory_probe = lambda: (12 * GiB, 16 * GiB)
    return app


async def _ready(pilot: Pilot[None]) -> None:
    app = pilot.app
    assert isinstance(app, WorkbenchApp)
    await wait_until(pilot, lambda: not any(p.has_class("loading") for p in app.panes))
    # A blinking cursor is drawn or not depending on the moment: blur the prompt box.
    app.query_one(PromptBox).blur()
    await pilot.pause(0.2)


@pytest.mark.parametrize("size", [(80, 24), (160, 48)])
def test_main_screen(snap_compare: Any, size: tuple[int, int]) -> None:
    app = _app("embedded:smollm2", "openai:gpt-4o-mini", "anthropic:claude-3-5-haiku-latest")
    assert snap_compare(app, terminal_size=size, run_before=_ready)


def test_pane_in_error(snap_compare: Any) -> None:
    async def fail(pilot: Pilot[None]) -> None:
        await _ready(pilot)
        await send(pilot, "What is a large language model?")
        await wait_finished(pilot)
        pilot.app.query_one(PromptBox).blur()
        await pilot.pause(0.1)

    app = _app("openai:gpt-4o-mini", "anthropic:claude-3-5-haiku-latest")
    assert snap_compare(app, terminal_size=(100, 30), run_before=fail)


def test_model_picker(snap_compare: Any) -> None:
    async def pick(pilot: Pilot[None]) -> None:
        await _ready(pilot)
        await pilot.press("ctrl+n")
        await wait_until(pilot, lambda: isinstance(pilot.app.screen, ModelPicker))
        await pilot.pause(0.2)

    assert snap_compare(_app("embedded:smollm2"), terminal_size=(100, 30), run_before=pick)
