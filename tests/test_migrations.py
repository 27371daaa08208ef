"""A database from the first schema opens with today's code and keeps every row and value.

The fixture `fixtures/schema_v1.sql` is the first migration copied literally plus rows of
every kind (unicode, cancelled with partial text, failed, unknown price, votes with a tie);
it does not import the migrations, so editing them cannot quietly change what it tests.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from workbench.history import load_comparison
from workbench.store import MIGRATIONS, SchemaTooNewError, Store, usage_by_target
from workbench.suites.runs import list_runs

FIXTURE = Path(__file__).parent / "fixtures" / "schema_v1.sql"
ROOT = Path(__file__).resolve().parent.parent


def _v1_database(path: Path) -> Path:
    db = sqlite3.connect(path)
    db.executescript(FIXTURE.read_text(encoding="utf-8"))
    db.close()
    return path


def _rows(path: Path, table: str, columns: str = "*") -> list[tuple[object, ...]]:
    db = sqlite3.connect(path)
    try:
        return db.execute(f"SELECT {columns} FROM {table} ORDER BY id").fetchall()
    finally:
        db.close()


def _columns(path: Path, table: str) -> list[str]:
    db = sqlite3.connect(path)
    try:
        return [row[1] for row in db.execute(f"PRAGMA table_info({table})")]
    finally:
        db.close()


def test_the_first_migration_is_never_edited() -> None:
    """Shipped migrations are history: a change belongs in a new migration at the end."""
    assert textwrap.dedent(MIGRATIONS[0]).strip() in FIXTURE.read_text(encoding="utf-8")


def test_a_version_1_database_upgrades_and_keeps_every_row(tmp_path: Path) -> None:
    path = _v1_database(tmp_path / "workbench.db")
    v1_columns = _columns(path, "responses")
    responses_before = _rows(path, "responses")
    votes_before = _rows(path, "votes")
    assert len(responses_before) == 6 and len(votes_before) == 3

    store = Store(path)
    assert store.version == len(MIGRATIONS)
    store.close()

    # Every v1 value survives bit for bit; new columns are added, never filled in.
    assert _rows(path, "responses", ", ".join(v1_columns)) == responses_before
    assert _rows(path, "votes") == votes_before
    assert _rows(path, "responses", "request_key") == [(None,)] * 6
    exactness = "input_tokens_exact, output_tokens_exact"
    assert _rows(path, "responses", exactness) == [(None, None)] * 6
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    assert db.execute("PRAGMA foreign_key_check").fetchall() == []
    db.close()


def test_an_upgraded_database_answers_every_query(tmp_path: Path) -> None:
    store = Store(_v1_database(tmp_path / "workbench.db"))
    try:
        (chat,) = [r for r in store.responses("b-chat-1") if r["target"] == "embedded:smollm2"]
        assert chat["text"] == "こんにちは — and in French, « Bonjour ! » 👋"
        cancelled, failed = store.responses("b-ask-2")
        assert (cancelled["status"], cancelled["text"]) == (
            "cancelled",
            "Pages in a B-tree,\nwrite-ahead log",
        )
        assert failed["error_kind"] == "auth" and failed["text"] == ""

        # Rows from before each count had its own flag: `tokens_exact` says it for both.
        chat_panes = load_comparison(store, "b-chat-1")
        ask_panes = load_comparison(store, "b-ask-2")
        assert chat_panes is not None and ask_panes is not None
        exact = [(p.result.input_exact, p.result.output_exact) for p in chat_panes.panes]
        assert exact == [(True, True)] * 2
        exact = [(p.result.input_exact, p.result.output_exact) for p in ask_panes.panes]
        assert exact == [(False, False)] * 2

        board = {s.target: (s.battles, s.wins, s.ties) for s in store.leaderboard()}
        assert board == {
            "embedded:smollm2": (2, 1, 0),
            "openai:gpt-4o-mini": (1, 1, 0),
            "ollama:llama3.2:1b@temperature=0.2": (1, 0, 1),
            "anthropic:claude-3-5-haiku-latest": (1, 0, 1),
            "lmstudio:qwen2.5-7b-instruct": (1, 0, 0),
        }

        usage = {u.target: u for u in usage_by_target(store)}
        assert usage["embedded:smollm2"].requests == 2
        assert usage["embedded:smollm2"].output_tokens == 14 + 7
        assert usage["openai:gpt-4o-mini"].cost_usd == pytest.approx(1.38e-05)
        assert usage["lmstudio:qwen2.5-7b-instruct"].cost_usd is None  # unknown, never $0
        assert list_runs(store) == []  # suites came with v2: none yet, and no error

        # The upgraded database takes new writes like a fresh one.
        store.add_vote("b-new", ["a:x", "b:y"], "a:x")
        assert len(store.leaderboard()) == 7
    finally:
        store.close()


def test_opening_an_upgraded_database_again_changes_nothing(tmp_path: Path) -> None:
    path = _v1_database(tmp_path / "workbench.db")
    Store(path).close()
    once = _rows(path, "responses"), _rows(path, "votes")
    Store(path).close()
    assert (_rows(path, "responses"), _rows(path, "votes")) == once


def _ahead_of_us(path: Path) -> Path:
    _v1_database(path)
    Store(path).close()
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    db.close()
    return path


def test_a_database_from_a_newer_version_is_refused_untouched(tmp_path: Path) -> None:
    path = _ahead_of_us(tmp_path / "workbench.db")
    before = path.read_bytes()
    newer = len(MIGRATIONS) + 1
    with pytest.raises(SchemaTooNewError, match=rf"newer llm-workbench \(schema version {newer};"):
        Store(path)
    assert path.read_bytes() == before
    assert _rows(path, "votes", "count(*)") == [(3,)]


def test_the_cli_says_so_in_one_line(tmp_path: Path) -> None:
    _ahead_of_us(tmp_path / "workbench.db")
    env = os.environ | {"WORKBENCH_HOME": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-m", "workbench.cli", "leaderboard"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert "was written by a newer llm-workbench" in done.stderr
    assert "WORKBENCH_HOME" in done.stderr
