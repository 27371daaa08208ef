"""The loopback Ollama server, driven by the official `ollama` client and by our provider.

What the client parses is what Ollama sends; every token comes from the real SmolLM2.
Generations are kept to a few tokens: the CPU is slow.
"""

from __future__ import annotations

import asyncio
import gc
import threading
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import ollama
import pytest

from providers.base import (
    ChatRequest,
    Done,
    GenParams,
    Message,
    ProviderError,
    ServerTimings,
    Status,
    StreamEvent,
    TextDelta,
    Usage,
)
from providers.embedded import EmbeddedProvider, smollm2_path
from providers.ollama import OllamaProvider
from tests.ollama_server import RUNNER_DIED, OllamaServer
from tests.ollama_wire import human_number, keep_alive_ns

MODEL = "smollm2:135m"
TURNS = (
    Message("system", "You are a helpful assistant."),
    Message("user", "Explain in detail how a bicycle works, part by part."),
)
MESSAGES = [{"role": m.role, "content": m.content} for m in TURNS]


@pytest.fixture
def server(ollama_server: OllamaServer) -> Iterator[OllamaServer]:
    """The shared server with no fault switched on, before and after the test."""
    ollama_server.reset_faults()
    yield ollama_server
    ollama_server.reset_faults()
    # Taken, so that a server error fails the test it happened in, not every one after it.
    errors, ollama_server.errors[:] = list(ollama_server.errors), []
    assert errors == []


@pytest.fixture
async def client(server: OllamaServer) -> AsyncIterator[ollama.AsyncClient]:
    sdk = ollama.AsyncClient(host=server.host)
    yield sdk
    await sdk.close()


@pytest.fixture
async def provider(server: OllamaServer) -> AsyncIterator[OllamaProvider]:
    ours = OllamaProvider(host=server.host, read_timeout_s=60)
    yield ours
    await ours.aclose()


async def _chat(
    client: ollama.AsyncClient, num_predict: int, **kw: Any
) -> list[ollama.ChatResponse]:
    options = {"num_predict": num_predict, "temperature": 0, "seed": 1}
    return [p async for p in await client.chat(MODEL, MESSAGES, stream=True, options=options, **kw)]


def _request(max_tokens: int, model: str = MODEL) -> ChatRequest:
    return ChatRequest(model, TURNS, GenParams(temperature=0, max_tokens=max_tokens, seed=1))


async def _events(
    provider: OllamaProvider | EmbeddedProvider, request: ChatRequest
) -> list[StreamEvent]:
    return [e async for e in provider.stream(request)]


async def _eventually(check: Any, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, "timed out waiting"
        await asyncio.sleep(0.02)


# --- generation ---------------------------------------------------------------------------


async def test_chat_streams_the_models_text_and_a_final_chunk_in_nanoseconds(
    client: ollama.AsyncClient, embedded: EmbeddedProvider
) -> None:
    started = time.perf_counter_ns()
    parts = await _chat(client, 16)
    wall_ns = time.perf_counter_ns() - started
    *chunks, final = parts
    assert chunks and all(p.done is False and p.message.role == "assistant" for p in chunks)
    assert all(p.model == MODEL and isinstance(p.created_at, str) for p in parts)
    text = "".join(p.message.content or "" for p in chunks)
    # The same greedy generation, straight from the embedded model: no canned text.
    reference = await _events(embedded, _request(16, "smollm2"))
    assert text == "".join(e.text for e in reference if isinstance(e, TextDelta))
    assert len(text.split()) >= 3

    assert final.done is True and final.done_reason == "length"
    assert final.message.content == ""
    (usage,) = [e for e in reference if isinstance(e, Usage)]
    assert (final.prompt_eval_count, final.eval_count) == (usage.input_tokens, 16)
    durations = (final.load_duration, final.prompt_eval_duration, final.eval_duration)
    assert all(isinstance(d, int) and d > 0 for d in durations)
    assert isinstance(final.total_duration, int) and final.total_duration <= wall_ns
    assert sum(d or 0 for d in durations[1:]) < final.total_duration
    assert final.total_duration > wall_ns / 3  # nanoseconds, not micro- or milliseconds


async def test_chat_without_streaming_answers_one_object(client: ollama.AsyncClient) -> None:
    options = {"num_predict": 6, "temperature": 0}
    reply = await client.chat(MODEL, MESSAGES, stream=False, options=options)
    assert reply.done is True and reply.done_reason == "length"
    assert reply.message.role == "assistant" and reply.message.content
    assert reply.eval_count == 6 and reply.prompt_eval_count
    assert reply.eval_duration and reply.total_duration
    assert reply.total_duration > reply.eval_duration


async def test_options_reach_the_model_as_gen_params(
    client: ollama.AsyncClient, server: OllamaServer
) -> None:
    options = {"temperature": 0.3, "top_p": 0.9, "num_predict": 2, "seed": 42}
    await client.chat(MODEL, MESSAGES, stream=False, options=options)
    assert server.chat_requests[-1].params == GenParams(0.3, 0.9, 2, 42)
    assert server.chat_requests[-1].model == "smollm2"
    assert [m.role for m in server.chat_requests[-1].messages] == ["system", "user"]


async def test_a_mistyped_option_is_refused_as_ollama_refuses_it(
    client: ollama.AsyncClient,
) -> None:
    with pytest.raises(ollama.ResponseError) as caught:
        await client.chat(MODEL, MESSAGES, stream=False, options={"temperature": "hot"})
    assert caught.value.status_code == 500
    assert caught.value.error == 'option "temperature" must be of type float32'


async def test_two_chats_at_once_both_finish(client: ollama.AsyncClient) -> None:
    """Handlers run in threads, each with its own event loop; the model serves one at a time."""
    first, second = await asyncio.gather(_chat(client, 4), _chat(client, 4))
    assert first[-1].eval_count == second[-1].eval_count == 4


# --- models -------------------------------------------------------------------------------


async def test_list_is_what_the_client_parses(client: ollama.AsyncClient) -> None:
    (entry,) = (await client.list()).models
    assert entry.model == MODEL
    assert entry.size == smollm2_path().stat().st_size
    assert entry.digest is not None and len(entry.digest) == 64
    assert entry.modified_at is not None and entry.modified_at.tzinfo is not None
    assert entry.details is not None
    details = entry.details
    assert (details.format, details.family, details.families) == ("gguf", "llama", ["llama"])
    assert (details.parameter_size, details.quantization_level) == ("135M", "Q4_1")


async def test_show_reads_the_gguf(client: ollama.AsyncClient) -> None:
    shown = await client.show(MODEL)
    info = shown.modelinfo or {}
    assert info["general.architecture"] == "llama"
    assert info["llama.context_length"] == 8192
    assert info["general.parameter_count"] == 134_515_008
    assert info["llama.attention.layer_norm_rms_epsilon"] == 1e-05  # float32, printed shortest
    assert info["tokenizer.ggml.tokens"] == []  # long arrays only with verbose
    assert "general.name" not in info and "tokenizer.chat_template" not in info
    assert shown.template and "<|im_start|>" in shown.template
    assert shown.parameters and '"<|im_end|>"' in shown.parameters
    assert shown.details is not None and shown.details.quantization_level == "Q4_1"
    assert shown.capabilities == ["completion"]


async def test_ps_lists_a_loaded_model_until_it_is_unloaded(
    client: ollama.AsyncClient, embedded: EmbeddedProvider
) -> None:
    loaded = await client.chat(MODEL, [])
    assert (loaded.done, loaded.done_reason) == (True, "load")
    (entry,) = (await client.ps()).models
    assert entry.model == MODEL and entry.name == MODEL
    assert entry.size == smollm2_path().stat().st_size and entry.size_vram == 0
    assert entry.context_length == embedded.context_length("smollm2") == 4096
    assert entry.expires_at is not None and entry.expires_at > datetime.now(UTC)
    unloaded = await client.chat(MODEL, [], keep_alive=0)
    assert unloaded.done_reason == "unload"
    assert (await client.ps()).models == []


def test_keep_alive_is_read_as_a_go_duration() -> None:
    assert keep_alive_ns(None) == 300 * 10**9
    assert keep_alive_ns("1h30m") == 5400 * 10**9
    assert keep_alive_ns(2.5) == 2_500_000_000
    assert keep_alive_ns("-1s") == keep_alive_ns(-1) == 2**63 - 1
    with pytest.raises(ValueError, match="invalid duration"):
        keep_alive_ns("10")


def test_parameter_size_is_ollamas_human_number() -> None:
    counts = (134_515_008, 1_235_814_400, 8_030_261_248, 999)
    assert [human_number(n) for n in counts] == ["135M", "1.24B", "8.03B", "999"]


# --- errors -------------------------------------------------------------------------------


async def test_an_unknown_model_is_a_404_the_client_raises(client: ollama.AsyncClient) -> None:
    for call in (
        lambda: client.chat("nope:1b", MESSAGES),
        lambda: _collect(client.chat("nope:1b", MESSAGES, stream=True)),
        lambda: client.show("nope:1b"),
    ):
        with pytest.raises(ollama.ResponseError) as caught:
            await call()
        assert caught.value.status_code == 404
        assert caught.value.error == "model 'nope:1b' not found"


async def _collect(parts: Any) -> list[Any]:
    return [p async for p in await parts]


async def test_an_error_line_mid_stream_raises_response_error(
    client: ollama.AsyncClient, server: OllamaServer
) -> None:
    server.fail_mid_stream_after = 2
    received: list[ollama.ChatResponse] = []
    with pytest.raises(ollama.ResponseError) as caught:
        async for part in await client.chat(MODEL, MESSAGES, stream=True):
            received.append(part)
    assert caught.value.status_code == -1  # the status was 200: it came as a line
    assert caught.value.error == RUNNER_DIED
    assert len(received) == 2 and all(p.message.content for p in received)


async def test_an_error_before_any_chunk_is_an_http_status(
    client: ollama.AsyncClient, server: OllamaServer
) -> None:
    server.fail_mid_stream_after = 0
    with pytest.raises(ollama.ResponseError) as caught:
        await _collect(client.chat(MODEL, MESSAGES, stream=True))
    assert (caught.value.status_code, caught.value.error) == (500, RUNNER_DIED)


async def test_malformed_requests_get_ollamas_400s(server: OllamaServer) -> None:
    async with httpx.AsyncClient(base_url=server.host) as http:
        bad = (
            (b"{not json", "invalid"),
            (b"", "missing request body"),
            (b"[1]", "unmarshal array"),
        )
        for path in ("/api/chat", "/api/show"):
            for body, said in bad:
                reply = await http.post(path, content=body)
                assert reply.status_code == 400
                assert reply.headers["content-type"] == "application/json; charset=utf-8"
                assert said in reply.json()["error"]
        assert (await http.post("/api/chat", json={"messages": []})).json() == {
            "error": "model is required"
        }
        missing = await http.get("/api/nothing")
        assert (missing.status_code, missing.text) == (404, "404 page not found")
        assert (await http.get("/api/chat")).status_code == 405


async def test_version_and_root_answer(server: OllamaServer, provider: OllamaProvider) -> None:
    async with httpx.AsyncClient(base_url=server.host) as http:
        assert (await http.get("/api/version")).json() == {"version": server.version}
        assert (await http.get("/")).text == "Ollama is running"
    assert await provider.version() == server.version


# --- connections --------------------------------------------------------------------------


async def test_a_client_leaving_mid_stream_stops_the_generation(
    client: ollama.AsyncClient, server: OllamaServer, embedded: EmbeddedProvider
) -> None:
    gone = server.disconnects
    parts = await client.chat(MODEL, MESSAGES, stream=True, options={"num_predict": 400})
    async for part in parts:
        if part.message.content:
            break
    await parts.aclose()  # type: ignore[attr-defined]
    await _eventually(lambda: server.disconnects == gone + 1)
    # The model is free at once: a new request is not queued behind the abandoned one.
    events = await _events(embedded, _request(2, "smollm2"))
    assert not any(isinstance(e, Status) for e in events)
    assert (await _chat(client, 2))[-1].eval_count == 2  # and the server still answers


async def test_a_dropped_connection_is_an_incomplete_stream(
    client: ollama.AsyncClient, server: OllamaServer
) -> None:
    server.cut_stream_after = 2
    received: list[ollama.ChatResponse] = []
    with pytest.raises(httpx.RemoteProtocolError):
        async for part in await client.chat(MODEL, MESSAGES, stream=True):
            received.append(part)
    assert len(received) == 2


async def test_a_stall_is_a_read_timeout_and_the_server_notices_the_client_leave(
    server: OllamaServer,
) -> None:
    server.stall_after, server.stall_s = 0, 30.0
    gone = server.disconnects
    impatient = ollama.AsyncClient(host=server.host, timeout=0.3)
    try:
        with pytest.raises(httpx.ReadTimeout):
            await impatient.chat(MODEL, MESSAGES, stream=False)
    finally:
        await impatient.close()
    await _eventually(lambda: server.disconnects == gone + 1, timeout_s=2)


async def test_stop_ends_open_streams_and_joins_every_thread(embedded: EmbeddedProvider) -> None:
    before = set(threading.enumerate())
    server = OllamaServer(embedded)
    server.start()
    sdk = ollama.AsyncClient(host=server.host)
    try:
        parts = await sdk.chat(MODEL, MESSAGES, stream=True, options={"num_predict": 400})
        async for part in parts:
            if part.message.content:
                break
        stopper = threading.Thread(target=server.stop)
        stopper.start()
        await _eventually(lambda: not stopper.is_alive(), timeout_s=10)
        with pytest.raises(httpx.HTTPError):
            async for _ in parts:
                pass
    finally:
        await sdk.close()
        server.stop()
    leaked = [t for t in set(threading.enumerate()) - before if not t.name.startswith("asyncio")]
    assert leaked == []
    assert server.errors == []


# --- our provider against it --------------------------------------------------------------


async def test_the_provider_streams_usage_timings_and_one_done(provider: OllamaProvider) -> None:
    events = await _events(provider, _request(8))
    assert "".join(e.text for e in events if isinstance(e, TextDelta))
    (usage,) = [e for e in events if isinstance(e, Usage)]
    assert usage.output_tokens == 8 and usage.input_tokens > 0 and usage.exact
    (timings,) = [e for e in events if isinstance(e, ServerTimings)]
    assert timings.prompt_s and timings.decode_s and 0 < timings.decode_s < 60
    assert isinstance(events[-1], Done) and events[-1].stop_reason == "length"


async def test_the_provider_lists_models_and_their_memory(
    provider: OllamaProvider, client: ollama.AsyncClient
) -> None:
    (info,) = await provider.list_models()
    described = (info.id, info.context_length, info.parameter_size, info.quantization)
    assert described == (MODEL, 4096, "135M", "Q4_1") and info.trained_context == 8192
    assert info.size_bytes == smollm2_path().stat().st_size and info.is_local
    await client.chat(MODEL, [])
    usage = await provider.resources()
    assert usage is not None and usage.memory_bytes == info.size_bytes and usage.vram_bytes == 0


BUSY = "server busy, please try again.  maximum pending requests exceeded"  # Ollama's ErrMaxQueue


@pytest.mark.parametrize(
    ("fault", "kind", "said"),
    [
        ({"reject_chat": (503, BUSY)}, "overloaded", "server busy"),
        ({"fail_mid_stream_after": 1}, "server", "model runner has unexpectedly stopped"),
        ({"cut_stream_after": 1}, "connection", "Ollama"),
    ],
)
async def test_the_provider_translates_failures(
    provider: OllamaProvider, server: OllamaServer, fault: dict[str, Any], kind: str, said: str
) -> None:
    for name, value in fault.items():
        setattr(server, name, value)
    with pytest.raises(ProviderError) as caught:
        await _events(provider, _request(8))
    assert caught.value.kind == kind
    assert said in caught.value.message


async def test_the_provider_says_to_pull_an_unknown_model(provider: OllamaProvider) -> None:
    with pytest.raises(ProviderError) as caught:
        await _events(provider, _request(8, "nope:1b"))
    assert caught.value.kind == "not_found"
    assert "ollama pull nope:1b" in caught.value.message


async def test_the_provider_times_out_on_a_stall(server: OllamaServer) -> None:
    server.stall_after, server.stall_s = 1, 30.0
    impatient = OllamaProvider(host=server.host, read_timeout_s=0.3)
    with pytest.raises(ProviderError) as caught:
        await _events(impatient, _request(8))
    await impatient.aclose()
    assert caught.value.kind == "timeout"


async def test_the_provider_reads_retry_after(
    provider: OllamaProvider, server: OllamaServer
) -> None:
    server.reject_chat, server.reject_headers = (429, "too many requests"), {"Retry-After": "7"}
    with pytest.raises(ProviderError) as caught:
        await _events(provider, _request(8))
    assert (caught.value.kind, caught.value.retry_after) == ("rate_limited", 7.0)


async def test_the_provider_reuses_its_connection(
    provider: OllamaProvider, server: OllamaServer
) -> None:
    await _events(provider, _request(2))
    opened = server.connections
    await _events(provider, _request(2))
    assert server.connections == opened


async def test_the_provider_closes_its_connections(embedded: EmbeddedProvider) -> None:
    gc.disable()  # what closes them now is the collector; keep it out of the way
    try:
        with OllamaServer(embedded) as own:
            ours = OllamaProvider(host=own.host)
            await ours.list_models()
            assert own.open_connections == 1  # idle in the client's keep-alive pool
            await ours.aclose()
            await _eventually(lambda: own.open_connections == 0, timeout_s=2)
    finally:
        gc.enable()
