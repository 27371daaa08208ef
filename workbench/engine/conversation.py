"""A pane's conversation: its system prompt and the turns so far."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from providers.base import Message

SUMMARY_NOTE = "Summary of the earlier conversation: "


def with_summary(system: str, summary: str | None) -> str:
    """The system prompt with a summary of earlier turns at its end: there, and not as a
    turn, so the turns that follow keep their strict alternation."""
    if not summary:
        return system
    note = f"{SUMMARY_NOTE}{summary}"
    return f"{system}\n\n{note}" if system else note


def without_summary(system: str | None) -> str | None:
    """The system prompt a sent system message was made from (`with_summary`)."""
    if system is None or system.startswith(SUMMARY_NOTE):
        return None
    return system.split(f"\n\n{SUMMARY_NOTE}", 1)[0]


@dataclass
class Conversation:
    system: str | None = None
    turns: list[Message] = field(default_factory=list)
    switches: list[tuple[int, str]] = field(default_factory=list)
    """(turn index, new target) for each time the pane's model was replaced."""
    summary: str | None = None
    """What summarized turns said, in place of the turns themselves."""
    id: str = field(default_factory=lambda: uuid.uuid4().hex, compare=False)
    """Stored with each turn's response, so that history can put the turns of this chat
    back together, those that failed and were taken back out of it included."""

    def messages(self) -> list[Message]:
        system = with_summary(self.system or "", self.summary)
        head = [Message("system", system)] if system else []
        return [*head, *self.turns]

    def summarized(self, summary: str, keep: int = 0) -> int:
        """Replace all but the last `keep` exchanges, and any earlier summary, with `summary`;
        how many turns went. The summary replaces the earlier one rather than adding to it: it
        was asked for with the earlier one in view (`messages` carries it), so it covers it,
        and one added to the other would repeat it and grow with every summary."""
        cut = self._exchange_start(keep)
        gone, self.turns = self.turns[:cut], self.turns[cut:]
        self.summary = summary.strip()
        return len(gone)

    def drop_oldest(self) -> int:
        """Drop the oldest exchange (a user turn and its answer); how many turns went."""
        cut = min(2, len(self.turns))
        del self.turns[:cut]
        return cut

    def _exchange_start(self, keep: int) -> int:
        users = [i for i, m in enumerate(self.turns) if m.role == "user"]
        if keep <= 0 or keep > len(users):
            return len(self.turns) if keep <= 0 else 0
        return users[-keep]

    def ask(self, prompt: str, *, private: bool = False) -> list[Message]:
        """Add the user's prompt; the messages to send."""
        self.turns.append(Message("user", prompt, private))
        return self.messages()

    def answered(self, text: str) -> None:
        """Record the reply; a turn that produced nothing is taken back, so it can be retried.

        The answer to a private prompt is as private as the prompt: it may repeat it.
        """
        if text.strip():
            private = bool(self.turns) and self.turns[-1].private
            self.turns.append(Message("assistant", text, private))
        elif self.turns and self.turns[-1].role == "user":
            self.turns.pop()

    def retract(self) -> Message | None:
        """Take back the last exchange (for a retry); the prompt it started with."""
        if self.turns and self.turns[-1].role == "assistant":
            self.turns.pop()
        if self.turns and self.turns[-1].role == "user":
            return self.turns.pop()
        return None

    @property
    def private_turns(self) -> int:
        return sum(m.private for m in self.turns)

    def without_private(self) -> list[Message]:
        """The turns a cloud model may see: every private exchange left out."""
        return [m for m in self.turns if not m.private]

    def switched(self, target: str) -> None:
        self.switches.append((len(self.turns), target))

    def copy(self) -> Conversation:
        return Conversation(self.system, list(self.turns), list(self.switches), self.summary)
