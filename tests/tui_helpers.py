"""Driving the real app in tests: wait for panes, read what they show, and `Loop`, the
OpenAI-compatible server on loopback that the `loop` fixture (conftest.py) starts."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from pytest import MonkeyPatch
from textual.pilot import Pilot
from textual.widgets import Input, OptionList
from werkzeug import Request, Response

from tests.fault_servers import WIRES, Cut, Endless, OpenAIWire
from workbench import locations
from workbench.config import Settings
from workbench.tui.app import WorkbenchApp, make_app
from workbench.tui.screens.picker import ModelPicker
from workbench.tui.screens.suites import SuitesScreen
from workbench.tui.widgets.pane import Pane
from workbench.tui.widgets.streamed import Transcript

NO_KEYS = {"OLLAMA_HOST": "127.0.0.1:9"}
"""No API keys, and an Ollama address nothing answers: only local targets answer."""
HELD_S = 120
"""How long a held answer goes on: keys typed while panes stream can take seconds each on a
busy machine."""


@dataclass
class Loop:
    """An OpenAI-compatible server on loopback (so its targets are local), at `url`.

    Each request is answered as `mode` says at the time: "up" (`back up`, with usage),
    "down" (503), "cut" (half an answer, then the connection closes) or "think" (reasoning,
    as a thinking model sends it, and never an answer). The models named in `held`, and in
    "think" every model, stream on until `release` is set."""

    url: str
    mode: str = "up"
    held: set[str] = field(default_factory=set)
    release: threading.Event = field(default_factory=threading.Event)
    asked: list[str] = field(default_factory=list)
    """The last message of each request, in order."""

    def answer(self, request: Request) -> Response:
        wire = WIRES["openai"]
        assert isinstance(wire, OpenAIWire)
        body: dict[str, Any] = json.loads(request.get_data() or b"{}")
        messages = body.get("messages") or [{}]
        self.asked.append(str(messages[-1].get("content", "")))
        if self.mode == "think":
            thought = wire._chunk([{"index": 0, "delta": {"reasoning_content": "hmm "}}])
            return wire.stream(then=[Endless(thought, self.release, limit_s=HELD_S)])
        if body.get("model") in self.held:
            endless = Endless(wire.text("la "), self.release, limit_s=HELD_S)
            return wire.stream("partial ", then=[endless])
        if self.mode == "down":
            return wire.error(503, "the server is down")
        if self.mode == "cut":
            return wire.stream("half an ", then=[Cut()])
        return wire.stream("back ", "up")

    def app(
        self, *targets: str, env: Mapping[str, str] | None = None, **settings: Any
    ) -> WorkbenchApp:
        """The app with `targets`, where `loop:<model>` is this server, and no Ollama or API
        keys within reach unless `env` gives them."""
        from workbench.config import Endpoint, Settings
        from workbench.tui.app import make_app

        endpoints = {"loop": Endpoint(kind="openai", base_url=self.url)}
        env = env if env is not None else {"OLLAMA_HOST": "127.0.0.1:9"}
        return make_app(Settings(endpoints=endpoints, **settings), list(targets), env=env)


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


def assert_in_order(text: str, parts: Sequence[str]) -> None:
    """Each of `parts` is in `text`, each after the one before it."""
    at = 0
    for part in parts:
        assert part in text[at:], f"{part!r} missing, or out of order, in {text!r}"
        at = text.index(part, at) + len(part)


def toasts(app: WorkbenchApp, monkeypatch: MonkeyPatch, severity: str | None = None) -> list[str]:
    """The messages of the toasts `app` shows from now on (only those of `severity`, if set)."""
    notes: list[str] = []
    real = app.notify

    def notify(message: str, **kwargs: Any) -> None:
        if severity is None or kwargs.get("severity") == severity:
            notes.append(message)
        real(message, **kwargs)

    monkeypatch.setattr(app, "notify", notify)
    return notes


def app_for(loop: Loop | None, *targets: str) -> WorkbenchApp:
    """The app on `targets`: `loop`'s if given (its endpoint configured), else keyless."""
    return loop.app(*targets) if loop else make_app(Settings(), list(targets), env=NO_KEYS)


async def pick_typed(pilot: Pilot[None], key: str, target: str) -> None:
    """Open the picker with `key`, move to its text box with Tab and type `target`."""
    await pilot.press(key)
    await wait_until(pilot, lambda: isinstance(pilot.app.screen, ModelPicker))
    await pilot.press("tab")
    assert isinstance(pilot.app.focused, Input)
    await pilot.press(*target, "enter")
    await wait_until(pilot, lambda: not isinstance(pilot.app.screen, ModelPicker))


def transcript_text(pane: Pane) -> str:
    """The pane's transcript as it is shown, line by line."""
    return "\n".join(pane.query_one(Transcript).plain_lines())


def screen_text(app: WorkbenchApp) -> str:
    """The whole screen as text, toasts included."""
    return app.export_screenshot().replace("&#160;", " ")


async def open_suite(pilot: Pilot[None], app: WorkbenchApp, name: str) -> SuitesScreen:
    """F8, then pick the suite whose file is called `name`; its screen, once it is loaded."""
    await pilot.press("f8")
    await wait_until(pilot, lambda: isinstance(app.screen, SuitesScreen))
    screen = app.screen
    assert isinstance(screen, SuitesScreen)
    suites = screen.query_one("#suite-list", OptionList)
    index = next(i for i in range(suites.option_count)
                 if suites.get_option_at_index(i).id.endswith(name))  # type: ignore[union-attr]  # fmt: skip
    suites.focus()
    suites.highlighted = index
    await pilot.press("enter")
    await wait_until(pilot, lambda: screen.suite is not None)
    return screen


@contextmanager
def history_held() -> Iterator[None]:
    """Another process (another workbench) writing to the history for as long as the
    block lasts: its write lock, taken from a connection of its own."""
    other = sqlite3.connect(locations.database_path(), isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        yield
    finally:
        other.execute("ROLLBACK")
        other.close()
