"""The context window Ollama runs a model with, which is not the one it was trained for.

Ollama gives a model the request's `num_ctx`, else its Modelfile's, else the server's
default (4096 below 24 GiB of VRAM), and drops the oldest turns of a conversation longer than
that without a word. The loopback server does the same, backed by the real SmolLM2 (trained
for 8k); the provider must report the window it runs with, so the overflow guard fires.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import ollama
import pytest

from providers.base import ChatRequest, GenParams, Message, Usage
from providers.embedded import EmbeddedProvider
from providers.ollama import DEFAULT_NUM_CTX, OllamaProvider
from providers.registry import Registry, parse_target
from tests.ollama_server import OllamaServer
from workbench.config import Settings
from workbench.engine import context
from workbench.wiring import make_registry

PLAIN = "smollm2:135m"  # no num_ctx of its own: the server's default
SMALL = "smollm2:1k"  # created from a Modelfile with PARAMETER num_ctx 1024
SERVER_DEFAULT = 2048  # as `OLLAMA_CONTEXT_LENGTH=2048 ollama serve` would set it


@pytest.fixture(scope="module")
def window_server(embedded: EmbeddedProvider) -> Iterator[OllamaServer]:
    server = OllamaServer(
        embedded,
        models={PLAIN: "smollm2", SMALL: "smollm2"},
        parameters={SMALL: {"num_ctx": 1024}},
        default_num_ctx=SERVER_DEFAULT,
    )
    with server:
        yield server


@pytest.fixture
async def client(window_server: OllamaServer) -> AsyncIterator[ollama.AsyncClient]:
    sdk = ollama.AsyncClient(host=window_server.host)
    # Each test starts with nothing loaded, as a fresh `ollama serve` would.
    for name in (PLAIN, SMALL):
        await sdk.chat(name, [], keep_alive=0)
    yield sdk
    await sdk.close()
    assert window_server.errors == []


def _long_conversation(turns: int = 12) -> tuple[Message, ...]:
    """~150 tokens a turn, the oldest turn saying what the last one asks about."""
    messages = [Message("system", "You are a helpful assistant.")]
    messages.append(Message("user", "Remember this: the password is BLUE-HERON. " + "ok " * 140))
    for i in range(turns - 1):
        messages.append(Message("assistant", f"Noted {i}. " + "fine " * 140))
        messages.append(Message("user", f"Turn {i}: " + "more " * 140))
    messages.append(Message("user", "What is the password?"))
    return tuple(messages)


async def _window(server: OllamaServer, model: str) -> int | None:
    provider = OllamaProvider(host=server.host)
    try:
        return await provider.context_length(model)
    finally:
        await provider.aclose()


# --- the loopback server follows Ollama's API -----------------------------------------------


async def test_show_lists_the_modelfiles_num_ctx_and_ps_the_window_it_runs_with(
    client: ollama.AsyncClient,
) -> None:
    shown = await client.show(SMALL)
    assert f"{'num_ctx':<30} 1024" in (shown.parameters or "").splitlines()
    assert "PARAMETER num_ctx 1024" in (shown.modelfile or "")
    assert (shown.modelinfo or {})["llama.context_length"] == 8192  # trained, not what runs
    assert "num_ctx" not in ((await client.show(PLAIN)).parameters or "")

    await client.chat(SMALL, [])
    await client.chat(PLAIN, [])
    running = {m.model: m.context_length for m in (await client.ps()).models}
    assert running == {SMALL: 1024, PLAIN: SERVER_DEFAULT}
    # A request's num_ctx wins over both; past the trained length, Ollama runs the trained.
    await client.chat(PLAIN, [], options={"num_ctx": 1536})
    await client.chat(SMALL, [], options={"num_ctx": 100_000})
    running = {m.model: m.context_length for m in (await client.ps()).models}
    assert running == {SMALL: 8192, PLAIN: 1536}


async def test_a_conversation_past_num_ctx_loses_its_oldest_turns_without_a_word(
    client: ollama.AsyncClient, window_server: OllamaServer, embedded: EmbeddedProvider
) -> None:
    """As Ollama's chatPrompt: system messages and the last message stay, the oldest go."""
    messages = _long_conversation()
    await embedded.load("smollm2")
    count = embedded.prompt_counter("smollm2")
    assert count is not None and count(messages) > 1024
    sent = [{"role": m.role, "content": m.content} for m in messages]
    reply = await client.chat(SMALL, sent, options={"num_predict": 4, "temperature": 0})
    assert reply.done and reply.prompt_eval_count is not None
    assert reply.prompt_eval_count <= 1024 < count(messages)
    given = window_server.generated[-1]
    assert given.messages[0] == messages[0] and given.messages[-1] == messages[-1]
    assert messages[1] not in given.messages  # the turn with the password is gone
    assert reply.prompt_eval_count == count(given.messages)


# --- the provider reports the window Ollama runs with -------------------------------------


async def test_the_window_is_the_modelfiles_num_ctx_not_the_trained_length(
    window_server: OllamaServer, client: ollama.AsyncClient
) -> None:
    """`/api/show` says 8k; Ollama runs this model with 1k and cuts at 1k."""
    assert await _window(window_server, SMALL) == 1024


async def test_a_loaded_models_window_is_what_ps_reports(
    window_server: OllamaServer, client: ollama.AsyncClient
) -> None:
    # Not loaded, the server's default is unknown: Ollama's documented one is assumed.
    assert await _window(window_server, PLAIN) == DEFAULT_NUM_CTX
    await client.chat(PLAIN, [])
    assert await _window(window_server, PLAIN) == SERVER_DEFAULT
    assert await _window(window_server, PLAIN.upper()) == SERVER_DEFAULT  # as Ollama matches


async def test_a_configured_num_ctx_is_sent_and_is_the_window(
    window_server: OllamaServer, client: ollama.AsyncClient
) -> None:
    provider = OllamaProvider(host=window_server.host, num_ctx=1536)
    try:
        request = ChatRequest(PLAIN, (Message("user", "Hi"),), GenParams(max_tokens=2))
        events = [e async for e in provider.stream(request)]
        assert any(isinstance(e, Usage) for e in events)
        assert await provider.context_length(PLAIN) == 1536
        assert await provider.context_length(SMALL) == 1536  # over its Modelfile's, as sent
    finally:
        await provider.aclose()
    running = {m.model: m.context_length for m in (await client.ps()).models}
    assert running[PLAIN] == 1536
    provider = OllamaProvider(host=window_server.host, num_ctx=65_536)
    try:  # Ollama runs no more than the model was trained for
        assert await provider.context_length(PLAIN) == 8192
    finally:
        await provider.aclose()


async def test_listed_models_carry_the_window_and_the_trained_length(
    window_server: OllamaServer, client: ollama.AsyncClient
) -> None:
    provider = OllamaProvider(host=window_server.host)
    try:
        listed = {m.id: (m.context_length, m.trained_context) for m in await provider.list_models()}
    finally:
        await provider.aclose()
    assert listed == {PLAIN: (DEFAULT_NUM_CTX, 8192), SMALL: (1024, 8192)}


async def test_the_overflow_guard_sees_the_window_ollama_cuts_at(
    window_server: OllamaServer, client: ollama.AsyncClient
) -> None:
    """Taken as 8k, a 2k conversation "fitted": sent, Ollama dropped its first turns unseen."""
    registry = Registry(env={"OLLAMA_HOST": window_server.host})
    target = parse_target(f"ollama:{SMALL}")
    try:
        window = await context.window_of(registry, target)
        assert window == 1024
        assert not context.fits(target, _long_conversation(), window, registry=registry)
    finally:
        await registry.aclose()


def test_the_config_sets_the_num_ctx_sent_to_ollama() -> None:
    provider = make_registry(Settings(ollama_num_ctx=16_384), env={}).get("ollama")
    assert isinstance(provider, OllamaProvider) and provider.num_ctx == 16_384
    provider = make_registry(Settings(), env={}).get("ollama")
    assert isinstance(provider, OllamaProvider) and provider.num_ctx is None
