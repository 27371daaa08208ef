"""The command line refuses what it would otherwise misread or silently ignore."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from workbench.cli import main


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (["ask", "hi", "--max-tokens", "0"], "--max-tokens: must be at least 1, not 0"),
        (["ask", "hi", "--temperature", "-1"], "--temperature: must be at least 0, not -1"),
        (["ask", "hi", "--top-p", "0"], "--top-p: must be above 0 and at most 1, not 0"),
        (["run", "s.yaml", "--repeat", "0"], "--repeat: must be at least 1, not 0"),
        (["run", "s.yaml", "--repeat", "-1"], "--repeat: must be at least 1, not -1"),
        (["run", "s.yaml", "--concurrency", "0"], "--concurrency: must be at least 1, not 0"),
        (["history", "--limit", "0"], "--limit: must be at least 1, not 0"),
        (["history", "--limit", "-1"], "--limit: must be at least 1, not -1"),
        (["costs", "--days", "0"], "--days: must be more than 0 (for all time, leave --days out)"),
        (["costs", "--days", "-1"], "--days: must be more than 0"),
        (["costs", "--days", "nan"], "--days: must be more than 0"),
        (["costs", "--per-day", "-5"], "--per-day: must be at least 0, not -5"),
        (["models", "--fit", "--context", "0"], "--context: must be at least 1, not 0"),
        (["models", "--fit", "--context", "-4096"], "--context: must be at least 1, not -4096"),
        (["models", "--context", "8k"], "--context: '8k' is not a whole number"),
        (["ask", "hi", "--seed", "-1"], "--seed: must be from 0 to 4294967294, not -1"),
    ],
)
def test_out_of_range_options_are_refused(
    argv: list[str], said: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    assert said in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (["prices", "--url", "http://127.0.0.1:9/prices.json"], "--url needs --update"),
        (["-t", "embedded:smollm2", "models"], "workbench models: takes no targets; drop -t"),
        (["-t", "embedded:smollm2", "costs"], "workbench costs: takes no targets; drop -t"),
        (["-t", "embedded:smollm2", "run", "--resume", "latest"], "--resume runs the targets"),
        (["run", "--resume", "latest", "-t", "embedded:smollm2"], "--resume runs the targets"),
        (["run", "--resume", "latest", "--repeat", "3"], "drop --repeat"),
        (["costs", "--per-day", "100000000"], "--per-day must be at most 10,000,000"),
    ],
)
def test_options_that_would_be_ignored_are_refused(
    argv: list[str], said: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    assert said in capsys.readouterr().err


def test_context_alone_implies_fit(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("OLLAMA_HOST", "127.0.0.1:9")
    assert main(["models", "--context", "4096", "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    (smollm2,) = [r for r in rows if r["target"] == "embedded:smollm2"]
    assert smollm2["context"] == 4096 and smollm2["verdict"] in ("fits", "tight", "won't fit")


SUITE = """\
name: global-targets
targets: [openai:gpt-4o-mini]
params: {max_tokens: 2}
prompt: Say hi.
cases:
  - id: hi
    expect: [{max_output_tokens: 2}]
"""


def test_run_takes_targets_given_before_the_command(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """As `ask` does: `workbench -t T run S` is `workbench run S -t T`."""
    suite = tmp_path / "suite.yaml"
    suite.write_text(SUITE)
    # The suite's own target has no key: only the one given with -t can pass.
    assert main(["-t", "embedded:smollm2", "run", str(suite)]) == 0
    out = capsys.readouterr().out
    assert "embedded:smollm2" in out and "openai" not in out
    assert main(["-t", "bogus:model", "run", str(suite)]) == 2
    assert "bogus" in capsys.readouterr().err


@pytest.mark.parametrize("command", [["ask", "hi"], ["models"], ["costs"]])
def test_an_endpoint_named_like_a_built_in_is_a_config_error(
    command: list[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = tmp_path / "config.toml"
    config.write_text('[endpoints.embedded]\nkind = "openai"\nbase_url = "http://127.0.0.1:1/v1"\n')
    monkeypatch.setenv("WORKBENCH_CONFIG", str(config))
    assert main(command) == 2
    err = capsys.readouterr().err
    assert err.startswith("workbench: ") and "'embedded' is a built-in provider" in err


def test_targets_before_and_after_the_command_are_all_used(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`workbench -t A ask … -t B` asks A and B, in that order: where a -t stands never
    drops it. A target given twice is asked twice, as `ask -t A -t A` does."""
    a, b = "embedded:smollm2@max_tokens=2,label=a", "embedded:smollm2@max_tokens=2,label=b"
    assert main(["-t", a, "ask", "hi", "-t", b, "--json"]) == 0
    results = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["target"] for r in results] == [a, b]
    assert main(["-t", a, "ask", "hi", "-t", a, "--json"]) == 0
    results = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["target"] for r in results] == [a, a]


def test_run_takes_targets_before_and_after_the_command(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    suite = tmp_path / "suite.yaml"
    suite.write_text(SUITE)
    a, b = "embedded:smollm2@label=before", "embedded:smollm2@label=after"
    assert main(["-t", a, "run", str(suite), "--report", "json", "-t", b]) == 0
    report = json.loads(capsys.readouterr().out)
    assert {r["target"] for r in report["results"]} == {
        "embedded:smollm2@max_tokens=2,label=before",
        "embedded:smollm2@max_tokens=2,label=after",
    }


@pytest.mark.parametrize("command", ["ask", "models", "costs", "leaderboard"])
def test_json_lines_are_called_so(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    """One object per line: no votes (or nothing stored) is no lines, still valid JSON Lines."""
    with pytest.raises(SystemExit):
        main([command, "--help"])
    assert "JSON Lines" in " ".join(capsys.readouterr().out.split())


def test_leaderboard_json_is_a_line_per_target_and_none_without_votes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from workbench.store import Store

    monkeypatch.setenv("WORKBENCH_HOME", str(tmp_path))
    assert main(["leaderboard", "--json"]) == 0
    assert capsys.readouterr().out == ""
    with Store(tmp_path / "workbench.db") as store:
        store.add_vote("b1", ["embedded:smollm2", "llamacpp:smollm2"], "llamacpp:smollm2")
    assert main(["leaderboard", "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(r["target"], r["wins"], r["battles"]) for r in rows] == [
        ("llamacpp:smollm2", 1, 1),
        ("embedded:smollm2", 0, 1),
    ]
