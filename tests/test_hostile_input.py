"""Bad input from the user: each gets a clear error, nothing crashes, nothing is lost."""

from __future__ import annotations

import asyncio
import io
import json
import subprocess
import sys
import time
import tracemalloc
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer

from tests.fault_servers import WIRES
from tests.tui_helpers import wait_until
from workbench import locations
from workbench.cli import main
from workbench.config import Endpoint, Settings
from workbench.store import Store
from workbench.suites.loader import load_suite
from workbench.suites.runner import plan, run_jobs, suite_targets
from workbench.suites.runs import RunInfo, start_run
from workbench.suites.source import SuiteError
from workbench.tui.app import make_app
from workbench.wiring import make_registry

NO_OLLAMA = {"OLLAMA_HOST": "127.0.0.1:9"}


def _responses() -> int:
    store = Store(locations.database_path())
    try:
        return int(store.db.execute("SELECT count(*) FROM responses").fetchone()[0])
    finally:
        store.close()


# --- prompts ------------------------------------------------------------------------


@pytest.fixture
def answering(httpserver: HTTPServer) -> Iterator[str]:
    wire = WIRES["openai"]
    httpserver.expect_request(wire.path).respond_with_handler(lambda _: wire.stream("ok"))
    yield httpserver.url_for("/v1")


async def test_an_empty_prompt_in_the_tui_sends_nothing_and_says_so(
    answering: str, httpserver: HTTPServer
) -> None:
    settings = Settings(endpoints={"srv": Endpoint(kind="openai", base_url=answering)})
    app = make_app(settings, ["srv:m"], env=NO_OLLAMA)
    async with app.run_test(size=(100, 30)) as pilot:
        from workbench.tui.widgets.prompt import PromptBox

        app.query_one(PromptBox).focus()
        await pilot.press("space", "space", "enter")
        await wait_until(pilot, lambda: bool(app._notifications), 10)
        assert "The prompt is empty" in list(app._notifications)[-1].message
        await pilot.pause(0.3)
        (pane,) = app.panes
        # Only the server's model list was asked for (its window); no prompt went out.
        assert pane.result is None
        assert [r.path for r, _ in httpserver.log if r.method != "GET"] == []


@pytest.mark.parametrize("prompt", ["", "   \n\t "])
def test_ask_with_an_empty_prompt_exits_2(prompt: str, capsys: pytest.CaptureFixture[str]) -> None:
    before = _responses()
    assert main(["ask", "-t", "embedded:smollm2", prompt]) == 2
    assert "workbench ask: the prompt is empty" in capsys.readouterr().err
    assert _responses() == before


def test_a_megabyte_prompt_gets_a_context_error_and_is_kept(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    prompt = "lorem ipsum dolor sit amet " * 40_000  # ~1 MB
    monkeypatch.setattr(sys, "stdin", io.StringIO(prompt))
    monkeypatch.setenv("OLLAMA_HOST", "127.0.0.1:9")
    before = _responses()
    started = time.monotonic()
    code = main(["ask", "--json", "-t", "embedded:smollm2@max_tokens=4", "-"])
    assert time.monotonic() - started < 300  # refused up front, not after a long hang
    assert code == 1
    (line,) = capsys.readouterr().out.splitlines()
    answer = json.loads(line)
    assert answer["status"] == "failed" and answer["error"]["kind"] == "bad_request"
    assert "context window" in answer["error"]["message"]
    store = Store(locations.database_path())
    try:
        (sent,) = store.db.execute(
            "SELECT messages FROM responses ORDER BY id DESC LIMIT 1"
        ).fetchone()
    finally:
        store.close()
    assert _responses() == before + 1
    assert prompt in sent  # the prompt is in the history, whole, with its failure


# --- suite files ---------------------------------------------------------------------


def test_non_utf8_bytes_name_the_file_line_and_offset(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes(b"name: demo\nprompt: hi\ncases:\n  - id: caf\xe9\n")
    with pytest.raises(SuiteError) as caught:
        load_suite(path)
    assert str(caught.value) == f"{path}:4: not UTF-8: byte 0xe9 at offset 40"


def _billion_laughs(levels: int = 9) -> str:
    lines = ["a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for i in range(1, levels + 1):
        lines.append(f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]")
    return "\n".join([*lines, "name: bomb", "prompt: hi", f"cases: [{{id: x, vars: *a{levels}}}]"])


def test_a_yaml_bomb_is_refused_fast_in_little_memory(tmp_path: Path) -> None:
    path = tmp_path / "bomb.yaml"
    path.write_text(_billion_laughs())  # 10^10 values once expanded
    tracemalloc.start()
    started = time.perf_counter()
    try:
        with pytest.raises(SuiteError, match="billion laughs") as caught:
            load_suite(path)
        took = time.perf_counter() - started
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert str(caught.value).startswith(f"{path}:")
    assert took < 10 and peak < 50 * 1024 * 1024


CASES = 100_000


def _write_big_suite(path: Path, cases: int, base_url: str = "") -> None:
    with path.open("w", encoding="utf-8") as file:
        file.write("name: big\nprompt: 'Say {{word}}'\ntargets: [fast:m]\ncases:\n")
        for i in range(cases):
            file.write(f"  - id: c{i}\n    vars: {{word: w{i}}}\n    expect: [icontains: ok]\n")


_MEASURE = """
import resource, sys, time
from pathlib import Path
from workbench.suites.loader import load_suite
from workbench.suites.runner import plan, suite_targets
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
started = time.perf_counter()
suite = load_suite(Path(sys.argv[1]))
jobs = plan(suite, suite_targets(suite, None), None)
took = time.perf_counter() - started
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(len(suite.cases), len(jobs), (after - before) * 1024, took)
"""


def test_a_suite_of_100_000_cases_loads_in_bounded_memory(tmp_path: Path) -> None:
    path = tmp_path / "big.yaml"
    _write_big_suite(path, CASES)
    # A fresh process, so its peak resident memory is this load's alone.
    out = subprocess.run(
        [sys.executable, "-c", _MEASURE, str(path)],
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    ).stdout.split()
    cases, jobs, grew, took = int(out[0]), int(out[1]), int(out[2]), float(out[3])
    assert cases == CASES and jobs == CASES
    assert grew < 300 * 1024 * 1024, f"loading grew the process by {grew / 2**20:.0f} MB"
    assert took < 600


def test_an_error_deep_in_a_big_suite_names_its_line(tmp_path: Path) -> None:
    path = tmp_path / "big.yaml"
    _write_big_suite(path, 20_000)
    with path.open("a") as file:
        file.write("  - id: c5\n    vars: {word: [not, a, scalar]}\n")
    with pytest.raises(SuiteError) as caught:
        load_suite(path)
    line = 4 + 3 * 20_000 + 2
    assert str(caught.value).startswith(f"{path}:{line}: cases[20000].vars.word:")


_WITHOUT_LIBYAML = """
import sys
sys.modules["yaml._yaml"] = None  # as if PyYAML were built without libyaml
from pathlib import Path
from workbench.suites.loader import load_suite
from workbench.suites.source import SuiteError
print(len(load_suite(Path(sys.argv[1])).cases))
try:
    load_suite(Path(sys.argv[2]))
except SuiteError as exc:
    print(exc)
"""


def test_without_libyaml_the_loader_reads_the_same(tmp_path: Path) -> None:
    suite, bomb = tmp_path / "suite.yaml", tmp_path / "bomb.yaml"
    _write_big_suite(suite, 50)
    bomb.write_text(_billion_laughs())
    out = subprocess.run(
        [sys.executable, "-c", _WITHOUT_LIBYAML, str(suite), str(bomb)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout.splitlines()
    assert out[0] == "50" and "billion laughs" in out[1]


@pytest.fixture
def fast(httpserver: HTTPServer) -> Iterator[str]:
    wire = WIRES["openai"]
    httpserver.expect_request(wire.path).respond_with_handler(lambda _: wire.stream("ok"))
    yield httpserver.url_for("/v1")


def test_the_runner_keeps_a_few_tasks_however_many_jobs(tmp_path: Path, fast: str) -> None:
    path = tmp_path / "many.yaml"
    _write_big_suite(path, 300)
    suite = load_suite(path)
    registry = make_registry(Settings(endpoints={"fast": Endpoint(kind="openai", base_url=fast)}))
    jobs = plan(suite, suite_targets(suite, None), None)
    store = Store(tmp_path / "db.sqlite")
    run_id = uuid.uuid4().hex[:12]
    start_run(store, RunInfo(run_id, time.time(), None, suite.name, str(path), ["fast:m"], {}))
    most = 0

    def arrived(_: object) -> None:
        nonlocal most
        most = max(most, len(asyncio.all_tasks()))

    async def go() -> int:
        try:
            return len(await run_jobs(suite, jobs, registry, store, run_id, on_result=arrived))
        finally:
            await registry.aclose()

    try:
        assert asyncio.run(go()) == 300
        stored = store.db.execute(
            "SELECT count(*) FROM case_results WHERE run_id = ?", (run_id,)
        ).fetchone()[0]
    finally:
        store.close()
    assert stored == 300
    assert most <= 12, f"{most} tasks at once for 300 jobs"


# --- config and targets --------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b'targets = ["embedded:smollm2"]\n\n[endpoints.lm\n', ":3:14: "),
        (b"targets = [\n  'a',\nfoo = 1\n", ":3:1: "),
        (b"connect_timeout_s = 'soon'\n", ":1: connect_timeout_s: "),
        (b'[endpoints.lm]\nkind = "openai"\nbase_url = 3\n', ":3: endpoints.lm.base_url: "),
        (b"targets = ['caf\xe9']\n", ":1: not UTF-8: byte 0xe9 at offset 15"),
    ],
    ids=["unclosed table", "bad value", "wrong type", "nested wrong type", "not utf-8"],
)
def test_a_bad_config_file_says_file_line_and_exits_2(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    content: bytes,
    expected: str,
) -> None:
    path = tmp_path / "config.toml"
    path.write_bytes(content)
    monkeypatch.setenv("WORKBENCH_CONFIG", str(path))
    assert main(["models"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"workbench: {path}{expected}")
    assert "Traceback" not in err and len(err.splitlines()) == 1


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("nope:model", "unknown provider 'nope'"),
        ("embedded", "is not provider:model"),
        (":smollm2", "is not provider:model"),
        ("embedded:", "is not provider:model"),
        ("embedded:smollm2@temperature=hot", "temperature must be a number"),
        ("embedded:smollm2@temperature=nan", "must be a finite number"),
        ("embedded:smollm2@temperature=1,colour=red", "must be a number, not '1,colour=red'"),
        ("9x:model", "is not a provider name"),
    ],
)
def test_bad_targets_exit_2_with_a_clear_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], target: str, expected: str
) -> None:
    suite = tmp_path / "suite.yaml"
    suite.write_text("name: s\nprompt: hi\ncases: [{id: a}]\n")
    before, kept = _responses(), suite.read_text()
    assert main(["ask", "-t", target, "hello"]) == 2
    assert main(["run", str(suite), "-t", target]) == 2
    assert main(["-t", target]) == 2  # the TUI refuses before it starts
    errors = capsys.readouterr().err.splitlines()
    assert len(errors) == 3 and all(expected in line for line in errors), errors
    assert _responses() == before and suite.read_text() == kept
