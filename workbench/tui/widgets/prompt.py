"""The prompt box: multi-line, Enter sends, Ctrl+J adds a line, Up/Down walk the history."""

from __future__ import annotations

from dataclasses import dataclass

from textual import events
from textual.message import Message
from textual.widgets import TextArea


class PromptBox(TextArea):
    """Enter sends because Shift+Enter cannot be told apart from Enter over most SSH links."""

    @dataclass
    class Submitted(Message):
        text: str
        private: bool = False
        """Marked private (F5): for local models only."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, soft_wrap=True, show_line_numbers=False, tab_behavior="focus")
        self.prompts: list[tuple[str, bool]] = []
        """The prompts sent, each with whether it was private: one recalled with ↑ is as
        private as it was, or Enter would send it to the cloud panes that skipped it."""
        self._position: int | None = None
        self._draft = ""
        self._draft_private = False
        self.private = False
        self._show_private()

    def toggle_private(self) -> bool:
        """Mark (or unmark) the prompt being written as private; the new state."""
        self.private = not self.private
        self._show_private()
        return self.private

    def _show_private(self) -> None:
        self.set_class(self.private, "private")
        if self.private:
            self.border_title = "private prompt — local models only · F5 unmark · Enter send"
        else:
            self.border_title = "prompt — Enter send · Ctrl+J new line · ↑↓ history"

    async def _on_key(self, event: events.Key) -> None:
        if event.key == "enter":
            event.stop()
            event.prevent_default()
            self._submit()
            return
        if event.key == "ctrl+j":
            event.stop()
            event.prevent_default()
            self.insert("\n")
            return
        row = self.cursor_location[0]
        if event.key == "up" and row == 0 and self.prompts:
            event.stop()
            event.prevent_default()
            self._walk(-1)
            return
        if (
            event.key == "down"
            and row == self.document.line_count - 1
            and self._position is not None
        ):
            event.stop()
            event.prevent_default()
            self._walk(+1)
            return
        await super()._on_key(event)

    def _submit(self) -> None:
        text = self.text.strip()
        if not text:
            self.notify("The prompt is empty: type something, then Enter", severity="warning")
            return
        # The box keeps it until the app takes it (`sent`): one the app refuses, with panes
        # still answering, stays for the next Enter instead of only in the ↑ history.
        self.post_message(self.Submitted(text, self.private))

    def sent(self, text: str, private: bool) -> None:
        """The app took the prompt: into the history, and the box is ready for the next."""
        if not self.prompts or self.prompts[-1] != (text, private):
            self.prompts.append((text, private))
        self._position = None
        if self.text.strip() == text:  # not what was typed since Enter, if anything was
            self.clear()
        # One prompt at a time: the next one is ordinary unless marked again.
        self.private = False
        self._show_private()

    def _walk(self, step: int) -> None:
        if self._position is None:
            self._draft, self._draft_private = self.text, self.private
            self._position = len(self.prompts)
        self._position = max(0, min(len(self.prompts), self._position + step))
        if self._position == len(self.prompts):
            text, self.private = self._draft, self._draft_private
            self._position = None
        else:
            text, self.private = self.prompts[self._position]
        self.load_text(text)
        self.move_cursor(self.document.end)
        self._show_private()
