"""`workbench run` and `compare` as CI uses them: baselines of the right suite, reports that
parse, report paths checked before anything runs, and no figures for answers that never came."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from tests.child_process import ROOT, workbench_env
from tests.fault_servers import OpenAIWire, Stall, streamed, threaded_server
from workbench import locations
from workbench import store as store_module
from workbench.cli import main
from workbench.commands.format import distinct_targets, fit_target
from workbench.store import Store
from workbench.suites import compare
from workbench.suites.runs import (
    RunInfo,
    add_case_result,
    case_results,
    list_runs,
    run_pairs,
    start_run,
)

SUITE = """\
name: {name}
targets: [embedded:smollm2]
params: {{temperature: 0, max_tokens: 8, seed: 1}}
prompt: "What is the capital of France?"
cases:
  - id: {case}
    expect: [{{not_contains: XYZZY}}]
"""


def _suite(folder: Path, name: str, case: str = "capital") -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(SUITE.format(name=name, case=case))
    return path


def _runs(history: Path | None = None) -> list[RunInfo]:
    """Newest first."""
    with Store(history or locations.database_path()) as store:
        return list_runs(store)


def _run(*args: str) -> tuple[int, RunInfo]:
    code = main(["run", *args])
    return code, _runs()[0]


def test_baseline_latest_and_previous_are_runs_of_the_same_suite(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    alpha, beta = _suite(home, "alpha"), _suite(home, "beta")
    _, a1 = _run(str(alpha))
    _run(str(beta))
    code, a2 = _run(str(alpha), "--baseline", "latest")
    assert code == 0
    assert f"# alpha: {a1.id[:8]} → {a2.id[:8]}" in capsys.readouterr().out
    # `previous` is the run just before this one too, not the one before that
    _, a3 = _run(str(alpha), "--baseline", "previous")
    assert f"# alpha: {a2.id[:8]} → {a3.id[:8]}" in capsys.readouterr().out


def test_compare_without_ids_is_the_last_suites_previous_and_latest_run(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    alpha, beta = _suite(home, "alpha"), _suite(home, "beta")
    _, b1 = _run(str(beta))
    _, a1 = _run(str(alpha))
    _, b2 = _run(str(beta))
    capsys.readouterr()
    assert main(["compare", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["before"] == b1.id
    # `previous` is read against the suite that the other side names
    assert main(["compare", "previous", b2.id, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["before"] == b1.id
    assert main(["compare", "previous", a1.id]) == 2
    assert "there is no previous run of suite 'alpha'" in capsys.readouterr().err


def test_comparing_two_suites_warns_and_nothing_in_common_is_an_error(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, alpha = _run(str(_suite(home, "alpha")))
    _, renamed = _run(str(_suite(home, "alpha-renamed")))
    _, other = _run(str(_suite(home, "other", case="arithmetic")))
    capsys.readouterr()
    assert main(["compare", alpha.id, renamed.id]) == 0
    err = capsys.readouterr().err
    assert "warning: comparing runs of different suites, 'alpha'" in err
    assert main(["compare", alpha.id, other.id]) == 2
    err = capsys.readouterr().err
    assert "nothing to compare" in err and "no case × target in common" in err


def test_baseline_with_no_earlier_run_of_the_suite_says_so_and_runs_nothing(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, before = _run(str(_suite(home, "alpha")))
    capsys.readouterr()
    assert main(["run", str(_suite(home, "beta")), "--baseline", "latest"]) == 2
    assert "suite 'beta' has no earlier run to compare with" in capsys.readouterr().err
    assert _runs() == [before]


def _parses(kind: str, text: str) -> bool:
    if kind == "json":
        return bool(json.loads(text)["results"])
    if kind == "csv":
        return next(csv.reader(io.StringIO(text)))[0] == "case"
    if kind == "junit":
        return ET.fromstring(text).tag == "testsuites"
    return text.startswith("# alpha — run ")


@pytest.mark.parametrize("kind", ["json", "csv", "junit", "md"])
def test_report_on_stdout_is_the_report_alone(
    home: Path, kind: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["run", str(_suite(home, "alpha")), "--report", kind]) == 0
    out, err = capsys.readouterr()
    assert _parses(kind, out)
    assert "pass rate" in err  # the table is still shown, on stderr


def test_unwritable_out_is_refused_before_anything_runs(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    alpha = str(_suite(home, "alpha"))
    missing = home / "missing" / "r.xml"
    assert main(["run", alpha, "--report", "junit", "--out", str(missing)]) == 2
    assert f"the folder {missing.parent} does not exist" in capsys.readouterr().err
    assert main(["run", alpha, "--out", str(home / "r.txt")]) == 2
    assert "cannot tell the report format" in capsys.readouterr().err
    assert not _runs()


def test_out_over_the_suite_or_the_history_is_refused_before_anything_runs(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    alpha = _suite(home, "alpha")
    written = alpha.read_text()
    history = locations.database_path()
    with Store(history):
        pass  # the history exists, as it does once anything has run
    for out, said in ((alpha, "the suite file"), (history, "the history database")):
        code = main(["run", str(alpha), "--report", "json", "--out", str(out)])
        assert code == 2
        assert f"--out {out}: that is {said}" in capsys.readouterr().err
    assert alpha.read_text() == written
    assert not _runs()


def test_a_target_named_twice_is_refused_before_anything_runs(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    alpha = str(_suite(home, "alpha"))
    twice = ["-t", "embedded:smollm2", "-t", "embedded:smollm2@temperature=0.5"]
    assert main(["run", alpha, *twice, "-t", "embedded:smollm2"]) == 2
    assert "-t embedded:smollm2 is named twice: each target is run once per case" in (
        capsys.readouterr().err
    )
    # Written apart, the same settings are the same target.
    assert main(["run", alpha, "-t", "embedded:smollm2@temperature=0.5",
                 "-t", "embedded:smollm2@temperature=.50"]) == 2  # fmt: skip
    assert "(as -t embedded:smollm2@temperature=0.5)" in capsys.readouterr().err
    assert not _runs()


def test_a_run_too_large_to_be_meant_is_refused_before_it_is_planned(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    alpha = str(_suite(home, "alpha"))
    assert main(["run", alpha, "--repeat", "99999999999"]) == 2
    assert "this run would make 99,999,999,999 requests" in capsys.readouterr().err
    assert not _runs()


def test_out_alone_takes_the_format_from_the_extension(home: Path) -> None:
    alpha = str(_suite(home, "alpha"))
    assert main(["run", alpha, "--out", str(home / "r.xml")]) == 0
    assert ET.parse(home / "r.xml").getroot().tag == "testsuites"
    assert main(["run", alpha, "--out", str(home / "r.json")]) == 0
    assert json.loads((home / "r.json").read_text())["suite"] == "alpha"


def test_a_report_that_cannot_be_written_at_the_end_is_an_error_and_the_results_stay(
    home: Path, httpserver: HTTPServer, capsys: pytest.CaptureFixture[str]
) -> None:
    reports = home / "reports"
    reports.mkdir()

    def answer_and_remove_the_folder(request: Request) -> Response:
        shutil.rmtree(reports)  # the folder was there when the run began
        return OpenAIWire().stream("Paris.")

    httpserver.expect_request("/v1/chat/completions").respond_with_handler(
        answer_and_remove_the_folder
    )
    (home / "config.toml").write_text(
        f'[endpoints.fake]\nkind = "openai"\nbase_url = "{httpserver.url_for("/v1")}"\n'
    )
    code = main(["run", str(_suite(home, "alpha")), "-t", "fake:m", "--report", "junit",
                 "--out", str(reports / "r.xml")])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2
    assert f"could not write the report to {reports / 'r.xml'}" in err
    assert "Traceback" not in err
    (run,) = _runs()
    assert run.finished_at is not None and run.id in err


def test_a_target_that_failed_shows_no_latency_tokens_or_cost(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """openai without OPENAI_API_KEY fails before sending: nothing was measured or spent."""
    alpha = str(_suite(home, "alpha"))
    args = ["run", alpha, "-t", "embedded:smollm2", "-t", "openai:gpt-4o-mini"]
    assert main([*args, "--out", str(home / "r.json")]) == 1
    out = capsys.readouterr().out
    (row,) = [line for line in out.splitlines() if line.startswith(" openai:gpt-4o-mini")]
    assert row.split()[-4:] == ["(0%)", "–", "–", "–"]  # p50, p90, cost
    assert "price unknown" not in out
    assert not re.search(r"(?<![\d.])0(ms| tok)", out)
    report = json.loads((home / "r.json").read_text())
    failed = next(r for r in report["results"] if r["target"].startswith("openai:"))
    assert failed["e2e_s"] is None and failed["output_tokens"] is None
    totals = next(t for t in report["totals"] if t["target"].startswith("openai:"))
    assert totals["p50_s"] is None and totals["cost_usd"] is None
    assert main([*args, "--out", str(home / "r.csv")]) == 1
    rows = list(csv.DictReader((home / "r.csv").open()))
    failed_row = next(r for r in rows if r["target"].startswith("openai:"))
    assert failed_row["e2e_s"] == failed_row["output_tokens"] == failed_row["cost_usd"] == ""
    assert main([*args, "--out", str(home / "r.md")]) == 1
    md = (home / "r.md").read_text().splitlines()
    assert any(line.startswith("| openai:") and line.endswith(" | 0/1 (0%) | – | – | – |")
               for line in md)  # fmt: skip


def test_a_failed_request_names_its_target_once(
    home: Path, httpserver: HTTPServer, capsys: pytest.CaptureFixture[str]
) -> None:
    httpserver.expect_request("/v1/chat/completions").respond_with_data(
        '{"error": {"message": "boom"}}', status=500, content_type="application/json"
    )
    (home / "config.toml").write_text(
        f'[endpoints.evil]\nkind = "openai"\nbase_url = "{httpserver.url_for("/v1")}"\n'
    )
    code = main(["run", str(_suite(home, "alpha")), "-t", "evil:e500"])
    assert code == 1
    (line,) = [line for line in capsys.readouterr().out.splitlines() if line.startswith("✗ ")]
    assert line.startswith("✗ capital × evil:e500@"), line
    assert line.count("evil:e500") == 1 and "no answer: failed: server error (HTTP 500)" in line


@pytest.mark.parametrize("how", ["--private", "private = true"])
def test_private_mode_fails_cloud_targets_in_their_place_and_runs_the_local_ones(
    home: Path, how: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """It used to crash with a traceback, leaving an empty unfinished run behind."""
    first = ["--private"] if how == "--private" else []
    if how != "--private":
        (home / "config.toml").write_text(how + "\n")
    alpha = str(_suite(home, "alpha"))
    code = main([*first, "run", alpha, "-t", "embedded:smollm2", "-t", "openai:gpt-4o-mini",
                 "--out", str(home / "r.json")])  # fmt: skip
    assert code == 1
    out = capsys.readouterr().out
    (line,) = [line for line in out.splitlines() if line.startswith("✗ ")]
    assert line.startswith("✗ capital × openai:gpt-4o-mini@temperature=0,max_tokens=8,seed=1: "
                           "no answer: failed: private mode: openai sends prompts off this "
                           "machine")  # fmt: skip
    results = json.loads((home / "r.json").read_text())["results"]
    assert {(r["target"].split("@")[0], r["passed"]) for r in results} == {
        ("embedded:smollm2", True), ("openai:gpt-4o-mini", False)
    }  # fmt: skip
    (run,) = _runs()
    assert run.finished_at is not None


def test_a_run_with_no_results_is_never_latest_or_previous(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A run that stopped before its first result (a crash, a kill) has nothing to compare:
    as the baseline it made the next run fail with "no case × target in common"."""
    alpha = _suite(home, "alpha")
    _, first = _run(str(alpha))
    with Store(locations.database_path()) as store:
        start_run(store, RunInfo("crashed0000", time.time(), None, "alpha", str(alpha),
                                 ["embedded:smollm2"], {}))  # fmt: skip
    code, second = _run(str(alpha), "--baseline", "latest")
    assert code == 0
    assert f"# alpha: {first.id[:8]} → {second.id[:8]}" in capsys.readouterr().out
    with Store(locations.database_path()) as store:
        start_run(store, RunInfo("crashed0001", time.time(), None, "alpha", str(alpha),
                                 ["embedded:smollm2"], {}))  # fmt: skip
    assert main(["compare", "--json"]) == 0
    comparison = json.loads(capsys.readouterr().out)
    assert (comparison["before"], comparison["after"]) == (first.id, second.id)
    assert main(["history"]) == 0
    assert "alpha (unfinished)" in capsys.readouterr().out  # still listed, and resumable


def test_history_search_finds_runs_by_suite_and_target(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """It searched chats instead, and said "No matches." beside runs of that suite."""
    with Store(locations.database_path()) as store:
        for run_id, suite, target in (("r1", "code-questions", "embedded:smollm2"),
                                      ("r2", "offline-basics", "llamacpp:qwen2.5")):  # fmt: skip
            start_run(store, RunInfo(run_id, time.time(), None, suite, f"{suite}.yaml",
                                     [target], {}))  # fmt: skip
    assert main(["history", "--search", "CODE"]) == 0
    found = capsys.readouterr().out
    assert "code-questions" in found and "offline-basics" not in found
    assert main(["history", "--search", "qwen"]) == 0
    found = capsys.readouterr().out
    assert "offline-basics" in found and "code-questions" not in found


def test_t_replaces_suite_targets_that_name_unknown_providers(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = home / "elsewhere.yaml"
    path.write_text(SUITE.format(name="elsewhere", case="capital").replace(
        "targets: [embedded:smollm2]", "targets: [lmstudio:qwen2.5-7b]"))  # fmt: skip
    assert main(["run", str(path), "-t", "embedded:smollm2"]) == 0
    capsys.readouterr()
    assert main(["run", str(path)]) == 2  # without -t the suite's own targets must exist
    assert "unknown provider 'lmstudio'" in capsys.readouterr().err
    assert main(["run", str(path), "-t", "nosuch:model"]) == 2
    assert "workbench run: -t nosuch:model: unknown provider 'nosuch'" in capsys.readouterr().err
    assert main(["run", str(path), "-t", "embedded"]) == 2
    assert "target 'embedded' is not provider:model" in capsys.readouterr().err


def test_comparing_a_run_with_itself_is_an_error(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    alpha = str(_suite(home, "alpha"))
    _, first = _run(alpha)
    _, second = _run(alpha)
    capsys.readouterr()
    assert main(["compare", "latest"]) == 2
    assert (f"both sides are run {second.id} — did you mean `workbench compare previous "
            "latest`?") in capsys.readouterr().err  # fmt: skip
    assert main(["compare", first.id, first.id[:6]]) == 2
    assert f"did you mean `workbench compare previous {first.id[:6]}`?" in capsys.readouterr().err
    assert main(["compare", "previous", "latest"]) == 0
    assert main(["run", "--resume", second.id, "--baseline", second.id]) == 2
    assert "that is the run being resumed" in capsys.readouterr().err


MANY = """\
name: many
targets: [embedded:smollm2]
params: {temperature: 0, max_tokens: 8, seed: 1}
prompt: "Say {{word}}."
cases:
"""


def test_a_target_that_cannot_answer_is_named_once_not_once_per_case_and_check(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = home / "many.yaml"
    path.write_text(MANY + "".join(
        f"  - id: c{n}\n    vars: {{word: w{n}}}\n    expect: [{{not_contains: XYZZY}}, "
        "{max_latency_s: 60}]\n" for n in range(4)))  # fmt: skip
    args = ["run", str(path), "-t", "embedded:smollm2", "-t", "openai:gpt-4o-mini"]
    assert main([*args, "--repeat", "2", "--out", str(home / "r.xml")]) == 1
    out = capsys.readouterr().out
    failures = [line for line in out.splitlines() if line.startswith("✗ ")]
    assert failures == [
        "✗ openai:gpt-4o-mini@temperature=0,max_tokens=8,seed=1: no answer to 4 cases "
        "(8 requests): failed: OPENAI_API_KEY is not set — export it to use openai targets"
    ]
    suites = {s.get("name", "").split("@")[0]: s for s in ET.parse(home / "r.xml").getroot()}
    openai = suites["openai:gpt-4o-mini"]
    assert (openai.get("tests"), openai.get("failures")) == ("8", "8")  # every cell marked
    message = openai.find("testcase/failure").get("message")  # type: ignore[union-attr]
    assert message == ("no answer: failed: OPENAI_API_KEY is not set — export it to use openai "
                       "targets")  # fmt: skip


LONG = [
    "embedded:smollm2@temperature=0,max_tokens=128,seed=1",
    "embedded:smollm2@temperature=0.5,max_tokens=256,seed=1",
]


class Terminal(io.StringIO):
    """Output that says it is a terminal, so the tables take the terminal's width."""

    def isatty(self) -> bool:
        return True


def test_at_80_columns_no_setting_value_is_cut(
    home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`max_tokens=12…` (of 128), or a header wrapped into `max_tokens=2` / `56`, read as
    other settings than the target has."""
    monkeypatch.setenv("COLUMNS", "80")
    monkeypatch.setenv("TERM", "dumb")
    terminal = Terminal()
    monkeypatch.setattr(sys, "stdout", terminal)
    assert main(["run", str(_suite(home, "alpha")), "-t", LONG[0], "-t", LONG[1]]) == 0
    out = terminal.getvalue()
    assert set(re.findall(r"max_tokens=(\d*)", out)) == {"128", "256"}
    assert set(re.findall(r"temperature=([\d.]*)", out)) == {"0", "0.5"}
    assert "[1] embedded:smollm2@temperature=0,…" in out
    legend = [f"[1] {LONG[0]}", f"[2] {LONG[1]}"]  # shortened names, spelled out
    lines = out.splitlines()
    assert lines[lines.index(legend[0]) + 1] == legend[1]
    assert max(len(line) for line in lines if line not in legend) <= 80


@pytest.mark.parametrize(("width", "shown"), [
    (60, "embedded:smollm2@temperature=0,max_tokens=128,seed=1"),
    (50, "embedded:smollm2@temperature=0,max_tokens=128,…"),
    (40, "embedded:smollm2@temperature=0,…"),
    (20, "embedded:smollm2@…"),
    (15, "embedded:smo…@…"),
])  # fmt: skip
def test_fit_target_drops_whole_settings_before_cutting_the_model(width: int, shown: str) -> None:
    assert fit_target(LONG[0], width) == shown
    assert len(fit_target(LONG[0], width)) <= width


def test_models_named_alike_past_the_width_are_told_apart_by_their_ends() -> None:
    names = ["ollama:llama3.2:1b-instruct-q4_K_M", "ollama:llama3.2:1b-instruct-q8_0"]
    shown = distinct_targets(names, 22)
    assert shown == {names[0]: "….2:1b-instruct-q4_K_M", names[1]: "…a3.2:1b-instruct-q8_0"}
    assert distinct_targets(["openai:gpt-4o", "anthropic:claude-3-5-haiku-latest"], 22) == {
        "openai:gpt-4o": "openai:gpt-4o",
        "anthropic:claude-3-5-haiku-latest": "anthropic:claude-3-5-…",
    }  # a name cut alone keeps its start: nothing beside it looks the same


def test_fit_target_keeps_commas_inside_a_system_prompt() -> None:
    name = "openai:gpt-4o-mini@system=Be brief, be kind,label=nice"
    assert fit_target(name, 45) == "openai:gpt-4o-mini@system=Be brief, be kind,…"
    assert fit_target(name, 44) == "openai:gpt-4o-mini@…"
    assert fit_target("openai:gpt-4o-mini", 12) == "openai:gpt-…"


def test_baseline_latest_is_the_last_run_on_these_targets_and_is_found_before_running(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A CI matrix, one job per target sharing one history: `--baseline latest` took the
    other job's run, ran every case, then failed with "nothing to compare"."""
    alpha = str(_suite(home, "alpha"))
    x, y, z = (f"embedded:smollm2@max_tokens={n}" for n in (4, 6, 7))
    _, x1 = _run(alpha, "-t", x)
    _, y1 = _run(alpha, "-t", y)
    capsys.readouterr()
    code, x2 = _run(alpha, "-t", x, "--baseline", "latest")
    assert code == 0
    assert f"# alpha: {x1.id[:8]} → {x2.id[:8]}" in capsys.readouterr().out
    # No run has both: the latest that shares some, saying which target it cannot compare.
    code, both = _run(alpha, "-t", x, "-t", y, "--baseline", "previous")
    out, err = capsys.readouterr()
    assert code == 0 and f"# alpha: {x2.id[:8]} → {both.id[:8]}" in out
    assert f"warning: the baseline {x2.id} has no result for embedded:smollm2@temperature=0," in err
    _run(alpha, "-t", y)
    capsys.readouterr()
    _, both2 = _run(alpha, "-t", x, "-t", y, "--baseline", "latest")
    assert f"# alpha: {both.id[:8]} → {both2.id[:8]}" in capsys.readouterr().out
    assert main(["run", alpha, "-t", z, "--baseline", "latest"]) == 2
    err = capsys.readouterr().err
    assert re.search(r"--baseline latest: no earlier run of suite 'alpha' ran its cases on "
                     r"embedded:smollm2@\S*max_tokens=7", err), err  # fmt: skip
    assert f"(latest {both2.id}," in err and f"(latest {x2.id}," in err, err  # which runs
    assert f"(latest {y1.id}," not in err  # one line per set of targets, the newest run
    assert main(["run", alpha, "-t", z, "--baseline", x1.id]) == 2  # an id is checked too
    err = capsys.readouterr().err
    assert f"--baseline {x1.id}: run {x1.id} has no case × target in common" in err
    assert _runs()[0] == both2  # nothing ran


FOUR = """\
name: four
targets: [loop:m]
prompt: "Say {{word}}."
cases:
""" + "".join(f"  - id: {w}\n    vars: {{word: {w}}}\n    expect: [{{icontains: paris}}]\n"
              for w in ("first", "second", "third", "fourth"))  # fmt: skip


def _interrupted_run(tmp_path: Path, out: Path) -> tuple[int, str]:
    """`workbench run` of FOUR on a loopback server that answers `first` and hangs on
    `second`, Ctrl+C'd once it hangs; its exit status and stderr."""
    wire, hanging, release = OpenAIWire(), threading.Event(), threading.Event()

    def answer(request: Request) -> Response:
        if "second" not in json.loads(request.data)["messages"][-1]["content"]:
            return wire.stream("Paris.")

        def hang() -> Iterator[bytes]:
            yield from wire.start()
            hanging.set()
            release.wait(60)
            yield from wire.end()

        return streamed(hang(), wire.content_type)

    path = tmp_path / "four.yaml"
    path.write_text(FOUR)
    with threaded_server() as server:
        server.expect_request("/v1/chat/completions").respond_with_handler(answer)
        child = subprocess.Popen(
            [sys.executable, "-m", "workbench.cli", "run", str(path), "--out", str(out)],
            env=workbench_env(tmp_path, server.url_for("/v1")), cwd=ROOT, text=True,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip
        try:
            assert hanging.wait(60), child.communicate(timeout=60)
            time.sleep(0.3)
            child.send_signal(signal.SIGINT)
            _, err = child.communicate(timeout=60)
        finally:
            release.set()
            if child.poll() is None:
                child.kill()
    return child.returncode, err


RESUME = "not run: the run was interrupted; finish it with: workbench run --resume "


@pytest.mark.parametrize("kind", ["xml", "json", "md", "csv"])
def test_the_report_of_an_interrupted_run_says_so_and_lists_what_did_not_run(
    tmp_path: Path, kind: str
) -> None:
    """It read `tests="1" failures="0"`: a pass, to a CI step that publishes JUnit whatever
    the exit status."""
    out = tmp_path / f"r.{kind}"
    code, err = _interrupted_run(tmp_path, out)
    assert code == 130, err
    (run_id,) = re.findall(r"workbench run --resume (\w+)", err)
    text = out.read_text()
    not_run = ["second", "third", "fourth"]
    if kind == "xml":
        (suite,) = ET.fromstring(text)
        counts = [suite.get(k) for k in ("tests", "failures", "errors", "skipped")]
        assert counts == ["4", "0", "3", "0"]
        errors = {c.get("name"): c.find("error") for c in suite}
        assert errors["first"] is None
        assert [n for n, e in errors.items() if e is not None] == not_run
        assert {e.get("message") for e in errors.values() if e is not None} == {RESUME + run_id}
    elif kind == "json":
        report = json.loads(text)
        assert report["interrupted"] is True
        assert [r["case"] for r in report["not_run"]] == not_run
        assert [r["case"] for r in report["results"]] == ["first"]
        assert report["resume"] == f"workbench run --resume {run_id}"
    elif kind == "md":
        assert (f"**Interrupted**: 3 of 4 requests not run; finish it with `workbench run "
                f"--resume {run_id}`.") in text  # fmt: skip
        matrix = [line for line in text.splitlines() if line.startswith("| ")]
        assert [r for r in matrix if r.endswith(" | not run |")] == [
            f"| {case} | not run |" for case in not_run
        ]
    else:
        rows = list(csv.DictReader(io.StringIO(text)))
        assert [(r["case"], r["status"]) for r in rows] == [
            ("first", "done"), ("second", "not run"), ("third", "not run"), ("fourth", "not run")
        ]  # fmt: skip


def test_a_reader_gone_from_the_report_on_stdout_leaves_the_runs_exit_status(
    tmp_path: Path,
) -> None:
    """`workbench run SUITE --report json 2>&1 | head -3` exited 2, as if the report path
    were bad; it is the run's own status, as `ask | head` keeps."""
    path = _suite(tmp_path, "alpha")
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader has gone before anything arrives
    try:
        # 20 results: a report larger than Python's buffer fails as it is written.
        done = subprocess.run(
            [sys.executable, "-m", "workbench.cli", "run", str(path), "--repeat", "20",
             "--report", "json"],
            env=workbench_env(tmp_path, "http://127.0.0.1:9/v1"), cwd=ROOT,
            stdout=write_end, stderr=write_end, timeout=300,
        )  # fmt: skip
    finally:
        os.close(write_end)
    assert done.returncode == 0
    with Store(tmp_path / "home" / "workbench.db") as store:
        (run,) = list_runs(store)
    assert run.finished_at is not None


def test_a_busy_history_is_said_before_the_run_waits_for_it(tmp_path: Path) -> None:
    """Another process writes to the history: the run says, within a second or so, that
    it waits for it, where it sat silent for up to 30 s; and runs once the history frees."""
    path = _suite(tmp_path, "alpha")
    history = tmp_path / "home" / "workbench.db"
    history.parent.mkdir(exist_ok=True)
    Store(history).close()
    other = sqlite3.connect(history, isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")
    child = subprocess.Popen(
        [sys.executable, "-m", "workbench.cli", "run", str(path)],
        env=workbench_env(tmp_path, "http://127.0.0.1:9/v1"), cwd=ROOT, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        assert child.stderr is not None
        said = ""
        while "busy" not in said and (line := child.stderr.readline()):
            said += line  # the run holds here, waiting, until the lock goes
    finally:
        other.execute("ROLLBACK")
        other.close()
    out, err = child.communicate(timeout=300)
    assert f"the history database {history} is busy" in said, said + err
    assert "waiting up to 30 s" in said
    assert child.returncode == 0, err
    with Store(history) as store:
        (run,) = list_runs(store)
    assert run.finished_at is not None and "capital" in out


THREE_CASES = SUITE.replace("cases:\n", "cases:\n  - id: one\n  - id: two\n")


def test_a_history_busy_past_the_wait_mid_run_stops_it_for_resume(
    home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Another process holds the history past the wait, once the run has begun: the run
    stops saying why, with what it kept and how to finish it, where it ended in a bare
    "busy" line; and `--resume` finishes it once the history frees."""
    monkeypatch.setattr(store_module, "BUSY_TIMEOUT_S", 1.0)  # not SQLite's 30 s here
    path = home / "three.yaml"
    path.write_text(THREE_CASES.format(name="three", case="three"))
    history = locations.database_path()
    held, release = threading.Event(), threading.Event()

    def hold_once_the_run_is_stored() -> None:
        if (other := _held_once_the_run_is_stored(history, release.is_set)) is not None:
            held.set()
            release.wait()
            other.close()  # the lock goes with it

    holder = threading.Thread(target=hold_once_the_run_is_stored)
    holder.start()
    try:
        code = main(["run", str(path)])
    finally:
        release.set()
        holder.join()
    assert held.is_set()
    err = capsys.readouterr().err
    (run,) = _runs()
    assert code == 1, err
    assert f"Stopped, the history database {history} is busy" in err, err
    kept = len(case_results_of(run.id))
    assert f"{kept} results kept, {3 - kept} not run" in err and kept < 3
    assert f"Once it is done, finish with: workbench run --resume {run.id}" in err
    assert main(["run", "--resume", run.id]) == 0
    assert len(case_results_of(run.id)) == 3 and _runs()[0].finished_at is not None


def test_a_history_busy_mid_run_holds_up_no_request(tmp_path: Path) -> None:
    """Another process holds the history from the run's start until every request has
    been made: the requests go on meanwhile, and the results are stored once it frees.
    Each result's write waited for the lock, stalling every stream (skewing its timings),
    and the run stopped once the wait ran out."""
    wire, held = OpenAIWire(), threading.Event()

    def answer(_: Request) -> Response:
        # No answer ends before the history is held, so none is stored before it.
        return wire.stream(then=[Stall(held, 60), wire.text("Paris."), *wire.end()])

    path = tmp_path / "three.yaml"
    path.write_text(THREE_CASES.format(name="three", case="three"))
    history = tmp_path / "home" / "workbench.db"
    said = ""
    with threaded_server() as server:
        server.expect_request(wire.path).respond_with_handler(answer)
        child = subprocess.Popen(
            [sys.executable, "-m", "workbench.cli", "run", str(path), "-t", "loop:m"],
            env=workbench_env(tmp_path, server.url_for("/v1")), cwd=ROOT, text=True,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip
        other: sqlite3.Connection | None = None
        try:
            other = _held_once_the_run_is_stored(history, lambda: child.poll() is not None)
            assert other is not None, child.communicate(timeout=60)
            held.set()
            assert child.stderr is not None
            while "every request is made" not in said and (line := child.stderr.readline()):
                said += line
        finally:
            if other is not None:
                other.close()  # the lock goes with it
            held.set()
            out, err = child.communicate(timeout=300)
    assert child.returncode == 0, said + err + out
    assert f"Not stored yet: the history database {history} is busy" in said, said + err
    assert "waiting up to 30 s for the history to take the 3 results kept here" in said
    assert "History written again: 3 results that waited stored" in err
    (run,) = _runs(history)
    with Store(history) as store:
        assert len(case_results(store, run.id)) == 3 and run.finished_at is not None


def _held_once_the_run_is_stored(
    history: Path, given_up: Callable[[], bool]
) -> sqlite3.Connection | None:
    """A connection holding the history's write lock, taken once a run is in it (as another
    process would); None if `given_up` before."""
    while not given_up():
        time.sleep(0.005)
        if not history.exists():
            continue
        other = sqlite3.connect(history, isolation_level=None)
        try:
            if other.execute("SELECT count(*) FROM runs").fetchone()[0]:
                other.execute("BEGIN IMMEDIATE")
                return other
        except sqlite3.Error:
            pass  # no runs table yet
        other.close()
    return None


def case_results_of(run_id: str) -> list[object]:
    with Store(locations.database_path()) as store:
        return list(case_results(store, run_id))


def _short(home: Path) -> Path:
    """A suite with a one-letter case id, which fails: its answer never contains XYZZY."""
    path = home / "short.yaml"
    path.write_text(SUITE.format(name="short", case="a").replace("not_contains", "contains"))
    return path


def test_the_case_column_is_as_wide_as_its_header(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Short case ids wrapped the header to `c`/`a`/`s`/`e`."""
    assert main(["run", str(_short(home))]) == 1
    assert "┃ case ┃" in capsys.readouterr().out


def test_a_failure_repeated_alike_is_one_line_saying_which_attempts(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """With --repeat 3 it printed three identical lines, no attempt named."""
    assert main(["run", str(_short(home)), "--repeat", "3", "--out", str(home / "r.md")]) == 1
    failures = [line for line in capsys.readouterr().out.splitlines() if line.startswith("✗ ")]
    assert len(failures) == 1
    assert failures[0].startswith("✗ a × embedded:smollm2@temperature=0,max_tokens=8,seed=1 "
                                  "(all 3 attempts): contains 'XYZZY': ")  # fmt: skip
    listed = [line for line in (home / "r.md").read_text().splitlines() if line.startswith("- ")]
    assert len(listed) == 1 and "(all 3 attempts): contains 'XYZZY'" in listed[0]


HOSTILE_IDS = ['=HYPERLINK("http://x")', "a|b</x>"]


def test_reports_keep_hostile_case_ids_inert(home: Path) -> None:
    """The CSV wrote `=HYPERLINK(...)` for a spreadsheet to run, and `a|b</x>` split its
    Markdown row into an extra cell."""
    path = home / "hostile.yaml"
    path.write_text(SUITE.format(name="hostile", case="x").replace(
        "  - id: x\n    expect: [{not_contains: XYZZY}]\n",
        "".join(f"  - id: '{i}'\n    expect: [{{not_contains: XYZZY}}]\n" for i in HOSTILE_IDS),
    ))  # fmt: skip
    assert main(["run", str(path), "--out", str(home / "r.csv")]) == 0
    assert main(["run", str(path), "--out", str(home / "r.md")]) == 0
    rows = list(csv.DictReader(io.StringIO((home / "r.csv").read_text())))
    assert [r["case"] for r in rows] == ["'" + HOSTILE_IDS[0], HOSTILE_IDS[1]]
    matrix = [line for line in (home / "r.md").read_text().splitlines() if line.startswith("| ")]
    assert matrix[2].startswith("| a\\|b\\</x> | ✓ ")
    # A row is as many cells as the header, once escaped pipes are set aside.
    assert {len(re.split(r"(?<!\\)\|", line)) for line in matrix[:3]} == {4}


def test_history_with_no_runs_names_a_suite_that_runs_from_here(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """From another folder, `workbench run prompts/offline-basics.yaml` found no file."""
    monkeypatch.setenv("WORKBENCH_HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    assert main(["history"]) == 0
    said = capsys.readouterr().out
    suggested = said.split("workbench run ", 1)[1].strip()
    assert "\n" not in suggested  # one line, to copy
    assert Path(suggested).is_file() and suggested.endswith("offline-basics.yaml")


def test_a_stopped_run_is_the_baseline_only_when_no_finished_one_will_do(
    tmp_path: Path,
) -> None:
    """Picked as the latest, a run stopped halfway showed every case it did not run as new."""
    path = _suite(tmp_path, "stops")
    code, finished = _run(str(path))
    assert code == 0
    with Store(locations.database_path()) as store:
        (case,) = case_results(store, finished.id)

        def stopped(run_id: str, suite: str) -> None:  # as Ctrl+C leaves a run
            start_run(store, RunInfo(run_id, time.time(), None, suite, str(path),
                                     finished.targets, {}))  # fmt: skip
            add_case_result(store, run_id, case, [], None)

        stopped("stopped1", "stops")
        pairs = run_pairs(store, finished.id)
        assert compare.pick_baseline(store, "stops", pairs) == (finished, "")
        stopped("stopped2", "lonely")  # a suite no run of which has finished
        run, warning = compare.pick_baseline(store, "lonely", pairs)
    assert run.id == "stopped2"
    assert warning == "the baseline stopped2 was stopped before it finished"
