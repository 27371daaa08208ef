"""Costs from the store: dollars per target, shadow prices for local runs, projections."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from providers.base import Message
from providers.registry import Registry
from workbench import locations
from workbench.commands.costs import run_costs, shadow_target
from workbench.engine.pricing import Cost
from workbench.engine.result import TargetResult
from workbench.store import Store, usage_by_target


def _result(target: str, local: bool, tokens_in: int, tokens_out: int, cost: Cost) -> TargetResult:
    provider, model = target.split(":", 1)
    r = TargetResult(target, target, provider, model, local, status="done", text="ok")
    r.input_tokens, r.output_tokens, r.tokens_exact = tokens_in, tokens_out, True
    r.cost = cost
    return r


@pytest.fixture
def history(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORKBENCH_HOME", str(tmp_path))
    store = Store(locations.database_path())
    hi = [Message("user", "hi")]
    for _ in range(2):
        store.add_response(_result("embedded:smollm2", True, 1_000_000, 500_000, Cost("local", 0)),
                           hi, origin="chat", batch="b")  # fmt: skip
    store.add_response(_result("openai:gpt-4o", False, 1000, 1000, Cost("priced", 0.0125)),
                       hi, origin="ask", batch="c")  # fmt: skip
    store.add_response(
        _result("openai:gpt-4o", False, 1000, 1000, Cost("priced", 0.0125)),
        hi,
        origin="cached",
        batch="d",
    )  # a cache hit costs nothing again
    store.close()


def test_usage_is_summed_per_target_without_cache_hits(history: None) -> None:
    store = Store(locations.database_path())
    usage = {u.target: u for u in usage_by_target(store)}
    store.close()
    assert usage["embedded:smollm2"].requests == 2
    assert usage["embedded:smollm2"].input_tokens == 2_000_000
    assert usage["openai:gpt-4o"].requests == 1
    assert usage["openai:gpt-4o"].cost_usd == pytest.approx(0.0125)


def test_shadow_price_and_projection(history: None, capsys: pytest.CaptureFixture[str]) -> None:
    registry = Registry(env={})
    assert run_costs(registry, shadow="openai:gpt-4o-mini", per_day=10, as_json=True) == 0
    rows = {r["target"]: r for r in map(json.loads, capsys.readouterr().out.splitlines())}
    local = rows["embedded:smollm2"]
    # gpt-4o-mini: $0.15 per 1M input, $0.60 per 1M output (genai-prices).
    assert local["cost_usd"] == 0.0
    assert local["shadow_usd"] == pytest.approx(2 * 0.15 + 1 * 0.60)
    assert local["monthly_usd"] == pytest.approx((0.9 / 2) * 10 * 30)
    cloud = rows["openai:gpt-4o"]
    assert cloud["shadow_usd"] is None and cloud["monthly_usd"] == pytest.approx(0.0125 * 300)


def test_default_shadow_is_the_cheapest_cloud_target(history: None) -> None:
    registry = Registry(env={})
    store = Store(locations.database_path())
    used = usage_by_target(store)
    store.close()
    assert shadow_target(registry, used, None) == "openai:gpt-4o-mini"
    assert shadow_target(registry, used, "anthropic:claude-3-5-haiku-latest").startswith("anth")
