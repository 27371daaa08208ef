"""The TUI's writes to the history: a busy, read-only or newer history loses no turn and
stops nothing on the screen."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass

from providers.base import Message
from workbench.commands import format as fmt
from workbench.engine.result import TargetResult
from workbench.store import SchemaTooNewError, Store, is_read_only, why_not_written

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


def lasting(error: sqlite3.Error | SchemaTooNewError) -> bool:
    """Whether the error will stand for the rest of the session: a busy history, a full
    disk or an I/O error may clear, a read-only or a newer workbench's history will not."""
    return isinstance(error, SchemaTooNewError) or is_read_only(error)


class HistoryWriter:
    """Writes each finished turn; one that cannot be written now (another process holds the
    history, the disk is full) waits here and goes with the next `retry`. A history this
    session may never write (read-only, or a newer workbench's) is said once, and nothing is
    kept waiting."""

    def __init__(self, store: Store, say: Callable[[str, bool], None]) -> None:
        self._store = store
        self._say = say
        """Shows a message; True for an error, False for news."""
        self._waiting: list[Turn] = []
        self._trouble: str | None = None
        """Why writes are failing now, as last said."""
        self.never = store.read_only  # said by the app as it opens
        """Nothing is written this session; `lost` counts what was not."""
        self.lost = 0
        """Turns that will not be written: the history refuses them for good."""

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    def add(self, turn: Turn, *, now: bool = True) -> None:
        """Keep `turn` to write; `now`, try at once (at exit, all are kept first, then
        tried together, so that quitting waits once)."""
        if self.never:
            self.lost += 1
            return
        self._waiting.append(turn)
        if now:
            self.retry()

    def retry(self, wait_s: float = WAIT_S) -> None:
        """Write the turns that wait, oldest first, stopping at the first that cannot go."""
        written = 0
        while self._waiting and not self.never:
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
            self._say(f"History written again ({fmt.plural(written, 'turn')} that waited)", False)

    def _failed(self, error: sqlite3.Error | SchemaTooNewError, waited_s: float) -> None:
        why = why_not_written(error, self._store.path, waited_s, retried=True)
        if lasting(error):
            self.never = True
            self.lost += len(self._waiting)
            self._waiting.clear()
            self._say(f"This session is not being stored: {why}", True)
            return
        if why != self._trouble:
            self._trouble = why
            self._say(f"Not stored yet: {why}. The turns wait here and go once it can", True)
