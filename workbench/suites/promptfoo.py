"""promptfoo configs (`prompts` / `providers` / `tests`) read as suites.

The common assertion types convert, checked as promptfoo checks them; the rest
(llm-rubric, similar, javascript, python, …) are listed in `Suite.unchecked` (and
`Suite.unsupported`), with the test they belong to, and each test keeps the labels of its
own in `Case.unchecked`: reported as not checked, never silently dropped or passed.
Errors point at the promptfoo file's own lines and fields (`tests[2].assert[1]`).
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

import yaml

from workbench.suites.pf_convert import (
    ConvertError,
    EndpointNames,
    Unsupported,
    convert_assertion,
    convert_provider,
)
from workbench.suites.schema import Suite
from workbench.suites.source import Locator, SuiteError, validate
from workbench.suites.validation import Loc

_IGNORED_KEYS = {"description", "outputPath", "sharing", "tags", "writeLatestResults"}
_USED_KEYS = {"prompts", "providers", "tests", "defaultTest", "evaluateOptions"}
_TEST_KEYS = {"description", "vars", "assert", "metadata"}
_MAX_FILE_BYTES = 1024 * 1024
_MAX_VARIANTS = 1000


def is_promptfoo(data: Mapping[str, Any]) -> bool:
    """A promptfoo config has `providers` and `tests` or `prompts`; a suite has neither."""
    return "providers" in data and ("tests" in data or "prompts" in data)


def load_promptfoo(
    data: Mapping[str, Any],
    path: Path,
    *,
    root: yaml.Node | None = None,
    known_providers: Collection[str] | None = None,
    targets_given: bool = False,
) -> Suite:
    """The config as a Suite; `root` (its YAML nodes) lets errors give line numbers.

    With `targets_given` (`-t`), the config's providers are not run, so they need not be
    ones workbench can run: those it cannot are left out of `targets`, unsaid."""
    converter = _Converter(path, Locator(root), check_providers=not targets_given)
    suite_data = converter.convert(data)
    locator = Locator(root, converter.origins)
    return validate(suite_data, path, locator, known_providers=known_providers, internal=True)


class _Converter:
    def __init__(self, path: Path, locator: Locator, *, check_providers: bool = True) -> None:
        self.path = path
        self.locator = locator
        self.check_providers = check_providers
        self.origins: dict[Loc, Loc] = {}
        self.unsupported: list[str] = []
        self.unchecked: list[str] = []
        self.endpoints = EndpointNames()

    def fail(self, loc: Loc, message: str) -> SuiteError:
        field, line = self.locator.where(loc)
        return SuiteError(self.path, line, field, message)

    def note(self, text: str, *, check: bool = False) -> None:
        """Something the config asks for that is not done; a `check` is a test's assertion."""
        if text not in self.unsupported:
            self.unsupported.append(text)
            if check:
                self.unchecked.append(text)

    def convert(self, data: Mapping[str, Any]) -> dict[str, Any]:
        for key in data:
            if key not in _USED_KEYS | _IGNORED_KEYS:
                self.note(f"{key}: not supported (ignored)")
        prompt, messages = self._prompt(data.get("prompts"))
        targets = self._targets(data.get("providers"))
        cases = self._cases(data.get("tests"), data.get("defaultTest"), messages)
        suite: dict[str, Any] = {
            "name": str(data.get("description") or self.path.stem),
            "description": f"promptfoo config {self.path.name}",
            "targets": targets,
            "cases": cases,
            "unsupported": self.unsupported,
            "unchecked": self.unchecked,
            "endpoints": self.endpoints.urls,
        }
        if prompt is not None:
            suite["prompt"] = prompt
            self.origins[("prompt",)] = ("prompts", 0)
        options = data.get("evaluateOptions") or {}
        for theirs, ours in (("maxConcurrency", "concurrency"), ("repeat", "repeat")):
            if isinstance(options, Mapping) and theirs in options:
                suite[ours] = options[theirs]
                self.origins[(ours,)] = ("evaluateOptions", theirs)
        return suite

    # --- prompts --------------------------------------------------------------

    def _prompt(self, prompts: Any) -> tuple[str | None, list[Any] | None]:
        if isinstance(prompts, str):
            prompts = [prompts]
        elif isinstance(prompts, Mapping):  # {"file://prompt.txt": "label"}
            prompts = list(prompts)
        if not isinstance(prompts, list):
            raise self.fail(("prompts",), "expected a list of prompts")
        if not prompts:
            raise self.fail(("prompts",), "is empty: give at least one prompt")
        if len(prompts) > 1:
            self.note(f"prompts: {len(prompts)} prompts given; only the first is run")
        first, loc = prompts[0], ("prompts", 0)
        if isinstance(first, Mapping):
            first = first.get("raw") or first.get("id")
        if not isinstance(first, str):
            raise self.fail(loc, "expected a prompt text, a file:// path or {raw: ...}")
        text, suffix = (self._file(first, loc), Path(first).suffix) if _is_file(first) else (
            first, "")  # fmt: skip
        chat = _chat(text, suffix)
        return (None, chat) if chat is not None else (text, None)

    def _file(self, ref: str, loc: Loc) -> str:
        file = self.path.parent / ref.removeprefix("file://")
        if file.suffix in (".py", ".js", ".ts", ".mjs", ".cjs"):
            raise self.fail(loc, f"{ref}: prompt and var functions are not supported")
        try:
            with file.open("rb") as handle:
                raw = handle.read(_MAX_FILE_BYTES + 1)
        except OSError as exc:
            raise self.fail(loc, f"cannot read {ref}: {exc.strerror or exc}") from None
        if len(raw) > _MAX_FILE_BYTES:
            raise self.fail(loc, f"{ref}: larger than 1 MB")
        try:
            return raw.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise self.fail(loc, f"{ref}: not UTF-8 (byte offset {exc.start})") from None

    # --- providers ------------------------------------------------------------

    def _targets(self, providers: Any) -> list[str]:
        if isinstance(providers, str | Mapping):
            providers = [providers]
        if not isinstance(providers, list):
            if not self.check_providers:
                return []
            raise self.fail(("providers",), "expected a list of providers")
        targets: list[str] = []
        for index, item in enumerate(providers):
            loc: Loc = ("providers", index)
            try:
                spec, ignored = convert_provider(item, self.endpoints)
            except ConvertError as exc:
                if not self.check_providers:
                    continue
                raise self.fail(loc, str(exc)) from None
            for key in ignored:
                self.note(f"providers[{index}].config.{key}: not supported (ignored)")
            self.origins[("targets", len(targets))] = loc
            targets.append(spec)
        return targets

    # --- tests ----------------------------------------------------------------

    def _cases(self, tests: Any, default: Any, messages: list[Any] | None) -> list[Any]:
        default = default or {}
        if not isinstance(default, Mapping):
            raise self.fail(("defaultTest",), "expected a mapping (files are not supported)")
        if tests is None:
            tests = [{}]
        if not isinstance(tests, list):
            raise self.fail(("tests",), "expected a list of tests (files are not supported)")
        cases: list[Any] = []
        ids: set[str] = set()
        for index, test in enumerate(tests):
            loc: Loc = ("tests", index)
            if not isinstance(test, Mapping):
                raise self.fail(loc, "expected a test mapping (files are not supported)")
            for key in set(test) - _TEST_KEYS:
                self.note(f"tests[{index}].{key}: not supported (ignored)")
            base = str(test.get("description") or f"test-{index + 1}")
            variants = self._vars(default.get("vars") or {}, test.get("vars") or {}, loc)
            for n, variables in enumerate(variants):
                case_id = base if len(variants) == 1 else f"{base} [{n + 1}]"
                while case_id in ids:
                    case_id += "'"
                ids.add(case_id)
                here: Loc = ("cases", len(cases))
                self.origins[here] = loc
                case: dict[str, Any] = {"id": case_id, "vars": variables, "expect": []}
                if messages is not None:
                    case["messages"] = messages
                    self.origins[(*here, "messages")] = ("prompts", 0)
                for where, item in self._asserts(default, test, loc):
                    try:
                        assertion = convert_assertion(item, variables)
                    except ConvertError as exc:
                        raise self.fail((*where, *exc.at), str(exc)) from None
                    except Unsupported as exc:
                        case.setdefault("unchecked", []).append(_label(item))
                        self.note(f"{_where(where, case_id)}: {exc} cannot be checked here",
                                  check=True)  # fmt: skip
                        continue
                    self.origins[(*here, "expect", len(case["expect"]))] = where
                    case["expect"].append(assertion)
                cases.append(case)
        return cases

    def _asserts(self, default: Any, test: Any, loc: Loc) -> list[tuple[Loc, Any]]:
        """defaultTest's assertions, then the test's own, each with where it was written."""
        found: list[tuple[Loc, Any]] = []
        for where, items in ((("defaultTest",), default.get("assert")), (loc, test.get("assert"))):
            if items is not None and not isinstance(items, list):
                raise self.fail((*where, "assert"), "expected a list of assertions")
            found += [((*where, "assert", k), item) for k, item in enumerate(items or [])]
        return found

    def _vars(self, default: Any, own: Any, loc: Loc) -> list[dict[str, Any]]:
        """promptfoo runs a test once per combination of list-valued vars."""
        if not isinstance(default, Mapping) or not isinstance(own, Mapping):
            raise self.fail((*loc, "vars"), "expected a mapping (files are not supported)")
        merged = {**default, **own}
        for name, value in merged.items():
            if isinstance(value, str) and _is_file(value):
                merged[name] = self._file(value, (*loc, "vars", name))
        names = list(merged)
        choices = [v if isinstance(v, list) else [v] for v in merged.values()]
        if math.prod(len(c) for c in choices) > _MAX_VARIANTS:
            raise self.fail((*loc, "vars"), f"list vars make more than {_MAX_VARIANTS} cases")
        return [dict(zip(names, combo, strict=True)) for combo in itertools.product(*choices)]


def _label(item: Mapping[str, Any]) -> str:
    """How an unchecked assertion is named in reports: `llm-rubric 'is polite'`."""
    value = item.get("value")
    if value is None:
        return str(item["type"])
    shown = repr(value) if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return f"{item['type']} {shown if len(shown) <= 60 else shown[:59] + '…'}"


def _where(loc: Loc, case_id: str) -> str:
    if loc[0] == "defaultTest":
        return f"defaultTest.assert[{loc[2]}] (every test)"
    return f"tests[{loc[1]}] {case_id!r}"


def _is_file(text: str) -> bool:
    return text.startswith("file://")


def _chat(text: str, suffix: str) -> list[Any] | None:
    """A prompt that is a JSON (or YAML file) list of `{role, content}` is a conversation."""
    if suffix not in (".json", ".yaml", ".yml") and not text.lstrip().startswith("["):
        return None
    try:
        data = yaml.safe_load(text) if suffix in (".yaml", ".yml") else json.loads(text)
    except (ValueError, yaml.YAMLError):
        return None
    if isinstance(data, list) and data and all(isinstance(m, Mapping) for m in data):
        return data
    return None
