"""`{{ name }}` templates: the one substitution suites (and promptfoo configs) use.

Every `{{ ... }}` must hold a single variable name; anything else (filters, expressions,
`{% tags %}`) is refused rather than sent to a model half-rendered. A literal `{{` can still
reach the prompt through a variable's value: values are inserted as they are, never rendered.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

_EXPRESSION = re.compile(r"\{\{(.*?)\}\}", re.DOTALL)
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_TAG = re.compile(r"\{%.*?%\}", re.DOTALL)


class TemplateError(KeyError):
    """A template uses an undefined variable or something other than `{{ name }}`."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


def variables_in(template: str) -> set[str]:
    """The variable names a template uses; raises TemplateError for anything but `{{ name }}`."""
    tag = _TAG.search(template)
    if tag:
        raise TemplateError(f"unsupported template tag {tag.group(0)!r}; only {{{{name}}}} is")
    names: set[str] = set()
    for match in _EXPRESSION.finditer(template):
        name = match.group(1).strip()
        if not _NAME.fullmatch(name):
            raise TemplateError(
                f"unsupported template expression {match.group(0)!r}; only {{{{name}}}} is"
            )
        names.add(name)
    return names


def render(template: str, variables: Mapping[str, object]) -> str:
    """The template with each `{{ name }}` replaced by its value (`true`/`false` for booleans)."""
    missing = sorted(variables_in(template) - set(variables))
    if missing:
        raise TemplateError(f"undefined variable {missing[0]!r}")

    def value(match: re.Match[str]) -> str:
        return _text(variables[match.group(1).strip()])

    return _EXPRESSION.sub(value, template)


def _text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
