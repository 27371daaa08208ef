"""What a suite file may say: pydantic models, strict about unknown keys.

Assertions are a discriminated union on `type`. Files write them compactly as one-key
mappings (`- icontains: paris`, `- max_latency_s: 5`, `- json: {required: [name]}`,
`- json: true`); the long form `{type: icontains, value: paris}` is accepted too.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, TypeAlias

from pydantic import BeforeValidator, Field, ValidationInfo, field_validator, model_validator

from providers.registry import SETTING_RANGES
from workbench.suites.template import TemplateError, render, variables_in
from workbench.suites.validation import ASSERTION_TYPES as ASSERTION_TYPES
from workbench.suites.validation import (
    StrictModel,
    check_suite,
    long_form,
    problem,
    scalar_var,
)

_REGEX_FLAGS = {"i": re.IGNORECASE, "m": re.MULTILINE, "s": re.DOTALL, "x": re.VERBOSE}


class Params(StrictModel):
    """Sampling settings for every target that does not set its own."""

    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    seed: int | None = None

    @field_validator("temperature", "top_p", "max_tokens", "seed")
    @classmethod
    def _in_range(cls, value: float | None, info: ValidationInfo) -> float | None:
        # The rule `-t …@temperature=` is held to: a suite's params go to the same providers.
        key = info.field_name or ""
        if value is None:
            return value
        if not math.isfinite(value):
            raise problem("param_range", f"{key} must be a finite number, not {value:g}")
        allowed, said = SETTING_RANGES[key]
        if not allowed(value):
            shown = value if isinstance(value, int) else f"{value:g}"  # a seed's every digit
            raise problem("param_range", f"{key} must be {said}, not {shown}")
        return value


# --- assertions ----------------------------------------------------------------

_EMPTY_TEXT = "an empty text is in every answer; give the text to look for"


class _TextAssertion(StrictModel):
    value: str
    _empty_allowed: ClassVar[bool] = False
    """Whether `""` means something; for most checks it passes (or fails) every answer."""

    @field_validator("value")
    @classmethod
    def _not_empty(cls, value: str) -> str:
        if not value and not cls._empty_allowed:
            raise problem("empty_check", _EMPTY_TEXT)
        return value


class Contains(_TextAssertion):
    type: Literal["contains"] = "contains"


class IContains(_TextAssertion):
    type: Literal["icontains"] = "icontains"


class NotContains(_TextAssertion):
    type: Literal["not_contains"] = "not_contains"


class StartsWith(_TextAssertion):
    type: Literal["starts_with"] = "starts_with"
    exact: bool = False
    """Spaces before the answer count too (promptfoo's starts-with; set by the loader only)."""
    _internal: ClassVar[frozenset[str]] = frozenset({"exact"})


class Equals(_TextAssertion):
    type: Literal["equals"] = "equals"
    _empty_allowed: ClassVar[bool] = True  # the answer is empty
    exact: bool = False
    """Spaces around the answer count too (promptfoo's equals; set by the loader only)."""
    _internal: ClassVar[frozenset[str]] = frozenset({"exact"})


class _ListAssertion(StrictModel):
    value: list[str] = Field(min_length=1)

    @field_validator("value")
    @classmethod
    def _no_empty_item(cls, value: list[str]) -> list[str]:
        if "" in value:
            raise problem("empty_check", _EMPTY_TEXT, at=(value.index(""),))
        return value


class ContainsAny(_ListAssertion):
    type: Literal["contains_any"] = "contains_any"


class IContainsAny(_ListAssertion):
    type: Literal["icontains_any"] = "icontains_any"


class ContainsAll(_ListAssertion):
    type: Literal["contains_all"] = "contains_all"


class IContainsAll(_ListAssertion):
    type: Literal["icontains_all"] = "icontains_all"


class Regex(_TextAssertion):
    type: Literal["regex"] = "regex"
    flags: str = ""
    """Letters from `imsx`: ignore case, multi-line, dot matches newline, verbose."""

    @property
    def compiled(self) -> re.Pattern[str]:
        flags = 0
        for letter in self.flags:
            flags |= _REGEX_FLAGS[letter]
        return re.compile(self.value, flags)

    @field_validator("value")
    @classmethod
    def _not_empty(cls, value: str) -> str:
        if not value:
            raise problem("empty_check", "an empty regex matches every answer; give a pattern")
        return value

    @model_validator(mode="after")
    def _compiles(self) -> Regex:
        unknown = sorted(set(self.flags) - set(_REGEX_FLAGS))
        if unknown:
            raise problem("regex_flags", f"unknown regex flag {unknown[0]!r}; use i, m, s or x")
        try:
            self.compiled  # noqa: B018 - compiling is the check
        except re.error as exc:
            raise problem("regex", f"invalid regex {self.value!r}: {exc}") from None
        return self


class Json(StrictModel):
    """The answer is JSON (a ```json fenced block is fine), with these keys when given."""

    type: Literal["json"] = "json"
    required: list[str] = Field(default_factory=list)
    anywhere: bool = False
    """Accept JSON embedded in other text (promptfoo's contains-json)."""
    exact: bool = False
    """The whole answer must be JSON, not a ```json block in it (promptfoo's is-json)."""
    json_schema: dict[str, Any] | bool | None = None
    """A JSON Schema the JSON must match (promptfoo's is-json and contains-json value), in
    the subset `json_schema.check` knows."""
    _internal: ClassVar[frozenset[str]] = frozenset({"exact", "json_schema"})


class MaxLatency(StrictModel):
    type: Literal["max_latency_s"] = "max_latency_s"
    value: float = Field(gt=0)  # no answer comes in no time: 0 could only fail


class MaxTtft(StrictModel):
    type: Literal["max_ttft_s"] = "max_ttft_s"
    value: float = Field(gt=0)  # no answer comes in no time: 0 could only fail


class MaxCost(StrictModel):
    type: Literal["max_cost_usd"] = "max_cost_usd"
    value: float = Field(ge=0)


class MaxOutputTokens(StrictModel):
    type: Literal["max_output_tokens"] = "max_output_tokens"
    value: int = Field(ge=0)


class MinLength(StrictModel):
    type: Literal["min_length"] = "min_length"
    value: int = Field(ge=0)


class MaxLength(StrictModel):
    type: Literal["max_length"] = "max_length"
    value: int = Field(ge=0)


class Not(StrictModel):
    """The answer must fail the assertion it holds: `not: {icontains: paris}`."""

    type: Literal["not"] = "not"
    value: Assertion


Assertion: TypeAlias = Annotated[
    Contains | IContains | NotContains | StartsWith | Equals | Regex | Json
    | ContainsAny | IContainsAny | ContainsAll | IContainsAll | Not
    | MaxLatency | MaxTtft | MaxCost | MaxOutputTokens | MinLength | MaxLength,
    Field(discriminator="type"),
    BeforeValidator(long_form),
]  # fmt: skip
Not.model_rebuild()


def _strings(data: Any) -> Iterator[str]:
    """Every string in a check as written (compact or long form, `not` around another): the
    values, where its `{{vars}}` are; a key is never one."""
    if isinstance(data, str):
        yield data
    elif isinstance(data, Mapping):
        for value in data.values():
            yield from _strings(value)
    elif isinstance(data, list):
        for item in data:
            yield from _strings(item)


def _rendered(data: Any, variables: Mapping[str, Any]) -> Any:
    """A check as written, each string in its values rendered with `variables`."""
    if isinstance(data, str):
        return render(data, variables)
    if isinstance(data, Mapping):
        return {key: _rendered(value, variables) for key, value in data.items()}
    if isinstance(data, list):
        return [_rendered(item, variables) for item in data]
    return data


# --- cases and suites ----------------------------------------------------------


def _id_text(value: Any) -> Any:
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


class Turn(StrictModel):
    """One message of a multi-turn case; `content` may use `{{vars}}`."""

    role: Literal["system", "user", "assistant"]
    content: str


class Case(StrictModel):
    id: Annotated[str, BeforeValidator(_id_text), Field(min_length=1)]
    vars: dict[str, Annotated[str | int | float | bool, BeforeValidator(scalar_var)]] = Field(
        default_factory=dict
    )
    prompt: str | None = None
    """Overrides the suite's prompt template."""
    messages: list[Turn] | None = None
    """A multi-turn conversation instead of one prompt; the last turn is the user's."""
    expect: list[Assertion] = Field(default_factory=list)
    repeat: int | None = Field(default=None, ge=1)
    """Overrides the suite's `repeat` for this case."""
    private: bool = False
    """Its prompt is sensitive: it goes only to local targets (cloud targets skip it)."""
    unchecked: list[str] = Field(default_factory=list)
    """Checks an imported (promptfoo) test asks for that workbench cannot run, as labels:
    reported as not checked, never as passed."""

    _internal: ClassVar[frozenset[str]] = frozenset({"unchecked"})

    @field_validator("messages")
    @classmethod
    def _ends_with_user(cls, messages: list[Turn] | None) -> list[Turn] | None:
        if messages is not None and (not messages or messages[-1].role != "user"):
            raise problem("messages", "the last message must be a user turn")
        return messages

    @model_validator(mode="after")
    def _one_prompt(self) -> Case:
        if self.prompt is not None and self.messages is not None:
            raise problem("prompt_and_messages", "give either prompt or messages, not both")
        return self

    @model_validator(mode="before")
    @classmethod
    def _vars_in_expect(cls, data: Any, info: ValidationInfo) -> Any:
        # As promptfoo does: `not_contains: "{{forbidden}}"` checks the case's value, never
        # the braces. Filled in the checks as written, once: a Case already made (a suite
        # file's cases are made as they stream in, then again as part of the suite) is
        # passed as it is, so a value holding braces is never rendered twice. An imported
        # config's checks come rendered (pf_convert).
        internal = info.context and info.context.get("internal")
        if internal or not isinstance(data, Mapping) or not isinstance(data.get("expect"), list):
            return data
        variables = data.get("vars")
        variables = variables if isinstance(variables, Mapping) else {}
        expect = []
        for index, check in enumerate(data["expect"]):
            try:
                used = set().union(*(variables_in(text) for text in _strings(check)))
            except TemplateError as exc:
                raise problem("template", exc.message, at=("expect", index)) from None
            if missing := sorted(used - set(variables)):
                raise problem(
                    "undefined_var",
                    f"{{{{{missing[0]}}}}} is used by the case's expect[{index}] but not "
                    f"defined in the vars of case {data.get('id')!r}",
                    at=("expect", index),
                )
            expect.append(_rendered(check, variables) if used else check)
        return {**data, "expect": expect}


class Suite(StrictModel):
    name: str
    description: str = ""
    targets: list[str] = Field(default_factory=list)
    """Targets to run when the command line names none."""
    system: str | None = None
    params: Params = Field(default_factory=Params)
    prompt: str | None = None
    """The prompt template; each case fills its `{{vars}}`."""
    repeat: int = Field(default=1, ge=1)
    concurrency: int | None = Field(default=None, ge=1)
    private: bool = False
    """Every case is private: the suite runs on local targets only."""
    cases: list[Case] = Field(min_length=1)
    path: Path | None = Field(default=None, exclude=True)
    """The file it was loaded from (set by the loader)."""
    unsupported: list[str] = Field(default_factory=list)
    """What an imported (promptfoo) config asked for that is not run, one line each."""
    unchecked: list[str] = Field(default_factory=list)
    """The lines of `unsupported` that are checks (see `Case.unchecked`)."""
    endpoints: dict[str, str] = Field(default_factory=dict)
    """OpenAI-compatible servers an imported config names: endpoint name -> base_url."""

    _internal: ClassVar[frozenset[str]] = frozenset(
        {"path", "unsupported", "unchecked", "endpoints"}
    )

    @field_validator("cases")
    @classmethod
    def _unique_ids(cls, cases: list[Case]) -> list[Case]:
        seen: dict[str, int] = {}
        for index, case in enumerate(cases):
            if case.id in seen:
                raise problem(
                    "duplicate_case_id",
                    f"duplicate case id {case.id!r} (also cases[{seen[case.id]}])",
                    at=(index, "id"),
                )
            seen[case.id] = index
        return cases

    @model_validator(mode="after")
    def _runnable(self, info: ValidationInfo) -> Suite:
        check_suite(self, info.context)
        return self
