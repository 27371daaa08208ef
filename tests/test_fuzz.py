"""Fuzzing the two parsers users feed by hand: targets and suite files.

Whatever the input, `parse_target` either returns a Target or raises TargetError, and
`load_suite` either returns a Suite or raises SuiteError: never another exception.

The corpus is kept in `tests/corpus/`: `hypothesis/` is Hypothesis's example database
(every failing input it finds is saved there and replayed first on later runs; read-only
under CI so CI never grows it), and `targets/` and `suites/` hold hand-written nasty
inputs that every run replays.
"""

from __future__ import annotations

import os
import re
import string
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.database import DirectoryBasedExampleDatabase, ExampleDatabase, ReadOnlyDatabase

from providers.registry import Target, TargetError, parse_target
from workbench.suites.loader import load_suite
from workbench.suites.source import SuiteError
from workbench.suites.validation import ASSERTION_TYPES

CORPUS = Path(__file__).parent / "corpus"


def _database() -> ExampleDatabase:
    found = DirectoryBasedExampleDatabase(CORPUS / "hypothesis")
    return ReadOnlyDatabase(found) if os.environ.get("CI") else found


FUZZ = settings(
    max_examples=300,
    deadline=None,
    database=_database(),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
KEYS = ("temperature", "top_p", "max_tokens", "seed", "system", "label")


# --- targets --------------------------------------------------------------------------


def _parses_or_says_why(text: str) -> Target | None:
    try:
        return parse_target(text)
    except TargetError as exc:
        assert str(exc)  # a message, not an empty error
        return None


target_like = st.lists(
    st.one_of(
        st.text(max_size=12),
        st.sampled_from([":", "@", ",", "=", "embedded", "ollama", " ", "\x00", "\u202e"]),
        st.sampled_from([f"{k}=" for k in KEYS]),
        st.sampled_from(["nan", "inf", "-1", "1e999", "0x10", "1_000", "٣", "9" * 5000]),
    ),
    max_size=10,
).map("".join)


@FUZZ
@given(st.text())
def test_any_text_parses_or_raises_target_error(text: str) -> None:
    _parses_or_says_why(text)


@FUZZ
@given(target_like)
def test_target_shaped_text_parses_or_raises_target_error(text: str) -> None:
    target = _parses_or_says_why(text)
    if target is not None:
        assert parse_target(target.spec) == target


def _no_override_start(text: str) -> bool:
    return not re.search(r"[@,](?:" + "|".join(KEYS) + ")=", text)


provider = st.from_regex(r"[A-Za-z][A-Za-z0-9_.-]{0,12}", fullmatch=True)
# Nor does a model end in what reads as a misspelt setting (`m@tempreature=1`), in '@', or
# hold a setting left without its value (`m@seed`): each is refused as unfinished.
_SETTING_AT_END = re.compile(r"@[A-Za-z_]+=[^\s@\[\]]*$")
_BARE_KEY = re.compile(r"@(?:" + "|".join(KEYS) + r")(?=,|$)")
model = st.text(st.characters(codec="utf-8"), min_size=1, max_size=30).filter(
    lambda m: (
        m == m.strip()
        and _no_override_start(m)
        and not m.startswith("@")
        and not m.endswith("@")
        and not _SETTING_AT_END.search(m)
        and not _BARE_KEY.search(m)
    )
)
words = st.text(st.characters(codec="utf-8", blacklist_characters="\n"), max_size=30).filter(
    lambda s: s == s.strip() and _no_override_start("," + s) and _no_override_start(s)
)
temperatures = st.floats(allow_nan=False, allow_infinity=False, min_value=0, max_value=1e6)
top_ps = st.floats(min_value=0, max_value=1, exclude_min=True)


@FUZZ
@given(
    provider,
    model,
    st.fixed_dictionaries(
        {},
        optional={
            "temperature": temperatures,
            "top_p": top_ps,
            "max_tokens": st.integers(1, 10**9),
            "seed": st.integers(0, 2**32 - 2),
            "system": words,
            "label": words,
        },
    ),
)
def test_valid_specs_round_trip(provider: str, model: str, overrides: dict[str, object]) -> None:
    settings_ = ",".join(f"{k}={v!r}" if isinstance(v, float) else f"{k}={v}"
                         for k, v in overrides.items())  # fmt: skip
    spec = f"{provider}:{model}@{settings_}" if settings_ else f"{provider}:{model}"
    target = parse_target(spec)
    assert (target.provider, target.model) == (provider, model)
    for key in ("temperature", "top_p", "max_tokens", "seed"):
        assert getattr(target.params, key) == overrides.get(key)
    assert target.system == overrides.get("system")
    assert target.label == overrides.get("label")
    assert parse_target(target.spec) == target


@pytest.mark.parametrize(
    "text", ["embedded:m@temperature=nan", "embedded:m@top_p=inf", "embedded:m@temperature=1e999"]
)
def test_non_finite_numbers_are_refused(text: str) -> None:
    with pytest.raises(TargetError, match="finite"):
        parse_target(text)


@pytest.mark.parametrize("path", sorted((CORPUS / "targets").glob("*.txt")), ids=lambda p: p.name)
def test_target_corpus_replays(path: Path) -> None:
    for line in path.read_text(encoding="utf-8", errors="surrogateescape").splitlines():
        target = _parses_or_says_why(line)
        if target is not None:
            assert parse_target(target.spec) == target


# --- suite files ------------------------------------------------------------------------


def _loads_or_says_where(path: Path) -> None:
    try:
        load_suite(path, known_providers=("embedded", "ollama", "openai", "anthropic"))
    except SuiteError as exc:
        assert str(exc).startswith(str(path))


yamlish = st.lists(
    st.one_of(
        st.text(max_size=20),
        st.sampled_from(
            [
                "name: x\n",
                "cases:\n",
                "  - id: a\n",
                "    vars: {q: 1}\n",
                "prompt: '{{q}}'\n",
                "    expect:\n",
                "      - icontains: x\n",
                "      - regex: '('\n",
                "- ",
                ": ",
                "&a ",
                "*a",
                "<<: *a\n",
                "!!python/object:os.system ",
                "!!binary ",
                "{",
                "[",
                "}",
                "]",
                "'",
                '"',
                "\t",
                "\n",
                "---\n",
                "...\n",
                "? ",
                "|\n",
                ">\n",
                "%YAML 1.1\n",
                "{{",
                "}}",
                "{{ q }}",
                "\x00",
                "\ufeff",
                "\x85",
                "\u2028",
                "targets: [x]\n",
            ]
        ),
    ),
    max_size=25,
).map("".join)


@FUZZ
@given(yamlish)
def test_yaml_ish_text_loads_or_raises_suite_error(tmp_path: Path, text: str) -> None:
    path = tmp_path / "fuzz.yaml"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    _loads_or_says_where(path)


@FUZZ
@given(st.binary(max_size=200))
def test_random_bytes_load_or_raise_suite_error(tmp_path: Path, raw: bytes) -> None:
    path = tmp_path / "fuzz.yaml"
    path.write_bytes(raw)
    _loads_or_says_where(path)


scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.text(max_size=20),
    st.sampled_from(
        ["{{q}}", "{{", "embedded:smollm2", "x:y@temperature=z", "(", *ASSERTION_TYPES]
    ),
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.one_of(st.text(max_size=8), st.sampled_from(ASSERTION_TYPES)), inner, max_size=4
        )
    ),
    max_leaves=20,
)
assertion = st.one_of(
    st.dictionaries(st.sampled_from(ASSERTION_TYPES), values, min_size=1, max_size=1),
    values,
)
case = st.fixed_dictionaries(
    {},
    optional={
        "id": st.one_of(st.text(max_size=8), st.integers(), values),
        "vars": st.one_of(st.dictionaries(st.text(max_size=5), scalars, max_size=3), values),
        "prompt": st.one_of(st.text(max_size=20), values),
        "messages": values,
        "expect": st.one_of(st.lists(assertion, max_size=3), values),
        "repeat": values,
        "private": values,
    },
)
suite_like = st.fixed_dictionaries(
    {},
    optional={
        "name": st.one_of(st.text(max_size=10), values),
        "targets": st.one_of(st.lists(st.text(max_size=20), max_size=3), values),
        "prompt": st.one_of(st.sampled_from(["{{q}}", "Say {{ q }}", "{{"]), values),
        "system": values,
        "params": values,
        "repeat": values,
        "cases": st.one_of(st.lists(case, max_size=4), values),
        "prompts": values,  # promptfoo's shape
        "providers": values,
        "tests": values,
        "unknown": values,
    },
)


@FUZZ
@given(suite_like)
def test_structured_documents_load_or_raise_suite_error(tmp_path: Path, data: object) -> None:
    path = tmp_path / "fuzz.yaml"
    try:
        text = yaml.safe_dump(data, allow_unicode=True)
    except yaml.YAMLError:
        return
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    _loads_or_says_where(path)


@pytest.mark.parametrize("path", sorted((CORPUS / "suites").iterdir()), ids=lambda p: p.name)
def test_suite_corpus_replays(path: Path) -> None:
    _loads_or_says_where(path)


def test_the_corpus_is_there() -> None:
    """A corpus that silently vanished would make the replays above test nothing."""
    assert len(list((CORPUS / "suites").iterdir())) >= 8
    assert len((CORPUS / "targets" / "nasty.txt").read_text().splitlines()) >= 20
    assert set(string.ascii_letters) & set((CORPUS / "targets" / "nasty.txt").read_text())
