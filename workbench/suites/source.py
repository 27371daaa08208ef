"""Reading suite files safely, and pointing every problem at its line in the file.

YAML is composed (see `composer.py`) into nodes that remember where they start; the node
graph is checked (duplicate keys, aliases that expand absurdly) before it is turned into
Python data. A validation error's `loc` is then walked down the nodes to find its line.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError
from pydantic_core import ErrorDetails

from workbench.suites.composer import CaseLines, GraphError, SuiteLoader
from workbench.suites.schema import Case, Suite
from workbench.suites.validation import ASSERTION_TYPES, Loc

MAX_BYTES = 64 * 1024 * 1024
"""Suite files larger than this are refused unread (100 000 cases take about 8 MB)."""


class SuiteError(Exception):
    """A suite that cannot run: `str()` is `file:line: field: message`."""

    def __init__(self, path: Path | str, line: int | None, field: str, message: str) -> None:
        self.path = Path(path)
        self.line = line
        self.field = field
        self.message = message
        super().__init__(str(self))

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line is not None else str(self.path)
        return (
            f"{where}: {self.field}: {self.message}" if self.field else f"{where}: {self.message}"
        )


@dataclass(frozen=True)
class Document:
    path: Path
    data: Any
    root: yaml.Node | None


def read_yaml(path: Path) -> Document:
    """The file's data and node tree; SuiteError for anything unreadable or unsafe."""
    try:
        with path.open("rb") as file:
            # In pieces: read(MAX_BYTES + 1) would reserve that much memory at once.
            chunks = []
            size = 0
            while size <= MAX_BYTES and (chunk := file.read(1024 * 1024)):
                chunks.append(chunk)
                size += len(chunk)
            raw = b"".join(chunks)
            del chunks
    except OSError as exc:
        raise SuiteError(path, None, "", f"cannot read: {exc.strerror or exc}") from None
    if len(raw) > MAX_BYTES:
        raise SuiteError(path, None, "", f"file is larger than {MAX_BYTES // 1024 // 1024} MB")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        at_line = raw[: exc.start].count(b"\n") + 1
        message = f"not UTF-8: byte 0x{raw[exc.start]:02x} at offset {exc.start}"
        raise SuiteError(path, at_line, "", message) from None
    loader = SuiteLoader(text, settle=_valid_case)
    try:
        root, data = loader.read()
        return Document(path, data, root)
    except GraphError as exc:
        line = _line(exc.node) if exc.node is not None else None
        raise SuiteError(path, line, _field(exc.loc), exc.message) from None
    except yaml.YAMLError as exc:
        raise _yaml_problem(path, text, _retold(text) or exc) from None
    except RecursionError:
        raise SuiteError(path, None, "", "YAML nests too deeply") from None
    finally:
        loader.dispose()


_RETOLD_MAX = 1024 * 1024
"""Syntax errors in files up to this size are worded by PyYAML's pure-Python parser."""


def _retold(text: str) -> yaml.YAMLError | None:
    """PyYAML's pure-Python parser words syntax errors better than libyaml: ask it again."""
    if len(text) > _RETOLD_MAX:
        return None
    try:
        yaml.SafeLoader(text).get_single_node()
    except yaml.YAMLError as exc:
        return exc
    except RecursionError:
        return None
    return None


def _yaml_problem(path: Path, text: str, exc: yaml.YAMLError) -> SuiteError:
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        problem = exc.problem or exc.context or ""
        if "maximum nesting depth" in problem:  # libyaml's own limit
            return SuiteError(path, line, "", "YAML nests too deeply")
        return SuiteError(path, line, "", f"YAML: {problem}")
    if isinstance(exc, yaml.reader.ReaderError):
        if isinstance(exc.position, int) and exc.position >= 0:
            line = text.encode("utf-8", "surrogatepass")[: exc.position].count(b"\n") + 1
        character = exc.character if isinstance(exc.character, int) else ord(exc.character)
        return SuiteError(path, line, "", f"YAML: {exc.reason} (character {character:#x})")
    return SuiteError(path, None, "", f"YAML: {exc}")


def _valid_case(data: Any) -> Case | None:
    """The case, validated on its own as it streams in; None leaves the error for later."""
    try:
        return Case.model_validate(data)
    except ValidationError:
        return None


def _has_index(node: yaml.Node | None, part: str | int) -> bool:
    return (
        isinstance(node, yaml.SequenceNode)
        and isinstance(part, int)
        and 0 <= part < len(node.value)
    )


def _line(node: yaml.Node | CaseLines) -> int:
    if isinstance(node, CaseLines):
        return node.line
    return int(node.start_mark.line) + 1


def _field(loc: Loc) -> str:
    """`cases[2].expect[0]`: the location as a person reads it (no union tags)."""
    text = ""
    for i, part in enumerate(loc):
        if isinstance(part, int):
            text += f"[{part}]"
        elif (
            part in ASSERTION_TYPES
            and i
            and (isinstance(loc[i - 1], int) or loc[i - 2 : i] == ("not", "value"))
        ):  # a union's tag: `expect[0]`, and `expect[0].value` inside a `not`
            continue
        else:
            text += f".{part}" if text else str(part)
    return text


@dataclass
class Locator:
    """Finds the line and field for a location in the validated data.

    `origins` maps a location prefix in the validated data to where it came from in the
    file, for data converted from another format (promptfoo's `tests[2].assert[1]`).
    """

    root: yaml.Node | None
    origins: Mapping[Loc, Loc] = field(default_factory=dict)

    def where(self, loc: Loc) -> tuple[str, int | None]:
        for cut in range(len(loc), -1, -1):
            if loc[:cut] in self.origins:
                loc = (*self.origins[loc[:cut]], *loc[cut:])
                break
        return _field(loc), self.line(loc)

    def line(self, loc: Loc) -> int | None:
        node = self.root
        if node is None:
            return None
        line = _line(node)
        for part in loc:
            if isinstance(node, CaseLines):  # a streamed case: only its keys' lines are kept
                return node.key_line(str(part)) or line
            if isinstance(node, yaml.MappingNode):
                for key, value in node.value:
                    if isinstance(key, yaml.ScalarNode) and key.value == str(part):
                        node, line = value, _line(key)
                        break
            elif _has_index(node, part):
                node = node.value[part]
                line = _line(node)
        return line

    def error(self, path: Path, exc: ValidationError) -> SuiteError:
        """The first problem in file order."""
        found = []
        for err in exc.errors():
            loc = (*err["loc"], *(err.get("ctx") or {}).get("at", ()))
            field_, line = self.where(tuple(loc))
            found.append(SuiteError(path, line, field_, _message(err)))
        return min(found, key=lambda e: e.line or 0)


def validate(
    data: Mapping[str, Any],
    path: Path,
    locator: Locator,
    *,
    known_providers: Collection[str] | None = None,
    internal: bool = False,
) -> Suite:
    """A Suite from plain data; `internal` lets the data set loader-only fields."""
    context = {"known_providers": known_providers, "internal": internal}
    try:
        suite = Suite.model_validate(data, context=context)
    except ValidationError as exc:
        raise locator.error(path, exc) from None
    suite.path = path
    return suite


_EXPECTED = {
    "string_type": "a string",
    "int_type": "a whole number",
    "int_parsing": "a whole number",
    "int_from_float": "a whole number",
    "float_type": "a number",
    "float_parsing": "a number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "list_type": "a list",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
}


def _message(err: ErrorDetails) -> str:
    ctx = err.get("ctx") or {}
    if "message" in ctx:
        return str(ctx["message"])
    if err["type"] == "missing":
        return "required, but missing"
    if err["type"] in _EXPECTED:
        return f"expected {_EXPECTED[err['type']]}, got {_shown(err['input'])}"
    if err["type"] == "too_short":
        if isinstance(err["input"], str):
            return "must not be empty"
        items = "item" if ctx["min_length"] == 1 else "items"
        return f"needs at least {ctx['min_length']} {items}, got {ctx['actual_length']}"
    if err["type"] == "value_error" and "error" in ctx:
        return str(ctx["error"])
    message = err["msg"].replace("Input should be", "should be")
    return f"{message}, got {_shown(err['input'])}"


def _shown(value: object) -> str:
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    text = repr(value)
    return text if len(text) <= 40 else text[:39] + "…"
