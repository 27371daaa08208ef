"""A database from the first schema opens with today's code and keeps every row and value;
one from a newer workbench is used when it records that this code can, and refused otherwise.

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
import threading
import time
from pathlib import Path

import pytest

from providers.base import Message
from tests.test_concurrent_writers import opened_at_once
from workbench.engine.result import TargetResult
from workbench.history import load_comparison
from workbench.store import COMPAT_TABLE, MIGRATIONS, SchemaTooNewError, Store, usage_by_target
from workbench.suites.assertions import Outcome
from workbench.suites.runs import CaseResult, RunInfo, add_case_result, list_runs, start_run

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
    assert textwrap.dedent(MIGRATIONS[0].sql).strip() in FIXTURE.read_text(encoding="utf-8")


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


NEWER = len(MIGRATIONS) + 1
TOO_NEW = rf"newer llm-workbench \(schema version {NEWER};"


def _ahead_of_us(path: Path, readable_from: int | None = NEWER) -> Path:
    """A database one migration past this code, as the next release would leave it: a
    nullable column in every table (so an INSERT that does not name its columns fails), a
    new table, and `readable_from` recorded, or no record at all when None."""
    _v1_database(path)
    Store(path).close()
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("BEGIN")
    for table in ("responses", "votes", "runs", "case_results"):
        db.execute(f"ALTER TABLE {table} ADD COLUMN future_note TEXT")
    db.execute("CREATE TABLE future_things (id INTEGER PRIMARY KEY, what TEXT NOT NULL)")
    db.execute(f"PRAGMA user_version = {NEWER}")
    if readable_from is None:
        db.execute(f"DROP TABLE {COMPAT_TABLE}")
    else:
        db.execute(f"UPDATE {COMPAT_TABLE} SET readable_from = ?", (readable_from,))
    db.execute("COMMIT")
    db.close()
    return path


def _version_and_record(path: Path) -> tuple[int, list[tuple[object, ...]]]:
    db = sqlite3.connect(path)
    try:
        (version,) = db.execute("PRAGMA user_version").fetchone()
        tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master")}
        record = (
            db.execute(f"SELECT * FROM {COMPAT_TABLE}").fetchall() if COMPAT_TABLE in tables else []
        )
        return version, record
    finally:
        db.close()


def test_a_database_from_a_newer_version_is_refused_untouched(tmp_path: Path) -> None:
    """Its last migration needs newer code than this (`readable_from` past what we know)."""
    path = _ahead_of_us(tmp_path / "workbench.db")
    before = path.read_bytes()
    with pytest.raises(SchemaTooNewError, match=TOO_NEW):
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


def test_each_migration_says_which_code_can_use_it() -> None:
    """Never newer than itself, never older than the migration before: once a migration
    has locked older code out, an additive one after it cannot let that code back in."""
    readable_from = [m.readable_from for m in MIGRATIONS]
    assert readable_from[:3] == [1, 2, 2]  # 3 only added nullable columns
    for number, figure in enumerate(readable_from, start=1):
        assert 1 <= figure <= number
    assert readable_from == sorted(readable_from)


def _answer(text: str) -> TargetResult:
    result = TargetResult("echo:m", "echo", "openai", "m", False, status="done")
    result.text, result.output_tokens = text, 3
    return result


def test_a_newer_database_that_says_we_can_use_it_opens_and_takes_writes(
    tmp_path: Path,
) -> None:
    """Every kind of row this code writes lands in the newer tables, their new columns NULL
    (every INSERT names its columns), and the database stays at its version and record."""
    path = _ahead_of_us(tmp_path / "workbench.db", readable_from=len(MIGRATIONS))
    before = _version_and_record(path)
    with Store(path) as store:
        assert store.version == NEWER
        response_id = store.add_response(
            _answer("written by older code"), [Message("user", "hi")], origin="ask", batch="b-old"
        )
        (row,) = store.responses("b-old")
        assert (row["id"], row["text"], row["future_note"]) == (
            response_id,
            "written by older code",
            None,
        )
        store.add_vote("b-old", ["echo:m", "echo:n"], "echo:m")
        start_run(store, RunInfo("run-old", time.time(), None, "s", "s.toml", ["echo:m"], {}))
        case = CaseResult("c1", "echo:m", 0, _answer("ok"), [Outcome(True, "contains 'ok'")])
        add_case_result(store, "run-old", case, [Message("user", "q")], "key-1")
        assert [r.id for r in list_runs(store)] == ["run-old"]
    assert _version_and_record(path) == before == (NEWER, [(1, len(MIGRATIONS))])
    for table in ("votes", "runs", "case_results"):
        assert _rows(path, table, "future_note")[-1] == (None,)
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    assert db.execute("PRAGMA foreign_key_check").fetchall() == []
    db.close()


def test_a_newer_database_without_a_record_is_refused_untouched(tmp_path: Path) -> None:
    """Nothing says older code can use it (a release from before the record wrote it)."""
    path = _ahead_of_us(tmp_path / "workbench.db", readable_from=None)
    before = path.read_bytes()
    with pytest.raises(SchemaTooNewError, match=TOO_NEW):
        Store(path)
    assert path.read_bytes() == before


def _as_a_release_before_the_record_left_it(path: Path) -> Path:
    """Schema 3 as the releases before the compatibility record left a version 1 database:
    migrations 2 and 3 applied, and no record."""
    _v1_database(path)
    db = sqlite3.connect(path, isolation_level=None)
    for number in range(1, 3):
        db.executescript(
            f"BEGIN; {MIGRATIONS[number].sql}; PRAGMA user_version = {number + 1}; COMMIT;"
        )
    db.close()
    return path


def test_a_schema_3_database_from_before_the_record_gets_it_on_open(tmp_path: Path) -> None:
    path = _as_a_release_before_the_record_left_it(tmp_path / "workbench.db")
    assert _version_and_record(path) == (3, [])
    Store(path).close()
    assert _version_and_record(path) == (len(MIGRATIONS), [(1, MIGRATIONS[-1].readable_from)])


def test_a_fresh_database_gets_the_record_with_its_migrations(tmp_path: Path) -> None:
    path = tmp_path / "workbench.db"
    Store(path).close()
    assert _version_and_record(path) == (len(MIGRATIONS), [(1, MIGRATIONS[-1].readable_from)])


def test_a_database_migrated_past_us_while_we_wait_to_migrate_is_refused(
    tmp_path: Path,
) -> None:
    """A newer workbench holds the write lock and takes the database past what we know
    (to a schema we cannot use) while we open it: we read schema 3 on open, then wait for
    the lock. We must check again under it, and not write our own record over its own."""
    path = tmp_path / "workbench.db"
    Store(path).close()
    newer = sqlite3.connect(path, isolation_level=None)
    newer.execute("BEGIN IMMEDIATE")
    outcome: list[BaseException | None] = []

    def open_store() -> None:
        try:
            Store(path).close()
            outcome.append(None)
        except BaseException as error:  # a thread cannot fail the test itself
            outcome.append(error)

    opener = threading.Thread(target=open_store)
    opener.start()
    time.sleep(0.3)  # the opener has read the version by now, and waits for the lock
    newer.execute("ALTER TABLE responses ADD COLUMN future_note TEXT NOT NULL DEFAULT ''")
    newer.execute(f"PRAGMA user_version = {NEWER}")
    newer.execute(f"UPDATE {COMPAT_TABLE} SET readable_from = ?", (NEWER,))
    newer.execute("COMMIT")
    newer.close()
    opener.join(timeout=60)

    (result,) = outcome
    assert isinstance(result, SchemaTooNewError)
    assert _version_and_record(path) == (NEWER, [(1, NEWER)])


def test_two_first_opens_of_a_newer_database_both_succeed(tmp_path: Path) -> None:
    """Like tests/test_concurrent_writers.py for a new database: neither opener writes."""
    path = _ahead_of_us(tmp_path / "workbench.db", readable_from=len(MIGRATIONS))
    for _ in range(20):
        assert opened_at_once(path) == []
    assert _version_and_record(path) == (NEWER, [(1, len(MIGRATIONS))])
