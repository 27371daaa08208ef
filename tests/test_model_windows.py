"""`workbench models` and `models --fit` give the window a model runs with, as the panes do,
and prices per 1M tokens at the base rate, as an ordinary request is billed."""

from __future__ import annotations

import io
import json

import pytest

from providers.registry import EndpointSpec, Registry
from workbench.commands.fit import run_fit
from workbench.commands.models import run_models
from workbench.engine import fit, pricing
from workbench.engine.pricing import PriceSource

GB = 1024**3
NO_OLLAMA = {"OLLAMA_HOST": "127.0.0.1:9"}


def _embedded_row(out: str) -> dict[str, object]:
    (listing,) = [e for e in map(json.loads, out.splitlines()) if e["provider"] == "embedded"]
    (row,) = [m for m in listing["models"] if m["target"] == "embedded:smollm2"]
    return dict(row)


async def test_models_shows_the_embedded_window_it_runs_with_and_its_max(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """SmolLM2 was trained for 8k, but runs with embedded_context: 8k was shown, 2k used."""
    assert await run_models(Registry(env=NO_OLLAMA, embedded_context=2048), as_json=True) == 0
    row = _embedded_row(capsys.readouterr().out)
    assert (row["context_length"], row["trained_context_length"]) == (2048, 8192)
    out = io.StringIO()
    assert await run_models(Registry(env=NO_OLLAMA, embedded_context=2048), out=out) == 0
    (line,) = [x for x in out.getvalue().splitlines() if "embedded:smollm2" in x]
    assert "2k (max 8k)" in line
    out = io.StringIO()
    await run_models(Registry(env=NO_OLLAMA), out=out)  # the default runs it whole
    (line,) = [x for x in out.getvalue().splitlines() if "embedded:smollm2" in x]
    assert " 8k " in line and "max" not in line


async def test_fit_sizes_the_kv_cache_for_the_configured_embedded_context(
    capsys: pytest.CaptureFixture[str],
) -> None:
    registry = Registry(env=NO_OLLAMA, embedded_context=2048)
    assert await run_fit(registry, as_json=True, memory=(8 * GB, 16 * GB)) == 0
    (row,) = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert (row["context"], row["context_is_models_max"]) == (2048, False)
    assert row["estimated_bytes"] == fit.estimated_memory(row["size_bytes"], 23_040, 2048)
    # An explicit --context is what the user asks about, up to the model's own length.
    registry = Registry(env=NO_OLLAMA, embedded_context=2048)
    assert await run_fit(registry, context=4096, as_json=True, memory=(8 * GB, 16 * GB)) == 0
    (row,) = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert (row["context"], row["context_is_models_max"]) == (4096, False)


def test_sizing_context_rules() -> None:
    assert fit.sizing_context(2048, 8192) == (2048, False)
    assert fit.sizing_context(None, 131_072) == (fit.DEFAULT_CONTEXT, False)
    assert fit.sizing_context(None, 4096) == (4096, False)
    assert fit.sizing_context(2048, 8192, 32_768) == (8192, True)
    # A server's n_ctx is how it was started, not the model's longest: asked, as asked.
    assert fit.sizing_context(4096, None, 8192) == (8192, False)


ANTHROPIC = PriceSource(provider_id="anthropic")


def test_per_million_is_the_base_rate_not_the_long_prompt_tier() -> None:
    """1M input tokens in one request is billed at the >200k tier: $6, where an ordinary
    request of claude-sonnet-4-5 costs $3 per 1M."""
    assert pricing.per_million("claude-sonnet-4-5", ANTHROPIC) == (3.0, 15.0)
    assert pricing.tier_threshold("claude-sonnet-4-5", ANTHROPIC) == 200_000
    openai = PriceSource(provider_id="openai")
    assert pricing.per_million("gpt-4o-mini", openai) == (0.15, 0.6)
    assert pricing.tier_threshold("gpt-4o-mini", openai) is None
    assert pricing.per_million("no-such-model", openai) is None


async def test_models_marks_a_tiered_price(
    no_internet: None, capsys: pytest.CaptureFixture[str]
) -> None:
    registry = Registry(
        endpoints=[EndpointSpec("claude", "anthropic", "https://api.anthropic.com", "CLAUDE_KEY",
                                ("claude-sonnet-4-5", "claude-3-5-haiku-latest"))],
        env={**NO_OLLAMA, "CLAUDE_KEY": "sk-test"},
    )  # fmt: skip
    assert await run_models(registry, as_json=True) == 0
    (listing,) = [e for e in map(json.loads, capsys.readouterr().out.splitlines())
                  if e["provider"] == "claude"]  # fmt: skip
    rows = {m["target"]: m for m in listing["models"]}
    sonnet = rows["claude:claude-sonnet-4-5"]
    assert (sonnet["usd_per_1m_input"], sonnet["usd_per_1m_output"]) == (3.0, 15.0)
    assert sonnet["higher_rate_above_input_tokens"] == 200_000
    assert rows["claude:claude-3-5-haiku-latest"]["higher_rate_above_input_tokens"] is None
    out = io.StringIO()
    registry = Registry(
        endpoints=[EndpointSpec("claude", "anthropic", "https://api.anthropic.com", "CLAUDE_KEY",
                                ("claude-sonnet-4-5",))],
        env={**NO_OLLAMA, "CLAUDE_KEY": "sk-test"},
    )  # fmt: skip
    assert await run_models(registry, out=out) == 0
    (line,) = [x for x in out.getvalue().splitlines() if "claude-sonnet-4-5" in x]
    assert "$3*" in line and "$15*" in line
    assert "* the base rate: a request of more than 200k input tokens" in out.getvalue()
