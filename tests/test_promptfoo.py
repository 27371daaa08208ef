"""promptfoo configs read as suites: providers, tests, assertions, and what is not supported."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any, TypeVar
from xml.etree import ElementTree as ET

import pytest
from pydantic import BaseModel

from providers.base import Message
from providers.registry import BUILTIN
from tests.llama_server import LlamaServer
from workbench import locations
from workbench.cli import main
from workbench.store import Store
from workbench.suites.loader import SuiteError, load_suite, render_messages
from workbench.suites.promptfoo import is_promptfoo, load_promptfoo
from workbench.suites.runs import RunInfo, list_runs
from workbench.suites.schema import (
    Contains,
    ContainsAll,
    ContainsAny,
    Equals,
    IContains,
    IContainsAll,
    IContainsAny,
    Json,
    MaxCost,
    MaxLatency,
    Not,
    NotContains,
    Regex,
    StartsWith,
)

M = TypeVar("M", bound=BaseModel)

CONFIG = """\
description: Capitals
prompts:
  - file://prompt.txt
  - "A second prompt that is noted, not run: {{country}}"
providers:
  - openai:gpt-4o-mini
  - openai:chat:gpt-4o-mini
  - anthropic:messages:claude-3-5-haiku-latest
  - ollama:chat:llama3.2
  - ollama:llama3.2:1b
  - id: openai:chat:smollm2
    label: local smollm2
    config:
      apiBaseUrl: http://127.0.0.1:8080/v1
      temperature: 0
      max_tokens: 64
      response_format: {type: json_object}
  - anthropic:claude-3-5-haiku-latest:
      config: {temperature: 0.5}
defaultTest:
  vars: {style: briefly}
  assert:
    - type: latency
      threshold: 5000
    - type: llm-rubric
      value: is polite
tests:
  - description: france
    vars: {country: France, capital: Paris}
    assert:
      - type: contains
        value: "{{capital}}"
      - type: icontains
        value: paris
      - type: not-contains
        value: London
      - type: regex
        value: "\\\\bParis\\\\b"
      - type: equals
        value: Paris
      - type: starts-with
        value: The capital
      - type: is-json
      - type: contains-json
        value: {type: object, required: [capital], properties: {capital: {type: string}}}
      - type: cost
        threshold: 0.002
      - type: contains-all
        value: [Paris, France]
      - type: similar
        value: Paris is the capital
      - type: javascript
        value: output.length < 100
  - vars: {country: Japan}
    assert:
      - type: python
        value: len(output) < 100
      - type: is-json
        value: {type: object, required: [name], additionalProperties: false}
  - vars: {country: [Peru, Chile]}
    metadata: {owner: geo}
evaluateOptions: {maxConcurrency: 4}
"""


def loaded(model: type[M], **fields: Any) -> M:
    """An assertion with fields only the loader may set (promptfoo's exact semantics)."""
    return model.model_validate(fields, context={"internal": True})


def write(tmp_path: Path, config: str, name: str = "promptfooconfig.yaml") -> Path:
    path = tmp_path / name
    path.write_text(config, encoding="utf-8")
    (tmp_path / "prompt.txt").write_text("Name the capital of {{country}}, {{style}}.\n")
    return path


def test_every_supported_assertion_converts_and_the_rest_are_listed(tmp_path: Path) -> None:
    suite = load_suite(write(tmp_path, CONFIG), known_providers=BUILTIN)
    assert suite.name == "Capitals"
    assert suite.prompt == "Name the capital of {{country}}, {{style}}.\n"
    assert suite.concurrency == 4
    assert suite.targets == [
        "openai:gpt-4o-mini",
        "openai:gpt-4o-mini",
        "anthropic:claude-3-5-haiku-latest",
        "ollama:llama3.2",
        "ollama:llama3.2:1b",
        "local-8080:smollm2@temperature=0,max_tokens=64,label=local smollm2",
        "anthropic:claude-3-5-haiku-latest@temperature=0.5",
    ]
    assert suite.endpoints == {"local-8080": "http://127.0.0.1:8080/v1"}
    assert [case.id for case in suite.cases] == ["france", "test-2", "test-3 [1]", "test-3 [2]"]
    france = suite.cases[0]
    capital_schema = {"type": "object", "required": ["capital"],
                      "properties": {"capital": {"type": "string"}}}  # fmt: skip
    assert france.vars == {"style": "briefly", "country": "France", "capital": "Paris"}
    assert france.expect == [
        MaxLatency(value=5.0),
        Contains(value="Paris"),
        IContains(value="paris"),
        NotContains(value="London"),
        Regex(value=r"\bParis\b"),
        loaded(Equals, value="Paris", exact=True),
        loaded(StartsWith, value="The capital", exact=True),
        loaded(Json, exact=True),
        loaded(Json, anywhere=True, json_schema=capital_schema),
        MaxCost(value=0.002),
        ContainsAll(value=["Paris", "France"]),
    ]
    assert france.unchecked == [
        "llm-rubric 'is polite'",
        "similar 'Paris is the capital'",
        "javascript 'output.length < 100'",
    ]
    name_schema = {"type": "object", "required": ["name"], "additionalProperties": False}
    assert suite.cases[1].expect == [
        MaxLatency(value=5.0),
        loaded(Json, exact=True, json_schema=name_schema),
    ]
    assert [c.vars["country"] for c in suite.cases[2:]] == ["Peru", "Chile"]
    assert suite.unchecked == [
        "defaultTest.assert[1] (every test): assertion 'llm-rubric' cannot be checked here",
        "tests[0] 'france': assertion 'similar' cannot be checked here",
        "tests[0] 'france': assertion 'javascript' cannot be checked here",
        "tests[1] 'test-2': assertion 'python' cannot be checked here",
    ]
    assert suite.unsupported == [
        "prompts: 2 prompts given; only the first is run",
        "providers[5].config.response_format: not supported (ignored)",
        *suite.unchecked,
    ]
    assert render_messages(suite, france) == [
        Message("user", "Name the capital of France, briefly.\n")
    ]


def test_detection_and_direct_use(tmp_path: Path) -> None:
    assert is_promptfoo({"prompts": ["x"], "providers": ["openai:gpt-4o-mini"]})
    assert not is_promptfoo({"name": "x", "prompt": "y", "cases": []})
    data = {
        "prompts": ["Hi {{name}}"],
        "providers": "ollama:chat:qwen2.5:0.5b",
        "tests": [{"vars": {"name": "Bo"}, "assert": [{"type": "icontains", "value": "bo"}]}],
    }
    suite = load_promptfoo(data, tmp_path / "config.yaml")
    assert suite.targets == ["ollama:qwen2.5:0.5b"]
    assert suite.cases[0].expect == [IContains(value="bo")]
    assert suite.path == tmp_path / "config.yaml"


def test_chat_prompt_file_becomes_a_conversation(tmp_path: Path) -> None:
    chat = [
        {"role": "system", "content": "You answer in {{language}}."},
        {"role": "user", "content": "Say hello."},
    ]
    (tmp_path / "chat.json").write_text(json.dumps(chat))
    path = write(
        tmp_path,
        "prompts: [file://chat.json]\nproviders: [openai:gpt-4o-mini]\n"
        "tests:\n  - vars: {language: French}\n",
    )
    suite = load_suite(path)
    assert render_messages(suite, suite.cases[0]) == [
        Message("system", "You answer in French."),
        Message("user", "Say hello."),
    ]


def test_no_tests_runs_the_prompt_once(tmp_path: Path) -> None:
    suite = load_suite(write(tmp_path, "prompts: [Hello]\nproviders: [openai:gpt-4o-mini]\n"))
    assert [(c.id, c.expect) for c in suite.cases] == [("test-1", [])]


HEAD = "prompts: ['Capital of {{country}}?']\nproviders: [openai:gpt-4o-mini]\n"
BAD = [
    (
        "no prompts",
        "prompts: []\nproviders: [openai:gpt-4o-mini]\n",
        "1: prompts: is empty: give at least one prompt",
    ),
    (
        "unsupported provider",
        "prompts: [hi]\nproviders:\n  - openai:gpt-4o-mini\n  - vertex:gemini-pro\n",
        "4: providers[1]: provider 'vertex:gemini-pro' is not supported; use openai:, "
        "anthropic:, ollama:, or an openai: provider with config.apiBaseUrl for any "
        "OpenAI-compatible server",
    ),
    (
        "not a chat provider",
        "prompts: [hi]\nproviders: [openai:embedding:text-embedding-3-small]\n",
        "2: providers[0]: provider 'openai:embedding:text-embedding-3-small': only chat "
        "models are supported",
    ),
    (
        "bad regex",
        HEAD + "tests:\n  - vars: {country: France}\n    assert:\n"
        "      - type: icontains\n        value: paris\n"
        "      - type: regex\n        value: '(Paris'\n",
        "8: tests[0].assert[1]: invalid regex '(Paris': missing ), unterminated subpattern "
        "at position 0",
    ),
    (
        "undefined var",
        HEAD + "tests:\n  - vars: {country: France}\n  - vars: {city: Lyon}\n",
        "5: tests[1].vars: {{country}} is used by the suite's prompt but not defined in the "
        "vars of case 'test-2'",
    ),
    (
        "undefined var in an assertion value",
        HEAD + "tests:\n  - vars: {country: France}\n    assert:\n"
        "      - type: contains\n        value: '{{capital}}'\n",
        "7: tests[0].assert[0].value: undefined variable 'capital'",
    ),
    (
        "latency without a threshold",
        HEAD + "tests:\n  - vars: {country: France}\n    assert:\n      - type: latency\n",
        "6: tests[0].assert[0]: latency needs a numeric threshold",
    ),
    (
        "nunjucks filter",
        "prompts: ['{{ country | upper }}']\nproviders: [openai:gpt-4o-mini]\n"
        "tests: [{vars: {country: x}}]\n",
        "1: prompts[0]: unsupported template expression '{{ country | upper }}'; only {{name}} is",
    ),
    (
        "prompt file missing",
        "prompts: [file://missing.txt]\nproviders: [openai:gpt-4o-mini]\n",
        "1: prompts[0]: cannot read file://missing.txt: No such file or directory",
    ),
    (
        "tests from a CSV file",
        HEAD + "tests: file://tests.csv\n",
        "3: tests: expected a list of tests (files are not supported)",
    ),
    (
        "apiBaseUrl on anthropic",
        "prompts: [hi]\nproviders:\n  - id: anthropic:messages:claude-3-5-haiku-latest\n"
        "    config: {apiBaseUrl: 'http://127.0.0.1:9000'}\n",
        "3: providers[0]: 'anthropic:messages:claude-3-5-haiku-latest': apiBaseUrl is read "
        "for OpenAI-compatible (openai:) providers only; name other servers in the "
        "workbench config's [endpoints] instead",
    ),
]


@pytest.mark.parametrize(("config", "expected"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_config_points_at_its_own_line_and_field(
    tmp_path: Path, config: str, expected: str
) -> None:
    path = write(tmp_path, config)
    with pytest.raises(SuiteError) as caught:
        load_suite(path, known_providers=BUILTIN)
    assert str(caught.value) == f"{path}:{expected}"


def test_endpoints_count_as_known_providers(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "prompts: [hi]\nproviders:\n  - id: openai:chat:a\n    config: {apiBaseUrl: "
        "'https://api.example.com/v1'}\n  - id: openai:chat:b\n    config: {apiBaseUrl: "
        "'http://localhost:1234/v1'}\n  - id: openai:chat:c\n    config: {apiBaseUrl: "
        "'http://localhost:1234/v1'}\n",
    )
    suite = load_suite(path, known_providers=BUILTIN)
    assert suite.targets == ["api.example.com:a", "local-1234:b", "local-1234:c"]
    assert suite.endpoints == {
        "api.example.com": "https://api.example.com/v1",
        "local-1234": "http://localhost:1234/v1",
    }


CHECKS = """\
prompts: ['Capital of {{country}}?']
providers: [openai:gpt-4o-mini]
tests:
  - vars: {country: France}
    assert:
      - type: contains-any
        value: '"Paris, France", Lyon ,, Nice'
      - type: icontains-any
        value: [paris, '{{country}}']
      - type: icontains-all
        value: paris, france
      - type: not-icontains
        value: Berlin
      - type: not-contains-any
        value: [Rome, Madrid]
      - type: not-equals
        value: Lyon
      - type: not-is-json
      - type: not-regex
        value: '^\\d+$'
      - type: is-json
        value: {type: object, properties: {name: {type: string, minLength: 1}}}
      - type: contains
        value: Paris
        transform: output.toUpperCase()
      - type: not-latency
        threshold: 100
      - type: equals
        value: {capital: Paris}
      - type: contains-json
        value: file://schema.json
"""


def test_promptfoo_checks_convert_as_promptfoo_reads_them(tmp_path: Path) -> None:
    (france,) = load_suite(write(tmp_path, CHECKS)).cases
    assert france.expect == [
        ContainsAny(value=["Paris, France", "Lyon", "Nice"]),  # its comma-separated form
        IContainsAny(value=["paris", "France"]),
        IContainsAll(value=["paris", "france"]),
        Not(value=IContains(value="Berlin")),
        Not(value=ContainsAny(value=["Rome", "Madrid"])),
        Not(value=loaded(Equals, value="Lyon", exact=True)),
        Not(value=loaded(Json, exact=True)),
        Not(value=Regex(value=r"^\d+$")),
    ]
    assert france.unchecked == [
        'is-json {"type": "object", "properties": {"name": {"type": "string"…',
        "contains 'Paris'",
        "not-latency",
        'equals {"capital": "Paris"}',
        "contains-json 'file://schema.json'",
    ]
    assert [line.split(": ", 1)[1] for line in load_suite(write(tmp_path, CHECKS)).unchecked] == [
        "is-json schema with minLength cannot be checked here",
        "assertion 'contains' with a transform cannot be checked here",
        "assertion 'not-latency' cannot be checked here",
        "assertion 'equals' with a JSON value cannot be checked here",
        "contains-json with a schema file cannot be checked here",
    ]


def test_an_unterminated_quote_in_a_comma_separated_value_is_an_error(tmp_path: Path) -> None:
    config = HEAD + "tests:\n  - vars: {country: x}\n    assert:\n" \
        "      - type: contains-any\n        value: '\"Paris, Lyon'\n"  # fmt: skip
    path = write(tmp_path, config)
    with pytest.raises(SuiteError) as caught:
        load_suite(path)
    assert str(caught.value) == f"{path}:7: tests[0].assert[0].value: unterminated quoted value"


def _runs() -> list[RunInfo]:
    with Store(locations.database_path()) as store:
        return list_runs(store)


def test_failing_promptfoo_checks_fail_the_run(
    home: Path, llama_server: LlamaServer, capsys: pytest.CaptureFixture[str]
) -> None:
    """contains-any and not-icontains used to be skipped, and the test passed."""
    path = write(home, f"""\
prompts: ["Answer briefly: {{{{question}}}}"]
providers:
  - id: openai:chat:smollm2
    config: {{apiBaseUrl: "{llama_server.openai_url}", temperature: 0, max_tokens: 16}}
tests:
  - description: two plus two
    vars: {{question: "What is 2+2?"}}
    assert:
      - type: contains-any
        value: ["zebra-not-there", "XYZZY"]
      - type: not-regex
        value: "^"
""")  # fmt: skip
    assert main(["run", str(path), "--out", str(home / "r.xml")]) == 1
    out = capsys.readouterr().out
    assert "contains_any ['zebra-not-there', 'XYZZY']: answer contains none of" in out
    assert "not regex /^/: answer passes regex /^/, and must not" in out
    (suite,) = ET.parse(home / "r.xml").getroot()
    assert (suite.get("failures"), suite.get("skipped")) == ("1", "0")


# One test promptfoo checks with llm-rubric alone, which workbench cannot run, and one with
# a check it can run as well.
RUBRIC = """\
prompts: ["What is the capital of France?"]
providers: [openai:gpt-4o-mini]
tests:
  - description: judged only
    assert:
      - type: llm-rubric
        value: names Paris
  - description: judged and checked
    assert:
      - type: llm-rubric
        value: names Paris
      - type: not-icontains
        value: XYZZY
"""


def test_a_check_that_cannot_run_is_refused_before_anything_runs(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(home, RUBRIC)
    assert main(["run", str(path), "-t", "embedded:smollm2"]) == 2
    err = capsys.readouterr().err
    assert "these promptfoo checks cannot be run here" in err
    assert "tests[0] 'judged only': assertion 'llm-rubric' cannot be checked here" in err
    assert "--skip-unsupported" in err
    assert not _runs()


def test_with_skip_unsupported_a_test_left_with_no_check_is_skipped_not_passed(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from workbench.cli import build_parser
    from workbench.commands.run import run_command
    from workbench.config import load_settings

    path = write(home, RUBRIC)
    codes = []
    for out in ("r.xml", "r.json", "r.md", "r.csv"):
        args = build_parser().parse_args(
            ["run", str(path), "-t", "embedded:smollm2@temperature=0,max_tokens=8", "--cache",
             "--out", str(home / out), "--skip-unsupported"]
        )  # fmt: skip
        codes.append(run_command(args, load_settings()))
    assert codes == [0, 0, 0, 0]  # the only check that ran passed; nothing failed
    (suite,) = ET.parse(home / "r.xml").getroot()
    assert (suite.get("tests"), suite.get("failures"), suite.get("skipped")) == ("2", "0", "1")
    assert "not checked (--skip-unsupported): tests[0] 'judged only'" in capsys.readouterr().err
    skipped = suite.find("testcase[@name='judged only']/skipped")
    assert skipped is not None
    assert "llm-rubric 'names Paris': not checked" in (skipped.get("message") or "")
    assert suite.find("testcase[@name='judged and checked']/skipped") is None
    report = json.loads((home / "r.json").read_text())
    judged = {r["case"]: (r["passed"], r["skipped"]) for r in report["results"]}
    assert judged == {"judged only": (False, True), "judged and checked": (True, False)}
    assert report["totals"][0]["passed"] == 1 and report["totals"][0]["skipped"] == 1
    md = (home / "r.md").read_text()
    assert "| 1/1 (100%), 1 not checked |" in md and "## Not checked" in md
    rows = {r["case"]: r for r in csv.DictReader((home / "r.csv").open())}
    assert rows["judged only"]["passed"] == "False" and rows["judged only"]["skipped"] == "True"


def test_a_test_with_some_checks_not_run_is_marked_wherever_its_verdict_shows(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`judged and checked` passed on not-icontains alone, with its llm-rubric not run: the
    table showed a plain ✓ and JUnit a plain pass; only the JSON said so."""
    path = write(home, RUBRIC)
    target = "embedded:smollm2@temperature=0,max_tokens=8"
    for out in ("r.xml", "r.md", "r.csv", "r.json"):
        code = main(["run", str(path), "-t", target, "--cache", "--skip-unsupported",
                     "--out", str(home / out)])  # fmt: skip
        assert code == 0  # still a pass: the checks that ran passed
    table = capsys.readouterr().out
    row = next(line for line in table.splitlines() if "judged and checked" in line)
    assert "✓* " in row
    legend = "* not every check ran (--skip-unsupported): 1 answer judged without llm-rubric"
    assert legend in table
    (suite,) = ET.parse(home / "r.xml").getroot()
    assert (suite.get("failures"), suite.get("skipped")) == ("0", "1")
    partly = suite.find("testcase[@name='judged and checked']")
    assert partly is not None and partly.find("failure") is None
    assert partly.find("skipped") is None
    assert partly.findtext("system-out") == (
        "passed on the checks that ran; not checked (--skip-unsupported): llm-rubric 'names Paris'"
    )
    md = (home / "r.md").read_text()
    (md_row,) = [line for line in md.splitlines() if line.startswith("| judged and checked |")]
    assert "| ✓* " in md_row and "\\* not every check ran" in md
    rows = {r["case"]: r for r in csv.DictReader((home / "r.csv").open())}
    assert rows["judged and checked"]["not_checked"] == "llm-rubric 'names Paris'"
    assert rows["judged and checked"]["passed"] == "True"
    assert rows["judged only"]["not_checked"] == "llm-rubric 'names Paris'"  # skipped: all
    report = json.loads((home / "r.json").read_text())
    checked = next(r for r in report["results"] if r["case"] == "judged and checked")
    assert checked["not_checked"] == ["llm-rubric 'names Paris'"]


def test_with_t_the_configs_providers_are_not_checked(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """README: -t runs its targets instead of the config's, which then need not exist here;
    yet an unsupported provider id was refused with exit 2."""
    path = write(home, """\
prompts: ["What is the capital of France?"]
providers: [some-unsupported-id, bedrock:anthropic.claude-v2]
tests:
  - description: capital
    assert:
      - type: not-contains
        value: XYZZY
""")  # fmt: skip
    assert main(["run", str(path), "-t", "embedded:smollm2@max_tokens=4"]) == 0
    assert "capital" in capsys.readouterr().out
    assert main(["run", str(path)]) == 2  # without -t its providers are the targets
    assert "provider 'some-unsupported-id' is not supported" in capsys.readouterr().err
