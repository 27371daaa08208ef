"""Costs from the store: dollars per target, shadow prices for local runs, projections."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from providers.base import Message
from providers.registry import Registry
from workbench import locations
from workbench.commands.costs import run_costs
from workbench.engine.pricing import Cost
from workbench.engine.result import TargetResult
from workbench.store import Store, TargetUsage, usage_by_target
from workbench.usage import CostLine, shadow_choices, shadow_target


def _result(
    target: str, local: bool, tokens_in: int, tokens_out: int, cost: Cost | None
) -> TargetResult:
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
    refused = _result("openai:gpt-4o", False, 1000, 0, None)
    refused.status = "failed"  # no key, or the server was down: nothing was answered
    store.add_response(refused, hi, origin="ask", batch="e")
    store.add_response(refused, hi, origin="ask", batch="f")
    store.close()


def test_usage_is_summed_per_target_without_cache_hits(history: None) -> None:
    store = Store(locations.database_path())
    usage = {u.target: u for u in usage_by_target(store)}
    store.close()
    assert usage["embedded:smollm2"].requests == 2
    assert usage["embedded:smollm2"].input_tokens == 2_000_000
    assert usage["openai:gpt-4o"].requests == 1
    assert usage["openai:gpt-4o"].cost_usd == pytest.approx(0.0125)


def test_by_model_adds_up_a_models_settings(
    history: None, capsys: pytest.CaptureFixture[str]
) -> None:
    """`--max-tokens` or a suite's params make a target of each setting: one model's bill
    came out on as many lines, each with its own projection."""
    with Store(locations.database_path()) as store:
        for spec, cost in (("openai:gpt-4o@max_tokens=5", 0.001), ("openai:gpt-4o@seed=1", 0.002)):
            r = TargetResult(spec, spec, "openai", "gpt-4o", False, status="done", text="ok")
            r.input_tokens, r.output_tokens, r.cost = 100, 10, Cost("priced", cost)
            store.add_response(r, [Message("user", "hi")], origin="ask", batch=spec)
    registry = Registry(env={})
    assert run_costs(registry, shadow="openai:gpt-4o-mini", as_json=True) == 0
    per_target = {r["target"] for r in map(json.loads, capsys.readouterr().out.splitlines())}
    assert {"openai:gpt-4o", "openai:gpt-4o@max_tokens=5", "openai:gpt-4o@seed=1"} <= per_target
    assert run_costs(registry, shadow="openai:gpt-4o-mini", by_model=True, as_json=True) == 0
    rows = {r["target"]: r for r in map(json.loads, capsys.readouterr().out.splitlines())}
    assert set(rows) == {"embedded:smollm2", "openai:gpt-4o"}
    cloud = rows["openai:gpt-4o"]
    assert (cloud["requests"], cloud["input_tokens"]) == (3, 1200)
    assert cloud["cost_usd"] == pytest.approx(0.0125 + 0.001 + 0.002)


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


def _usage(target: str, local: bool, requests: int, cost: float | None) -> TargetUsage:
    provider, model = target.split(":", 1)
    return TargetUsage(target, provider, model, local, requests, 1000, 500, cost)


def test_projection_and_labels_on_fixed_numbers() -> None:
    cloud = CostLine(_usage("openai:gpt-4o", False, 4, 0.02), 0.02, None)
    assert cloud.per_request_usd == pytest.approx(0.005)
    assert cloud.monthly_usd(10) == pytest.approx(0.005 * 10 * 30)
    assert (cloud.cost_label, cloud.shadow_label, cloud.monthly_label(10)) == (
        "$0.0200", "–", "$1.5000",
    )  # fmt: skip
    local = CostLine(_usage("embedded:smollm2", True, 2, 0.0), 0.0, 0.003)
    assert local.monthly_usd(1000) == pytest.approx(0.0015 * 1000 * 30)
    assert (local.cost_label, local.shadow_label, local.monthly_label(1000)) == (
        "$0 local", "$0.003", "~$45.0000",
    )  # fmt: skip
    unknown = CostLine(_usage("openai:mystery", False, 3, None), None, None)
    assert unknown.monthly_usd(100) is None
    assert (unknown.cost_label, unknown.monthly_label(100)) == ("price unknown", "price unknown")
    no_shadow = CostLine(_usage("embedded:smollm2", True, 2, 0.0), 0.0, None)
    assert no_shadow.monthly_usd(100) is None and no_shadow.monthly_label(100) == "–"


def test_shadow_choices_are_priced_cloud_models_cheapest_first() -> None:
    registry = Registry(env={})
    used = [_usage("openai:gpt-4o@temperature=0", False, 1, 0.01),
            _usage("embedded:smollm2", True, 1, 0.0)]  # fmt: skip
    choices = shadow_choices(registry, used, ["embedded:smollm2", "openai:no-such-model"])
    assert [c.spec for c in choices] == [
        "openai:gpt-4o-mini", "anthropic:claude-3-5-haiku-latest", "openai:gpt-4o",
    ]  # fmt: skip
    assert (choices[0].input_per_m, choices[0].output_per_m) == pytest.approx((0.15, 0.60))


@pytest.mark.parametrize(
    ("shadow", "why"),
    [
        ("embedded:smollm2", "a local target costs nothing"),
        (
            "openai:no-such-model",
            "genai-prices has no price for 'no-such-model'; name a cloud model it prices, "
            "e.g. openai:gpt-4o-mini or anthropic:claude-3-5-haiku-latest",
        ),
    ],
)
def test_a_shadow_that_prices_nothing_is_refused(
    history: None, capsys: pytest.CaptureFixture[str], shadow: str, why: str
) -> None:
    """Taken, every shadow figure read `–` with nothing to say why."""
    assert run_costs(Registry(env={}), shadow=shadow) == 2
    assert why in capsys.readouterr().err


def _store(rows: list[tuple[str, int, int, bool, bool, Cost | None]], count: int = 1) -> None:
    """`count` copies of each (target, in, out, input exact, output exact, cost) row."""
    with Store(locations.database_path()) as store, store.transaction():
        for target, tokens_in, tokens_out, in_exact, out_exact, cost in rows:
            provider, model = target.split(":", 1)
            local = provider == "embedded"
            for _ in range(count):
                r = TargetResult(target, target, provider, model, local, status="done", text="ok")
                r.input_tokens, r.output_tokens = tokens_in, tokens_out
                r.input_exact, r.output_exact = in_exact, out_exact
                r.cost = cost
                store.insert_response(r, [Message("user", "hi")], "chat", "b", None)


def _json_rows(capsys: pytest.CaptureFixture[str]) -> dict[str, dict[str, object]]:
    return {r["target"]: r for r in map(json.loads, capsys.readouterr().out.splitlines())}


SONNET = "anthropic:claude-sonnet-4-5"


def test_a_shadow_price_bills_each_request_on_its_own(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Summed into one request, 1000 requests of 250 tokens crossed claude-sonnet-4-5's 200k
    tier that none of them reached: $3.75 (month $112.50) where the bill is $2.25 ($67.50)."""
    _store([("embedded:smollm2", 250, 100, True, True, Cost("local", 0))], count=1000)
    assert run_costs(Registry(env={}), shadow=SONNET, per_day=1000, as_json=True) == 0
    local = _json_rows(capsys)["embedded:smollm2"]
    assert local["shadow_usd"] == pytest.approx(1000 * (250 * 3 + 100 * 15) / 1e6)  # $2.25
    assert local["monthly_usd"] == pytest.approx(0.00225 * 1000 * 30)  # $67.50


def test_a_long_request_among_short_ones_is_billed_at_its_own_tier(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _store([("embedded:smollm2", 250, 100, True, True, Cost("local", 0))], count=9)
    _store([("embedded:smollm2", 300_000, 1000, True, True, Cost("local", 0))])
    assert run_costs(Registry(env={}), shadow=SONNET, as_json=True) == 0
    local = _json_rows(capsys)["embedded:smollm2"]
    # Past 200k input tokens the whole request is billed $6 / $22.50 per 1M.
    long = (300_000 * 6 + 1000 * 22.5) / 1e6
    assert local["shadow_usd"] == pytest.approx(9 * 0.00225 + long)


def test_estimated_counts_and_the_dollars_on_them_are_marked(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A server that sends no prompt count: 24 estimated tokens showed as `24 in`, and the
    shadow price and a cloud target's cost built on them as exact figures."""
    _store([("embedded:smollm2", 24, 10, False, True, Cost("local", 0)),
            ("openai:gpt-4o", 1000, 1000, True, False, Cost("priced", 0.0125, estimated=True)),
            ("embedded:exact", 500, 50, True, True, Cost("local", 0))])  # fmt: skip
    registry = Registry(env={})
    assert run_costs(registry, shadow="openai:gpt-4o-mini", per_day=10) == 0
    lines = {line.split()[0]: line.split() for line in capsys.readouterr().out.splitlines()
             if line.strip().startswith(("embedded:", "openai:"))}  # fmt: skip
    assert lines["embedded:smollm2"][2:4] == ["~24", "10"]
    assert lines["embedded:smollm2"][6].startswith("~$")  # the shadow price
    assert lines["openai:gpt-4o"][2:5] == ["1000", "~1000", "~$0.0125"]
    assert lines["openai:gpt-4o"][-1].startswith("~$")  # its month
    assert lines["embedded:exact"][2:4] == ["500", "50"]
    assert not lines["embedded:exact"][6].startswith("~")
    assert run_costs(registry, shadow="openai:gpt-4o-mini", per_day=10, as_json=True) == 0
    rows = _json_rows(capsys)
    local, cloud, exact = rows["embedded:smollm2"], rows["openai:gpt-4o"], rows["embedded:exact"]
    assert (local["input_tokens_exact"], local["output_tokens_exact"]) == (False, True)
    assert (cloud["input_tokens_exact"], cloud["output_tokens_exact"]) == (True, False)
    assert local["estimated"] is cloud["estimated"] is True and exact["estimated"] is False


def test_rows_written_before_per_count_flags_keep_their_exactness(home: Path) -> None:
    """Schema-2 code wrote only `tokens_exact`, for both counts."""
    _store([("embedded:old", 24, 10, False, False, Cost("local", 0)),
            ("embedded:new", 24, 10, True, True, Cost("local", 0))])  # fmt: skip
    with Store(locations.database_path()) as store:
        store.db.execute(
            "UPDATE responses SET input_tokens_exact = NULL, output_tokens_exact = NULL"
        )
        usage = {u.target: u for u in usage_by_target(store)}
    assert (usage["embedded:old"].input_exact, usage["embedded:old"].output_exact) == (False, False)
    assert usage["embedded:new"].tokens_exact
