"""`workbench ask` while another process holds the history database: the answers are
still shown, and the command says they were not stored, and why."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from providers.base import Message
from providers.registry import parse_target
from workbench.commands.ask import run_ask
from workbench.config import Settings
from workbench.store import Store
from workbench.wiring import make_registry


@pytest.fixture
def history(tmp_path: Path) -> Path:
    """A history that exists already, as after an earlier `ask`."""
    path = tmp_path / "workbench.db"
    Store(path).close()
    return path


@pytest.fixture
def held(history: Path) -> Iterator[sqlite3.Connection]:
    """Another process's long write: the database's write lock, held until the test ends."""
    other = sqlite3.connect(history, isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")
    try:
        yield other
    finally:
        other.execute("ROLLBACK")
        other.close()


def _rows(history: Path) -> int:
    with sqlite3.connect(history) as db:
        return int(db.execute("SELECT COUNT(*) FROM responses").fetchone()[0])


async def test_an_answer_the_busy_history_cannot_take_is_still_shown(
    history: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = Store(history)
    other = sqlite3.connect(history, isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")  # taken once the store is open, as in the report
    # The store's own wait, shortened so the test does not sit out the default 30 s.
    store.db.execute("PRAGMA busy_timeout = 300")
    registry = make_registry(Settings())
    targets = [parse_target("embedded:smollm2@max_tokens=4,temperature=0")]
    try:
        code = await run_ask(registry, targets, [Message("user", "Tell me a story")], store=store)
    finally:
        other.execute("ROLLBACK")
        other.close()
        store.close()
        await registry.aclose()
    out, err = capsys.readouterr()
    answer, header, row, *_ = out.splitlines()
    assert answer.strip()
    assert header.split()[:3] == ["target", "status", "TTFT"]
    assert row.split()[1] == "done"
    assert code == 1  # every target answered, but what the user asked for was not all done
    assert "not stored" in err and "busy" in err and str(history) in err, err
    assert "0.3 s" in err  # how long it waited, as the store was told
    assert _rows(history) == 0


def test_the_history_opens_while_another_process_writes_to_it(
    history: Path, held: sqlite3.Connection
) -> None:
    """Nothing to migrate, so nothing to wait for: opening only reads."""
    began = time.monotonic()
    with Store(history) as store:
        assert store.version > 0
    assert time.monotonic() - began < 5
