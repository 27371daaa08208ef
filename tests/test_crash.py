"""SIGKILL in the middle of a suite run or a chat: nothing finished is lost, nothing half-written.

The workbench runs in a child process against a loopback OpenAI-compatible server, which
answers most prompts at once and stalls on the ones that say "slow" after sending part of
the answer, so the kill always lands while an answer is mid-stream. The test waits by
polling the database (read-only) for the answers it expects, never by sleeping blindly.
"""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from tests.child_process import workbench_env
from tests.fault_servers import WIRES, Part, Stall, threaded_server
from workbench.store import Store

ROOT = Path(__file__).resolve().parent.parent
WAIT_S = 90.0
WORDS = 10


def full_answer(question: str) -> str:
    return f"answer to {question}:" + "".join(f" word{i}" for i in range(WORDS))


@dataclass
class Loopback:
    """The server's knobs: which prompts stall, how slowly the others stream."""

    url: str
    release: threading.Event = field(default_factory=threading.Event)
    stalling: bool = True
    pause_s: float = 0.0
    stalled: list[str] = field(default_factory=list)
    requests: int = 0


@pytest.fixture(scope="module")
def make_httpserver() -> Iterator[HTTPServer]:
    with threaded_server() as server:
        yield server


@pytest.fixture
def loopback(httpserver: HTTPServer) -> Iterator[Loopback]:
    wire = WIRES["openai"]
    state = Loopback(httpserver.url_for("/v1"))

    def answer(request: Request) -> Response:
        body = json.loads(request.data)
        state.requests += 1
        question = body["messages"][-1]["content"]
        stall = state.stalling and ("slow" in question or body["model"] == "slow")
        first, *rest = full_answer(question).split(" word")
        chunks: list[Part] = [wire.text(first)]
        for index, word in enumerate(rest):
            if state.pause_s:
                chunks.append(Stall(threading.Event(), state.pause_s))  # a slow token
            chunks.append(wire.text(" word" + word))
            if stall and index == 2:  # hang with part of the answer sent
                state.stalled.append(question)
                chunks.append(Stall(state.release, WAIT_S))
        return wire.stream(then=[*chunks, *wire.end()])

    httpserver.expect_request(wire.path, method="POST").respond_with_handler(answer)
    yield state
    state.release.set()  # a stalled response thread must not outlive the test


def _suite(tmp_path: Path, questions: list[str]) -> Path:
    cases = "".join(
        f"  - id: {q}\n    vars: {{q: {q}}}\n    expect: [{{contains: word{WORDS - 1}}}]\n"
        for q in questions
    )
    path = tmp_path / "crash.yaml"
    path.write_text(f"name: crash\ntargets: [loop:m]\nprompt: '{{{{q}}}}'\ncases:\n{cases}")
    return path


def _workbench(*args: str, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "workbench.cli", *args],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _count(db: Path, sql: str) -> int:
    """A read-only look at the database while the child writes to it."""
    if not db.exists():
        return 0
    connection = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        return int(connection.execute(sql).fetchone()[0])
    except sqlite3.OperationalError:  # the child has not created the tables yet
        return 0
    finally:
        connection.close()


def _kill_when(
    proc: subprocess.Popen[str],
    db: Path,
    sql: str,
    at_least: int,
    also: Callable[[], bool] = lambda: True,
) -> None:
    """SIGKILL the child once `sql` counts `at_least` rows and `also` holds."""
    deadline = time.monotonic() + WAIT_S
    while _count(db, sql) < at_least or not also():
        if proc.poll() is not None:
            raise AssertionError(f"the child exited early: {proc.communicate()}")
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"never saw {at_least} rows for {sql!r} (and {also})")
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL


@dataclass(frozen=True)
class Stored:
    case_id: str
    status: str
    text: str


def _check_run(db: Path) -> set[Stored]:
    """Opens as the workbench would after a crash; every stored case result is whole."""
    store = Store(db)
    try:
        assert store.db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        rows = store.db.execute(
            "SELECT c.case_id, r.status, r.text FROM case_results c "
            "LEFT JOIN responses r ON r.id = c.response_id"
        ).fetchall()
        orphans = store.db.execute(
            "SELECT count(*) FROM responses WHERE id NOT IN (SELECT response_id FROM case_results)"
        ).fetchone()[0]
    finally:
        store.close()
    assert orphans == 0, "a response was stored without its case result"
    stored = {Stored(*row) for row in rows}
    for row in stored:
        assert row.status is not None, f"case result {row.case_id} lost its response"
        assert (row.status, row.text) == ("done", full_answer(row.case_id))
    assert len({row.case_id for row in stored}) == len(rows), "a case was stored twice"
    return stored


def _run_id(db: Path) -> str:
    connection = sqlite3.connect(db)
    try:
        ((run_id,),) = connection.execute("SELECT id FROM runs").fetchall()
        return str(run_id)
    finally:
        connection.close()


def test_suite_run_killed_mid_answer_keeps_finished_cases_and_resumes(
    tmp_path: Path, loopback: Loopback
) -> None:
    fast = [f"fast{i}" for i in range(1, 5)]
    slow = ["slow1", "slow2"]
    suite = _suite(tmp_path, fast + slow)
    env = workbench_env(tmp_path, loopback.url)
    db = tmp_path / "home" / "workbench.db"

    # One request at a time, in case order: the fast cases finish, then slow1 hangs mid-answer.
    run = _workbench("run", str(suite), "--concurrency", "1", env=env)

    # Killed only once slow1 hangs mid-answer too: the kill lands while an answer streams.
    def hanging() -> bool:
        return loopback.stalled == ["slow1"]

    _kill_when(run, db, "SELECT count(*) FROM case_results", len(fast), hanging)

    assert {s.case_id for s in _check_run(db)} == set(fast)
    assert _count(db, "SELECT count(*) FROM runs WHERE finished_at IS NULL") == 1

    loopback.stalling = False
    loopback.release.set()
    resumed = _workbench("run", "--resume", _run_id(db), env=env)
    out, err = resumed.communicate(timeout=WAIT_S)
    assert resumed.returncode == 0, err
    assert {s.case_id for s in _check_run(db)} == set(fast + slow)
    assert _count(db, "SELECT count(*) FROM runs WHERE finished_at IS NOT NULL") == 1
    assert "6/6" in out


KILL_POINTS = (3, 8, 14)


def test_repeated_kills_lose_nothing_and_the_run_still_finishes(
    tmp_path: Path, loopback: Loopback
) -> None:
    """Killed at three points while answers stream concurrently, resumed after each."""
    questions = [f"q{i:02}" for i in range(20)]
    suite = _suite(tmp_path, questions)
    env = workbench_env(tmp_path, loopback.url)
    db = tmp_path / "home" / "workbench.db"
    loopback.pause_s = 0.03  # ~0.3 s an answer, several in flight: kills land mid-stream
    sql = "SELECT count(*) FROM case_results"

    kept: set[Stored] = set()
    child = _workbench("run", str(suite), "--concurrency", "3", env=env)
    for point in KILL_POINTS:
        _kill_when(child, db, sql, point)
        now = _check_run(db)
        assert kept <= now, "a case result stored before the crash is gone"
        assert len(now) >= point
        kept = now
        lost_in_flight = loopback.requests - len(now)
        child = _workbench("run", "--resume", _run_id(db), "--concurrency", "3", env=env)
    _out, err = child.communicate(timeout=WAIT_S)
    assert child.returncode == 0, err
    final = _check_run(db)
    assert kept <= final
    assert {s.case_id for s in final} == set(questions)
    # Answers were streaming when the kills landed: they were dropped whole, then redone.
    assert lost_in_flight > 0
    print(f"{len(KILL_POINTS)} kills; {lost_in_flight} answers cut mid-stream and redone")


def test_chat_killed_while_one_pane_streams_keeps_the_finished_answer(
    tmp_path: Path, loopback: Loopback
) -> None:
    """The TUI in its own process: one pane answers, the other hangs mid-answer; SIGKILL."""
    env = workbench_env(tmp_path, loopback.url)
    db = tmp_path / "home" / "workbench.db"
    prompt = "hello"
    chat = subprocess.Popen(
        [sys.executable, "-m", "tests.chat_driver", prompt, "loop:fast", "loop:slow"],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )

    def hanging() -> bool:
        return loopback.stalled == [prompt]

    _kill_when(chat, db, "SELECT count(*) FROM responses", 1, hanging)

    store = Store(db)
    try:
        assert store.db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        rows = store.db.execute("SELECT origin, status, text, messages FROM responses").fetchall()
    finally:
        store.close()
    ((origin, status, text, messages),) = rows
    assert (origin, status, text) == ("chat", "done", full_answer(prompt))
    assert json.loads(messages) == [{"role": "user", "content": prompt}]
