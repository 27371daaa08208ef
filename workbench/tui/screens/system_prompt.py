"""Edit the system prompt, for every pane or for one."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Label, TextArea

from workbench.sanitize import clean_line


class SystemPromptEditor(ModalScreen[str | None]):
    """Returns the new system prompt ("" clears it), or None when cancelled."""

    BINDINGS = [
        Binding("ctrl+s", "save", "Save", priority=True),
        Binding("escape", "cancel", "Cancel"),
    ]

    def __init__(self, current: str | None, scope: str) -> None:
        super().__init__()
        self.current = current or ""
        self.scope = scope

    def compose(self) -> ComposeResult:
        with Vertical(id="system-editor"):
            yield Label(f"System prompt — {clean_line(self.scope)}", markup=False)
            yield TextArea(self.current, id="system-text", soft_wrap=True)
            yield Label("Ctrl+S save · Esc cancel", classes="help")

    def on_mount(self) -> None:
        text = self.query_one(TextArea)
        text.focus()
        text.move_cursor(text.document.end)  # what the user types adds to the prompt

    def action_save(self) -> None:
        self.dismiss(self.query_one(TextArea).text.strip())

    def action_cancel(self) -> None:
        self.dismiss(None)
