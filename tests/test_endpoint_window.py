"""The context window of a model behind a local OpenAI-compatible server, from the server."""

from __future__ import annotations

import pytest

from providers.base import GenParams
from providers.keyed import listed_window
from providers.registry import EndpointSpec, Registry, Target
from tests.llama_server import MODEL_ALIAS, LlamaServer
from workbench.engine.context import window_of


async def test_llama_servers_own_window_is_the_panes(llama_server: LlamaServer) -> None:
    """llama-server runs each slot with `llama_server.context` tokens; genai-prices knows
    nothing of a local endpoint, so the pane showed no `ctx` at all."""
    registry = Registry(
        endpoints=[
            EndpointSpec("llamacpp", "openai", llama_server.openai_url),
            EndpointSpec("listed", "openai", llama_server.openai_url, models=("smollm2",)),
        ],
        env={},
    )
    try:
        target = Target("llamacpp", MODEL_ALIAS, GenParams())
        assert await window_of(registry, target) == llama_server.context
        (info,) = await registry.list_models("llamacpp")
        assert info.context_length == llama_server.context  # the picker's `ctx` too
        # Models named in the config are asked for too (is the server there?), and a model
        # the server lists takes its window from there.
        listed = Target("listed", MODEL_ALIAS, GenParams())
        assert await window_of(registry, listed) == llama_server.context
    finally:
        await registry.aclose()


@pytest.mark.parametrize(
    ("extra", "window"),
    [
        ({"meta": {"n_ctx": 4096, "n_ctx_train": 8192}}, 4096),  # llama-server: as it runs
        ({"max_model_len": 32768}, 32768),  # vLLM
        ({"context_length": 131072}, 131072),  # OpenRouter, LM Studio
        ({"meta": {"n_ctx": "4096"}}, None),  # not a number: unknown, not a guess
        ({"context_length": True}, None),
        (None, None),
    ],
)
def test_the_window_is_read_where_each_server_lists_it(extra: object, window: int | None) -> None:
    assert listed_window(extra) == window
