"""Two workbench processes writing to one data dir at once lose nothing and corrupt nothing.

SQLite in WAL mode allows one writer at a time; the other must wait its turn (the store's
busy timeout) instead of failing with "database is locked". Both writers start on a data
dir with no database yet, so they also race to create it and run the migrations.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from providers.base import Message
from tests.fault_servers import WIRES
from tests.store_writer import answer_text
from workbench.engine.result import TargetResult
from workbench.store import MIGRATIONS, Store

ROOT = Path(__file__).resolve().parent.parent
RECORDS_EACH = 400


def _env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    return env | {"WORKBENCH_HOME": str(home), "PYTHONPATH": str(ROOT)} | extra


def _read_only(db: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{db}?mode=ro", uri=True)


def test_two_processes_writing_at_once_keep_every_record(tmp_path: Path) -> None:
    home, start = tmp_path / "home", tmp_path / "go"
    writers = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.store_writer", name, str(RECORDS_EACH), str(start)],
            env=_env(home),
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name in ("alpha", "beta")
    ]
    # Released together only once both have opened the store: a writer still importing
    # while the other wrote all its records would test nothing.
    deadline = time.monotonic() + 120
    while not all((tmp_path / f"{n}.ready").exists() for n in ("alpha", "beta")):
        assert time.monotonic() < deadline, "the writers never got ready"
        for writer in writers:
            if writer.poll() is not None:
                pytest.fail(f"a writer died before writing:\n{writer.communicate()[1]}")
        time.sleep(0.01)
    start.touch()
    outputs = [w.communicate(timeout=120) for w in writers]
    for writer, (_out, err) in zip(writers, outputs, strict=True):
        assert "locked" not in err
        assert writer.returncode == 0, err

    db = _read_only(home / "workbench.db")
    assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    rows = db.execute("SELECT batch, output_tokens, text FROM responses").fetchall()
    assert len(rows) == 2 * RECORDS_EACH
    for name in ("alpha", "beta"):
        mine = sorted((n, text) for batch, n, text in rows if batch == name)
        assert mine == [(i, answer_text(name, i)) for i in range(RECORDS_EACH)]
    # The two really were writing at the same time: otherwise this test proves nothing
    # about contention. (Whether their rows interleave is up to SQLite's busy handler,
    # which may let one writer finish while the other backs off.)
    (a_began, a_ended), (b_began, b_ended) = (map(float, out.split()) for out, _ in outputs)
    assert a_began < b_ended and b_began < a_ended, "the writers ran one after the other"
    (version,) = db.execute("PRAGMA user_version").fetchone()
    assert version >= 2


def test_two_first_opens_at_the_same_moment_both_succeed(tmp_path: Path) -> None:
    """Both read the new database, then both need it alone to switch it to WAL.

    SQLite refuses one of them at once rather than risk a deadlock, so without a retry about
    one round in four failed with "database is locked". Threads in one process contend
    through the same file locks as two processes, and start within microseconds of each other.
    """
    for round_ in range(100):
        db = tmp_path / str(round_) / "workbench.db"
        assert opened_at_once(db) == []
        with Store(db) as store:
            assert store.version == len(MIGRATIONS)


@pytest.fixture
def echo_server(httpserver: HTTPServer) -> Iterator[str]:
    """An OpenAI-compatible server that answers each request with its model name."""
    wire = WIRES["openai"]

    def answer(request: Request) -> Response:
        return wire.stream(f"answer from {json.loads(request.data)['model']}")

    httpserver.expect_request(wire.path).respond_with_handler(answer)
    yield httpserver.url_for("/v1")


def test_concurrent_ask_commands_store_every_answer(tmp_path: Path, echo_server: str) -> None:
    """The real CLI path: `workbench ask` processes overlapping on one data dir."""
    home = tmp_path / "home"
    config = tmp_path / "config.toml"
    config.write_text(f'[endpoints.echo]\nkind = "openai"\nbase_url = "{echo_server}"\n')
    env = _env(home, WORKBENCH_CONFIG=str(config))
    rounds, per_round, targets = 3, 2, ["echo:a", "echo:b", "echo:c"]
    for _ in range(rounds):
        command = [sys.executable, "-m", "workbench.cli", "ask", "--json", "hello"]
        for target in targets:
            command += ["-t", target]
        procs = [
            subprocess.Popen(command, env=env, cwd=ROOT, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
            for _ in range(per_round)
        ]  # fmt: skip
        for proc in procs:
            _out, err = proc.communicate(timeout=120)
            assert proc.returncode == 0, err
            assert "locked" not in err

    db = _read_only(home / "workbench.db")
    assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    rows = db.execute("SELECT model, status, text, origin FROM responses").fetchall()
    assert len(rows) == rounds * per_round * len(targets)
    assert {(status, origin) for _, status, _, origin in rows} == {("done", "ask")}
    assert all(text == f"answer from {model}" for model, _, text, _ in rows)


def test_a_second_store_in_the_process_and_a_reader_elsewhere_lose_nothing(
    tmp_path: Path,
) -> None:
    """The app keeps its store open while a screen opens one of its own; then another
    process reads the history (`workbench history` in a second terminal). Opening the second
    store must not drop the first one's locks: the reader then took the WAL for unused,
    deleted it, and the app's later writes broke the database ("disk I/O error")."""
    db = tmp_path / "workbench.db"
    app_store = Store(db)
    for index in range(50):
        _write(app_store, "app", index)
    Store(db).close()  # the suites screen's own, for one run
    reader = (
        f"import sqlite3; c = sqlite3.connect({str(db)!r}); "
        "c.execute('SELECT COUNT(*) FROM responses').fetchone(); c.close()"
    )
    subprocess.run([sys.executable, "-c", reader], check=True)
    assert Path(f"{db}-wal").exists(), "the WAL of an open database was deleted"
    for index in range(50, 100):
        _write(app_store, "app", index)
    app_store.close()
    check = _read_only(db)
    assert check.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    assert check.execute("SELECT COUNT(*) FROM responses").fetchone() == (100,)


def _write(store: Store, name: str, index: int) -> None:
    result = TargetResult(f"{name}:m", name, "openai", "m", False, status="done")
    result.text = answer_text(name, index)
    store.add_response(result, [Message("user", f"q{index}")], origin="ask", batch=name)


def opened_at_once(db: Path) -> list[BaseException]:
    """Two threads open `db` at the same moment, then close it: what either raised."""
    failures: list[BaseException] = []
    together = threading.Barrier(2)

    def open_store() -> None:
        together.wait()
        try:
            Store(db).close()
        except BaseException as error:  # a thread cannot fail the test itself
            failures.append(error)

    threads = [threading.Thread(target=open_store) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return failures
