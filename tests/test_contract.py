"""One provider contract, the same assertions for every provider, each against a real model.

embedded runs SmolLM2 in-process; openai and anthropic talk to llama.cpp's real
`llama-server`; ollama talks to the loopback Ollama-API server backed by the embedded model.
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request
from collections.abc import AsyncIterator

import pytest

from providers.anthropic import AnthropicProvider
from providers.base import (
    ChatRequest,
    Done,
    GenParams,
    Message,
    Provider,
    StreamEvent,
    TextDelta,
    Usage,
)
from providers.embedded import EmbeddedProvider
from providers.ollama import OllamaProvider
from providers.openai import OpenAIProvider
from providers.registry import Target
from tests.llama_server import MODEL_ALIAS, LlamaServer
from tests.ollama_server import OllamaServer
from workbench.engine.fanout import stream_target
from workbench.engine.result import TargetResult

MAX_TOKENS = 12
# A question SmolLM2 answers at length, so a max_tokens cut is certain.
QUESTION = "Explain in detail how a bicycle works, part by part."
MESSAGES = (Message("system", "You are a helpful assistant."), Message("user", QUESTION))
PROVIDERS = ["embedded", "openai", "anthropic", "ollama"]


@pytest.fixture(params=PROVIDERS)
async def contract(
    request: pytest.FixtureRequest, embedded: EmbeddedProvider
) -> AsyncIterator[tuple[Provider, str]]:
    """A provider and the model name it serves SmolLM2 under."""
    name = request.param
    provider: Provider
    if name == "embedded":
        provider, model = embedded, "smollm2"
    elif name == "ollama":
        server: OllamaServer = request.getfixturevalue("ollama_server")
        provider, model = OllamaProvider(host=server.host), "smollm2:135m"
    else:
        llama: LlamaServer = request.getfixturevalue("llama_server")
        if name == "openai":
            provider = OpenAIProvider("llamacpp", base_url=llama.openai_url, api_key_env=None)
        else:
            provider = AnthropicProvider("llamacpp", base_url=llama.base_url, api_key_env=None)
        model = MODEL_ALIAS
    yield provider, model
    if provider is not embedded:
        await provider.aclose()


def _request(model: str, max_tokens: int = MAX_TOKENS) -> ChatRequest:
    return ChatRequest(model, MESSAGES, GenParams(temperature=0, max_tokens=max_tokens, seed=1))


async def _collect(provider: Provider, request: ChatRequest) -> list[StreamEvent]:
    return [event async for event in provider.stream(request)]


async def test_streams_text_and_ends_with_one_done(contract: tuple[Provider, str]) -> None:
    provider, model = contract
    events = await _collect(provider, _request(model))
    text = "".join(e.text for e in events if isinstance(e, TextDelta))
    assert len(text.split()) >= 3
    dones = [e for e in events if isinstance(e, Done)]
    assert len(dones) == 1
    assert events[-1] is dones[0]


async def test_usage_is_exact_and_counts_the_whole_prompt(
    contract: tuple[Provider, str], embedded: EmbeddedProvider
) -> None:
    """Every provider reports the same prompt size for the same model and messages.

    Anthropic's protocol splits the prompt into cached and uncached parts (llama-server
    reports most of a repeated prompt as cache reads); the provider adds them back up.
    """
    provider, model = contract
    await _collect(provider, _request(model))  # a second send makes the prompt a cache hit
    events = await _collect(provider, _request(model))
    (usage,) = [e for e in events if isinstance(e, Usage)]
    assert usage.exact
    assert usage.output_tokens == MAX_TOKENS
    reference = [e for e in await _collect(embedded, _request("smollm2")) if isinstance(e, Usage)]
    assert usage.input_tokens == reference[0].input_tokens
    assert next(e for e in events if isinstance(e, Done)).stop_reason in ("length", "max_tokens")


async def test_usage_matches_what_llama_server_said(llama_server: LlamaServer) -> None:
    body = {
        "model": MODEL_ALIAS,
        "messages": [{"role": m.role, "content": m.content} for m in MESSAGES],
        "max_tokens": MAX_TOKENS,
        "temperature": 0,
    }
    http = urllib.request.Request(
        f"{llama_server.openai_url}/chat/completions",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    said = await asyncio.to_thread(lambda: json.load(urllib.request.urlopen(http, timeout=60)))
    provider = OpenAIProvider("llamacpp", base_url=llama_server.openai_url, api_key_env=None)
    try:
        events = await _collect(provider, _request(MODEL_ALIAS))
    finally:
        await provider.aclose()
    (usage,) = [e for e in events if isinstance(e, Usage)]
    assert usage.input_tokens == said["usage"]["prompt_tokens"]
    assert usage.output_tokens == said["usage"]["completion_tokens"]


async def test_ttft_comes_before_e2e(contract: tuple[Provider, str]) -> None:
    provider, model = contract
    target = Target(provider.name, model)
    result = TargetResult(target.spec, target.name, target.provider, model, provider.is_local)
    await stream_target(target, provider, _request(model), result)
    assert result.status == "done", result.error
    assert result.ttft_s is not None and result.e2e_s is not None
    assert 0 < result.ttft_s < result.e2e_s
    assert result.tokens_exact
    assert result.tpot_s is not None and result.tpot_s > 0


async def test_cancel_mid_stream_stops_promptly_and_leaves_no_task(
    contract: tuple[Provider, str],
) -> None:
    provider, model = contract
    target = Target(provider.name, model)
    result = TargetResult(target.spec, target.name, target.provider, model, provider.is_local)
    first_text = asyncio.Event()

    def on_update(r: TargetResult) -> None:
        if r.text:
            first_text.set()

    before = asyncio.all_tasks()
    task = asyncio.create_task(
        stream_target(target, provider, _request(model, 400), result, on_update=on_update)
    )
    await asyncio.wait_for(first_text.wait(), timeout=60)
    started = time.perf_counter()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert time.perf_counter() - started < 0.5
    assert result.status == "cancelled"
    assert result.text  # what was produced is kept
    await asyncio.sleep(0.05)
    assert asyncio.all_tasks() - before - {asyncio.current_task()} == set()


async def test_embedded_generation_stops_after_cancel(embedded: EmbeddedProvider) -> None:
    """The llama.cpp loop ends too: the next request runs at once instead of queueing."""
    stream = embedded.stream(_request("smollm2", 400))
    async for event in stream:
        if isinstance(event, TextDelta):
            break
    await stream.aclose()  # type: ignore[attr-defined]
    await asyncio.sleep(0.2)
    events = await _collect(embedded, _request("smollm2", 4))
    assert not any(type(e).__name__ == "Status" for e in events)
