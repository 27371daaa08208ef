"""The TUI's writes to the history: a busy, read-only or newer history loses no turn and
stops nothing on the screen."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass

from providers.base import Message
from workbench.engine.result import TargetResult
from workbench.store import SchemaTooNewError, Store, is_busy, why_not_written

RETRY_S = 5.0
"""How often the turns that wait are tried again."""
WAIT_S = 0.5
"""How long a turn's write waits for another process's write: the UI loop waits with it."""
CLOSING_WAIT_S = 5.0
"""How long the last writes wait as the app closes: past it, quitting would seem stuck."""


@dataclass(frozen=True, slots=True)
class Turn:
    result: TargetResult
    sent: list[Message]
    batch: str
    conversation: str


class HistoryWriter:
    """Writes each finished turn; one that cannot be written now (another process holds the
    history) waits here and goes with the next `retry`. A history this session may never
    write (read-only, or a newer workbench's) is said once, and nothing is kept waiting."""

    def __init__(self, store: Store, say: Callable[[str, bool], None]) -> None:
        self._store = store
        self._say = say
        """Shows a message; True for an error, False for news."""
        self._waiting: list[Turn] = []
        self._trouble: str | None = None
        """Why writes are failing now, as last said."""
        self._never = False

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    def add(self, turn: Turn) -> None:
        if self._never:
            return
        self._waiting.append(turn)
        self.retry()

    def retry(self, wait_s: float = WAIT_S) -> None:
        """Write the turns that wait, oldest first, stopping at the first that cannot go."""
        written = 0
        while self._waiting and not self._never:
            turn = self._waiting[0]
            try:
                with self._store.waiting_at_most(wait_s):
                    self._store.add_response(
                        turn.result, turn.sent, origin="chat", batch=turn.batch,
                        conversation=turn.conversation,
                    )  # fmt: skip
            except (sqlite3.Error, SchemaTooNewError) as error:
                self._failed(error, wait_s)
                return
            self._waiting.pop(0)
            written += 1
        if written and self._trouble is not None:
            self._trouble = None
            self._say(f"History written again ({written} turns that waited)", False)

    def _failed(self, error: sqlite3.Error | SchemaTooNewError, waited_s: float) -> None:
        if isinstance(error, SchemaTooNewError) or not is_busy(error):
            # It will not clear while the app runs: say so once, and keep nothing waiting.
            self._never = True
            self._waiting.clear()
            why = str(error) if isinstance(error, SchemaTooNewError) else self._why(error, 0)
            self._say(f"This session is not being stored: {why}", True)
            return
        why = self._why(error, waited_s)
        if why != self._trouble:
            self._trouble = why
            self._say(f"Not stored yet: {why}. The turns wait here and go once it can", True)

    def _why(self, error: sqlite3.Error, waited_s: float) -> str:
        return why_not_written(error, self._store.path, waited_s)
