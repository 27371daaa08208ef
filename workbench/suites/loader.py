"""Suite files in, validated `Suite` out — or one `SuiteError` saying file, line and field.

Everything is checked before anything runs: YAML syntax, unknown keys, wrong types, unknown
assertion types, `{{vars}}` a case does not define, targets that do not parse or name no
known provider. promptfoo configs are recognised and converted (see `promptfoo.py`).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from pathlib import Path

from providers.base import Message
from workbench.suites import promptfoo
from workbench.suites.schema import Case, Suite
from workbench.suites.source import Locator, SuiteError, read_yaml, validate
from workbench.suites.template import render

__all__ = ["SuiteError", "load_suite", "render_messages", "validate"]


def load_suite(
    path: Path, *, known_providers: Collection[str] | None = None, targets_given: bool = False
) -> Suite:
    """Read and validate a suite file (ours or promptfoo's). `targets_given`: the targets
    come from elsewhere (`-t`), so a promptfoo config's providers need not be ones we run."""
    document = read_yaml(path)
    data = document.data
    if not isinstance(data, Mapping):
        line = document.root.start_mark.line + 1 if document.root else None
        message = "a suite is a mapping with at least `name` and `cases`"
        raise SuiteError(path, line, "", message)
    if promptfoo.is_promptfoo(data):
        return promptfoo.load_promptfoo(
            data, path, root=document.root, known_providers=known_providers,
            targets_given=targets_given,
        )  # fmt: skip
    return validate(data, path, Locator(document.root), known_providers=known_providers)


def render_messages(suite: Suite, case: Case) -> list[Message]:
    """What is sent for this case: the system prompt, then its prompt or messages, rendered."""
    messages: list[Message] = []
    private = is_private(suite, case)
    if suite.system is not None:
        messages.append(Message("system", render(suite.system, case.vars)))
    if case.messages is not None:
        messages += [Message(t.role, render(t.content, case.vars), private) for t in case.messages]
        return messages
    template = case.prompt if case.prompt is not None else suite.prompt
    if template is None:
        raise ValueError(f"case {case.id!r} has no prompt")
    messages.append(Message("user", render(template, case.vars), private))
    return messages


def is_private(suite: Suite, case: Case) -> bool:
    """A private case (or any case of a private suite) goes only to local targets."""
    return suite.private or case.private
