"""Will a local model fit? Weights plus KV cache against synthetic and real RAM figures."""

from __future__ import annotations

import json

import pytest

from providers.ollama import OllamaProvider
from providers.registry import Registry
from tests.ollama_server import OllamaServer
from workbench.commands.fit import run_fit
from workbench.engine import fit

GB = 1024**3


def test_weights_and_kv_cache_are_both_counted() -> None:
    # SmolLM2-135M: 30 layers x 3 KV heads x 64 dims x (K+V) x f16 = 23,040 bytes a token.
    assert fit.estimated_memory(100, 23_040, 8192) == 110 + 23_040 * 8192


@pytest.mark.parametrize(
    ("size_gb", "available_gb", "total_gb", "expected"),
    [
        (4, 12, 16, "fits"),  # an 8B Q4 on a 16 GB laptop
        (12, 6, 16, "tight"),  # fits the machine, not what is free right now
        (40, 14, 16, "won't fit"),  # a 70B Q4 on 16 GB: out before pulling it
    ],
)
def test_verdicts(size_gb: int, available_gb: int, total_gb: int, expected: str) -> None:
    need = fit.estimated_memory(size_gb * GB)
    verdict = fit.verdict(need, available_bytes=available_gb * GB, total_bytes=total_gb * GB)
    assert verdict == expected


async def test_models_fit_uses_the_gguf_header(capsys: pytest.CaptureFixture[str]) -> None:
    registry = Registry(env={"OLLAMA_HOST": "127.0.0.1:9"})
    assert await run_fit(registry, context=4096, as_json=True, memory=(8 * GB, 16 * GB)) == 0
    (row,) = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert row["target"] == "embedded:smollm2"
    assert row["kv_bytes_per_token"] == 23_040
    assert row["estimated_bytes"] == fit.estimated_memory(row["size_bytes"], 23_040, 4096)
    assert row["verdict"] == "fits" and row["context_is_models_max"] is False
    registry = Registry(env={"OLLAMA_HOST": "127.0.0.1:9"})
    await run_fit(registry, as_json=True, memory=(100 * 2**20, 200 * 2**20))
    (row,) = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert row["verdict"] == "won't fit" and row["context"] == 8192


async def test_a_context_past_the_models_window_is_sized_at_the_window(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """SmolLM2 was trained for 8k: sized at 32k it "fitted" with a KV cache it can never use."""
    registry = Registry(env={"OLLAMA_HOST": "127.0.0.1:9"})
    assert await run_fit(registry, context=32_768, as_json=True, memory=(8 * GB, 16 * GB)) == 0
    (row,) = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert (row["context"], row["context_is_models_max"]) == (8192, True)
    assert row["estimated_bytes"] == fit.estimated_memory(row["size_bytes"], 23_040, 8192)
    registry = Registry(env={"OLLAMA_HOST": "127.0.0.1:9"})
    assert await run_fit(registry, context=32_768, memory=(8 * GB, 16 * GB)) == 0
    shown = capsys.readouterr().out
    assert "(its max)" in shown and "--context 32,768 is sized at its own window" in shown


async def test_ollama_models_carry_the_same_kv_figure(ollama_server: OllamaServer) -> None:
    provider = OllamaProvider(host=ollama_server.host)
    try:
        (model,) = await provider.list_models()
    finally:
        await provider.aclose()
    assert model.kv_bytes_per_token == 23_040
    # Ollama runs it with its default window, not the 8k it was trained for.
    assert (model.context_length, model.trained_context) == (4096, 8192)
