"""Driving the real app in tests: wait for panes, read what they show."""

from __future__ import annotations

import time
from collections.abc import Callable

from textual.pilot import Pilot

from workbench.tui.app import WorkbenchApp
from workbench.tui.widgets.pane import Pane


def one_pane_app(base_url: str, model: str = "m") -> WorkbenchApp:
    """The app with one pane, `evil:<model>`, on a test's own OpenAI-compatible server at
    `base_url`, and no Ollama within reach."""
    from workbench.config import Endpoint, Settings
    from workbench.tui.app import make_app

    settings = Settings(endpoints={"evil": Endpoint(kind="openai", base_url=base_url)})
    return make_app(settings, [f"evil:{model}"], env={"OLLAMA_HOST": "127.0.0.1:9"})


async def wait_until(
    pilot: Pilot[None], condition: Callable[[], bool], timeout_s: float = 60
) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("the app did not reach the expected state in time")
        await pilot.pause(0.05)


async def send(pilot: Pilot[None], prompt: str) -> None:
    """Type the prompt (a long one is pasted: typing it key by key takes minutes) and send."""
    from workbench.tui.widgets.prompt import PromptBox

    app = pilot.app
    assert isinstance(app, WorkbenchApp)
    box = app.query_one(PromptBox)
    box.focus()
    if len(prompt) > 80:
        box.load_text(prompt)
        await pilot.press("enter")
    else:
        await pilot.press(*prompt, "enter")


async def wait_finished(pilot: Pilot[None], timeout_s: float = 60) -> None:
    app = pilot.app
    assert isinstance(app, WorkbenchApp)
    # Until a prompt's turns have started (`_sending`), a pane still holds its last result,
    # finished: that is not this prompt's end.
    await wait_until(
        pilot,
        lambda: (
            not app._sending
            and all(p.result is not None and p.result.finished and not p.busy for p in app.panes)
        ),
        timeout_s,
    )
    await pilot.pause(0.1)  # one more frame so the panes show the end


def shown(pane: Pane, widget_id: str) -> str:
    """The plain text a pane's header, metrics or error line shows."""
    from textual.widgets import Static

    return str(pane.query_one(f"#{widget_id}", Static).content)
