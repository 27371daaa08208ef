"""`workbench ask` with a stdout it cannot write to: a full disk, or no stdout at all. As
with a reader that goes away (`| head`, in test_cli.py): every target runs to its end
and is stored, and one short line on stderr says what happened."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tests.child_process import ROOT, workbench_env

TARGETS = ("-t", "embedded:smollm2@max_tokens=4", "-t", "embedded:smollm2@max_tokens=3")


def _stored(tmp_path: Path) -> list[tuple[str, str]]:
    with sqlite3.connect(tmp_path / "home" / "workbench.db") as db:
        rows = db.execute("SELECT target, status FROM responses ORDER BY target").fetchall()
    return [(str(t), str(s)) for t, s in rows]


def _close_stdout() -> None:
    os.close(1)  # `workbench ask … >&-`


@pytest.mark.parametrize("as_json", [False, True], ids=["text", "json"])
@pytest.mark.parametrize("stdout", ["full", "closed"])
def test_answers_that_cannot_be_printed_are_still_stored(
    tmp_path: Path, stdout: str, as_json: bool
) -> None:
    with open("/dev/full", "w") as full:
        done = subprocess.run(
            [sys.executable, "-m", "workbench.cli", "ask", "hi", *TARGETS,
             *(["--json"] if as_json else [])],
            env=workbench_env(tmp_path, "http://127.0.0.1:9/v1"), cwd=ROOT, text=True,
            stdout=full if stdout == "full" else None, stderr=subprocess.PIPE, timeout=120,
            preexec_fn=_close_stdout if stdout == "closed" else None,
        )  # fmt: skip
    err = done.stderr
    assert "Traceback" not in err and "Exception" not in err, err
    assert _stored(tmp_path) == [
        ("embedded:smollm2@max_tokens=3", "done"),
        ("embedded:smollm2@max_tokens=4", "done"),
    ]
    # What the user asked to see is lost, as `echo hi > /dev/full` fails.
    assert done.returncode == 1
    (line,) = err.splitlines()
    why = "No space left on device" if stdout == "full" else "stdout is closed"
    assert line.startswith("workbench ask: cannot print the answers") and why in line, line
    assert "they are stored" in line


def _closed_stdout(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "workbench.cli", *args],
        env=workbench_env(tmp_path, "http://127.0.0.1:9/v1"), cwd=ROOT, text=True,
        stderr=subprocess.PIPE, timeout=120, preexec_fn=_close_stdout,
    )  # fmt: skip


@pytest.mark.parametrize("command", [["models", "--json"], ["prices"], ["history"], ["costs"]])
def test_a_command_that_only_shows_says_stdout_is_closed(
    tmp_path: Path, command: list[str]
) -> None:
    done = _closed_stdout(tmp_path, *command)
    assert (done.returncode, done.stderr) == (
        2, f"workbench {command[0]}: stdout is closed, so there is nowhere to show it\n"
    )  # fmt: skip


def test_a_report_for_a_closed_stdout_is_not_written_and_the_run_is_kept(
    tmp_path: Path,
) -> None:
    suite = ROOT / "prompts" / "offline-basics.yaml"
    done = _closed_stdout(tmp_path, "run", str(suite), "--report", "json",
                          "-t", "embedded:smollm2@max_tokens=2")  # fmt: skip
    assert "Traceback" not in done.stderr, done.stderr
    assert done.returncode == 2
    last = done.stderr.splitlines()[-1]
    assert last.startswith("workbench run: could not write the report to stdout: stdout is "
                           "closed; the results are kept in run ")  # fmt: skip
    with sqlite3.connect(tmp_path / "home" / "workbench.db") as db:
        (kept,) = db.execute("SELECT count(*) FROM case_results").fetchone()
    assert kept > 0
