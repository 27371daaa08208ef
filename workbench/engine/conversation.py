"""A pane's conversation: its system prompt and the turns so far."""

from __future__ import annotations

from dataclasses import dataclass, field

from providers.base import Message


@dataclass
class Conversation:
    system: str | None = None
    turns: list[Message] = field(default_factory=list)
    switches: list[tuple[int, str]] = field(default_factory=list)
    """(turn index, new target) for each time the pane's model was replaced."""

    def messages(self) -> list[Message]:
        head = [Message("system", self.system)] if self.system else []
        return [*head, *self.turns]

    def ask(self, prompt: str) -> list[Message]:
        """Add the user's prompt; the messages to send."""
        self.turns.append(Message("user", prompt))
        return self.messages()

    def answered(self, text: str) -> None:
        """Record the reply; a turn that produced nothing is taken back, so it can be retried."""
        if text.strip():
            self.turns.append(Message("assistant", text))
        elif self.turns and self.turns[-1].role == "user":
            self.turns.pop()

    def retract(self) -> str | None:
        """Take back the last exchange (for a retry); the prompt it started with."""
        if self.turns and self.turns[-1].role == "assistant":
            self.turns.pop()
        if self.turns and self.turns[-1].role == "user":
            return self.turns.pop().content
        return None

    def switched(self, target: str) -> None:
        self.switches.append((len(self.turns), target))

    def copy(self) -> Conversation:
        return Conversation(self.system, list(self.turns), list(self.switches))
