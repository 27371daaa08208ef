"""Checks a suite must pass before anything runs, beyond the shape of each field.

Every problem is a pydantic error whose context may carry `at`: where below the validated
model the problem is, so the loader can point at the exact YAML node.
"""

from __future__ import annotations

import difflib
from collections.abc import Collection, Iterator, Mapping
from datetime import date
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict, ValidationInfo, model_validator
from pydantic_core import PydanticCustomError

from providers.registry import TargetError, parse_target
from workbench.suites.template import TemplateError, render, variables_in

if TYPE_CHECKING:
    from workbench.suites.schema import Case, Suite

Loc = tuple[str | int, ...]
_TEXT_TYPES = ("contains", "icontains", "not_contains", "starts_with", "equals", "regex")
_LIST_TYPES = ("contains_any", "icontains_any", "contains_all", "icontains_all")
_NUMBER_TYPES = ("max_latency_s", "max_ttft_s", "max_cost_usd")
_COUNT_TYPES = ("max_output_tokens", "min_length", "max_length")
ASSERTION_TYPES: tuple[str, ...] = (
    *_TEXT_TYPES, *_LIST_TYPES, "json", "not", *_NUMBER_TYPES, *_COUNT_TYPES
)  # fmt: skip
"""Every assertion type a suite may use, in the order error messages list them."""


def problem(kind: str, message: str, at: Loc = ()) -> PydanticCustomError:
    """A validation error; `at` is its location below the model that raises it."""
    # The message goes through the context so that braces in it are never read as fields.
    return PydanticCustomError(kind, "{message}", {"message": message, "at": at})


class StrictModel(BaseModel):
    """Refuses unknown keys, naming the known ones (and the closest, for a typo)."""

    model_config = ConfigDict(extra="forbid")
    _internal: ClassVar[frozenset[str]] = frozenset()
    """Fields only the loader sets (validation context `internal=True`), never a file."""

    @model_validator(mode="before")
    @classmethod
    def _known_keys(cls, data: Any, info: ValidationInfo) -> Any:
        if not isinstance(data, Mapping):
            return data
        internal = bool(info.context and info.context.get("internal"))
        known = [k for k in cls.model_fields if internal or k not in cls._internal]
        for key in data:
            if key not in known:
                close = difflib.get_close_matches(str(key), known, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise problem(
                    "unknown_key",
                    f"unknown key {str(key)!r}{hint}; known keys: {', '.join(known)}",
                    at=(str(key),),
                )
        return data


def long_form(data: Any) -> Any:
    """`{icontains: paris}` -> `{type: icontains, value: paris}`; unknown types are named."""
    if data == "json":
        return {"type": "json"}
    if isinstance(data, BaseModel):  # built in code, `Not(value=IContains(value="x"))`
        return data
    if not isinstance(data, Mapping):
        raise problem("assertion_form", "an assertion is a mapping such as `icontains: paris`")
    if "type" in data:
        if data["type"] not in ASSERTION_TYPES:
            raise _unknown_assertion(data["type"])
        return _text_value(dict(data))
    kinds = [key for key in data if key in ASSERTION_TYPES]
    if len(kinds) > 1:
        raise problem("assertion_form", f"one assertion per item, not {' and '.join(kinds)}")
    if not kinds:
        raise _unknown_assertion(next(iter(data), None))
    kind, value = kinds[0], data[kinds[0]]
    rest = {key: item for key, item in data.items() if key != kind}
    if kind == "not":  # `not: {icontains: paris}`: the mapping is the assertion it negates
        return {**rest, "type": kind, "value": value}
    if isinstance(value, Mapping):
        return _text_value({**value, **rest, "type": kind})
    if kind == "json":
        if value is True or value is None:
            return {**rest, "type": kind}
        if isinstance(value, list):
            return {**rest, "type": kind, "required": value}
        raise problem("assertion_form", "json takes true, a list of keys or {required: [...]}")
    return _text_value({**rest, "type": kind, "value": value})


def _text_value(assertion: dict[str, Any]) -> dict[str, Any]:
    """`contains: 42` means the text "42" (YAML read it as a number, or a date); so does an
    item of `contains_any: [42, 7]`."""
    value = assertion.get("value")
    if assertion["type"] in _TEXT_TYPES:
        assertion["value"] = _as_text(value)
    elif assertion["type"] in _LIST_TYPES and isinstance(value, list):
        assertion["value"] = [_as_text(item) for item in value]
    return assertion


def _as_text(value: Any) -> Any:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, date):
        return value.isoformat()
    return value


def scalar_var(value: Any) -> Any:
    """A var is a string, number or boolean; a YAML date is kept as the text it was."""
    if isinstance(value, date):
        return value.isoformat()
    if not isinstance(value, str | int | float | bool):
        raise problem(
            "var_type", f"a var is a string, number or true/false, not {type(value).__name__}"
        )
    return value


def _unknown_assertion(kind: object) -> PydanticCustomError:
    close = difflib.get_close_matches(str(kind), ASSERTION_TYPES, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return problem(
        "unknown_assertion",
        f"unknown assertion type {str(kind)!r}{hint}; known: {', '.join(ASSERTION_TYPES)}",
    )


def check_suite(suite: Suite, context: Mapping[str, Any] | None) -> None:
    """Raises the first problem: a bad target, a case without a prompt, an undefined var."""
    known = (context or {}).get("known_providers")
    for problem_ in _target_problems(suite, known):
        raise problem_
    for index, case in enumerate(suite.cases):
        for problem_ in _case_problems(suite, index, case):
            raise problem_


def _target_problems(suite: Suite, known: Collection[str] | None) -> Iterator[PydanticCustomError]:
    for index, spec in enumerate(suite.targets):
        try:
            target = parse_target(spec)
        except TargetError as exc:
            yield problem("target", str(exc), at=("targets", index))
            continue
        names = [*known, *suite.endpoints] if known is not None else None
        if names is not None and target.provider not in names:
            yield problem(
                "unknown_provider",
                f"unknown provider {target.provider!r} in target {spec!r}; "
                f"known: {', '.join(names)}",
                at=("targets", index),
            )


def _case_problems(suite: Suite, index: int, case: Case) -> Iterator[PydanticCustomError]:
    here: Loc = ("cases", index)
    texts: list[tuple[str, Loc, str]] = []
    if suite.system is not None:
        texts.append(("the suite's system prompt", ("system",), suite.system))
    if case.messages is not None:
        texts += [
            (f"the case's messages[{i}]", (*here, "messages", i, "content"), turn.content)
            for i, turn in enumerate(case.messages)
        ]
    elif case.prompt is not None:
        texts.append(("the case's prompt", (*here, "prompt"), case.prompt))
    elif suite.prompt is not None:
        texts.append(("the suite's prompt", ("prompt",), suite.prompt))
    else:
        yield problem(
            "no_prompt",
            f"case {case.id!r} has no prompt: set `prompt` on the suite or the case, "
            "or give `messages`",
            at=here,
        )
        return
    for where, loc, text in texts:
        try:
            used = variables_in(text)
        except TemplateError as exc:
            yield problem("template", exc.message, at=loc)
            continue
        for name in sorted(used - set(case.vars)):
            yield problem(
                "undefined_var",
                f"{{{{{name}}}}} is used by {where} but not defined in the vars of case "
                f"{case.id!r}",
                at=(*here, "vars"),
            )
    _, loc, last = texts[-1]  # the prompt, or the last turn (the user's)
    try:
        rendered = render(last, case.vars)
    except TemplateError:
        return  # said above
    if not last.strip():
        yield problem("empty_prompt", "the prompt is empty; write one, or remove the case", at=loc)
    elif not rendered.strip():
        # Refused as `workbench ask ""` is: a model asked nothing answers anything.
        yield problem(
            "empty_prompt",
            "the prompt is empty once this case's vars are filled in; give them text",
            at=(*here, "vars"),
        )
