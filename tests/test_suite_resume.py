"""`workbench run --resume`: it finishes the run it names, of the suite that run started,
in one process at a time; a run stopped by SIGTERM is kept and reported as Ctrl+C's is."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from werkzeug import Request, Response

from tests.child_process import ROOT, workbench_env
from tests.fault_servers import OpenAIWire, streamed, threaded_server
from tests.test_suite_cli import FOUR
from workbench import locations
from workbench.cli import main
from workbench.store import Store
from workbench.suites.runs import RunInfo, case_results, list_runs, start_run

LOCAL = """\
name: {name}
targets: [embedded:smollm2]
params: {{temperature: 0, max_tokens: 4, seed: 1}}
prompt: "What is the capital of France?"
cases:
  - id: capital
    expect: [{{{check}}}]
"""


@dataclass
class Loop:
    """A loopback OpenAI-compatible server: "Paris." at once, except to the prompt about
    `second`, which it holds mid-answer until `release` is set."""

    url: str
    hanging: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)


@pytest.fixture
def loop() -> Iterator[Loop]:
    wire = OpenAIWire()
    with threaded_server() as server:
        state = Loop(server.url_for("/v1"))

        def answer(request: Request) -> Response:
            prompt = json.loads(request.data)["messages"][-1]["content"]
            if "second" not in prompt or state.release.is_set():
                return wire.stream("Paris.")

            def hang() -> Iterator[bytes]:
                yield from wire.start()
                state.hanging.set()
                state.release.wait(60)
                yield wire.text("Paris.")
                yield from wire.end()

            return streamed(hang(), wire.content_type)

        server.expect_request("/v1/chat/completions").respond_with_handler(answer)
        try:
            yield state
        finally:
            state.release.set()


def _workbench(tmp_path: Path, loop: Loop, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "workbench.cli", "run", *args],
        env=workbench_env(tmp_path, loop.url), cwd=ROOT, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip


def _stopped(tmp_path: Path, loop: Loop, sig: signal.Signals, *args: str) -> tuple[int, str, str]:
    """FOUR run until it hangs on `second`, then sent `sig`: its exit status, stderr and run
    id. The server keeps holding `second` afterwards, until the test releases it."""
    path = tmp_path / "four.yaml"
    path.write_text(FOUR)
    child = _workbench(tmp_path, loop, str(path), *args)
    try:
        assert loop.hanging.wait(60), child.communicate(timeout=60)
        time.sleep(0.3)
        child.send_signal(sig)
        _, err = child.communicate(timeout=60)
    finally:
        if child.poll() is None:
            child.kill()
    loop.hanging.clear()
    runs = re.findall(r"workbench run --resume (\w+)", err)
    return child.returncode, err, runs[0] if runs else ""


def _stored(tmp_path: Path, run_id: str) -> tuple[RunInfo, list[str]]:
    with Store(tmp_path / "home" / "workbench.db") as store:
        (info,) = [r for r in list_runs(store) if r.id == run_id]
        return info, [r.case_id for r in case_results(store, run_id)]


def test_resuming_when_the_file_is_now_another_suite_is_refused(tmp_path: Path, loop: Loop) -> None:
    """It resumed under the old run id, exited 0 and marked the run finished, the cases of
    the suite it started never run."""
    code, err, run_id = _stopped(tmp_path, loop, signal.SIGINT)
    assert code == 130, err
    loop.release.set()
    (tmp_path / "four.yaml").write_text(FOUR.replace("name: four", "name: other"))
    resumed = _workbench(tmp_path, loop, "--resume", run_id)
    _, err = resumed.communicate(timeout=60)
    assert resumed.returncode == 2, err
    assert (f"workbench run: run {run_id} is of suite 'four', but {tmp_path / 'four.yaml'} "
            "is now suite 'other'") in err  # fmt: skip
    assert f"start a new run: workbench run {tmp_path / 'four.yaml'}" in err
    info, cases = _stored(tmp_path, run_id)
    assert info.finished_at is None and cases == ["first"]


def test_resuming_after_a_check_was_edited_is_refused(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """It kept the stored ✓, judged by a check that is no longer the file's."""
    path = home / "local.yaml"
    path.write_text(LOCAL.format(name="local", check="not_contains: XYZZY"))
    assert main(["run", str(path)]) == 0
    (run,) = _runs()
    capsys.readouterr()
    path.write_text(LOCAL.format(name="local", check="contains: XYZZY"))
    assert main(["run", "--resume", run.id]) == 2
    err = capsys.readouterr().err
    assert f"'local' in {path} has changed since run {run.id} started: its cases differ" in err
    assert f"start a new run: workbench run {path}" in err
    path.write_text(LOCAL.format(name="local", check="not_contains: XYZZY"))
    assert main(["run", "--resume", run.id]) == 0  # as it was: it resumes


def test_a_run_stored_without_a_hash_is_resumed_when_its_name_matches(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Runs started before the hash was stored: the name is all there is to compare."""
    path = home / "local.yaml"
    path.write_text(LOCAL.format(name="local", check="not_contains: XYZZY"))
    with Store(locations.database_path()) as store:
        for run_id in ("old1", "old2"):
            start_run(store, RunInfo(run_id, time.time(), None, "local", str(path),
                                     ["embedded:smollm2"], {"repeat": None}))  # fmt: skip
    assert main(["run", "--resume", "old1"]) == 0
    path.write_text(LOCAL.format(name="renamed", check="not_contains: XYZZY"))
    assert main(["run", "--resume", "old2"]) == 2
    assert "run old2 is of suite 'local', but" in capsys.readouterr().err


def test_a_suite_file_with_resume_must_be_the_runs_own(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`run OTHER.yaml --resume ID` ignored OTHER.yaml and resumed the run's own suite."""
    path, other = home / "local.yaml", home / "other.yaml"
    path.write_text(LOCAL.format(name="local", check="not_contains: XYZZY"))
    other.write_text(LOCAL.format(name="other", check="not_contains: XYZZY"))
    assert main(["run", str(path)]) == 0
    (run,) = _runs()
    capsys.readouterr()
    assert main(["run", str(other), "--resume", run.id]) == 2
    assert (
        f"workbench run: run {run.id} is a run of {path}, not {other}: drop {other} to "
        f"finish it, or drop --resume to start a new run of {other}"
    ) in capsys.readouterr().err
    assert len(_runs()) == 1
    assert main(["run", str(path), "--resume", run.id]) == 0  # its own file: accepted


def test_a_run_is_finished_by_one_process_at_a_time(tmp_path: Path, loop: Loop) -> None:
    """The second `--resume` died with sqlite3.IntegrityError: UNIQUE constraint failed."""
    code, err, run_id = _stopped(tmp_path, loop, signal.SIGINT)
    assert code == 130, err
    first = _workbench(tmp_path, loop, "--resume", run_id)
    try:
        assert loop.hanging.wait(60), first.communicate(timeout=60)
        second = _workbench(tmp_path, loop, "--resume", run_id)
        try:
            _, err = second.communicate(timeout=30)
        finally:
            if second.poll() is None:
                second.kill()
        assert second.returncode == 2, err
        assert "Traceback" not in err
        assert (f"workbench run: another process is finishing run {run_id}; wait for it to "
                "end") in err  # fmt: skip
        loop.release.set()
        _, err = first.communicate(timeout=60)
        assert first.returncode == 0, err
    finally:
        if first.poll() is None:
            first.kill()
    info, cases = _stored(tmp_path, run_id)
    assert info.finished_at is not None
    assert sorted(cases) == ["first", "fourth", "second", "third"]


def test_sigterm_writes_the_report_marked_interrupted_and_the_run_resumes(
    tmp_path: Path, loop: Loop
) -> None:
    """It exited 143 with no report written, and CI published an earlier run's."""
    out = tmp_path / "r.json"
    out.write_text('{"stale": true}')
    code, err, run_id = _stopped(tmp_path, loop, signal.SIGTERM, "--out", str(out))
    assert code == 143, err
    assert "Traceback" not in err
    report = json.loads(out.read_text())
    assert report["interrupted"] is True and report["run"] == run_id
    assert [r["case"] for r in report["not_run"]] == ["second", "third", "fourth"]
    assert [r["case"] for r in report["results"]] == ["first"]
    loop.release.set()
    resumed = _workbench(tmp_path, loop, "--resume", run_id)
    _, err = resumed.communicate(timeout=60)
    assert resumed.returncode == 0, err
    info, cases = _stored(tmp_path, run_id)
    assert info.finished_at is not None and len(cases) == 4


@pytest.mark.parametrize("flag", ["--baseline", "--resume"])
def test_an_empty_run_reference_is_refused_before_anything_runs(
    home: Path, capsys: pytest.CaptureFixture[str], flag: str
) -> None:
    """`--baseline "$BASE"` with BASE unset ran with no regression gate."""
    path = home / "local.yaml"
    path.write_text(LOCAL.format(name="local", check="not_contains: XYZZY"))
    assert main(["run", str(path), flag, ""]) == 2
    assert f"workbench run: {flag} is empty" in capsys.readouterr().err
    assert _runs() == []


def _runs() -> list[RunInfo]:
    with Store(locations.database_path()) as store:
        return list_runs(store)
