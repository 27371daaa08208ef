"""A loopback server that speaks Ollama's REST API and answers with the real embedded model.

Ollama cannot be installed here, so the Ollama provider is tested against this: it follows
Ollama's `docs/api.md` and what its Go handlers (`server/routes.go`) actually send — NDJSON
chunks on chunked transfer, a final chunk with counts and nanosecond durations, `{"error": ...}`
bodies, an `{"error": ...}` line when a stream fails after it began, Go's JSON escaping — while
every token comes from `EmbeddedProvider.stream`, run with `asyncio.run` in the handler thread.

The context window is Ollama's: a model runs with the request's `num_ctx`, else its
Modelfile's (`PARAMETER num_ctx`, shown in `/api/show` `parameters`), else the server's default
(`OLLAMA_CONTEXT_LENGTH`, or 4096 below 24 GiB of VRAM: docs/context-length.mdx), never more
than the model was trained for (llm/server.go); `/api/ps` reports it as `context_length`. A
conversation longer than that loses its oldest messages, silently, as `chatPrompt` drops them
(server/prompt.go: system messages and the last message are always kept), and
`prompt_eval_count` counts what was left. The answer gets the room the prompt leaves.

Not modelled: `/api/generate`, `/api/embed`, pull/push/create/copy/delete, `format`
(structured output is ignored), `stop` and other sampling options beyond temperature, top_p,
num_predict, seed and num_ctx; `truncate: false`; the runner's own cut of a last message that
alone overflows the window (refused here instead); the context shift that lets Ollama write
past a full window (the answer stops there, `done_reason` "length"). The embedded provider
behind it must have a window at least as large as the `num_ctx` asked of it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import select
import socket
import socketserver
import sys
import threading
import time
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, cast

from providers.base import (
    ChatRequest,
    Done,
    GenParams,
    Message,
    ProviderError,
    ReasoningDelta,
    Role,
    ServerTimings,
    StreamEvent,
    TextDelta,
    Usage,
)
from providers.embedded import EmbeddedProvider
from tests.ollama_models import LoadedModel, OllamaModel
from tests.ollama_wire import (
    DEFAULT_KEEP_ALIVE_NS,
    FOREVER_NS,
    go_json,
    keep_alive_ns,
    ns_of,
    rfc3339,
)

DEFAULT_MODELS = {"smollm2:135m": "smollm2"}
DEFAULT_NUM_CTX = 4096
"""Ollama's default window below 24 GiB of VRAM (docs/context-length.mdx); this server has none."""
# What Ollama's runner says when it dies mid-generation (llm/server.go).
RUNNER_DIED = (
    "model runner has unexpectedly stopped, this may be due to resource limitations "
    "or an internal error, check ollama server logs for details"
)
_POLL_S = 0.05  # how often a waiting handler checks for a gone client or a stopping server
_JOIN_S = 30.0


class _ClientGone(ConnectionError):
    """The client closed the connection, or the server is stopping."""


class _BadRequest(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


# --- the server ---------------------------------------------------------------------------


class OllamaServer:
    """Ollama's API on 127.0.0.1, generating with `embedded`.

    `models` maps Ollama model names to embedded model names. The fault switches below
    apply to `/api/chat`; `reset_faults()` turns them all off.
    """

    def __init__(
        self,
        embedded: EmbeddedProvider,
        *,
        models: dict[str, str] | None = None,
        parameters: dict[str, dict[str, Any]] | None = None,
        default_num_ctx: int = DEFAULT_NUM_CTX,
        version: str = "0.13.0",
    ) -> None:
        self.embedded = embedded
        self.version = version
        self.default_num_ctx = default_num_ctx
        """The window a model runs with when neither the request nor its Modelfile sets one:
        Ollama's default, or what `OLLAMA_CONTEXT_LENGTH` sets on the server."""
        self._models = {
            name: OllamaModel(
                name, target, embedded.model_path(target), dict((parameters or {}).get(name, {}))
            )
            for name, target in (models or DEFAULT_MODELS).items()
        }
        # Fault switches.
        self.fail_mid_stream_after: int | None = None
        """After N content chunks, send `{"error": mid_stream_error}` and end the response."""
        self.mid_stream_error: str = RUNNER_DIED
        self.cut_stream_after: int | None = None
        """After N content chunks, drop the connection without ending the chunked body."""
        self.stall_after: int | None = None
        """After N content chunks (0: before any byte), send nothing for `stall_s`."""
        self.stall_s: float = 30.0
        self.reject_chat: tuple[int, str] | None = None
        """Answer every chat with this HTTP status and `{"error": message}`."""
        self.reject_headers: dict[str, str] = {}
        self.prompt_cached = False
        """Answer as if the whole prompt came from the runner's cache: nothing of it was
        evaluated, so Go's omitempty leaves `prompt_eval_count` and `prompt_eval_duration` out
        of the final chunk (ollama/ollama#2068); `eval_count` is still sent, and real."""
        # What happened, for assertions.
        self.chat_requests: list[ChatRequest] = []
        """Each chat as the client asked it, with the options mapped to GenParams."""
        self.generated: list[ChatRequest] = []
        """What the embedded model was given for each chat: the messages that fit the window
        and the room they leave for the answer."""
        self.disconnects = 0
        """Streams the client abandoned before the end; each stopped its generation."""
        self.connections = 0
        """TCP connections accepted (a client that reuses keep-alive connections opens few)."""
        self.errors: list[BaseException] = []
        """Unexpected exceptions in handlers: a test can assert there were none."""
        self._loaded: dict[str, LoadedModel] = {}
        self._state = threading.Lock()
        self._stopping = threading.Event()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle

    @property
    def host(self) -> str:
        if self._httpd is None:
            raise RuntimeError("the Ollama server is not started")
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def start(self) -> None:
        if self._httpd is not None:
            return
        self._stopping.clear()
        self._httpd = _HTTPServer(self)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": _POLL_S},
            name=f"ollama-server:{self._httpd.server_address[1]}",
            daemon=True,
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop accepting, end every open connection and stream, and join every thread."""
        httpd, thread = self._httpd, self._thread
        if httpd is None or thread is None:
            return
        self._stopping.set()
        httpd.shutdown()
        httpd.close_connections()
        httpd.server_close()  # joins the handler threads
        thread.join()
        self._httpd = self._thread = None

    def __enter__(self) -> OllamaServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def reset_faults(self) -> None:
        self.fail_mid_stream_after = self.cut_stream_after = self.stall_after = None
        self.mid_stream_error = RUNNER_DIED
        self.stall_s = 30.0
        self.reject_chat = None
        self.reject_headers = {}
        self.prompt_cached = False

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    @property
    def open_connections(self) -> int:
        """Connections open now, idle keep-alive ones included."""
        return self._httpd.open_connections if self._httpd is not None else 0

    # --- models

    def find(self, name: str) -> OllamaModel | None:
        """The model a request names: case-insensitive, `:latest` when the tag is left out."""
        wanted = _canonical(name)
        for model in self._models.values():
            if _canonical(model.name) == wanted:
                return model
        return None

    def tags(self) -> dict[str, Any]:
        models = sorted(self._models.values(), key=lambda m: m.modified_ns, reverse=True)
        return {
            "models": [
                {
                    "name": m.name,
                    "model": m.name,
                    "modified_at": rfc3339(m.modified_ns),
                    "size": m.size,
                    "digest": m.digest,
                    "details": m.details(),
                }
                for m in models
            ]
        }

    def show(self, model: OllamaModel, verbose: bool) -> dict[str, Any]:
        return {
            "modelfile": model.modelfile(),
            "parameters": model.parameters(),
            "template": model.template(),
            "details": model.details(),
            "model_info": model.model_info(verbose),
            "tensors": model.info.tensors,
            "capabilities": ["completion"],
            "modified_at": rfc3339(model.modified_ns),
        }

    def ps(self) -> dict[str, Any]:
        now = time.time_ns()
        with self._state:
            for name in [n for n, e in self._loaded.items() if e.expires_ns <= now]:
                del self._loaded[name]
            entries = sorted(self._loaded.values(), key=lambda e: e.expires_ns, reverse=True)
        return {
            "models": [
                {
                    "name": e.model.name,
                    "model": e.model.name,
                    "size": e.model.size,
                    "digest": e.model.digest,
                    "details": e.model.details(),
                    "expires_at": rfc3339(e.expires_ns),
                    "size_vram": 0,
                    "context_length": e.context_length,
                }
                for e in entries
            ]
        }

    def count_disconnect(self) -> None:
        with self._state:
            self.disconnects += 1

    def mark_used(self, model: OllamaModel, keep_alive: int, num_ctx: int) -> None:
        now = time.time_ns()
        with self._state:
            if keep_alive == 0:
                self._loaded.pop(model.name, None)
                return
            expires = now + keep_alive if keep_alive < FOREVER_NS - now else FOREVER_NS
            self._loaded[model.name] = LoadedModel(model, expires, num_ctx)

    def num_ctx(self, model: OllamaModel, asked: int | None) -> int:
        """The window the model runs with: the request's, else its Modelfile's, else the
        server's, at most its trained length (llm/server.go warns "requested context size too
        large for model" and uses that)."""
        chosen = asked or model.options.get("num_ctx") or self.default_num_ctx
        trained = model.trained_context
        return min(int(chosen), trained) if trained else int(chosen)


def _canonical(name: str) -> str:
    name = name.strip().casefold()
    last = name.rsplit("/", 1)[-1]
    return name if ":" in last else f"{name}:latest"


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = False  # so server_close() joins every handler thread
    block_on_close = True

    def __init__(self, app: OllamaServer) -> None:
        self.app = app
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind would look up the FQDN of 127.0.0.1, which can hang offline.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = "127.0.0.1", int(self.server_address[1])

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            self._connections.add(request)
            self.app.connections += 1
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    @property
    def open_connections(self) -> int:
        with self._connections_lock:
            return len(self._connections)

    def close_connections(self) -> None:
        """Wake every handler blocked on a keep-alive read or a stream write."""
        with self._connections_lock:
            connections = list(self._connections)
        for sock in connections:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        error = sys.exc_info()[1]
        if error is not None and not isinstance(error, ConnectionError):
            self.app.errors.append(error)


# --- requests ---------------------------------------------------------------------------


@dataclass
class _Chat:
    model: OllamaModel
    name: str  # as the request spelled it; echoed in every chunk
    request: ChatRequest
    stream: bool
    keep_alive: int
    num_ctx: int
    started: float  # perf_counter when the request arrived


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _HTTPServer
    streaming = False  # whether this response's status and headers have gone out as a stream

    @property
    def app(self) -> OllamaServer:
        return self.server.app

    # --- plumbing

    def log_message(self, format: str, *args: Any) -> None:
        return None

    def send_response(self, code: int, message: str | None = None) -> None:
        # Go's net/http sends no Server header.
        self.log_request(code)
        self.send_response_only(code, message)
        self.send_header("Date", self.date_time_string())

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_HEAD(self) -> None:
        self._dispatch("HEAD")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    _ROUTES = {
        "/": ("GET", "HEAD"),
        "/api/version": ("GET", "HEAD"),
        "/api/tags": ("GET", "HEAD"),
        "/api/ps": ("GET",),
        "/api/show": ("POST",),
        "/api/chat": ("POST",),
    }

    def _dispatch(self, method: str) -> None:
        self.started = time.perf_counter()
        self.streaming = False
        path = self.path.split("?", 1)[0]
        try:
            body = self._read_body()
            allowed = self._ROUTES.get(path)
            if allowed is None:
                self._send(404, b"404 page not found", "text/plain")
            elif method not in allowed:
                self._send(405, b"405 method not allowed", "text/plain")
            elif path == "/":
                self._send(200, b"Ollama is running", "text/plain; charset=utf-8")
            elif path == "/api/version":
                self._json(200, {"version": self.app.version})
            elif path == "/api/tags":
                self._json(200, self.app.tags())
            elif path == "/api/ps":
                self._json(200, self.app.ps())
            elif path == "/api/show":
                self._show(body)
            else:
                self._chat(body)
        except _BadRequest as exc:
            self._json(exc.status, {"error": exc.message})
        except ConnectionError:  # the client left (or the server is stopping)
            self.close_connection = True
        except Exception as exc:
            self.app.errors.append(exc)
            self.close_connection = True

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send(self, status: int, data: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self._write(data)

    def _json(self, status: int, value: Any, headers: dict[str, str] | None = None) -> None:
        data = go_json(value)
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        for key, header in (headers or {}).items():
            self.send_header(key, header)
        self.end_headers()
        if self.command != "HEAD":
            self._write(data)

    def _write(self, data: bytes) -> None:
        try:
            self.wfile.write(data)
        except OSError as exc:
            raise _ClientGone from exc

    def _start_stream(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/x-ndjson")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self.streaming = True

    def _line(self, value: Any) -> None:
        if not self.streaming:
            self._start_stream()
        data = go_json(value) + b"\n"
        self._write(b"%x\r\n%s\r\n" % (len(data), data))

    def _end_stream(self) -> None:
        self._write(b"0\r\n\r\n")

    def _drop(self) -> None:
        """Close the connection at once, mid-response if need be."""
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)
        self.close_connection = True

    def client_gone(self) -> bool:
        """The server is stopping, or the client closed its end (EOF without a request)."""
        if self.app.stopping:
            return True
        try:
            readable, _, _ = select.select([self.connection], [], [], 0)
            return bool(readable) and self.connection.recv(1, socket.MSG_PEEK) == b""
        except (OSError, ValueError):
            return True

    def _parse(self, body: bytes, go_type: str) -> dict[str, Any]:
        """The body as Gin's `ShouldBindJSON` takes it, with Ollama's 400 messages."""
        if not body.strip():
            raise _BadRequest(400, "missing request body")
        try:
            value = json.loads(body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise _BadRequest(400, f"invalid character in request body: {exc}") from None
        if not isinstance(value, dict):
            kind = {list: "array", str: "string", bool: "bool"}.get(type(value), "number")
            raise _BadRequest(400, f"json: cannot unmarshal {kind} into Go value of type {go_type}")
        return value

    # --- /api/show

    def _show(self, body: bytes) -> None:
        req = self._parse(body, "api.ShowRequest")
        name = str(req.get("model") or req.get("name") or "")
        if not name:
            raise _BadRequest(400, "model is required")
        model = self.app.find(name)
        if model is None:
            raise _BadRequest(404, f"model '{name}' not found")
        self._json(200, self.app.show(model, bool(req.get("verbose"))))

    # --- /api/chat

    def _chat(self, body: bytes) -> None:
        chat = self._chat_request(self._parse(body, "api.ChatRequest"))
        app = self.app
        if not chat.request.messages:
            self._load(chat)
            return
        if app.reject_chat is not None:
            status, message = app.reject_chat
            self._json(status, {"error": message}, app.reject_headers)
            return
        app.mark_used(chat.model, chat.keep_alive or DEFAULT_KEEP_ALIVE_NS, chat.num_ctx)
        app.chat_requests.append(chat.request)
        try:
            asyncio.run(self._run_chat(chat))
        except _ClientGone:
            app.count_disconnect()
            raise
        finally:
            app.mark_used(chat.model, chat.keep_alive, chat.num_ctx)

    def _load(self, chat: _Chat) -> None:
        """No messages: load the model (or, with keep_alive 0, unload it), as Ollama does."""
        if chat.keep_alive:
            # The embedded provider loads a model on its first generation: make it one token.
            prime = ChatRequest(
                chat.model.embedded_name, (Message("user", ""),), GenParams(max_tokens=1)
            )
            try:
                asyncio.run(self._drain(prime))
            except ProviderError as exc:
                raise _BadRequest(500, exc.message) from None
        self.app.mark_used(chat.model, chat.keep_alive, chat.num_ctx)
        self._json(
            200,
            {
                "model": chat.name,
                "created_at": rfc3339(time.time_ns()),
                "message": {"role": "assistant", "content": ""},
                "done_reason": "load" if chat.keep_alive else "unload",
                "done": True,
            },
        )

    async def _drain(self, request: ChatRequest) -> None:
        async with self._generation(request) as events:
            async for _ in events:
                pass

    def _chat_request(self, req: dict[str, Any]) -> _Chat:
        """The request checked as Ollama's ChatHandler checks it."""
        name = req.get("model")
        if not isinstance(name, str) or not name.strip():
            raise _BadRequest(400, "model is required")
        messages = req.get("messages") or []
        if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
            raise _BadRequest(
                400,
                "json: cannot unmarshal into Go struct field "
                "ChatRequest.messages of type []api.Message",
            )
        try:
            keep_alive = keep_alive_ns(req.get("keep_alive"))
        except ValueError as exc:
            raise _BadRequest(400, str(exc)) from None
        model = self.app.find(name)
        if model is None:
            raise _BadRequest(404, f"model '{name}' not found")
        if req.get("think") is True:
            raise _BadRequest(400, f'"{name}" does not support thinking')
        if req.get("tools"):
            raise _BadRequest(400, f"{name} does not support tools")
        params = _gen_params(req.get("options"))
        num_ctx = _option(req.get("options"), "num_ctx", "integer")
        turns = []
        for m in messages:
            content = m.get("content", "")
            if not isinstance(content, str):
                raise _BadRequest(
                    400,
                    "json: cannot unmarshal into Go struct field "
                    "Message.messages.content of type string",
                )
            turns.append(Message(cast(Role, str(m.get("role", ""))), content))
        request = ChatRequest(model.embedded_name, tuple(turns), params)
        stream = req.get("stream") is not False
        window = self.app.num_ctx(model, int(num_ctx) if num_ctx and num_ctx > 0 else None)
        return _Chat(model, name, request, stream, keep_alive, window, self.started)

    async def _run_chat(self, chat: _Chat) -> None:
        sent = 0  # content chunks so far
        text: list[str] = []
        metrics: dict[str, int] = {}
        loaded_in: float | None = None
        reason = "stop"
        await self._stall(sent)
        if self._faults(sent):
            return
        try:
            await self.app.embedded.load(chat.model.embedded_name)
            runner_ready = time.perf_counter()
            request = await self._fit(chat)
            self.app.generated.append(request)
            async with self._generation(request) as events:
                async for event in events:
                    if isinstance(event, TextDelta | ReasoningDelta):
                        if isinstance(event, TextDelta):
                            text.append(event.text)
                            message = {"role": "assistant", "content": event.text}
                        else:
                            message = {"role": "assistant", "content": "", "thinking": event.text}
                        if chat.stream:
                            self._line(self._chunk(chat, message))
                        sent += 1
                        await self._stall(sent)
                        if self._faults(sent):
                            return
                    elif isinstance(event, Usage):
                        metrics["prompt_eval_count"] = event.input_tokens
                        metrics["eval_count"] = event.output_tokens
                    elif isinstance(event, ServerTimings):
                        loaded_in = event.load_s or loaded_in
                        if event.prompt_s is not None:
                            metrics["prompt_eval_duration"] = ns_of(event.prompt_s)
                        if event.decode_s is not None:
                            metrics["eval_duration"] = ns_of(event.decode_s)
                    elif isinstance(event, Done):
                        reason = event.stop_reason or "stop"
        except ProviderError as exc:
            self._fail({"bad_request": 400, "not_found": 404}.get(exc.kind, 500), exc.message)
            return
        if self.app.prompt_cached:
            metrics["prompt_eval_count"] = metrics["prompt_eval_duration"] = 0
        # As Ollama measures them: load_duration until a runner was ready, total from arrival.
        load = runner_ready - chat.started + (loaded_in or 0.0)
        final: dict[str, Any] = {
            "model": chat.name,
            "created_at": rfc3339(time.time_ns()),
            "message": {"role": "assistant", "content": "" if chat.stream else "".join(text)},
            "done_reason": reason,
            "done": True,
            "total_duration": ns_of(time.perf_counter() - chat.started),
            "load_duration": ns_of(load),
        }
        for key in ("prompt_eval_count", "prompt_eval_duration", "eval_count", "eval_duration"):
            if metrics.get(key):  # Go's omitempty
                final[key] = metrics[key]
        if chat.stream:
            self._line(final)
            self._end_stream()
        else:
            self._json(200, final)

    async def _fit(self, chat: _Chat) -> ChatRequest:
        """The request cut to the model's window as Ollama cuts it: `chatPrompt` drops
        messages from the front until the prompt fits, keeping the system messages and always
        the last message; the answer may then fill what is left."""
        count = self.app.embedded.prompt_counter(chat.model.embedded_name)
        assert count is not None  # the model is loaded before
        messages = list(chat.request.messages)
        kept = messages
        for start in range(len(messages)):
            kept = [m for m in messages[:start] if m.role == "system"] + messages[start:]
            if count(kept) <= chat.num_ctx:
                break
        room = chat.num_ctx - count(kept)
        if room <= 0:
            raise ProviderError(
                "bad_request",
                f"loopback Ollama server: the last message alone is longer than num_ctx "
                f"{chat.num_ctx}; Ollama's runner would cut it, which is not modelled here",
            )
        asked = chat.request.params.max_tokens
        params = replace(chat.request.params, max_tokens=min(asked or room, room))
        return ChatRequest(chat.request.model, tuple(kept), params)

    @staticmethod
    def _chunk(chat: _Chat, message: dict[str, str]) -> dict[str, Any]:
        return {
            "model": chat.name,
            "created_at": rfc3339(time.time_ns()),
            "message": message,
            "done": False,
        }

    def _faults(self, sent: int) -> bool:
        """Apply the chunk-count faults; True when they ended the response."""
        app = self.app
        if app.cut_stream_after == sent:
            self._drop()
            return True
        if app.fail_mid_stream_after == sent:
            self._fail(500, app.mid_stream_error)
            return True
        return False

    async def _stall(self, sent: int) -> None:
        """Send nothing for `stall_s` if a stall is due; give up if the client leaves."""
        if self.app.stall_after != sent:
            return
        deadline = time.monotonic() + self.app.stall_s
        while time.monotonic() < deadline:
            if self.client_gone():
                raise _ClientGone
            await asyncio.sleep(_POLL_S)

    def _fail(self, status: int, message: str) -> None:
        """An error as Ollama's streamResponse sends it: a status if nothing was sent yet."""
        if self.streaming:
            self._line({"error": message})
            self._end_stream()
        else:
            self._json(status, {"error": message})

    @contextlib.asynccontextmanager
    async def _generation(self, request: ChatRequest) -> AsyncIterator[AsyncIterator[StreamEvent]]:
        """The embedded model's events, stopped when the client leaves, its thread joined.

        The generation thread posts a last event to this event loop after it is told to stop,
        so the loop must outlive it; `asyncio.run` closes the loop when the chat returns.
        """
        before = set(threading.enumerate())
        stream = self.app.embedded.stream(request)
        watched = self._watched(stream)
        try:
            yield watched
        finally:
            await watched.aclose()
            with contextlib.suppress(Exception):
                await stream.aclose()  # type: ignore[attr-defined]
            for thread in set(threading.enumerate()) - before:
                # enumerate() lists threads still starting, which cannot be joined yet: a
                # second chat's, begun meanwhile, which that chat joins itself.
                if thread.name.startswith("embedded:") and thread.is_alive():
                    thread.join(_JOIN_S)

    async def _watched(
        self, stream: AsyncIterator[StreamEvent]
    ) -> AsyncGenerator[StreamEvent, None]:
        """`stream`'s events; ends it and raises `_ClientGone` once the client has left."""
        while True:
            pending = asyncio.ensure_future(anext(stream))
            while not pending.done():
                await asyncio.wait({pending}, timeout=_POLL_S)
                if not pending.done() and self.client_gone():
                    pending.cancel()
                    with contextlib.suppress(BaseException):
                        await pending
                    raise _ClientGone
            try:
                event = pending.result()
            except StopAsyncIteration:
                return
            yield event


def _gen_params(options: object) -> GenParams:
    """Ollama `options` as GenParams, type-checked as `api.Options.FromMap` does."""
    if options is None:
        return GenParams()
    if not isinstance(options, dict):
        raise _BadRequest(
            400,
            "json: cannot unmarshal into Go struct field "
            "ChatRequest.options of type map[string]interface {}",
        )

    temperature = _option(options, "temperature", "float32")
    top_p = _option(options, "top_p", "float32")
    num_predict = _option(options, "num_predict", "integer")
    seed = _option(options, "seed", "integer")
    return GenParams(
        temperature=temperature,
        top_p=top_p,
        # -1 (the default) is "until the model stops", -2 "until the context is full".
        max_tokens=int(num_predict) if num_predict is not None and num_predict > 0 else None,
        # -1 (the default) is a random seed.
        seed=int(seed) if seed is not None and seed >= 0 else None,
    )


def _option(options: object, key: str, go_type: str) -> float | None:
    """One number of `options`, type-checked as `api.Options.FromMap` does."""
    value = options.get(key) if isinstance(options, dict) else None
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _BadRequest(500, f'option "{key}" must be of type {go_type}')
    return float(value)
