"""Suite files: what loads, and the exact `file:line: field: message` for what does not."""

from __future__ import annotations

from pathlib import Path

import pytest

from providers.base import Message
from providers.registry import BUILTIN
from workbench.suites.loader import SuiteError, load_suite, render_messages
from workbench.suites.schema import (
    ContainsAny,
    IContains,
    IContainsAll,
    Json,
    MaxLatency,
    Not,
    NotContains,
    Regex,
    Suite,
)
from workbench.suites.source import MAX_BYTES
from workbench.suites.template import TemplateError, render, variables_in

PROMPTS = Path(__file__).resolve().parent.parent / "prompts"
KNOWN = (
    "contains, icontains, not_contains, starts_with, equals, regex, contains_any, icontains_any, "
    "contains_all, icontains_all, json, not, max_latency_s, max_ttft_s, max_cost_usd, "
    "max_output_tokens, min_length, max_length"
)
HEAD = 'name: demo\nprompt: "Capital of {{country}}?"\n'

BAD_FILES: list[tuple[str, str | bytes, str]] = [
    (
        "bad assertion inside not",
        HEAD + "cases:\n  - id: fr\n    vars: {country: France}\n    expect:\n"
        "      - not: {contains_any: []}\n",
        "7: cases[0].expect[0].value.value: needs at least 1 item, got 0",
    ),
    (
        "unknown key",
        HEAD + "cases:\n  - id: fr\n    vars: {country: France}\n    expct: []\n",
        "6: cases[0].expct: unknown key 'expct' (did you mean 'expect'?); "
        "known keys: id, vars, prompt, messages, expect, repeat, private",
    ),
    (
        "unknown top-level key",
        "name: demo\nprompts: hi\ncases: [{id: a, prompt: hi}]\n",
        "2: prompts: unknown key 'prompts' (did you mean 'prompt'?); known keys: name, "
        "description, targets, system, params, prompt, repeat, concurrency, private, cases",
    ),
    (
        "loader-only key",
        "name: demo\npath: /etc/passwd\ncases: [{id: a, prompt: hi}]\n",
        "2: path: unknown key 'path' (did you mean 'repeat'?); known keys: name, "
        "description, targets, system, params, prompt, repeat, concurrency, private, cases",
    ),
    (
        "wrong type",
        HEAD + "repeat: three\ncases:\n  - id: fr\n    vars: {country: France}\n",
        "3: repeat: expected a whole number, got 'three'",
    ),
    (
        "wrong type in a list",
        "name: demo\ntargets: embedded:smollm2\ncases: [{id: a, prompt: hi}]\n",
        "2: targets: expected a list, got 'embedded:smollm2'",
    ),
    (
        "var that is not a scalar",
        HEAD + "cases:\n  - id: fr\n    vars:\n      country: [France]\n",
        "6: cases[0].vars.country: a var is a string, number or true/false, not list",
    ),
    (
        "missing key",
        "prompt: hi\ncases: [{id: a}]\n",
        "1: name: required, but missing",
    ),
    (
        "no cases",
        "name: demo\nprompt: hi\ncases: []\n",
        "3: cases: needs at least 1 item, got 0",
    ),
    (
        "unknown assertion",
        HEAD + "cases:\n  - id: fr\n    vars: {country: France}\n    expect:\n"
        "      - icontains: paris\n      - icontain: paris\n",
        f"8: cases[0].expect[1]: unknown assertion type 'icontain' (did you mean "
        f"'icontains'?); known: {KNOWN}",
    ),
    (
        "unknown assertion, long form",
        HEAD + "cases:\n  - id: fr\n    vars: {country: France}\n    expect:\n"
        "      - {type: similar, value: Paris}\n",
        f"7: cases[0].expect[0]: unknown assertion type 'similar'; known: {KNOWN}",
    ),
    (
        "assertion with a bad value",
        HEAD + "cases:\n  - id: fr\n    vars: {country: France}\n    expect:\n"
        "      - max_latency_s: soon\n",
        "7: cases[0].expect[0].value: expected a number, got 'soon'",
    ),
    (
        "two assertions in one item",
        HEAD + "cases:\n  - id: fr\n    vars: {country: France}\n    expect:\n"
        "      - {contains: a, regex: b}\n",
        "7: cases[0].expect[0]: one assertion per item, not contains and regex",
    ),
    (
        "undefined var",
        HEAD + "cases:\n  - id: fr\n    vars: {country: France}\n"
        "  - id: de\n    vars: {contry: Germany}\n",
        "7: cases[1].vars: {{country}} is used by the suite's prompt but not defined in "
        "the vars of case 'de'",
    ),
    (
        "undefined var in a check",
        HEAD + "cases:\n  - id: fr\n    vars: {country: France}\n    expect:\n"
        "      - icontains: Paris\n      - not: {not_contains: '{{forbidden}}'}\n",
        "8: cases[0].expect[1]: {{forbidden}} is used by the case's expect[1] but not defined "
        "in the vars of case 'fr'",
    ),
    (
        "a regex that its vars break",
        HEAD + "cases:\n  - id: fr\n    vars: {country: 'Fr(ance'}\n    expect:\n"
        "      - regex: '^{{country}}'\n",
        "7: cases[0].expect[0]: invalid regex '^Fr(ance': missing ), "
        "unterminated subpattern at position 3",
    ),
    (
        "undefined var in messages",
        "name: demo\ncases:\n  - id: chat\n    messages:\n"
        "      - {role: user, content: 'Hi {{name}}'}\n",
        "3: cases[0].vars: {{name}} is used by the case's messages[0] but not defined in "
        "the vars of case 'chat'",
    ),
    (
        "unsupported template expression",
        "name: demo\nprompt: '{{ country | upper }}'\ncases: [{id: a, vars: {country: x}}]\n",
        "2: prompt: unsupported template expression '{{ country | upper }}'; only {{name}} is",
    ),
    (
        "case without a prompt",
        "name: demo\ncases:\n  - id: a\n",
        "3: cases[0]: case 'a' has no prompt: set `prompt` on the suite or the case, "
        "or give `messages`",
    ),
    (
        "prompt and messages",
        "name: demo\ncases:\n  - id: a\n    prompt: hi\n"
        "    messages: [{role: user, content: hi}]\n",
        "3: cases[0]: give either prompt or messages, not both",
    ),
    (
        "conversation ending with the assistant",
        "name: demo\ncases:\n  - id: a\n    messages:\n      - {role: user, content: hi}\n"
        "      - {role: assistant, content: hello}\n",
        "4: cases[0].messages: the last message must be a user turn",
    ),
    (
        "malformed target",
        "name: demo\ntargets:\n  - embedded:smollm2\n  - smollm2\ncases: [{id: a, prompt: hi}]\n",
        "4: targets[1]: target 'smollm2' is not provider:model "
        "(e.g. embedded:smollm2, openai:gpt-4o-mini)",
    ),
    (
        "target with a bad setting",
        "name: demo\ntargets: ['embedded:smollm2@temperature=hot']\ncases: [{id: a, prompt: hi}]\n",
        "2: targets[0]: target 'embedded:smollm2@temperature=hot': temperature must be a "
        "number, not 'hot'",
    ),
    (
        "unknown provider",
        "name: demo\ntargets:\n  - embedded:smollm2\n  - mistral:large\n"
        "cases: [{id: a, prompt: hi}]\n",
        "4: targets[1]: unknown provider 'mistral' in target 'mistral:large'; "
        "known: embedded, ollama, openai, anthropic",
    ),
    (
        "bad regex",
        HEAD + "cases:\n  - id: fr\n    vars: {country: France}\n    expect:\n"
        "      - regex: '(Paris'\n",
        "7: cases[0].expect[0]: invalid regex '(Paris': missing ), unterminated subpattern "
        "at position 0",
    ),
    (
        "bad regex flag",
        HEAD + "cases:\n  - id: fr\n    vars: {country: France}\n    expect:\n"
        "      - {regex: Paris, flags: iq}\n",
        "7: cases[0].expect[0]: unknown regex flag 'q'; use i, m, s or x",
    ),
    (
        "duplicate case ids",
        HEAD + "cases:\n  - id: fr\n    vars: {country: France}\n"
        "  - id: de\n    vars: {country: Germany}\n  - id: fr\n    vars: {country: Spain}\n",
        "8: cases[2].id: duplicate case id 'fr' (also cases[0])",
    ),
    (
        "duplicate key",
        "name: demo\nprompt: hi\nprompt: hello\ncases: [{id: a}]\n",
        "3: prompt: duplicate key 'prompt' (first on line 2)",
    ),
    (
        "non-UTF-8 bytes",
        b"name: demo\nprompt: caf\xe9\ncases: [{id: a}]\n",
        "2: not UTF-8: byte 0xe9 at offset 22",
    ),
    (
        "YAML syntax error",
        "name: demo\ncases:\n  - id: a\n    prompt: [unclosed\n",
        "5: YAML: expected ',' or ']', but got '<stream end>'",
    ),
    (
        "YAML tab indentation",
        "name: demo\ncases:\n\t- id: a\n",
        "3: YAML: found character '\\t' that cannot start any token",
    ),
    (
        "python tag refused",
        "name: !!python/object/apply:os.system ['true']\ncases: [{id: a, prompt: hi}]\n",
        "1: YAML: could not determine a constructor for the tag "
        "'tag:yaml.org,2002:python/object/apply:os.system'",
    ),
    (
        "billion laughs",
        "a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n"
        + "".join(
            f"{y}: &{y} [{', '.join([f'*{x}'] * 10)}]\n"
            for x, y in zip("abcdefgh", "bcdefghi", strict=True)
        ),
        "5: e: aliases expand to more than 100000 values (a 'billion laughs' file?)",
    ),
    (
        "recursive alias",
        "name: demo\ncases: &loop [*loop]\n",
        "2: cases[0]: an alias refers to itself",
    ),
    (
        "not a mapping",
        "- just\n- a list\n",
        "1: a suite is a mapping with at least `name` and `cases`",
    ),
    # Refused with -t embedded:smollm2@temperature=-1; a suite's params ran with them.
    (
        "temperature out of range",
        "name: demo\nparams:\n  top_p: 0.5\n  temperature: -3\ncases: [{id: a, prompt: hi}]\n",
        "4: params.temperature: temperature must be at least 0, not -3",
    ),
    (
        "top_p out of range",
        "name: demo\nparams: {temperature: 0.5, top_p: 7}\ncases: [{id: a, prompt: hi}]\n",
        "2: params.top_p: top_p must be above 0 and at most 1, not 7",
    ),
    (
        "seed that llama.cpp reads as random",
        "name: demo\nparams: {seed: -1}\ncases: [{id: a, prompt: hi}]\n",
        "2: params.seed: seed must be from 0 to 4294967294, not -1",
    ),
    (
        "temperature not finite",
        "name: demo\nparams:\n  temperature: .inf\ncases: [{id: a, prompt: hi}]\n",
        "3: params.temperature: temperature must be a finite number, not inf",
    ),
    # Empty checks passed whatever the answer.
    (
        "empty regex",
        HEAD + "cases:\n  - id: fr\n    vars: {country: France}\n    expect:\n      - regex: ''\n",
        "7: cases[0].expect[0].value: an empty regex matches every answer; give a pattern",
    ),
    (
        "empty item of contains_any",
        HEAD + "cases:\n  - id: fr\n    vars: {country: France}\n    expect:\n"
        "      - icontains: paris\n      - contains_any: [Paris, '']\n",
        "8: cases[0].expect[1].value[1]: an empty text is in every answer; give the text "
        "to look for",
    ),
    (
        "empty contains made by a var",
        HEAD + "cases:\n  - id: fr\n    vars: {country: France, city: ''}\n    expect:\n"
        "      - contains: '{{city}}'\n",
        "7: cases[0].expect[0].value: an empty text is in every answer; give the text to look for",
    ),
    (
        "empty case prompt",
        "name: demo\ncases:\n  - id: a\n    prompt: ''\n",
        "4: cases[0].prompt: the prompt is empty; write one, or remove the case",
    ),
    (
        "a latency limit of no time",
        HEAD + "cases:\n  - id: fr\n    vars: {country: France}\n    expect:\n"
        "      - max_ttft_s: 0\n",
        "7: cases[0].expect[0].value: should be greater than 0, got 0",
    ),
    (
        "empty case id",
        "name: demo\ncases:\n  - id: ''\n    prompt: hi\n",
        "3: cases[0].id: must not be empty",
    ),
    (
        "suite prompt empty once rendered",
        'name: demo\nprompt: "{{country}}"\ncases:\n  - id: a\n    vars: {country: " "}\n',
        "5: cases[0].vars: the prompt is empty once this case's vars are filled in; give them text",
    ),
]


@pytest.mark.parametrize(
    ("content", "expected"), [(c, e) for _, c, e in BAD_FILES], ids=[n for n, _, _ in BAD_FILES]
)
def test_bad_file_gives_file_line_field_and_reason(
    tmp_path: Path, content: str | bytes, expected: str
) -> None:
    path = tmp_path / "suite.yaml"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    with pytest.raises(SuiteError) as caught:
        load_suite(path, known_providers=BUILTIN)
    assert str(caught.value) == f"{path}:{expected}"


def test_error_attributes_and_first_problem_in_file_order(tmp_path: Path) -> None:
    path = tmp_path / "suite.yaml"
    path.write_text(
        "name: demo\nparams: {temperature: warm}\nrepeat: 0\ncases: [{id: a, prompt: hi}]\n"
    )
    with pytest.raises(SuiteError) as caught:
        load_suite(path)
    error = caught.value
    assert (error.path, error.line, error.field) == (path, 2, "params.temperature")
    assert error.message == "expected a number, got 'warm'"


def test_error_without_a_line_omits_it(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    with pytest.raises(SuiteError) as caught:
        load_suite(missing)
    assert str(caught.value) == f"{missing}: cannot read: No such file or directory"
    assert SuiteError(missing, None, "cases", "x").__str__() == f"{missing}: cases: x"


def test_oversized_file_is_refused_unread(tmp_path: Path) -> None:
    path = tmp_path / "huge.yaml"
    path.write_text("name: demo\n" + "#" * MAX_BYTES)
    with pytest.raises(SuiteError, match=f"file is larger than {MAX_BYTES // 1024 // 1024} MB"):
        load_suite(path)


def test_providers_are_only_checked_when_known_providers_are_given(tmp_path: Path) -> None:
    path = tmp_path / "suite.yaml"
    path.write_text("name: demo\ntargets: [lmstudio:qwen]\ncases: [{id: a, prompt: hi}]\n")
    assert load_suite(path).targets == ["lmstudio:qwen"]
    assert load_suite(path, known_providers=[*BUILTIN, "lmstudio"]).targets == ["lmstudio:qwen"]


def test_full_suite_loads_with_short_and_long_assertions(tmp_path: Path) -> None:
    path = tmp_path / "suite.yaml"
    path.write_text(
        """\
name: capitals
description: Capitals of countries
targets: [embedded:smollm2, "openai:gpt-4o-mini@temperature=0.5"]
system: Answer briefly.
params: {temperature: 0, max_tokens: 32, seed: 7}
prompt: "What is the capital of {{ country }}?"
repeat: 2
concurrency: 3
shared: &shared
  - max_latency_s: 30
cases:
  - id: fr
    vars: {country: France}
    expect:
      - icontains: paris
      - {type: regex, value: "par.s", flags: i}
      - json: {required: [name]}
      - json
      - max_latency_s: 5
  - id: 42
    vars: {country: Japan, polite: true, n: 3}
    repeat: 5
    private: true
    expect: *shared
"""
    )
    with pytest.raises(SuiteError, match="unknown key 'shared'"):
        load_suite(path)
    path.write_text(path.read_text().replace("shared: &shared\n  - max", "cases: &shared\n  - max"))
    with pytest.raises(SuiteError, match="duplicate key 'cases'"):
        load_suite(path)
    text = path.read_text().replace("cases: &shared\n  - max_latency_s: 30\n", "")
    path.write_text(text.replace("expect: *shared", "expect: [{max_latency_s: 30}]"))
    suite = load_suite(path, known_providers=BUILTIN)
    assert suite.path == path
    assert suite.params.max_tokens == 32 and suite.repeat == 2 and suite.concurrency == 3
    fr, jp = suite.cases
    assert fr.expect[0] == IContains(value="paris")
    assert fr.expect[1] == Regex(value="par.s", flags="i")
    assert fr.expect[2] == Json(required=["name"])
    assert fr.expect[3] == Json()
    assert fr.expect[4] == MaxLatency(value=5)
    assert jp.id == "42" and jp.repeat == 5 and jp.private
    assert jp.vars == {"country": "Japan", "polite": True, "n": 3}
    assert render_messages(suite, fr) == [
        Message("system", "Answer briefly."),
        Message("user", "What is the capital of France?"),
    ]


def test_checks_fill_in_the_case_vars_as_promptfoo_does(tmp_path: Path) -> None:
    """`not_contains: "{{forbidden}}"` checks the word, not the braces: left unfilled, a
    forbidden answer passed."""
    path = tmp_path / "s.yaml"
    path.write_text(
        HEAD + "cases:\n  - id: fr\n    vars: {country: France, city: Paris, n: 75}\n"
        "    expect:\n"
        "      - not_contains: '{{country}}n'\n"
        "      - contains_any: ['{{city}}', '{{n}}']\n"
        "      - not: {regex: '^{{city}}$'}\n"
        "      - icontains: '{{ city }} is'\n"
    )
    (case,) = load_suite(path).cases
    assert case.expect == [
        NotContains(value="Francen"),
        ContainsAny(value=["Paris", "75"]),
        Not(value=Regex(value="^Paris$")),
        IContains(value="Paris is"),
    ]


def test_a_var_holding_braces_is_inserted_as_it_is_into_a_check_as_into_the_prompt(
    tmp_path: Path,
) -> None:
    """Values are never rendered. A suite file's cases are made as they stream in and again
    as part of the suite: filled in each time, `{{b}}` in a value became X in the check, and
    `{{x}}` an undefined var that refused the suite."""
    path = tmp_path / "s.yaml"
    path.write_text(
        "name: demo\nprompt: 'Repeat exactly: {{a}}'\ncases:\n"
        "  - id: one\n    vars: {a: '{{b}}', b: X}\n    expect: [{equals: '{{a}}'}]\n"
        "  - id: two\n    vars: {a: '{{x}}'}\n    expect: [{contains: '{{a}}'}]\n"
    )
    suite = load_suite(path)
    one, two = suite.cases
    assert render_messages(suite, one)[-1].content == "Repeat exactly: {{b}}"
    assert [c.model_dump() for c in one.expect] == [
        {"type": "equals", "value": "{{b}}", "exact": False}
    ]
    assert [c.model_dump() for c in two.expect] == [{"type": "contains", "value": "{{x}}"}]


def test_any_all_and_not_in_a_suite_file(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(
        HEAD + "cases:\n  - id: fr\n    vars: {country: France}\n    expect:\n"
        "      - contains_any: [Paris, 75]\n"
        "      - icontains_all: [paris, france]\n"
        "      - not: {icontains: berlin}\n"
        "      - {type: not, value: {type: contains_any, value: [Rome, Madrid]}}\n"
    )
    expect = load_suite(path).cases[0].expect
    assert expect == [
        ContainsAny(value=["Paris", "75"]),
        IContainsAll(value=["paris", "france"]),
        Not(value=IContains(value="berlin")),
        Not(value=ContainsAny(value=["Rome", "Madrid"])),
    ]


def test_promptfoos_exact_forms_are_not_for_suite_files(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(HEAD + "cases:\n  - id: fr\n    vars: {country: France}\n    expect:\n"
                    "      - {equals: Paris, exact: true}\n")  # fmt: skip
    with pytest.raises(SuiteError, match="unknown key 'exact'; known keys: value, type"):
        load_suite(path)


def test_aliases_within_the_limit_are_fine(tmp_path: Path) -> None:
    path = tmp_path / "suite.yaml"
    path.write_text(
        "name: demo\nprompt: hi\ncases:\n"
        "  - {id: a, expect: &common [{min_length: 1}, {max_length: 400}]}\n"
        "  - {id: b, expect: *common}\n"
    )
    suite = load_suite(path)
    assert suite.cases[0].expect == suite.cases[1].expect


def test_multi_turn_case_renders_every_turn(tmp_path: Path) -> None:
    path = tmp_path / "suite.yaml"
    path.write_text(
        "name: chat\nsystem: 'You help {{who}}.'\ncases:\n  - id: follow-up\n"
        "    vars: {who: students, topic: TCP}\n    messages:\n"
        "      - {role: user, content: 'Explain {{topic}}.'}\n"
        "      - {role: assistant, content: It is a protocol.}\n"
        "      - {role: user, content: Shorter please.}\n"
    )
    suite = load_suite(path)
    assert render_messages(suite, suite.cases[0]) == [
        Message("system", "You help students."),
        Message("user", "Explain TCP."),
        Message("assistant", "It is a protocol."),
        Message("user", "Shorter please."),
    ]


def test_case_prompt_overrides_the_suite_template() -> None:
    suite = Suite.model_validate(
        {
            "name": "x",
            "prompt": "{{q}}",
            "cases": [{"id": "a", "prompt": "Say {{w}}", "vars": {"w": "hi"}}],
        }
    )
    assert render_messages(suite, suite.cases[0]) == [Message("user", "Say hi")]


def test_template_rendering() -> None:
    assert render("{{a}} and {{ b }} and {{a}}", {"a": 1, "b": True}) == "1 and true and 1"
    assert variables_in("{{a}} {{  b_2 }} plain { not } {{") == {"a", "b_2"}
    assert render("{{x}}", {"x": "{{y}}"}) == "{{y}}"  # values are not rendered again
    with pytest.raises(TemplateError, match="undefined variable 'b'"):
        render("{{a}}{{b}}", {"a": 1})
    with pytest.raises(TemplateError, match="unsupported template tag"):
        variables_in("{% if x %}y{% endif %}")
    with pytest.raises(KeyError):
        render("{{missing}}", {})


@pytest.mark.parametrize("path", sorted(PROMPTS.glob("*.yaml")), ids=lambda p: p.name)
def test_example_suites_load(path: Path) -> None:
    suite = load_suite(path, known_providers=BUILTIN)
    assert suite.cases and suite.targets
    for case in suite.cases:
        assert render_messages(suite, case)[-1].role == "user"


def test_the_four_examples_exist() -> None:
    names = {p.name for p in PROMPTS.glob("*.yaml")}
    assert {"offline-basics.yaml", "code-questions.yaml", "json-output.yaml"} <= names
    assert "slm-vs-llm.yaml" in names
    for name in ("offline-basics.yaml", "code-questions.yaml", "json-output.yaml"):
        suite = load_suite(PROMPTS / name)
        assert suite.targets == ["embedded:smollm2"]
        assert suite.params.temperature == 0
    assert load_suite(PROMPTS / "slm-vs-llm.yaml").targets == [
        "embedded:smollm2",
        "openai:gpt-4o-mini",
        "anthropic:claude-3-5-haiku-latest",
    ]


def test_yaml_numbers_and_dates_read_as_the_text_written(tmp_path: Path) -> None:
    path = tmp_path / "suite.yaml"
    path.write_text(
        "name: demo\nprompt: 'On {{day}}, what is 17 * 23?'\ncases:\n"
        "  - id: a\n    vars: {day: 2024-06-01}\n"
        "    expect: [{contains: 391}, {type: equals, value: 2024-06-01}]\n"
    )
    suite = load_suite(path)
    assert suite.cases[0].vars == {"day": "2024-06-01"}
    assert [a.model_dump()["value"] for a in suite.cases[0].expect] == ["391", "2024-06-01"]


def test_deep_nesting_is_refused_cleanly(tmp_path: Path) -> None:
    path = tmp_path / "deep.yaml"
    path.write_text("name: demo\ncases: " + "[" * 5000 + "]" * 5000 + "\n")
    with pytest.raises(SuiteError, match="YAML nests too deeply"):
        load_suite(path)
