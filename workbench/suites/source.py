"""Reading suite files safely, and pointing every problem at its line in the file.

YAML is composed with PyYAML's SafeLoader into nodes that remember where they start; the
node graph is checked (duplicate keys, aliases that expand absurdly) before it is turned
into Python data. A validation error's `loc` is then walked down the nodes to find its line.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError
from pydantic_core import ErrorDetails

from workbench.suites.schema import Suite
from workbench.suites.validation import ASSERTION_TYPES, Loc

MAX_BYTES = 2 * 1024 * 1024
"""Suite files larger than this are refused unread."""
MAX_NODES = 100_000
"""How many values a file may hold once its aliases are expanded."""


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
            raw = file.read(MAX_BYTES + 1)
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
    loader = yaml.SafeLoader(text)
    try:
        root = loader.get_single_node()
        if root is None:
            return Document(path, None, None)
        _check_graph(path, root)
        return Document(path, loader.construct_document(root), root)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        raise SuiteError(path, line, "", f"YAML: {exc.problem or exc.context}") from None
    except yaml.YAMLError as exc:
        raise SuiteError(path, None, "", f"YAML: {exc}") from None
    except RecursionError:
        raise SuiteError(path, None, "", "YAML nests too deeply") from None
    finally:
        loader.dispose()


def _check_graph(path: Path, root: yaml.Node) -> None:
    """Duplicate keys, recursive aliases, and aliases that expand past MAX_NODES."""
    sizes: dict[int, int] = {}
    active: set[int] = set()

    def size(node: yaml.Node, loc: Loc) -> int:
        if id(node) in sizes:
            return sizes[id(node)]
        if id(node) in active:
            raise SuiteError(path, _line(node), _field(loc), "an alias refers to itself")
        active.add(id(node))
        total = 1
        if isinstance(node, yaml.SequenceNode):
            total += sum(size(item, (*loc, i)) for i, item in enumerate(node.value))
        elif isinstance(node, yaml.MappingNode):
            seen: dict[str, int] = {}
            for key, value in node.value:
                name = key.value if isinstance(key, yaml.ScalarNode) else None
                if name is not None and name != "<<" and name in seen:
                    message = f"duplicate key {name!r} (first on line {seen[name]})"
                    raise SuiteError(path, _line(key), _field((*loc, name)), message)
                if name is not None:
                    seen[name] = _line(key)
                total += size(key, loc) + size(value, (*loc, name if name else "?"))
        active.discard(id(node))
        if total > MAX_NODES:
            message = f"aliases expand to more than {MAX_NODES} values (a 'billion laughs' file?)"
            raise SuiteError(path, _line(node), _field(loc), message)
        sizes[id(node)] = total
        return total

    size(root, ())


def _has_index(node: yaml.Node | None, part: str | int) -> bool:
    return (
        isinstance(node, yaml.SequenceNode)
        and isinstance(part, int)
        and 0 <= part < len(node.value)
    )


def _line(node: yaml.Node) -> int:
    return int(node.start_mark.line) + 1


def _field(loc: Loc) -> str:
    """`cases[2].expect[0]`: the location as a person reads it (no union tags)."""
    text = ""
    for i, part in enumerate(loc):
        if isinstance(part, int):
            text += f"[{part}]"
        elif i and isinstance(loc[i - 1], int) and part in ASSERTION_TYPES:
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
        return f"needs at least {ctx['min_length']} item, got {ctx['actual_length']}"
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
