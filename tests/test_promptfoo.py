"""promptfoo configs read as suites: providers, tests, assertions, and what is not supported."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from providers.base import Message
from providers.registry import BUILTIN
from workbench.suites.loader import SuiteError, load_suite, render_messages
from workbench.suites.promptfoo import is_promptfoo, load_promptfoo
from workbench.suites.schema import (
    Contains,
    Equals,
    IContains,
    Json,
    MaxCost,
    MaxLatency,
    NotContains,
    Regex,
    StartsWith,
)

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
    assert france.vars == {"style": "briefly", "country": "France", "capital": "Paris"}
    assert france.expect == [
        MaxLatency(value=5.0),
        Contains(value="Paris"),
        IContains(value="paris"),
        NotContains(value="London"),
        Regex(value=r"\bParis\b"),
        Equals(value="Paris"),
        StartsWith(value="The capital"),
        Json(),
        Json(required=["capital"], anywhere=True),
        MaxCost(value=0.002),
        Contains(value="Paris"),
        Contains(value="France"),
    ]
    assert suite.cases[1].expect == [MaxLatency(value=5.0), Json(required=["name"])]
    assert [c.vars["country"] for c in suite.cases[2:]] == ["Peru", "Chile"]
    assert suite.unsupported == [
        "prompts: 2 prompts given; only the first is run",
        "providers[5].config.response_format: not supported (ignored)",
        "defaultTest.assert[1] (every test): assertion 'llm-rubric' is not supported (skipped)",
        "tests[0] 'france': assertion 'similar' is not supported (skipped)",
        "tests[0] 'france': assertion 'javascript' is not supported (skipped)",
        "tests[1] 'test-2': assertion 'python' is not supported (skipped)",
        "tests[1] 'test-2': is-json schema checked for required keys only",
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
