"""The part of JSON Schema that promptfoo configs' is-json and contains-json mostly use,
checked exactly: `type`, `required`, `properties`, `additionalProperties`, `items`, `enum`,
`const` (and the annotations `title`, `description`, `$schema`, `$id`). A schema that uses
any other keyword cannot be checked here: `unsupported` names those keywords, and the check
is then reported as not checked rather than half-checked.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

_CHECKED = {"type", "required", "properties", "additionalProperties", "items", "enum", "const"}
_NOTES = {"title", "description", "$schema", "$id", "$comment", "examples", "default"}
_TYPES = {"object", "array", "string", "number", "integer", "boolean", "null"}


def unsupported(schema: Any) -> list[str]:
    """The keywords (and malformed parts) of `schema` that `check` does not check."""
    if isinstance(schema, bool):
        return []
    if not isinstance(schema, Mapping):
        return [f"a schema that is {type(schema).__name__}"]
    found = [str(key) for key in schema if key not in _CHECKED | _NOTES]
    types = schema.get("type", [])
    if any(t not in _TYPES for t in (types if isinstance(types, list) else [types])):
        found.append(f"type {types!r}")
    required = schema.get("required", [])
    if not isinstance(required, list) or not all(isinstance(k, str) for k in required):
        found.append("required that is not a list of names")
    properties = schema.get("properties", {})
    if not isinstance(properties, Mapping):
        found.append("properties that is not a mapping")
        properties = {}
    for sub in (*properties.values(), schema.get("additionalProperties", True)):
        found += unsupported(sub)
    if "items" in schema:
        found += unsupported(schema["items"])  # a list of schemas (tuples) is refused here
    if "enum" in schema and not isinstance(schema["enum"], list):
        found.append("enum that is not a list")
    return list(dict.fromkeys(found))


def check(schema: Any, data: Any, where: str = "$") -> str | None:
    """Why `data` does not match `schema`, or None when it does. `schema` is one that
    `unsupported` found nothing in."""
    if isinstance(schema, bool):
        return None if schema else f"{where}: no value is allowed here"
    types = schema.get("type")
    if types is not None:
        allowed = types if isinstance(types, list) else [types]
        if not any(_is(data, t) for t in allowed):
            return f"{where}: expected {' or '.join(allowed)}, got {_kind(data)}"
    if "const" in schema and not _same(data, schema["const"]):
        return f"{where}: must be {schema['const']!r}"
    if "enum" in schema and not any(_same(data, v) for v in schema["enum"]):
        return f"{where}: must be one of {schema['enum']!r}"
    if isinstance(data, dict):
        missing = [key for key in schema.get("required", []) if key not in data]
        if missing:
            return f"{where}: lacks {', '.join(map(repr, missing))}"
        properties = schema.get("properties", {})
        extra = schema.get("additionalProperties", True)
        for key, value in data.items():
            sub = properties.get(key, extra)
            if sub is False and key not in properties:
                return f"{where}: has {key!r}, which the schema does not allow"
            if (why := check(sub, value, f"{where}.{key}")) is not None:
                return why
    if isinstance(data, list) and "items" in schema:
        for index, item in enumerate(data):
            if (why := check(schema["items"], item, f"{where}[{index}]")) is not None:
                return why
    return None


def _is(data: Any, kind: str) -> bool:
    match kind:
        case "object":
            return isinstance(data, dict)
        case "array":
            return isinstance(data, list)
        case "string":
            return isinstance(data, str)
        case "boolean":
            return isinstance(data, bool)
        case "null":
            return data is None
        case "number":
            return isinstance(data, int | float) and not isinstance(data, bool)
        case "integer":  # 1.0 is an integer to JSON Schema; true is not
            return _is(data, "number") and (isinstance(data, int) or data.is_integer())
    return False


def _kind(data: Any) -> str:
    for kind in ("null", "boolean", "integer", "number", "string", "array", "object"):
        if _is(data, kind):
            return kind
    return type(data).__name__


def _same(a: Any, b: Any) -> bool:
    """JSON equality: 1 and 1.0 are equal, true and 1 are not."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    numbers = _is(a, "number") and _is(b, "number")
    return (numbers or type(a) is type(b)) and bool(a == b)
