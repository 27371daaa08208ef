"""Checking one answer against a case's expectations; every failure says which and why.

A result that did not finish (`status` other than "done") fails every assertion with
"no answer: <status>: <error>" — a failed request is neither fast nor cheap enough.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from workbench.engine.pricing import format_usd
from workbench.engine.result import TargetResult
from workbench.suites import json_schema
from workbench.suites.schema import (
    Assertion,
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
    MaxLength,
    MaxOutputTokens,
    MaxTtft,
    MinLength,
    Not,
    NotContains,
    Regex,
    StartsWith,
)

_EXCERPT = 60
_JSON_START = re.compile(r"[\[{]")
_FENCED = re.compile(r"```[ \t]*(?:json|JSON)?[ \t]*\n(.*?)```", re.DOTALL)


@dataclass(frozen=True)
class Outcome:
    passed: bool
    assertion: str
    """The assertion as a person reads it, e.g. `icontains 'paris'`."""
    reason: str = ""
    """Why it failed; empty when it passed."""
    skipped: bool = False
    """Not checked at all (a promptfoo check workbench cannot run): neither passed nor
    failed. `passed` is False, so that nothing counts it as a pass by mistake."""


NOT_CHECKED = "not checked: workbench cannot run this promptfoo check"


def check_all(
    assertions: Sequence[Assertion], result: TargetResult, unchecked: Sequence[str] = ()
) -> list[Outcome]:
    """Every assertion's outcome, then one skipped outcome per check in `unchecked`."""
    outcomes = [check(assertion, result) for assertion in assertions]
    return outcomes + [Outcome(False, label, NOT_CHECKED, skipped=True) for label in unchecked]


def check(assertion: Assertion, result: TargetResult) -> Outcome:
    label = describe(assertion)
    if result.status != "done":
        error = f": {result.error_here}" if result.error else ""  # said of this target
        return Outcome(False, label, f"no answer: {result.status}{error}")
    reason = _failure(assertion, result)
    return Outcome(reason is None, label, reason or "")


def describe(assertion: Assertion) -> str:
    match assertion:
        case Regex(value=value, flags=flags):
            return f"regex /{value}/{flags}"
        case Json(required=required, anywhere=anywhere, json_schema=schema):
            keys = f" with keys {', '.join(required)}" if required else ""
            if schema is not None:
                keys += " matching its schema"
            return f"json{' (anywhere in the answer)' if anywhere else ''}{keys}"
        case Not(value=inner):
            return f"not {describe(inner)}"
        case Equals(exact=True) | StartsWith(exact=True):
            return f"{assertion.type} {assertion.value!r} (exactly)"
        case MaxLatency(value=v) | MaxTtft(value=v):
            return f"{assertion.type} {v:g}"
        case MaxCost(value=v):
            return f"max_cost_usd {format_usd(v)}"
        case MaxOutputTokens(value=v) | MinLength(value=v) | MaxLength(value=v):
            return f"{assertion.type} {v}"
        case _:
            return f"{assertion.type} {assertion.value!r}"


def _failure(assertion: Assertion, result: TargetResult) -> str | None:
    """Why the answer fails the assertion, or None when it passes."""
    text = result.text
    match assertion:
        case Contains(value=value) if value not in text:
            return f"answer does not contain {value!r}; {_begins(text)}"
        case IContains(value=value) if value.casefold() not in text.casefold():
            return f"answer does not contain {value!r} (case-insensitive); {_begins(text)}"
        case NotContains(value=value) if value in text:
            return f"answer contains {value!r}: {_around(text, text.index(value), len(value))}"
        case StartsWith(value=value, exact=True) if not text.startswith(value):
            return f"answer does not start with {value!r}; {_begins(text)}"
        case StartsWith(value=value, exact=False) if not text.lstrip().startswith(value):
            return f"answer does not start with {value!r}; {_begins(text.lstrip())}"
        case Equals(value=value, exact=True) if text != value:
            return f"answer is not exactly {value!r}; it is {_short(text)}"
        case Equals(value=value, exact=False) if text.strip() != value.strip():
            return f"answer is not {value!r} (ignoring surrounding spaces); it is {_short(text)}"
        case ContainsAny(value=values) if not any(v in text for v in values):
            return f"answer contains none of {_listed(values)}; {_begins(text)}"
        case IContainsAny(value=values) if not any(_has(text, v) for v in values):
            return f"answer contains none of {_listed(values)} (case-insensitive); {_begins(text)}"
        case ContainsAll(value=values) if missing := [v for v in values if v not in text]:
            return f"answer lacks {_listed(missing)}; {_begins(text)}"
        case IContainsAll(value=values) if missing := [v for v in values if not _has(text, v)]:
            return f"answer lacks {_listed(missing)} (case-insensitive); {_begins(text)}"
        case Not(value=inner) if _failure(inner, result) is None:
            return f"answer passes {describe(inner)}, and must not; {_begins(text)}"
        case Regex() if not assertion.compiled.search(text):
            return f"no match for /{assertion.value}/{assertion.flags}; {_begins(text)}"
        case Json():
            return _json_failure(assertion, text)
        case MaxLatency(value=limit):
            return _over(result.e2e_s, limit, "took", "no end-to-end time was measured")
        case MaxTtft(value=limit):
            return _over(result.ttft_s, limit, "first token after", "no first token arrived")
        case MaxCost(value=limit):
            return _cost_failure(result, limit)
        case MaxOutputTokens(value=limit) if result.output_tokens > limit:
            estimate = "" if result.output_exact else " (estimated)"
            return f"{result.output_tokens} output tokens{estimate}; at most {limit} allowed"
        case MinLength(value=limit) if len(text) < limit:
            return f"answer is {len(text)} characters; at least {limit} required"
        case MaxLength(value=limit) if len(text) > limit:
            return f"answer is {len(text)} characters; at most {limit} allowed"
    return None


def _json_failure(assertion: Json, text: str) -> str | None:
    schema = assertion.json_schema
    if assertion.anywhere and schema is not None:
        # promptfoo's contains-json: any JSON value in the answer that matches the schema
        found = list(_json_values(text))
        if not found:
            return f"answer holds no JSON; {_begins(text)}"
        whys = [json_schema.check(schema, data) for data in found]
        return None if None in whys else f"no JSON in the answer matches the schema: {whys[0]}"
    try:
        data = _parse_json(text, anywhere=assertion.anywhere, exact=assertion.exact)
    except ValueError as exc:
        return f"answer is not valid JSON ({exc}); {_begins(text)}"
    if schema is not None and (why := json_schema.check(schema, data)) is not None:
        return f"JSON does not match the schema: {why}"
    if not assertion.required:
        return None
    if not isinstance(data, dict):
        return f"JSON is {type(data).__name__ if data is not None else 'null'}, not an object"
    missing = [key for key in assertion.required if key not in data]
    if missing:
        return f"JSON lacks {', '.join(map(repr, missing))}; it has {', '.join(map(repr, data))}"
    return None


def _parse_json(text: str, *, anywhere: bool, exact: bool = False) -> Any:
    """The whole answer as JSON, else (unless `exact`) its first ```json block, else
    (anywhere) any JSON in it."""
    try:
        return json.loads(text)
    except ValueError as exc:
        first_error = exc
    block = _FENCED.search(text)
    if block and not anywhere and not exact:
        return json.loads(block.group(1))
    if anywhere:
        for data in _json_values(text):
            return data
        raise ValueError("no JSON object or array found")
    raise first_error


def _json_values(text: str) -> Iterator[Any]:
    """Every JSON object or array in the text, in order; not those inside one found."""
    decoder = json.JSONDecoder()
    start = 0
    while (match := _JSON_START.search(text, start)) is not None:
        try:
            data, start = decoder.raw_decode(text, match.start())
        except ValueError:
            start = match.start() + 1
            continue
        yield data


def _over(value: float | None, limit: float, verb: str, missing: str) -> str | None:
    if value is None:
        return missing
    return f"{verb} {value:.2f} s; at most {limit:g} s allowed" if value > limit else None


def _cost_failure(result: TargetResult, limit: float) -> str | None:
    cost = result.cost
    if cost is None:
        return "no cost was recorded"
    if cost.kind == "local":
        return None
    if cost.kind == "unknown" or cost.usd is None:
        return "price unknown"
    if cost.usd > limit:
        return f"cost {cost.label}; at most {format_usd(limit)} allowed"
    return None


def _has(text: str, value: str) -> bool:
    return value.casefold() in text.casefold()


def _listed(values: Sequence[str]) -> str:
    return ", ".join(map(repr, values))


def _short(text: str) -> str:
    if not text:
        return "empty"
    return repr(text[:_EXCERPT]) + ("…" if len(text) > _EXCERPT else "")


def _begins(text: str) -> str:
    return "the answer is empty" if not text.strip() else f"it begins: {_short(text)}"


def _around(text: str, start: int, length: int) -> str:
    lo, hi = max(0, start - 20), min(len(text), start + length + 20)
    return f"{'…' if lo else ''}{text[lo:hi]!r}{'…' if hi < len(text) else ''}"
