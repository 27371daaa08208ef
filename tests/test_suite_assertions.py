"""Each assertion type, passing and failing, on hand-built results: pure logic, no model."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from pydantic import TypeAdapter

from workbench.engine.pricing import Cost
from workbench.engine.result import TargetResult
from workbench.suites.assertions import NOT_CHECKED, Outcome, check, check_all
from workbench.suites.schema import Assertion

ASSERTION: TypeAdapter[Assertion] = TypeAdapter(Assertion)
PARIS = "The capital of France is Paris. It has been the capital since 987."


def answer(text: str = PARIS, **changes: Any) -> TargetResult:
    """A finished result as a cloud model would leave it."""
    result = TargetResult(
        target="openai:gpt-4o-mini",
        name="openai:gpt-4o-mini",
        provider="openai",
        model="gpt-4o-mini",
        is_local=False,
        status="done",
        text=text,
        input_tokens=24,
        output_tokens=17,
        input_exact=True,
        output_exact=True,
        ttft_s=0.41,
        e2e_s=1.27,
        stop_reason="stop",
        cost=Cost("priced", 0.0000138),
    )
    return replace(result, **changes)


def outcome(spec: Any, result: TargetResult | None = None) -> Outcome:
    return check(ASSERTION.validate_python(spec), result or answer())


PASSING = [
    {"contains": "Paris"},
    {"icontains": "paris"},
    {"not_contains": "London"},
    {"starts_with": "The capital"},
    {"equals": PARIS},
    {"regex": r"\b987\b"},
    {"regex": "PARIS", "flags": "i"},
    {"max_latency_s": 2},
    {"max_ttft_s": 0.5},
    {"max_cost_usd": 0.001},
    {"max_output_tokens": 17},
    {"min_length": 10},
    {"max_length": 200},
    {"contains_any": ["Berlin", "Paris"]},
    {"icontains_any": ["berlin", "PARIS"]},
    {"contains_all": ["Paris", "France"]},
    {"icontains_all": ["paris", "FRANCE"]},
    {"not": {"icontains": "berlin"}},
    {"not": {"contains_all": ["Paris", "Berlin"]}},
]


@pytest.mark.parametrize("spec", PASSING, ids=lambda s: next(iter(s)))
def test_passes(spec: dict[str, Any]) -> None:
    assert outcome(spec) == Outcome(True, outcome(spec).assertion, "")


FAILING = [
    ({"contains": "paris"}, "contains 'paris'",
     f"answer does not contain 'paris'; it begins: {PARIS[:60]!r}…"),
    ({"icontains": "berlin"}, "icontains 'berlin'",
     f"answer does not contain 'berlin' (case-insensitive); it begins: {PARIS[:60]!r}…"),
    ({"not_contains": "Paris"}, "not_contains 'Paris'",
     "answer contains 'Paris': …'apital of France is Paris. It has been the ca'…"),
    ({"starts_with": "Paris"}, "starts_with 'Paris'",
     f"answer does not start with 'Paris'; it begins: {PARIS[:60]!r}…"),
    ({"equals": "Paris"}, "equals 'Paris'",
     f"answer is not 'Paris' (ignoring surrounding spaces); it is {PARIS[:60]!r}…"),
    ({"regex": r"\d{5}"}, r"regex /\d{5}/",
     f"no match for /\\d{{5}}/; it begins: {PARIS[:60]!r}…"),
    ({"max_latency_s": 1}, "max_latency_s 1", "took 1.27 s; at most 1 s allowed"),
    ({"max_ttft_s": 0.25}, "max_ttft_s 0.25", "first token after 0.41 s; at most 0.25 s allowed"),
    ({"max_cost_usd": 0.00001}, "max_cost_usd $0.00001",
     "cost $0.0000138; at most $0.00001 allowed"),
    ({"max_output_tokens": 16}, "max_output_tokens 16", "17 output tokens; at most 16 allowed"),
    ({"min_length": 100}, "min_length 100", "answer is 66 characters; at least 100 required"),
    ({"max_length": 20}, "max_length 20", "answer is 66 characters; at most 20 allowed"),
    ({"contains_any": ["Berlin", "paris"]}, "contains_any ['Berlin', 'paris']",
     f"answer contains none of 'Berlin', 'paris'; it begins: {PARIS[:60]!r}…"),
    ({"icontains_any": ["berlin", "ROME"]}, "icontains_any ['berlin', 'ROME']",
     f"answer contains none of 'berlin', 'ROME' (case-insensitive); it begins: {PARIS[:60]!r}…"),
    ({"contains_all": ["Paris", "Rome", "Berlin"]}, "contains_all ['Paris', 'Rome', 'Berlin']",
     f"answer lacks 'Rome', 'Berlin'; it begins: {PARIS[:60]!r}…"),
    ({"icontains_all": ["PARIS", "rome"]}, "icontains_all ['PARIS', 'rome']",
     f"answer lacks 'rome' (case-insensitive); it begins: {PARIS[:60]!r}…"),
    ({"not": {"icontains": "PARIS"}}, "not icontains 'PARIS'",
     f"answer passes icontains 'PARIS', and must not; it begins: {PARIS[:60]!r}…"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("spec", "label", "reason"), FAILING, ids=[next(iter(s)) for s, _, _ in FAILING]
)
def test_fails_with_which_and_why(spec: dict[str, Any], label: str, reason: str) -> None:
    assert outcome(spec) == Outcome(False, label, reason)


def test_whitespace_around_the_answer_is_forgiven_by_starts_with_and_equals() -> None:
    padded = answer("\n  Paris\n")
    assert outcome({"starts_with": "Paris"}, padded).passed
    assert outcome({"equals": "Paris"}, padded).passed
    assert not outcome({"equals": "paris"}, padded).passed


def test_empty_answer_says_so() -> None:
    assert outcome({"contains": "x"}, answer("")).reason == (
        "answer does not contain 'x'; the answer is empty"
    )


JSON_OK = [
    ('{"name": "Alice", "age": 30}', {"json": {"required": ["name", "age"]}}),
    ('```json\n{"name": "Alice", "age": 30}\n```\nThat is the JSON.', {"json": ["name"]}),
    ("Sure! ```\n[1, 2, 3]\n```", {"json": True}),
    ('Here you go: {"city": "Rome"} — anything else?', {"json": {"anywhere": True}}),
    ("  [1, 2]  ", "json"),
]


@pytest.mark.parametrize(("text", "spec"), JSON_OK)
def test_json_passes(text: str, spec: Any) -> None:
    assert outcome(spec, answer(text)).passed


JSON_BAD = [
    ('{"name": "Alice"}', {"json": ["name", "age"]}, "json with keys name, age",
     "JSON lacks 'age'; it has 'name'"),
    ("[1, 2]", {"json": ["name"]}, "json with keys name", "JSON is list, not an object"),
    ("{'name': 'Alice'}", {"json": True}, "json",
     "answer is not valid JSON (Expecting property name enclosed in double quotes: line 1 "
     "column 2 (char 1)); it begins: \"{'name': 'Alice'}\""),
    ('Here you go: {"city": "Rome"}', {"json": True}, "json",
     "answer is not valid JSON (Expecting value: line 1 column 1 (char 0)); "
     "it begins: 'Here you go: {\"city\": \"Rome\"}'"),
    ("no json here", {"json": {"anywhere": True}}, "json (anywhere in the answer)",
     "answer is not valid JSON (no JSON object or array found); it begins: 'no json here'"),
]  # fmt: skip


@pytest.mark.parametrize(("text", "spec", "label", "reason"), JSON_BAD)
def test_json_fails(text: str, spec: Any, label: str, reason: str) -> None:
    assert outcome(spec, answer(text)) == Outcome(False, label, reason)


def test_unfinished_result_fails_every_assertion_with_its_error() -> None:
    failed = answer(
        "The capital", status="failed", error_kind="rate_limited",
        error="openai: rate limited (429); retry after 20 s", e2e_s=0.2, cost=None,
    )  # fmt: skip
    outcomes = check_all(
        [ASSERTION.validate_python(s) for s in ({"icontains": "capital"}, {"max_latency_s": 5})],
        failed,
    )
    reason = "no answer: failed: openai: rate limited (429); retry after 20 s"
    assert outcomes == [
        Outcome(False, "icontains 'capital'", reason),
        Outcome(False, "max_latency_s 5", reason),
    ]
    cancelled = answer("Par", status="cancelled", error=None)
    assert outcome({"contains": "Par"}, cancelled).reason == "no answer: cancelled"


def test_cost_unknown_fails_and_local_costs_nothing() -> None:
    unknown = answer(cost=Cost("unknown"))
    assert outcome({"max_cost_usd": 1}, unknown) == Outcome(
        False, "max_cost_usd $1.0000", "price unknown"
    )
    local = answer(is_local=True, provider="embedded", cost=Cost("local", 0.0))
    assert outcome({"max_cost_usd": 0}, local).passed
    assert outcome({"max_cost_usd": 0.01}, answer(cost=None)).reason == "no cost was recorded"


def test_estimated_token_counts_are_marked() -> None:
    estimated = answer(output_tokens=40, output_exact=False)
    assert outcome({"max_output_tokens": 32}, estimated).reason == (
        "40 output tokens (estimated); at most 32 allowed"
    )


def test_an_exact_output_count_is_not_marked_for_an_estimated_input() -> None:
    """Ollama left the prompt's count out (a cached prompt): the answer's is still its own."""
    counted = answer(output_tokens=40, input_exact=False)
    assert outcome({"max_output_tokens": 32}, counted).reason == (
        "40 output tokens; at most 32 allowed"
    )


def test_missing_timings_fail() -> None:
    assert outcome({"max_ttft_s": 1}, answer(ttft_s=None)).reason == "no first token arrived"
    assert outcome({"max_latency_s": 1}, answer(e2e_s=None)).reason == (
        "no end-to-end time was measured"
    )


def loaded(spec: Any) -> Assertion:
    """An assertion as the promptfoo loader makes it (fields a suite file may not set)."""
    return ASSERTION.validate_python(spec, context={"internal": True})


def test_promptfoos_equals_starts_with_and_is_json_are_exact() -> None:
    """promptfoo compares the raw answer: no spaces forgiven, no ```json block unwrapped."""
    equals = loaded({"type": "equals", "value": "Paris", "exact": True})
    assert check(equals, answer("Paris")).passed
    assert check(equals, answer("Paris\n")) == Outcome(
        False, "equals 'Paris' (exactly)", "answer is not exactly 'Paris'; it is 'Paris\\n'"
    )
    starts = loaded({"type": "starts_with", "value": "Paris", "exact": True})
    assert not check(starts, answer(" Paris is")).passed
    assert check(starts, answer("Paris is")).passed
    is_json = loaded({"type": "json", "exact": True})
    assert check(is_json, answer('{"a": 1}')).passed
    assert not check(is_json, answer('```json\n{"a": 1}\n```')).passed


SCHEMA = {
    "type": "object",
    "required": ["name", "age"],
    "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
    "additionalProperties": False,
}
SCHEMA_CASES = [
    ('{"name": "Ada", "age": 36}', None),
    ('{"name": "Ada", "age": 36.0}', None),  # an integer to JSON Schema
    ('{"name": "Ada"}', "JSON does not match the schema: $: lacks 'age'"),
    ('{"name": "Ada", "age": "36"}',
     "JSON does not match the schema: $.age: expected integer, got string"),
    ('{"name": "Ada", "age": true}',
     "JSON does not match the schema: $.age: expected integer, got boolean"),
    ('{"name": "Ada", "age": 36, "x": 1}',
     "JSON does not match the schema: $: has 'x', which the schema does not allow"),
    ('[{"name": "Ada", "age": 36}]',
     "JSON does not match the schema: $: expected object, got array"),
]  # fmt: skip


@pytest.mark.parametrize(("text", "reason"), SCHEMA_CASES)
def test_a_json_schema_is_checked(text: str, reason: str | None) -> None:
    outcome = check(loaded({"type": "json", "exact": True, "json_schema": SCHEMA}), answer(text))
    assert (outcome.passed, outcome.reason or None) == (reason is None, reason)


def test_contains_json_with_a_schema_passes_on_any_json_that_matches() -> None:
    """promptfoo's contains-json: every JSON value in the answer is tried against the schema."""
    spec = loaded({"type": "json", "anywhere": True, "json_schema": SCHEMA})
    two = 'First {"name": "Bo"}, then {"name": "Ada", "age": 36}.'
    assert check(spec, answer(two)).passed
    nested = 'Here: {"person": {"name": "Ada", "age": 36}}'  # only the outer value counts
    assert check(spec, answer(nested)).reason == (
        "no JSON in the answer matches the schema: $: lacks 'name', 'age'"
    )


def test_an_unchecked_check_is_skipped_and_never_a_pass() -> None:
    from workbench.suites.runs import CaseResult

    label = "llm-rubric 'is polite'"
    only = check_all([], answer(), [label])
    assert only == [Outcome(False, label, NOT_CHECKED, skipped=True)]
    alone = CaseResult("c", "openai:gpt-4o-mini", 0, answer(), only)
    assert alone.skipped and not alone.passed
    contains = ASSERTION.validate_python({"contains": "Paris"})
    mixed = CaseResult("c", "t", 0, answer(), check_all([contains], answer(), [label]))
    assert mixed.passed and not mixed.skipped  # the check that ran passed
    failed = answer(status="failed", error="boom", cost=None)
    unanswered = CaseResult("c", "t", 0, failed, check_all([], failed, [label]))
    assert not unanswered.passed and not unanswered.skipped  # a failed request fails
