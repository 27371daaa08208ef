"""Each token count is exact or estimated on its own, wherever it is shown or kept.

Ollama leaves `prompt_eval_count` out of its final chunk when the prompt came from its cache
(ollama/ollama#2068) and still sends `eval_count`, the answer's real count. That count is
used and shown as the server's; only the prompt's is estimated, and only it wears the `~`.
Served by the loopback Ollama (tests/ollama_server.py): every token from the real SmolLM2.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from providers.base import ChatRequest, GenParams, Message, TextDelta, Usage
from providers.ollama import OllamaProvider
from providers.registry import Registry, parse_target
from tests.ollama_server import OllamaServer
from workbench.commands.ask import run_ask
from workbench.engine import tokens
from workbench.engine.fanout import fanout
from workbench.engine.pricing import PriceSource, cost_of
from workbench.engine.result import TargetResult
from workbench.export import CSV_COLUMNS, stored_csv, stored_json, stored_markdown
from workbench.history import list_comparisons, load_comparison
from workbench.store import Store
from workbench.tui.widgets.pane import metrics_line

MODEL = "smollm2:135m"
ANSWER_TOKENS = 16
TARGET = f"ollama:{MODEL}@max_tokens={ANSWER_TOKENS},temperature=0,seed=1"
# Code: tiktoken counts its answer as fewer tokens than SmolLM2 does, so the count shown
# tells the server's from an estimate.
PROMPT = [Message("user", "Write a Python function that reverses a string.")]


@pytest.fixture
def cached_prompt(ollama_server: OllamaServer) -> Iterator[OllamaServer]:
    """The shared server, answering as if every prompt came from its cache."""
    ollama_server.reset_faults()
    ollama_server.prompt_cached = True
    yield ollama_server
    ollama_server.reset_faults()
    # Taken, so that a server error fails the test it happened in, not every one after it.
    errors, ollama_server.errors[:] = list(ollama_server.errors), []
    assert errors == []


@pytest.fixture
async def registry(cached_prompt: OllamaServer) -> AsyncIterator[Registry]:
    made = Registry(env={"OLLAMA_HOST": cached_prompt.host})
    yield made
    await made.aclose()


def estimated_prompt() -> int:
    """What we estimate the prompt at: the model has no tokenizer here, tiktoken does."""
    return tokens.estimator_for("ollama", MODEL).count_messages(PROMPT)


def estimated(answer: str) -> int:
    return tokens.estimator_for("ollama", MODEL).count(answer)


async def test_the_provider_passes_on_the_answers_count_without_the_prompts(
    cached_prompt: OllamaServer,
) -> None:
    provider = OllamaProvider(host=cached_prompt.host, read_timeout_s=60)
    params = GenParams(temperature=0, max_tokens=ANSWER_TOKENS, seed=1)
    request = ChatRequest(MODEL, tuple(PROMPT), params)
    try:
        events = [e async for e in provider.stream(request)]
    finally:
        await provider.aclose()
    assert "".join(e.text for e in events if isinstance(e, TextDelta))
    (usage,) = [e for e in events if isinstance(e, Usage)]
    assert (usage.input_tokens, usage.output_tokens, usage.exact) == (None, ANSWER_TOKENS, True)


@pytest.mark.parametrize("live_estimates", [True, False], ids=["live", "at-end"])
async def test_the_answers_count_stays_exact_when_the_prompts_is_estimated(
    registry: Registry, live_estimates: bool
) -> None:
    (result,) = await fanout(
        registry, [parse_target(TARGET)], PROMPT, live_estimates=live_estimates
    )
    assert (result.status, result.error) == ("done", None)
    assert estimated(result.text) != ANSWER_TOKENS  # so the count below is the server's
    assert result.to_json()["tokens"] == {
        "input": estimated_prompt(),
        "output": ANSWER_TOKENS,  # the server's eval_count, not our estimate of the text
        "cached_input": 0,
        "exact": False,  # not both
        "input_exact": False,
        "output_exact": True,
    }
    # Rates are figured from the server's count.
    assert result.output_tps == pytest.approx(ANSWER_TOKENS / (result.e2e_s or 0))


async def test_only_the_estimated_count_is_marked_in_ask_history_and_exports(
    registry: Registry, tmp_path: Path
) -> None:
    store = Store(tmp_path / "workbench.db")
    out = io.StringIO()
    try:
        assert await run_ask(registry, [parse_target(TARGET)], PROMPT, out=out, store=store) == 0
        comparison = load_comparison(store, list_comparisons(store)[0].batch)
    finally:
        store.close()
    prompt = estimated_prompt()

    # `ask`'s table: `… in out cost` — the prompt's count marked, the answer's not.
    (row,) = [line for line in out.getvalue().splitlines() if line.startswith(TARGET[:20])]
    assert re.search(rf" ~{prompt} +{ANSWER_TOKENS} +local$", row), row

    # Kept in the store, and read back as it was.
    assert comparison is not None
    (pane,) = comparison.panes
    result = pane.result
    assert (result.input_tokens, result.output_tokens) == (prompt, ANSWER_TOKENS)
    assert (result.input_exact, result.output_exact) == (False, True)
    assert result.cost is not None and result.cost.kind == "local"  # stored once it was known

    # The pane's metrics line, wide and narrow.
    assert f"in ~{prompt} / out {ANSWER_TOKENS} · local" in metrics_line(result).plain
    # Compact: the header says local, and the memory figure gets the room.
    assert metrics_line(result, compact=True).plain.endswith(f" · ~{prompt}→{ANSWER_TOKENS}")
    compact = metrics_line(result, 295 * 2**20, compact=True).plain
    assert compact.endswith(f" · ~{prompt}→{ANSWER_TOKENS} · 295 MB") and "local" not in compact

    # Exports: the Markdown table, JSON and CSV say it per count; `exact` is both.
    assert f"| ~{prompt} | {ANSWER_TOKENS} | local |" in stored_markdown(comparison)
    exported = json.loads(stored_json(comparison))["panes"][0]["result"]["tokens"]
    assert (exported["exact"], exported["input_exact"], exported["output_exact"]) == (
        False,
        False,
        True,
    )
    header, values = list(csv.reader(io.StringIO(stored_csv(comparison))))
    assert tuple(header) == CSV_COLUMNS
    record = dict(zip(header, values, strict=True))
    assert (record["tokens_exact"], record["input_tokens_exact"]) == ("false", "false")
    assert (record["output_tokens"], record["output_tokens_exact"]) == (str(ANSWER_TOKENS), "true")


def _cloud(*, input_exact: bool, output_exact: bool) -> TargetResult:
    result = TargetResult(
        "openai:gpt-4o-mini", "openai:gpt-4o-mini", "openai", "gpt-4o-mini", False,
        status="done", text="Paris.", input_tokens=1000, output_tokens=2000,
        input_exact=input_exact, output_exact=output_exact,
        price_source=PriceSource(provider_id="openai"),
    )  # fmt: skip
    result.cost = cost_of(result)
    return result


def test_a_cost_priced_from_one_estimated_count_is_an_estimate(tmp_path: Path) -> None:
    exact = _cloud(input_exact=True, output_exact=True)
    assert exact.cost is not None and exact.cost.kind == "priced"
    assert not exact.cost.estimated and not exact.cost.label.startswith("~")
    for half in (_cloud(input_exact=False, output_exact=True),
                 _cloud(input_exact=True, output_exact=False)):  # fmt: skip
        assert half.cost is not None and half.cost.usd == exact.cost.usd
        assert half.cost.estimated and half.cost.label == "~" + exact.cost.label

    # Read back from the store, it is still marked.
    store = Store(tmp_path / "workbench.db")
    try:
        half = _cloud(input_exact=False, output_exact=True)
        store.add_response(half, PROMPT, origin="ask", batch="b")
        stored = load_comparison(store, "b")
    finally:
        store.close()
    assert stored is not None
    (pane,) = stored.panes
    assert (pane.result.input_exact, pane.result.output_exact) == (False, True)
    assert pane.result.cost is not None and pane.result.cost.label == half.cost.label
