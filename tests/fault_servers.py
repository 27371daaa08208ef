"""Wire formats and misbehaving responses for the fault tests, served by pytest-httpserver.

Each `Wire` writes one API's real streaming format (OpenAI chat.completions SSE, Anthropic
Messages SSE, Ollama NDJSON) and its error bodies, so a test can build a stream that is
well formed up to the point where it goes wrong.
"""

from __future__ import annotations

import contextlib
import json
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from pytest_httpserver import HTTPServer
from werkzeug import Request, Response
from werkzeug.serving import WSGIRequestHandler

Handler = Callable[[Request], Response]


class CutConnection(Exception):
    """Raised inside a response body: werkzeug then closes the socket mid-body.

    The chunked body never gets its terminating chunk, so the client sees the peer close
    the connection without a complete message, as when a proxy or the server dies.
    """


@dataclass(frozen=True)
class Cut:
    """Drop the connection here (no terminating chunk)."""


@dataclass(frozen=True)
class Stall:
    """Send nothing until `release` is set (or `limit_s` passes)."""

    release: threading.Event
    limit_s: float = 10.0


@dataclass(frozen=True)
class Endless:
    """Send `part` again and again, every `every_s`, until `release` is set (or `limit_s`
    passes: a client that never stops reading then sees the stream end unfinished)."""

    part: bytes
    release: threading.Event
    every_s: float = 0.01
    limit_s: float = 10.0


Part = bytes | Cut | Stall | Endless


def streamed(parts: Iterable[Part], content_type: str) -> Response:
    """A chunked response that sends each part as it comes, then cuts or stalls on cue."""

    def body() -> Iterator[bytes]:
        for part in parts:
            if isinstance(part, Cut):
                raise CutConnection("the fault server dropped the connection")
            if isinstance(part, Stall):
                part.release.wait(part.limit_s)
                continue
            if isinstance(part, Endless):
                until = time.monotonic() + part.limit_s
                while not part.release.is_set() and time.monotonic() < until:
                    yield part.part
                    part.release.wait(part.every_s)
                continue
            yield part

    return Response(body(), status=200, content_type=content_type, direct_passthrough=True)


@contextlib.contextmanager
def threaded_server(ssl_context: ssl.SSLContext | None = None) -> Iterator[HTTPServer]:
    """A pytest-httpserver server that answers requests concurrently, so a stalled stream
    blocks no other request (the plugin's own server handles one at a time); https with
    `ssl_context`."""
    # A threaded werkzeug server switches its handler class to HTTP/1.1 (chunked bodies,
    # which a cut can leave unterminated) for good; undo that for other modules' servers.
    was_set = "protocol_version" in vars(WSGIRequestHandler)
    server = HTTPServer(host="127.0.0.1", port=0, threaded=True, ssl_context=ssl_context)
    server.start()
    try:
        yield server
    finally:
        server.clear()
        server.stop()
        if not was_set:
            with contextlib.suppress(AttributeError):
                del WSGIRequestHandler.protocol_version


def _sse(data: dict[str, Any], event: str | None = None) -> bytes:
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {json.dumps(data)}\n\n".encode()


class Wire:
    """One API's path, stream framing and error bodies."""

    name: str
    path: str
    content_type: str
    garbage: bytes
    """A line the stream parser cannot read, framed as the stream frames its lines."""

    def start(self) -> list[bytes]:
        """What the server sends before the first text."""
        return []

    def text(self, text: str) -> bytes:
        raise NotImplementedError

    def end(self) -> list[bytes]:
        """What a finished stream ends with: the stop reason, usage and terminator."""
        raise NotImplementedError

    def error_body(self, status: int, message: str) -> dict[str, Any]:
        raise NotImplementedError

    def error_line(self, message: str) -> bytes:
        """How the server reports a failure after it already answered 200 and began."""
        raise NotImplementedError

    def stream(self, *texts: str, then: Iterable[Part] | None = None) -> Response:
        """The start, the texts, then `then` (by default: a proper end)."""
        tail = self.end() if then is None else then
        return streamed([*self.start(), *map(self.text, texts), *tail], self.content_type)

    def error(self, status: int, message: str, headers: dict[str, str] | None = None) -> Response:
        return Response(
            json.dumps(self.error_body(status, message)),
            status=status,
            headers=headers,
            content_type="application/json",
        )


class OpenAIWire(Wire):
    name = "openai"
    path = "/v1/chat/completions"
    content_type = "text/event-stream"
    garbage = b"data: {this is not json\n\n"

    def _chunk(self, choices: list[dict[str, Any]], **extra: Any) -> bytes:
        return _sse(
            {
                "id": "chatcmpl-fault",
                "object": "chat.completion.chunk",
                "created": 1_700_000_000,
                "model": "m",
                "choices": choices,
                **extra,
            }
        )

    def start(self) -> list[bytes]:
        return [
            self._chunk(
                [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]
            )
        ]

    def text(self, text: str) -> bytes:
        return self._chunk([{"index": 0, "delta": {"content": text}, "finish_reason": None}])

    def end(self) -> list[bytes]:
        usage = {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}
        return [
            self._chunk([{"index": 0, "delta": {}, "finish_reason": "stop"}]),
            self._chunk([], usage=usage),
            b"data: [DONE]\n\n",
        ]

    def error_body(self, status: int, message: str) -> dict[str, Any]:
        return {"error": {"message": message, "type": "invalid_request_error", "code": status}}

    def error_line(self, message: str) -> bytes:
        return _sse({"error": {"message": message, "type": "server_error", "code": None}})


class AnthropicWire(Wire):
    name = "anthropic"
    path = "/v1/messages"
    content_type = "text/event-stream"
    garbage = b"event: content_block_delta\ndata: {this is not json\n\n"

    def start(self) -> list[bytes]:
        message: dict[str, Any] = {
            "id": "msg_fault",
            "type": "message",
            "role": "assistant",
            "model": "m",
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": 5, "output_tokens": 1},
        }
        return [
            _sse({"type": "message_start", "message": message}, "message_start"),
            _sse(
                {
                    "type": "content_block_start",
                    "index": 0,
                    "content_block": {"type": "text", "text": ""},
                },
                "content_block_start",
            ),
            _sse({"type": "ping"}, "ping"),
        ]

    def text(self, text: str) -> bytes:
        delta = {"type": "text_delta", "text": text}
        return _sse(
            {"type": "content_block_delta", "index": 0, "delta": delta}, "content_block_delta"
        )

    def end(self) -> list[bytes]:
        return [
            _sse({"type": "content_block_stop", "index": 0}, "content_block_stop"),
            _sse(
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                    "usage": {"output_tokens": 2},
                },
                "message_delta",
            ),
            _sse({"type": "message_stop"}, "message_stop"),
        ]

    def error_body(self, status: int, message: str) -> dict[str, Any]:
        kinds = {401: "authentication_error", 404: "not_found_error", 429: "rate_limit_error"}
        return {
            "type": "error",
            "error": {"type": kinds.get(status, "api_error"), "message": message},
        }

    def error_line(self, message: str) -> bytes:
        error = {"type": "overloaded_error", "message": message}
        return _sse({"type": "error", "error": error}, "error")


class OllamaWire(Wire):
    name = "ollama"
    path = "/api/chat"
    content_type = "application/x-ndjson"
    garbage = b"{this is not json\n"

    def _line(self, text: str, **extra: Any) -> bytes:
        part = {
            "model": "m",
            "created_at": "2025-01-01T00:00:00.000000Z",
            "message": {"role": "assistant", "content": text},
            "done": False,
            **extra,
        }
        return json.dumps(part).encode() + b"\n"

    def text(self, text: str) -> bytes:
        return self._line(text)

    def end(self) -> list[bytes]:
        return [
            self._line(
                "",
                done=True,
                done_reason="stop",
                total_duration=30_000_000,
                load_duration=1_000_000,
                prompt_eval_count=5,
                prompt_eval_duration=10_000_000,
                eval_count=2,
                eval_duration=19_000_000,
            )
        ]

    def error_body(self, status: int, message: str) -> dict[str, Any]:
        return {"error": message}

    def error_line(self, message: str) -> bytes:
        return json.dumps({"error": message}).encode() + b"\n"


WIRES: dict[str, Wire] = {w.name: w for w in (OpenAIWire(), AnthropicWire(), OllamaWire())}


def presented_key(request: Request) -> str:
    """The API key the client sent, however its API carries it."""
    auth = request.headers.get("Authorization", "")
    return request.headers.get("x-api-key") or auth.removeprefix("Bearer ")
