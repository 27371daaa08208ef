"""The command palette (Ctrl+P): every key's action by name, and the actions with no key."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

from textual.app import SystemCommand
from textual.binding import Binding

if TYPE_CHECKING:
    from workbench.tui.app import WorkbenchApp


def commands(app: WorkbenchApp, textuals: Iterable[SystemCommand]) -> Iterator[SystemCommand]:
    for command in textuals:
        # Textual's own "Screenshot" delivers to a downloads folder and failed ("Failed to
        # save screenshot") where Ctrl+S works: the palette keeps Ctrl+S's, below.
        if command.title != "Screenshot":
            yield command
    for binding in app.BINDINGS:
        assert isinstance(binding, Binding)
        action = getattr(app, f"action_{binding.action}", None)
        if action is not None:
            yield SystemCommand(binding.description, f"{binding.key}", action)
    # Sticky and rare, so no key of its own: the palette is where the README sends users.
    yield SystemCommand(
        "Private mode",
        "Local targets only: cloud targets are refused (on / off)",
        app.action_private,
    )
    yield SystemCommand(
        "System prompt for this pane",
        "Set a system prompt for the current pane only",
        lambda: app.action_system_prompt(only_current=True),
    )
