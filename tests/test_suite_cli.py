"""`workbench run` and `compare` as CI uses them: baselines of the right suite, reports that
parse, report paths checked before anything runs, and no figures for answers that never came."""

from __future__ import annotations

import csv
import io
import json
import re
import shutil
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from tests.fault_servers import OpenAIWire
from workbench import locations
from workbench.cli import main
from workbench.store import Store
from workbench.suites.runs import RunInfo, list_runs

SUITE = """\
name: {name}
targets: [embedded:smollm2]
params: {{temperature: 0, max_tokens: 8, seed: 1}}
prompt: "What is the capital of France?"
cases:
  - id: {case}
    expect: [{{not_contains: XYZZY}}]
"""


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("WORKBENCH_HOME", str(tmp_path / "home"))
    config = tmp_path / "config.toml"
    config.write_text("")
    monkeypatch.setenv("WORKBENCH_CONFIG", str(config))
    return tmp_path


def _suite(folder: Path, name: str, case: str = "capital") -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(SUITE.format(name=name, case=case))
    return path


def _runs() -> list[RunInfo]:
    """Newest first."""
    with Store(locations.database_path()) as store:
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
