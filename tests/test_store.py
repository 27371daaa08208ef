"""SQLite history: records survive, the schema migrates, votes make a leaderboard."""

from __future__ import annotations

import json
import os
import sqlite3
import stat
from pathlib import Path

import pytest

from providers.base import Message
from workbench.cli import main
from workbench.engine.pricing import Cost
from workbench.engine.result import TargetResult
from workbench.store import MIGRATIONS, Store


def _result(status: str = "done", text: str = "Paris.") -> TargetResult:
    r = TargetResult("embedded:smollm2", "embedded:smollm2", "embedded", "smollm2", True)
    r.status = status  # type: ignore[assignment]
    r.text, r.input_tokens, r.output_tokens, r.tokens_exact = text, 30, 3, True
    r.ttft_s, r.e2e_s, r.cost = 0.1, 0.4, Cost("local", 0.0)
    return r


def test_a_response_is_kept_with_partial_text(tmp_path: Path) -> None:
    path = tmp_path / "wb.db"
    store = Store(path)
    store.add_response(_result("cancelled", "Par"), [Message("user", "Capital of France?")],
                       origin="chat", batch="b1")  # fmt: skip
    store.close()
    (row,) = Store(path).responses("b1")
    assert row["status"] == "cancelled" and row["text"] == "Par"
    assert json.loads(str(row["messages"])) == [{"role": "user", "content": "Capital of France?"}]
    assert row["cost_kind"] == "local" and row["tokens_exact"] == 1


def test_database_is_private_and_in_wal_mode(tmp_path: Path) -> None:
    path = tmp_path / "wb.db"
    Store(path).close()
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_opening_again_does_not_migrate_twice(tmp_path: Path) -> None:
    path = tmp_path / "wb.db"
    Store(path).close()
    store = Store(path)
    assert store.version == len(MIGRATIONS)
    store.close()


def test_an_older_database_is_upgraded_in_place(tmp_path: Path) -> None:
    path = tmp_path / "wb.db"
    sqlite3.connect(path).close()  # version 0: an empty file from before the first schema
    store = Store(path)
    assert store.version == len(MIGRATIONS)
    store.add_vote("b", ["x:a", "y:b"], "x:a")
    store.close()


def test_leaderboard_counts_wins_and_ties(tmp_path: Path) -> None:
    store = Store(tmp_path / "wb.db")
    store.add_vote("1", ["a:x", "b:y"], "a:x")
    store.add_vote("2", ["a:x", "b:y"], "a:x")
    store.add_vote("3", ["a:x", "b:y", "c:z"], None)
    store.add_vote("4", ["b:y", "c:z"], "c:z")
    board = {s.target: s for s in store.leaderboard()}
    assert (board["a:x"].wins, board["a:x"].ties, board["a:x"].battles) == (2, 1, 3)
    assert board["a:x"].win_rate == pytest.approx(2 / 3)
    assert board["b:y"].wins == 0 and board["b:y"].battles == 4
    assert next(s.target for s in store.leaderboard()) == "a:x"


def test_a_target_in_two_panes_fights_one_battle_and_alone_none(tmp_path: Path) -> None:
    store = Store(tmp_path / "wb.db")
    store.add_vote("1", ["a:x", "a:x", "b:y"], "a:x")
    store.add_vote("2", ["a:x", "a:x"], "a:x")  # the same model, twice: no battle of targets
    board = {s.target: (s.battles, s.wins) for s in store.leaderboard()}
    assert board == {"a:x": (1, 1), "b:y": (1, 0)}


def test_ask_stores_responses_and_never_the_key(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    secret = "sk-test-SECRET-value-123456"
    monkeypatch.setenv("WORKBENCH_HOME", str(tmp_path))
    monkeypatch.setenv("OPENAI_API_KEY", secret)
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")  # nothing listens there
    code = main(["ask", "Say hi.", "-t", "embedded:smollm2@max_tokens=4", "-t", "openai:gpt-4o"])
    assert code == 1
    out = capsys.readouterr().out
    store = Store(tmp_path / "workbench.db")
    rows = store._db.execute("SELECT target, status, error FROM responses").fetchall()
    store.close()
    assert sorted((t, s) for t, s, _ in rows) == [
        ("embedded:smollm2@max_tokens=4", "done"),
        ("openai:gpt-4o", "failed"),
    ]
    for file in tmp_path.rglob("*"):
        if file.is_file():
            assert secret.encode() not in file.read_bytes(), file
    assert secret not in out
