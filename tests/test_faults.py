"""Every HTTP provider turns each fault into the right `ProviderError`, with words to act on.

The faults come from a loopback pytest-httpserver that speaks each API's real wire format
(see `tests/fault_servers.py`) up to the point where it goes wrong: refused, 401, 404,
429 with Retry-After, 500, a stream cut mid-way, a garbage line, and a stall.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from providers.anthropic import AnthropicProvider
from providers.base import (
    ChatRequest,
    Done,
    GenParams,
    Message,
    Provider,
    ProviderError,
    StreamEvent,
    TextDelta,
)
from providers.ollama import OllamaProvider
from providers.openai import OpenAIProvider
from providers.registry import EndpointSpec, Registry, parse_target
from tests.fault_servers import (
    WIRES,
    Cut,
    Handler,
    Part,
    Stall,
    Wire,
    presented_key,
    threaded_server,
)
from workbench.engine.fanout import fanout

SECRET = "sk-test-SECRET-123"
READ_TIMEOUT_S = 1.0
BOUND_S = 10.0
"""No fault may take longer than this to surface."""
KINDS = ["openai", "anthropic", "ollama"]
KEY_ENV = {"openai": "OPENAI_API_KEY", "anthropic": "ANTHROPIC_API_KEY", "ollama": "OLLAMA_API_KEY"}


@pytest.fixture(scope="module")
def make_httpserver() -> Iterator[HTTPServer]:
    """pytest-httpserver's server, but threaded: a stalled stream then blocks no other request.

    Overriding `make_httpserver` keeps the plugin's `httpserver` fixture, which clears
    handlers before each test.
    """
    with threaded_server() as server:
        yield server


@pytest.fixture(autouse=True)
def fault_server_was_used_as_meant(httpserver: HTTPServer) -> Iterator[None]:
    """Fails a test whose request met no handler or whose handler raised (either answers
    500, which must not pass for the fault under test)."""
    yield
    httpserver.check()


def make_provider(kind: str, url: str) -> Provider:
    """A provider as the registry would build it by default, pointed at `url`, with SECRET."""
    connect, read = 2.0, READ_TIMEOUT_S
    if kind == "openai":
        return OpenAIProvider(
            base_url=f"{url}/v1", api_key=SECRET, connect_timeout_s=connect, read_timeout_s=read
        )
    if kind == "anthropic":
        return AnthropicProvider(
            base_url=url, api_key=SECRET, connect_timeout_s=connect, read_timeout_s=read
        )
    return OllamaProvider(host=url, connect_timeout_s=connect, read_timeout_s=read)


@pytest.fixture(params=KINDS)
def kind(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    # The ollama client reads its key (for ollama.com or a proxy) from the environment.
    monkeypatch.setenv("OLLAMA_API_KEY", SECRET)
    return str(request.param)


@pytest.fixture
def wire(kind: str) -> Wire:
    return WIRES[kind]


@pytest.fixture
async def provider(kind: str, httpserver: HTTPServer) -> AsyncIterator[Provider]:
    made = make_provider(kind, httpserver.url_for("").rstrip("/"))
    yield made
    await made.aclose()


def serve(httpserver: HTTPServer, wire: Wire, handler: Handler) -> None:
    httpserver.expect_request(wire.path, method="POST").respond_with_handler(handler)


def serve_stream(
    httpserver: HTTPServer, wire: Wire, *texts: str, then: list[Part] | None = None
) -> None:
    serve(httpserver, wire, lambda _request: wire.stream(*texts, then=then))


def request_for(model: str) -> ChatRequest:
    return ChatRequest(model, (Message("user", "Say hello."),), GenParams(max_tokens=16))


async def stream_until_error(
    provider: Provider, model: str = "m"
) -> tuple[str, ProviderError, float]:
    """The text the provider yielded, the error it raised, and how long that took."""
    events: list[StreamEvent] = []
    started = time.perf_counter()
    with pytest.raises(ProviderError) as caught:
        async with asyncio.timeout(BOUND_S):
            async for event in provider.stream(request_for(model)):
                events.append(event)
    elapsed = time.perf_counter() - started
    error = caught.value
    assert not any(isinstance(e, Done) for e in events), "a failed stream must not say Done"
    assert SECRET not in error.message
    assert SECRET not in str(error) and SECRET not in repr(error)
    text = "".join(e.text for e in events if isinstance(e, TextDelta))
    return text, error, elapsed


# --- the harness itself --------------------------------------------------------------


async def test_well_formed_stream_completes(
    provider: Provider, wire: Wire, httpserver: HTTPServer
) -> None:
    """The fault server's wire format is right, so the faults below are the only faults."""
    serve_stream(httpserver, wire, "Hel", "lo")
    events = [e async for e in provider.stream(request_for("m"))]
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == "Hello"
    assert events[-1] == Done("end_turn" if wire.name == "anthropic" else "stop")


# --- before any answer -------------------------------------------------------------


async def test_closed_port_is_connection(kind: str, closed_port: int) -> None:
    url = f"http://127.0.0.1:{closed_port}"
    provider = make_provider(kind, url)
    try:
        text, error, elapsed = await stream_until_error(provider)
    finally:
        await provider.aclose()
    assert (error.kind, text) == ("connection", "")
    assert elapsed < 3.0
    if kind == "ollama":
        assert error.message == f"Ollama is not running at {url} — start it with `ollama serve`"
    else:
        assert "refused" in error.message
        assert f"127.0.0.1:{closed_port}" in error.message


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that takes connections and never says a word, as llama-server does to a TLS
    ClientHello: it waits for an HTTP request line that never comes."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)  # the kernel completes the TCP handshake; nobody accepts
        yield listener.getsockname()[1]


async def test_https_to_a_silent_plain_http_server_says_to_try_http(
    kind: str, silent_port: int
) -> None:
    """The TLS handshake is part of connecting: it times out, and the likely cause is said."""
    provider = make_provider(kind, f"https://127.0.0.1:{silent_port}")
    try:
        text, error, elapsed = await stream_until_error(provider)
    finally:
        await provider.aclose()
    assert (error.kind, text) == ("timeout", "")
    assert elapsed < 5.0  # the 2 s connect timeout, not the read timeout's wait for a reply
    assert "did not accept a connection in time" in error.message
    assert error.message.endswith("— if the server speaks plain HTTP, use http://")


async def test_401_is_auth_and_names_the_key_variable(
    provider: Provider, kind: str, wire: Wire, httpserver: HTTPServer
) -> None:
    seen: list[str] = []

    def reject(request: Request) -> Response:
        # Echo the key, as some proxies do, to prove it never reaches the message.
        seen.append(presented_key(request))
        return wire.error(401, f"Incorrect API key provided: {presented_key(request)}")

    serve(httpserver, wire, reject)
    _, error, _ = await stream_until_error(provider)
    assert seen == [SECRET], "the key must reach the server for redaction to be tested"
    assert error.kind == "auth"
    assert KEY_ENV[kind] in error.message
    assert "HTTP 401" in error.message
    assert "Incorrect API key provided" in error.message


async def test_404_unknown_model_is_not_found(
    provider: Provider, kind: str, wire: Wire, httpserver: HTTPServer
) -> None:
    model = "llama9:70b"
    serve(httpserver, wire, lambda _request: wire.error(404, f"model '{model}' not found"))
    _, error, _ = await stream_until_error(provider, model)
    assert error.kind == "not_found"
    assert model in error.message
    if kind == "ollama":
        assert f"`ollama pull {model}`" in error.message


async def test_429_is_rate_limited_with_retry_after(
    provider: Provider, wire: Wire, httpserver: HTTPServer
) -> None:
    headers = {"Retry-After": "12"}
    serve(httpserver, wire, lambda _request: wire.error(429, "slow down", headers))
    _, error, _ = await stream_until_error(provider)
    assert error.kind == "rate_limited"
    assert error.retry_after == 12
    assert "rate limited, retry in 12 s" in error.message


async def test_500_is_server(provider: Provider, wire: Wire, httpserver: HTTPServer) -> None:
    serve(httpserver, wire, lambda _request: wire.error(500, "the fault server fell over"))
    _, error, _ = await stream_until_error(provider)
    assert error.kind == "server"
    assert "HTTP 500" in error.message
    assert "the fault server fell over" in error.message


# --- after the answer began ----------------------------------------------------------


@pytest.mark.parametrize("how", ["dropped", "ended"])
async def test_stream_cut_midway_is_connection_and_keeps_the_text(
    provider: Provider, wire: Wire, httpserver: HTTPServer, how: str
) -> None:
    """Dropped: the socket closes mid-body. Ended: the body ends cleanly, but too early."""
    serve_stream(httpserver, wire, "Hel", "lo", then=[Cut()] if how == "dropped" else [])
    text, error, _ = await stream_until_error(provider)
    assert text == "Hello"
    assert error.kind == "connection"
    assert "closed the stream before the answer was finished" in error.message
    assert str(httpserver.port) in error.message


async def test_garbage_line_is_protocol(
    provider: Provider, wire: Wire, httpserver: HTTPServer
) -> None:
    serve_stream(httpserver, wire, "Hel", then=[wire.garbage, *wire.end()])
    text, error, _ = await stream_until_error(provider)
    assert text == "Hel"
    assert error.kind == "protocol"
    assert "cannot read" in error.message
    assert str(httpserver.port) in error.message


async def test_error_reported_mid_stream_keeps_the_text(
    provider: Provider, kind: str, wire: Wire, httpserver: HTTPServer
) -> None:
    """A 200 stream that then says it failed: Anthropic's `event: error` carries a type."""
    serve_stream(httpserver, wire, "Hel", then=[wire.error_line("the model runner died")])
    text, error, _ = await stream_until_error(provider)
    assert text == "Hel"
    assert error.kind == ("overloaded" if kind == "anthropic" else "server")
    assert "the model runner died" in error.message


async def test_stall_after_first_token_is_timeout(
    provider: Provider, wire: Wire, httpserver: HTTPServer, release: threading.Event
) -> None:
    serve_stream(httpserver, wire, "Hel", then=[Stall(release), *wire.end()])
    text, error, elapsed = await stream_until_error(provider)
    assert text == "Hel"
    assert error.kind == "timeout"
    assert "stopped sending" in error.message
    assert READ_TIMEOUT_S * 0.9 <= elapsed < READ_TIMEOUT_S + 2.0


# --- fan-out -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fault", "error_kind", "partial", "said"),
    [
        ("500", "server", "", "server error (HTTP 500)"),
        ("cut", "connection", "Hello", "closed the stream before the answer was finished"),
    ],
    ids=["500", "cut"],
)
async def test_fanout_one_target_fails_the_other_finishes(
    httpserver: HTTPServer, fault: str, error_kind: str, partial: str, said: str
) -> None:
    """A failing endpoint ends `failed`, keeping what it sent; the embedded target still
    finishes, and the fan-out returns both."""
    wire = WIRES["openai"]
    if fault == "500":
        serve(httpserver, wire, lambda _request: wire.error(500, "the fault server fell over"))
    else:
        serve_stream(httpserver, wire, "Hel", "lo", then=[Cut()])
    registry = Registry(
        endpoints=[EndpointSpec("faulty", "openai", httpserver.url_for("/v1"))],
        env={},
        read_timeout_s=READ_TIMEOUT_S,
    )
    targets = [parse_target("faulty:some-model"), parse_target("embedded:smollm2@max_tokens=8")]
    try:
        async with asyncio.timeout(60):
            failed, healthy = await fanout(registry, targets, [Message("user", "Say hello.")])
    finally:
        await registry.aclose()
    assert (failed.status, failed.error_kind, failed.text) == ("failed", error_kind, partial)
    assert failed.error is not None and said in failed.error
    assert (healthy.status, healthy.error_kind, healthy.error) == ("done", None, None)
    assert healthy.text.strip()
    assert 0 < healthy.output_tokens <= 8
