"""History: stored comparisons listed, searched, loaded and exported, from real runs."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from providers.base import Message
from providers.registry import Registry, parse_target
from tests.fault_servers import WIRES, Handler, Wire, presented_key
from workbench import locations
from workbench.cli import main
from workbench.commands.ask import run_ask
from workbench.config import Settings
from workbench.export import (
    CSV_COLUMNS,
    csv_cell,
    stored_csv,
    stored_json,
    stored_markdown,
    write_stored,
)
from workbench.history import list_comparisons, load_comparison
from workbench.store import Store
from workbench.wiring import make_registry

NO_KEYS = {"OLLAMA_HOST": "127.0.0.1:9"}
SMOL = "embedded:smollm2@temperature=0,max_tokens=6"


@pytest.fixture
async def registry() -> AsyncIterator[Registry]:
    made = make_registry(Settings(), NO_KEYS)
    yield made
    await made.aclose()


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "workbench.db")


async def ask(
    registry: Registry, store: Store, messages: Sequence[Message] | str, *targets: str
) -> None:
    if isinstance(messages, str):
        messages = [Message("user", messages)]
    out = io.StringIO()
    await run_ask(
        registry, [parse_target(t) for t in targets or (SMOL,)], messages, out=out, store=store
    )


async def test_lists_comparisons_newest_first_with_prompt_targets_and_statuses(
    registry: Registry, store: Store
) -> None:
    other = "embedded:smollm2@max_tokens=4"
    await ask(registry, store, "Name a colour.", SMOL, other)
    await ask(registry, store, "Name a fruit.")
    listed = list_comparisons(store)
    assert [c.prompt for c in listed] == ["Name a fruit.", "Name a colour."]
    # In the order they finished.
    assert sorted(listed[1].targets) == sorted([SMOL, other])
    assert listed[1].statuses == ("done", "done")
    assert all(c.origin == "ask" and c.turn == 1 for c in listed)
    assert listed[0].created_at >= listed[1].created_at


async def test_suite_runs_are_left_out_unless_asked_for(registry: Registry, store: Store) -> None:
    await ask(registry, store, "Name a colour.")
    (comparison,) = [load_comparison(store, c.batch) for c in list_comparisons(store)]
    assert comparison is not None
    pane = comparison.panes[0]
    # The same real answer recorded again as one case of a suite run.
    store.add_response(pane.result, pane.sent, origin="suite", batch="run-1")
    assert [c.batch for c in list_comparisons(store)] == [comparison.batch]
    with_suites = list_comparisons(store, include_suites=True)
    assert [(c.batch, c.origin) for c in with_suites] == [
        ("run-1", "suite"),
        (comparison.batch, "ask"),
    ]


async def test_search_matches_prompts_and_answers_and_takes_wildcards_literally(
    registry: Registry, store: Store
) -> None:
    await ask(registry, store, "Is 100% of 5_000 equal to 5000?")
    await ask(registry, store, "Is 1000 of 5 000 apples a lot?")
    await ask(registry, store, 'Überraschung: say "hi" in German.')
    assert [c.prompt for c in list_comparisons(store, "0%")] == ["Is 100% of 5_000 equal to 5000?"]
    assert [c.prompt for c in list_comparisons(store, "5_0")] == ["Is 100% of 5_000 equal to 5000?"]
    # Non-ASCII and quotes match as typed, not as the JSON escapes they are stored as.
    assert len(list_comparisons(store, 'Überraschung: say "hi"')) == 1
    assert len(list_comparisons(store, "APPLES")) == 1  # case does not matter
    assert len(list_comparisons(store, "überRASCHUNG")) == 1  # beyond ASCII too
    assert list_comparisons(store, "no such words anywhere") == []
    everything = list_comparisons(store)
    answered = load_comparison(store, everything[-1].batch)
    assert answered is not None
    answer = answered.panes[0].result.text.strip()
    assert answer, "the model answered something to search for"
    found = list_comparisons(store, answer[:12])
    assert answered.batch in [c.batch for c in found]


async def test_a_chat_turn_carries_its_earlier_turns(registry: Registry, store: Store) -> None:
    await ask(registry, store, "My name is Ada.")
    first = load_comparison(store, list_comparisons(store)[0].batch)
    assert first is not None
    answer = first.panes[0].result.text
    history = [Message("user", "My name is Ada."), Message("assistant", answer)]
    await ask(registry, store, [*history, Message("user", "What is my name?")])
    latest = list_comparisons(store)[0]
    assert (latest.prompt, latest.turn) == ("What is my name?", 2)
    comparison = load_comparison(store, latest.batch)
    assert comparison is not None
    # The first prompt was asked once: the later turn that carries it is no match, unless
    # its answer says the same.
    echoed = "my name is ada" in comparison.panes[0].result.text.lower()
    found = [c.turn for c in list_comparisons(store, "My name is Ada")]
    assert found == ([2, 1] if echoed else [1])
    assert comparison.prompt == "What is my name?"
    assert [(m.role, m.content) for m in comparison.history] == [
        ("user", "My name is Ada."),
        ("assistant", answer),
    ]
    turns = comparison.panes[0].conversation().turns
    assert [m.role for m in turns] == ["user", "assistant", "user", "assistant"]
    assert turns[-1].content == comparison.panes[0].result.text


async def test_exports_parse_back_with_one_row_per_target(
    registry: Registry, store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WORKBENCH_HOME", str(tmp_path))
    other = "embedded:smollm2@max_tokens=4"
    hostile = '=HYPERLINK("http://evil","x") \x1b[31mred\x1b[0m and | pipes'
    await ask(registry, store, hostile, SMOL, other)
    comparison = load_comparison(store, list_comparisons(store)[0].batch)
    assert comparison is not None
    cleaned = '=HYPERLINK("http://evil","x") red and | pipes'

    document = json.loads(stored_json(comparison))
    assert document["prompt"] == cleaned and document["origin"] == "ask"
    assert sorted(p["target"] for p in document["panes"]) == sorted([SMOL, other])
    for pane, stored in zip(document["panes"], comparison.panes, strict=True):
        assert pane["result"]["status"] == "done"
        assert pane["result"]["text"] == stored.result.text
        assert pane["result"]["tokens"]["output"] == stored.result.output_tokens
        assert pane["history"] == []

    rows = list(csv.reader(io.StringIO(stored_csv(comparison))))
    assert tuple(rows[0]) == CSV_COLUMNS
    records = [dict(zip(CSV_COLUMNS, row, strict=True)) for row in rows[1:]]
    assert [r["target"] for r in records] == comparison.targets
    for record, stored in zip(records, comparison.panes, strict=True):
        assert record["prompt"] == "'" + cleaned  # a spreadsheet shows it, never runs it
        assert record["status"] == "done" and record["turn"] == "1"
        assert int(record["output_tokens"]) == stored.result.output_tokens
        assert float(record["e2e_s"]) == stored.result.e2e_s
        assert record["cost_kind"] == (stored.result.cost.kind if stored.result.cost else "")

    markdown = stored_markdown(comparison)
    assert "\x1b" not in markdown
    assert f"## {SMOL}" in markdown and f"## {other}" in markdown
    assert "> " + cleaned in markdown

    writers = {"md": stored_markdown, "json": stored_json, "csv": stored_csv}
    for kind, writer in writers.items():
        path = write_stored(comparison, kind)  # type: ignore[arg-type]
        assert path.parent == tmp_path / "exports" and path.suffix == f".{kind}"
        assert path.stat().st_mode & 0o077 == 0  # private, like the store
        assert path.read_bytes().decode() == writer(comparison)


def test_csv_defuses_every_formula_start() -> None:
    for start in "=+-@":
        assert csv_cell(f"{start}1+1") == f"'{start}1+1"
    assert csv_cell("\x1b[2J=1") == "'=1"  # judged after cleaning, as written
    assert csv_cell("plain") == "plain"
    assert csv_cell(-1.5) == "-1.5"  # a number we wrote is a number


def echoing_key(wire: Wire, seen: list[str]) -> Handler:
    """A 401 whose body echoes the key the client sent, as some proxies do."""

    def reject(request: Request) -> Response:
        seen.append(presented_key(request))
        return wire.error(401, f"Incorrect API key provided: {presented_key(request)}")

    return reject


def database_bytes(folder: Path) -> bytes:
    """The database and its WAL and shared-memory files, as they are on disk."""
    return b"".join(p.read_bytes() for p in folder.glob("workbench.db*"))


FAKE_OPENAI = "sk-test-FAKE1234567890abcdef"
FAKE_ANTHROPIC = "sk-ant-test-FAKE0987654321zyxw"


async def test_api_keys_appear_in_no_export_and_not_in_the_store(
    httpserver: HTTPServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WORKBENCH_HOME", str(tmp_path))
    monkeypatch.setenv("OPENAI_API_KEY", FAKE_OPENAI)
    monkeypatch.setenv("ANTHROPIC_API_KEY", FAKE_ANTHROPIC)
    url = httpserver.url_for("").rstrip("/")
    monkeypatch.setenv("OPENAI_BASE_URL", f"{url}/v1")
    monkeypatch.setenv("ANTHROPIC_BASE_URL", url)
    monkeypatch.setenv("OLLAMA_HOST", "127.0.0.1:9")
    seen: list[str] = []
    for wire in (WIRES["openai"], WIRES["anthropic"]):
        httpserver.expect_request(wire.path, method="POST").respond_with_handler(
            echoing_key(wire, seen)
        )

    registry = make_registry(Settings())  # the real environment, keys included
    store = Store(tmp_path / "workbench.db")
    try:
        targets = (SMOL, "openai:gpt-4o-mini", "anthropic:claude-3-5-haiku-latest")
        await ask(registry, store, "Say hello.", *targets)
        await ask(registry, store, f"Repeat after me: {FAKE_OPENAI[:6]}", *targets)
    finally:
        await registry.aclose()
    # Each key reached its server (on a busy machine a request can time out instead).
    assert set(seen) == {FAKE_OPENAI, FAKE_ANTHROPIC}

    exported: dict[str, str] = {}
    errors: list[tuple[str, str]] = []
    for summary in list_comparisons(store):
        comparison = load_comparison(store, summary.batch)
        assert comparison is not None
        assert len(comparison.panes) == 3
        errors += [(p.result.provider, p.result.error or "") for p in comparison.panes]
        for kind in ("md", "json", "csv"):
            path = write_stored(comparison, kind)
            exported[path.name] = path.read_text(encoding="utf-8")
    store.close()
    # The echoed keys were there to leak into the errors, and were replaced.
    redacted = {provider for provider, error in errors if "[redacted]" in error}
    assert redacted == {"openai", "anthropic"}, errors
    assert len(exported) == 6
    for kind in (".md", ".json", ".csv"):
        assert any("[redacted]" in t for name, t in exported.items() if name.endswith(kind))
    stored = database_bytes(tmp_path)
    for key in (FAKE_OPENAI, FAKE_ANTHROPIC):
        assert all(key not in text for text in exported.values())
        assert key.encode() not in stored


async def test_cli_lists_and_searches_chats(
    registry: Registry,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("WORKBENCH_HOME", str(tmp_path))
    store = Store(locations.database_path())
    await ask(registry, store, "Name a colour.")
    await ask(registry, store, "Name a fruit.")
    store.close()
    assert main(["history", "--chats"]) == 0
    listed = capsys.readouterr().out
    assert listed.index("Name a fruit.") < listed.index("Name a colour.")
    assert main(["history", "--chats", "--search", "fruit"]) == 0
    found = capsys.readouterr().out
    assert "Name a fruit." in found and "Name a colour." not in found
    assert main(["history", "--search", "fruit"]) == 0  # without --chats: suite runs
    assert "contain 'fruit' (prompts and answers: --chats)" in capsys.readouterr().out
