"""The fault matrix: every HTTP provider × every fault, each inside a real fan-out.

Each case sends one prompt to a faulty target and, beside it, a healthy one — another
endpoint of the same kind streaming a well-formed answer from its own server, or, for a few
faults, the real embedded model. The faulty target must end `failed` with the right kind and
words to act on, keep and store the text it had, leave the healthy target's answer whole, and
the fan-out must return in bounded time with no task or connection left open.

`docs/reliability.md` publishes the matrix; `pytest -rP tests/test_fault_matrix.py` prints
each cell's outcome (lines starting `MATRIX|`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import ssl
import subprocess
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import psutil
import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from providers.base import Done, Message, ProviderError, ServerTimings, StreamEvent, TextDelta
from providers.registry import EndpointSpec, Registry, parse_target
from tests.fault_servers import (
    WIRES,
    Cut,
    Endless,
    Handler,
    Part,
    Stall,
    Wire,
    streamed,
    threaded_server,
)
from workbench.cli import main
from workbench.engine.fanout import fanout
from workbench.engine.guards import Guarded
from workbench.engine.result import TargetResult
from workbench.store import Store

SECRET = "sk-test-SECRET-123"
KEY_ENV = "FAULTY_API_KEY"
KINDS = ["openai", "anthropic", "ollama"]
MODEL = "llama9:70b"
READ_TIMEOUT_S = 1.0
MAX_TIME_S = 3.0
HEALTHY_ANSWER = ["All ", "is ", "well."]
PROMPT = [Message("user", "Say hello.")]
FIVE_MB = "All work and no play makes a dull model. " * 125_000


@dataclass(frozen=True)
class Env:
    """Where the faulty target points, and what a fault can use to arrange itself."""

    kind: str
    wire: Wire
    server: HTTPServer
    release: threading.Event
    closed_port: int
    tls_port: int | None
    """A server whose certificate is self-signed; None where openssl could not make one."""

    def url(self, base: str) -> str:
        """A base URL as each kind's endpoint is written (OpenAI's includes `/v1`)."""
        return f"{base}/v1" if self.kind == "openai" else base


@dataclass(frozen=True)
class Fault:
    id: str
    error_kind: str
    """The kind the faulty target must end with; "done" where the fault is survivable."""
    said: tuple[str, ...]
    """Words the message must hold; `{key}` is the key's variable, `{port}` the port the
    target points at."""
    handler: Callable[[Env], Handler] | None = None
    base: Callable[[Env], str] | None = None
    """Where the target points instead of the fault server."""
    said_by: dict[str, tuple[str, ...]] = field(default_factory=dict)
    """More words, for one provider kind only."""
    kind_by: dict[str, str] = field(default_factory=dict)
    partial: str = ""
    """The text the target must keep ("..." at the end: it must start so)."""
    partial_by: dict[str, str] = field(default_factory=dict)
    """The text to keep, for one provider kind only."""
    retry_after: float | None = None
    max_tokens: int | None = 16
    beside_embedded: tuple[str, ...] = ()
    """Provider kinds for which the healthy target is the real embedded model rather than a
    second fault server (a few: the model makes each case seconds slower)."""
    max_time_s: float = 60.0
    """The fan-out's `max_time_s` (the endless stream's case sets it low)."""
    needs_certificate: bool = False
    """Points at the self-signed server, which needs the openssl command to exist."""


def _error(
    status: int, message: str, headers: dict[str, str] | None = None
) -> Callable[[Env], Handler]:
    return lambda env: lambda _request: env.wire.error(status, message, headers)


def _stream(
    *texts: str, then: Callable[[Env], list[Part]] | None = None
) -> Callable[[Env], Handler]:
    """The texts in the wire's format, then `then` (by default a proper end)."""

    def handler(env: Env) -> Handler:
        tail = None if then is None else then(env)
        return lambda _request: env.wire.stream(*texts, then=tail)

    return handler


def _stall_before_headers(env: Env) -> Handler:
    def handler(_request: Request) -> Response:
        env.release.wait(10)
        return env.wire.stream("too late")

    return handler


def _html_page(env: Env) -> Handler:
    # A captive portal or a proxy's welcome page, where the API was meant to be.
    page = "<html><body><h1>Welcome to nginx!</h1></body></html>"
    return lambda _request: Response(page, status=200, content_type="text/html")


_COUNT_SIDE = {
    "prompt_tokens": 0, "input_tokens": 0, "prompt_eval_count": 0,
    "completion_tokens": 1, "output_tokens": 1, "eval_count": 1,
}  # fmt: skip
"""Each API's names for the prompt's (0) and the answer's (1) token counts."""


def _recount(part: Part, counts: tuple[object, object]) -> Part:
    """The part with every token count in its JSON replaced by `counts` (prompt, answer)."""
    if not isinstance(part, bytes) or (start := part.find(b"{")) < 0:
        return part
    end = part.rfind(b"}") + 1

    def swap(value: object) -> object:
        if isinstance(value, dict):
            return {
                k: counts[_COUNT_SIDE[k]] if k in _COUNT_SIDE else swap(v) for k, v in value.items()
            }
        return value

    return part[:start] + json.dumps(swap(json.loads(part[start:end]))).encode() + part[end:]


def _counted(prompt: object, answer: object) -> Callable[[Env], Handler]:
    """A whole, well-formed answer whose usage carries these counts."""

    def handler(env: Env) -> Handler:
        parts = [*env.wire.start(), env.wire.text("Hel"), env.wire.text("lo"), *env.wire.end()]
        recounted = [_recount(part, (prompt, answer)) for part in parts]
        return lambda _request: streamed(recounted, env.wire.content_type)

    return handler


PROMPT_COUNT = {
    "openai": "prompt_tokens",
    "anthropic": "input_tokens",
    "ollama": "prompt_eval_count",
}
COUNTED_FIRST = {"anthropic": ""}
"""Anthropic counts the prompt in `message_start`, before any text."""

CONTEXT_TOO_LONG = {
    # Each server's own words for it.
    "openai": "This model's maximum context length is 8192 tokens. However, your messages "
    "resulted in 9000 tokens. Please reduce the length of the messages.",
    "anthropic": "prompt is too long: 9000 tokens > 8192 maximum",
    "ollama": "the request exceeds the available context size, try increasing it",
}

FAULTS = [
    Fault(
        "connection refused",
        "connection",
        ("{port}",),
        base=lambda env: f"http://127.0.0.1:{env.closed_port}",
        said_by={
            "ollama": ("Ollama is not running", "`ollama serve`"),
            "openai": ("connection refused", "is the server running?"),
            "anthropic": ("connection refused", "is the server running?"),
        },
        beside_embedded=("openai",),
    ),
    Fault(
        "unresolvable host",
        "offline",
        ("cannot resolve", "no-such-host.invalid", "check the address"),
        base=lambda env: "http://no-such-host.invalid:9",
    ),
    Fault(
        "TLS handshake fails",
        "connection",
        ("TLS handshake", "if the server speaks plain HTTP, use http://"),
        # https:// to a server that speaks plain HTTP: the handshake meets an HTTP reply.
        base=lambda env: f"https://127.0.0.1:{env.server.port}",
    ),
    Fault(
        "TLS certificate not trusted",
        "connection",
        ("TLS handshake", "certificate verify failed", "certificate is not trusted"),
        base=lambda env: f"https://127.0.0.1:{env.tls_port}",
        needs_certificate=True,
    ),
    Fault(
        "400 context too long",
        "bad_request",
        ("HTTP 400", "context too long", "summarize"),
        lambda env: lambda _request: env.wire.error(400, CONTEXT_TOO_LONG[env.kind]),
    ),
    Fault("401", "auth", ("HTTP 401", "{key}"), _error(401, "invalid x-api-key")),
    Fault(
        "403", "auth", ("HTTP 403", "{key}"), _error(403, "your key has no access to this model")
    ),
    Fault(
        "404 unknown model",
        "not_found",
        ("HTTP 404", MODEL),
        _error(404, f"model '{MODEL}' not found"),
        said_by={
            "ollama": (f"`ollama pull {MODEL}`",),
            "openai": ("workbench models",),
            "anthropic": ("workbench models",),
        },
    ),
    Fault(
        "413 request too large",
        "bad_request",
        ("HTTP 413", "too large"),
        _error(413, "request entity too large"),
    ),
    Fault(
        "429 with Retry-After",
        "rate_limited",
        ("rate limited", "retry in 12 s"),
        _error(429, "slow down", {"Retry-After": "12"}),
        retry_after=12,
    ),
    Fault(
        "429 without Retry-After",
        "rate_limited",
        ("rate limited", "retry later"),
        _error(429, "slow down"),
    ),
    Fault(
        "500",
        "server",
        ("HTTP 500", "the fault server fell over", "try again"),
        _error(500, "the fault server fell over"),
    ),
    Fault("502", "server", ("HTTP 502", "try again"), _error(502, "bad gateway")),
    Fault("503", "overloaded", ("HTTP 503", "try again shortly"), _error(503, "busy")),
    Fault("529", "overloaded", ("HTTP 529", "try again shortly"), _error(529, "Overloaded")),
    Fault(
        "error object mid-stream",
        "server",
        ("the model runner died", "incomplete"),
        _stream("Hel", "lo", then=lambda env: [env.wire.error_line("the model runner died")]),
        kind_by={"anthropic": "overloaded"},
        partial="Hello",
        beside_embedded=("anthropic",),
    ),
    Fault(
        "stream cut after some tokens",
        "connection",
        ("closed the stream before the answer was finished", "try again", "{port}"),
        _stream("Hel", "lo", then=lambda env: [Cut()]),
        partial="Hello",
        beside_embedded=("ollama",),
    ),
    Fault(
        "invalid JSON in the stream",
        "protocol",
        ("cannot read", "{port}"),
        _stream("Hel", then=lambda env: [env.wire.garbage, *env.wire.end()]),
        partial="Hel",
    ),
    Fault(
        "not the API (HTML page, 200)",
        "protocol",
        ("text/html",),
        _html_page,
    ),
    Fault(
        "stall before the first byte",
        "timeout",
        ("read timeout", "read_timeout_s"),
        _stall_before_headers,
    ),
    Fault(
        "stall mid-stream",
        "timeout",
        ("stopped sending", "read_timeout_s"),
        _stream("Hel", then=lambda env: [Stall(env.release), *env.wire.end()]),
        partial="Hel",
    ),
    Fault(
        "endless stream (max time)",
        "timeout",
        (f"stopped after {MAX_TIME_S:g} s", "max_time_s", "still answering"),
        _stream(then=lambda env: [Endless(env.wire.text("la "), env.release, every_s=0.02)]),
        partial="la la ...",
        max_time_s=MAX_TIME_S,
    ),
    Fault(
        "endless stream ignoring max_tokens",
        "protocol",
        ("ignores max_tokens", "max_tokens=16"),
        _stream(then=lambda env: [Endless(env.wire.text("la " * 40), env.release, every_s=0.001)]),
        partial="la la ...",
    ),
    # Counts no model could produce: stored, 10**30 overflowed SQLite and took the healthy
    # target's answer down with it; a negative one became a negative cost.
    Fault(
        "token count beyond any window",
        "protocol",
        ("cannot read", "not a token count"),
        _counted(10**30, 2),
        said_by={kind: (f"`{key}`",) for kind, key in PROMPT_COUNT.items()},
        partial="Hello",
        partial_by=COUNTED_FIRST,
    ),
    Fault(
        "negative token counts",
        "protocol",
        ("cannot read", "-5", "not a token count"),
        _counted(-5, -3),
        said_by={kind: (f"`{key}`",) for kind, key in PROMPT_COUNT.items()},
        partial="Hello",
        partial_by=COUNTED_FIRST,
    ),
    Fault(
        "fractional token count",
        "protocol",
        ("cannot read", "5.5", "not a whole number"),
        _counted(5.5, 2),
        said_by={kind: (f"`{key}`",) for kind, key in PROMPT_COUNT.items()},
        partial="Hello",
        partial_by=COUNTED_FIRST,
    ),
    Fault(
        "5 MB single chunk",
        "done",
        (),
        _stream(FIVE_MB),
        partial=FIVE_MB,
        max_tokens=None,
    ),
    Fault(
        "5 MB single chunk for max_tokens=16",
        "protocol",
        ("ignores max_tokens",),
        _stream(FIVE_MB),
        partial=FIVE_MB,
    ),
]


@pytest.fixture(scope="module")
def make_httpserver() -> Iterator[HTTPServer]:
    """The faulty server (the plugin's `httpserver`, cleared before each test), threaded."""
    with threaded_server() as server:
        yield server


@pytest.fixture(scope="module")
def healthy_server() -> Iterator[HTTPServer]:
    """A second server that answers every API with the same well-formed stream."""
    with threaded_server() as server:
        for wire in WIRES.values():
            answer = wire  # bound now: the handler runs later, once per request

            def handler(_request: Request, wire: Wire = answer) -> Response:
                return wire.stream(*HEALTHY_ANSWER)

            server.expect_request(wire.path, method="POST").respond_with_handler(handler)
        yield server


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HTTPServer | None]:
    """An https server with a self-signed certificate, made by the openssl command."""
    openssl = shutil.which("openssl")
    if openssl is None:
        yield None
        return
    where = tmp_path_factory.mktemp("tls")
    cert, key = where / "cert.pem", where / "key.pem"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    with threaded_server(ssl_context=context) as server:
        yield server


def _open_connections(ports: set[int]) -> list[str]:
    """This process's TCP sockets whose far end is one of `ports` (the client side)."""
    return [
        f"{c.laddr} -> {c.raddr} {c.status}"
        for c in psutil.Process().net_connections(kind="tcp")
        if c.raddr and c.raddr.port in ports
    ]


@dataclass(frozen=True)
class Leaks:
    ports: set[int]

    async def assert_none(self, grace_s: float = 2.0) -> None:
        """No asyncio task but this one, no connection to the servers open.

        The servers close every connection after one response (werkzeug sends
        `Connection: close`), so a socket still open is a response nobody closed — even
        while the provider's client, and its pool, are still alive. A close may take a
        moment to land, so both are polled for up to `grace_s`.
        """
        deadline = time.monotonic() + grace_s
        while True:
            tasks = asyncio.all_tasks() - {asyncio.current_task()}
            sockets = _open_connections(self.ports)
            if not (tasks or sockets) or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.05)
        assert not tasks, f"tasks left running: {tasks}"
        assert not sockets, f"connections left open: {sockets}"


@pytest.fixture
async def leaks(
    httpserver: HTTPServer, healthy_server: HTTPServer, tls_server: HTTPServer | None
) -> AsyncIterator[Leaks]:
    """Checks for leaks when the test asks (right after the fan-out) and again at its end."""
    ports = {httpserver.port, healthy_server.port}
    check = Leaks(ports if tls_server is None else {*ports, tls_server.port})
    yield check
    await check.assert_none()


def _expected_words(fault: Fault, kind: str, port: int | None) -> list[str]:
    key = "OLLAMA_API_KEY" if kind == "ollama" else KEY_ENV
    words = [*fault.said, *fault.said_by.get(kind, ())]
    return [w.replace("{key}", key).replace("{port}", str(port)) for w in words]


def _assert_kept(text: str, partial: str) -> None:
    if partial.endswith("..."):
        assert text.startswith(partial.removesuffix("...")), text[:80]
    else:
        assert text == partial


@pytest.mark.parametrize("fault", FAULTS, ids=[f.id for f in FAULTS])
@pytest.mark.parametrize("kind", KINDS)
async def test_fault_beside_a_healthy_target(
    kind: str,
    fault: Fault,
    httpserver: HTTPServer,
    healthy_server: HTTPServer,
    release: threading.Event,
    closed_port: int,
    tls_server: HTTPServer | None,
    tmp_path: Path,
    leaks: Leaks,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The ollama client reads its key from the environment, and sends it.
    monkeypatch.setenv("OLLAMA_API_KEY", SECRET)
    wire = WIRES[kind]
    tls_port = tls_server.port if tls_server is not None else None
    if fault.needs_certificate and tls_port is None:
        pytest.skip("no openssl command to make a certificate with")
    env = Env(kind, wire, httpserver, release, closed_port, tls_port)
    if fault.handler is not None:
        httpserver.expect_request(wire.path, method="POST").respond_with_handler(fault.handler(env))
    base = fault.base(env) if fault.base else httpserver.url_for("").rstrip("/")
    healthy_base = healthy_server.url_for("").rstrip("/")
    registry = Registry(
        endpoints=[
            EndpointSpec("faulty", kind, env.url(base), KEY_ENV),  # type: ignore[arg-type]
            EndpointSpec("healthy", kind, env.url(healthy_base), KEY_ENV),  # type: ignore[arg-type]
        ],
        env={KEY_ENV: SECRET},
        connect_timeout_s=2.0,
        read_timeout_s=READ_TIMEOUT_S,
    )
    limit = f"@max_tokens={fault.max_tokens}" if fault.max_tokens else ""
    beside_embedded = kind in fault.beside_embedded
    healthy_spec = "embedded:smollm2@max_tokens=8" if beside_embedded else "healthy:m"
    targets = [parse_target(f"faulty:{MODEL}{limit}"), parse_target(healthy_spec)]
    started = time.perf_counter()
    try:
        async with asyncio.timeout(120):
            failed, healthy = await fanout(registry, targets, PROMPT, max_time_s=fault.max_time_s)
        await leaks.assert_none()
    finally:
        await registry.aclose()
    elapsed = time.perf_counter() - started
    print(f"MATRIX|{kind}|{fault.id}|{failed.status}|{failed.error_kind}|{failed.error}")

    expected = fault.kind_by.get(kind, fault.error_kind)
    if expected == "done":
        assert (failed.status, failed.error) == ("done", None)
    else:
        assert (failed.status, failed.error_kind) == ("failed", expected), failed.error
        message = failed.error or ""
        for words in _expected_words(fault, kind, urlsplit(base).port):
            assert words in message, f"{words!r} not in {message!r}"
        assert SECRET not in message
        assert failed.retry_after_s == fault.retry_after
    _assert_kept(failed.text, fault.partial_by.get(kind, fault.partial))

    assert (healthy.status, healthy.error) == ("done", None)
    if beside_embedded:
        assert healthy.text.strip() and 0 < healthy.output_tokens <= 8
    else:
        assert healthy.text == "".join(HEALTHY_ANSWER)

    # Bounded: the slowest faults wait out the read timeout or max_time_s, and no more.
    # Generous: the machine's two cores are shared with the embedded model and everything
    # else; a fault that hung would instead run into the servers' own 10 s limits and fail.
    assert elapsed < (90.0 if beside_embedded else 30.0)
    _assert_stored([failed, healthy], tmp_path)
    if fault.handler is not None:
        httpserver.check()


def _assert_stored(results: list[TargetResult], where: Path) -> None:
    """Each result lands in the history whole: status, kind, message and text."""
    store = Store(where / "history.db")
    batch = uuid.uuid4().hex
    try:
        for result in results:
            store.add_response(result, PROMPT, origin="ask", batch=batch)
        rows = store.responses(batch)
    finally:
        store.close()
    assert [(r["status"], r["error_kind"], r["error"], r["text"]) for r in rows] == [
        (r.status, r.error_kind, r.error, r.text) for r in results
    ]


async def test_the_leak_check_sees_a_connection_and_a_task(healthy_server: HTTPServer) -> None:
    """The check above could pass by seeing nothing; here it must see both kinds of leak."""
    check = Leaks({healthy_server.port})
    _, writer = await asyncio.open_connection("127.0.0.1", healthy_server.port)
    try:
        with pytest.raises(AssertionError, match="connections left open"):
            await check.assert_none(grace_s=0.2)
    finally:
        writer.close()
        await writer.wait_closed()
    stray = asyncio.create_task(asyncio.sleep(10))
    try:
        with pytest.raises(AssertionError, match="tasks left running"):
            await check.assert_none(grace_s=0.2)
    finally:
        stray.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await stray
    await check.assert_none()


def test_ask_takes_max_time_s_from_the_config(
    httpserver: HTTPServer,
    release: threading.Event,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The guard's limit is the user's: `max_time_s` in config.toml reaches `workbench ask`."""
    wire = WIRES["openai"]
    endless = [Endless(wire.text("la "), release, every_s=0.02)]
    httpserver.expect_request(wire.path, method="POST").respond_with_handler(
        lambda _request: wire.stream(then=endless)
    )
    config = tmp_path / "config.toml"
    config.write_text(
        "max_time_s = 1.5\n"
        f'[endpoints.faulty]\nkind = "openai"\nbase_url = "{httpserver.url_for("/v1")}"\n'
    )
    monkeypatch.setenv("WORKBENCH_CONFIG", str(config))
    started = time.perf_counter()
    code = main(["ask", "Say hello.", "-t", "faulty:m", "--json"])
    elapsed = time.perf_counter() - started
    (result,) = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line]
    assert code == 1
    assert result["status"] == "failed"
    assert result["error"]["kind"] == "timeout"
    assert "stopped after 1.5 s (max_time_s in the config)" in result["error"]["message"]
    assert result["text"].startswith("la la")
    assert 1.5 <= elapsed < 30.0


async def test_max_time_does_not_count_a_model_load() -> None:
    """A local runtime that spends longer loading than `max_time_s` still gets to answer."""

    async def loads_then_answers() -> AsyncIterator[StreamEvent]:
        await asyncio.sleep(0.4)  # the load: within the first event, as embedded does it
        yield ServerTimings(load_s=0.4)
        await asyncio.sleep(0.2)  # 0.6 s in all: past max_time_s, unless the load is let off
        yield TextDelta("Hello")
        yield Done("stop")

    events = [e async for e in Guarded(loads_then_answers(), "t:m", max_time_s=0.5)]
    assert events[-1] == Done("stop")

    async def never_ends() -> AsyncIterator[StreamEvent]:
        while True:
            yield TextDelta("la ")
            await asyncio.sleep(0.05)

    with pytest.raises(ProviderError, match=r"stopped after 0\.5 s") as caught:
        async for _ in Guarded(never_ends(), "t:m", max_time_s=0.5):
            pass
    assert caught.value.kind == "timeout"
