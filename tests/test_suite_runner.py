"""Suites run for real: the embedded model and llama-server answer, the store keeps it all."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from providers.registry import EndpointSpec, Registry
from tests.llama_server import LlamaServer
from workbench import locations
from workbench.cli import main
from workbench.store import Store
from workbench.suites.loader import load_suite
from workbench.suites.runner import plan, run_jobs, suite_targets
from workbench.suites.runs import RunInfo, case_results, list_runs, start_run

SUITE = """\
name: capitals
targets: [embedded:smollm2]
system: You are a concise assistant.
params: {temperature: 0, max_tokens: 24, seed: 1}
prompt: "What is the capital of {{country}}? Answer in one sentence."
cases:
  - id: france
    vars: {country: France}
    expect:
      - icontains: paris
      - max_output_tokens: 24
  - id: atlantis
    vars: {country: Atlantis}
    expect:
      - contains: "{marker}"
"""


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, llama_server: LlamaServer) -> Path:
    monkeypatch.setenv("WORKBENCH_HOME", str(tmp_path / "home"))
    config = tmp_path / "config.toml"
    config.write_text(
        f'[endpoints.llamacpp]\nkind = "openai"\nbase_url = "{llama_server.openai_url}"\n'
    )
    monkeypatch.setenv("WORKBENCH_CONFIG", str(config))
    return tmp_path


def _suite(tmp_path: Path, marker: str = "XYZZY") -> Path:
    path = tmp_path / "capitals.yaml"
    path.write_text(SUITE.replace("{marker}", marker))
    return path


def _runs() -> list[RunInfo]:
    with Store(locations.database_path()) as store:
        return list_runs(store)


def test_run_asserts_stores_and_exits_non_zero_on_a_failure(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["run", str(_suite(home)), "-t", "embedded:smollm2", "-t", "llamacpp:smollm2",
                 "--report", "junit", "--out", str(home / "junit.xml")])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 1
    assert "capitals" in out and "1/2 (50%)" in out
    assert "contains 'XYZZY': answer does not contain 'XYZZY'" in out
    (run,) = _runs()
    store = Store(locations.database_path())
    results = case_results(store, run.id)
    store.close()
    assert sorted((r.case_id, r.target.split("@")[0], r.passed) for r in results) == [
        ("atlantis", "embedded:smollm2", False), ("atlantis", "llamacpp:smollm2", False),
        ("france", "embedded:smollm2", True), ("france", "llamacpp:smollm2", True),
    ]  # fmt: skip
    suites = ET.parse(home / "junit.xml").getroot()
    assert suites.tag == "testsuites" and len(suites) == 2
    for suite in suites:
        assert suite.get("tests") == "2" and suite.get("failures") == "1"
        failure = suite.find("testcase[@name='atlantis']/failure")
        assert failure is not None and "XYZZY" in (failure.get("message") or "")


def test_passing_suite_exits_zero_and_says_what_was_cached(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    suite = _suite(home, marker="Atlantis")
    assert main(["run", str(suite)]) == 0
    capsys.readouterr()
    assert main(["run", str(suite), "--cache", "--report", "md", "--out", str(home / "r.md")]) == 0
    assert "2 answers came from the cache" in capsys.readouterr().out
    assert "(cached)" in (home / "r.md").read_text()


def test_cache_reuses_identical_temperature_zero_requests(home: Path) -> None:
    suite = load_suite(_suite(home, marker="Atlantis"))
    registry = Registry(env={})
    store = Store(locations.database_path())
    targets = suite_targets(suite, None)
    jobs = plan(suite, targets, None)
    try:
        for run_id in ("first", "second"):
            start_run(store, RunInfo(run_id, time.time(), None, suite.name, "x", [], {}))
            asyncio.run(run_jobs(suite, jobs, registry, store, run_id, cache=True))
        first, second = case_results(store, "first"), case_results(store, "second")
    finally:
        store.close()
    assert not any(r.cached for r in first)
    assert all(r.cached for r in second)
    assert [r.result.text for r in first] == [r.result.text for r in second]


def test_repeat_gives_pass_rate_and_percentiles(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["run", str(_suite(home, marker="Atlantis")), "--repeat", "3",
                 "--report", "json", "--out", str(home / "r.json")])  # fmt: skip
    assert code == 0
    report = json.loads((home / "r.json").read_text())
    assert len(report["results"]) == 6
    assert sorted({r["attempt"] for r in report["results"]}) == [0, 1, 2]
    (totals,) = report["totals"]
    assert totals["cases"] == 6 and totals["passed"] == 6
    assert 0 < totals["p50_s"] <= totals["p90_s"]
    assert "✓ 3/3" in capsys.readouterr().out


def test_resume_finishes_an_interrupted_run(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A run that stopped after its first result (as a crash would) is completed, not redone."""
    path = _suite(home, marker="Atlantis")
    suite = load_suite(path)
    targets = suite_targets(suite, None)
    jobs = plan(suite, targets, None)
    store = Store(locations.database_path())
    start_run(store, RunInfo("crashed", time.time(), None, suite.name, str(path),
                             [t.spec for t in targets], {"repeat": None}))  # fmt: skip
    asyncio.run(run_jobs(suite, jobs[:1], Registry(env={}), store, "crashed"))
    store.close()
    assert main(["run", "--resume", "crashed"]) == 0
    store = Store(locations.database_path())
    results = case_results(store, "crashed")
    (run,) = list_runs(store)
    store.close()
    assert sorted(r.case_id for r in results) == ["atlantis", "france"]
    assert run.finished_at is not None


def test_compare_finds_the_regression(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    suite = _suite(home, marker="Atlantis")
    assert main(["run", str(suite)]) == 0
    _suite(home, marker="XYZZY")  # the same suite, now with an expectation the answer misses
    assert main(["run", str(suite), "--baseline", "latest"]) == 1
    capsys.readouterr()
    assert main(["compare", "previous", "latest", "--json"]) == 1
    comparison = json.loads(capsys.readouterr().out)
    assert comparison["regressed"] == 1
    (change,) = [c for c in comparison["changes"] if c["kind"] == "pass→fail"]
    assert change["case"] == "atlantis"
    assert main(["compare", "latest", "latest"]) == 2  # a run against itself: an error
    assert main(["history"]) == 0
    assert "capitals" in capsys.readouterr().out


def test_rate_limited_requests_wait_and_retry(httpserver: HTTPServer, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    """A 429 with Retry-After is retried after that wait; the second answer counts."""
    calls: list[float] = []

    def handler(request: Request) -> Response:
        calls.append(time.monotonic())
        if len(calls) == 1:
            return Response(
                '{"error": {"message": "slow down"}}',
                status=429,
                headers={"Retry-After": "1"},
                content_type="application/json",
            )
        chunks = [
            {"choices": [{"index": 0, "delta": {"content": "Paris is the capital."},
                          "finish_reason": None}]},
            {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
        ]  # fmt: skip
        head = {"id": "1", "object": "chat.completion.chunk", "created": 0, "model": "m"}
        body = "".join(f"data: {json.dumps(head | c)}\n\n" for c in chunks) + "data: [DONE]\n\n"
        return Response(body, content_type="text/event-stream")

    httpserver.expect_request("/v1/chat/completions").respond_with_handler(handler)
    path = tmp_path / "s.yaml"
    path.write_text("name: s\ntargets: [fake:m]\nprompt: hi\ncases:\n"
                    "  - id: one\n    expect: [{icontains: paris}]\n")  # fmt: skip
    suite = load_suite(path)
    registry = Registry(endpoints=[EndpointSpec("fake", "openai", httpserver.url_for("/v1"))],
                        env={})  # fmt: skip
    monkeypatch.setenv("WORKBENCH_HOME", str(tmp_path / "home"))
    store = Store(locations.database_path())
    start_run(store, RunInfo("r", time.time(), None, "s", str(path), [], {}))
    (result,) = asyncio.run(run_jobs(suite, plan(suite, suite_targets(suite, None), None),
                                     registry, store, "r"))  # fmt: skip
    store.close()
    assert result.passed
    assert len(calls) == 2 and calls[1] - calls[0] >= 0.9
