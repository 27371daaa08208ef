"""A measuring instrument, not a model: a loopback server that streams a fixed text at a set
rate in the OpenAI protocol (SSE, `/v1/chat/completions`) and in Ollama's (NDJSON,
`/api/chat`), and records when it sent each chunk.

The UI benchmarks compare those send times with when the text shows on screen. Send times
are `time.monotonic()` (CLOCK_MONOTONIC on Linux), so another process on the same machine
can compare its own `time.monotonic()` readings with them.

Stdlib only (asyncio streams in a thread of its own), so it costs the process it runs in
little and needs nothing the workbench does not already have.

    python bench/loopback_stream.py --rate 500 --tokens 2000   # serve until Ctrl+C
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

_SENTENCE = (
    "the quick brown fox jumps over a lazy dog while seven bright owls watch from tall "
    "pines and the river keeps its own slow counsel under a pale winter sky"
)
WORDS = _SENTENCE.split(" ")


def fixed_tokens(count: int, paragraph: int = 60) -> list[str]:
    """`count` word tokens, with a paragraph break every `paragraph`, as models write."""
    tokens = []
    for i in range(count):
        word = WORDS[i % len(WORDS)]
        if i and i % paragraph == 0:
            tokens.append(f"\n\n{word}")
        else:
            tokens.append(f" {word}" if i else word.capitalize())
    return tokens


def end_marker(model: str) -> str:
    """The last token of every answer: lets a screen reader know which stream has ended."""
    return f" END-{model}"


@dataclass
class Recording:
    """One request as served: the model asked for and when each text chunk went out."""

    model: str
    protocol: str
    sent: list[float] = field(default_factory=list)
    """`time.monotonic()` just after each text chunk was written to the socket."""
    prompt_chars: int = 0


class LoopbackStream:
    """Streams `tokens` (then the end marker) at `rate` tokens/s; `rate=0` as fast as it can."""

    def __init__(
        self, tokens: Sequence[str], *, rate: float, port: int = 0, mark_end: bool = True
    ) -> None:
        self.tokens = list(tokens)
        self.rate = rate
        self.mark_end = mark_end
        self.recordings: list[Recording] = []
        self._port = port
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.Server | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()

    @property
    def port(self) -> int:
        return self._port

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._port}"

    @property
    def openai_url(self) -> str:
        return f"{self.base_url}/v1"

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="loopback-stream", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("loopback stream server did not start")

    def stop(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is not None and thread is not None:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(5)
        self._loop = self._thread = None

    def __enter__(self) -> LoopbackStream:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self) -> None:
        loop = self._loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        self._server = loop.run_until_complete(
            asyncio.start_server(self._serve, "127.0.0.1", self._port)
        )
        self._port = int(self._server.sockets[0].getsockname()[1])
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            self._server.close()
            tasks = asyncio.all_tasks(loop)
            for task in tasks:
                task.cancel()
            loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
            loop.close()

    # --- HTTP/1.1, just enough for httpx clients: keep-alive, chunked replies ------------

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        if sock is not None:  # each token must leave at once, not wait for Nagle
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, path, _ = lines[0].split(" ", 2)
                headers = {
                    k.strip().lower(): v.strip()
                    for k, _, v in (line.partition(":") for line in lines[1:] if line)
                }
                length = int(headers.get("content-length", "0"))
                body = await reader.readexactly(length) if length else b""
                await self._route(method, path.split("?")[0], body, writer)
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            pass
        except asyncio.CancelledError:
            pass  # the server is stopping; nothing awaits this handler
        finally:
            writer.close()

    async def _route(
        self, method: str, path: str, body: bytes, writer: asyncio.StreamWriter
    ) -> None:
        if method == "POST" and path == "/v1/chat/completions":
            await self._openai_chat(json.loads(body), writer)
        elif method == "POST" and path == "/api/chat":
            await self._ollama_chat(json.loads(body), writer)
        elif path == "/v1/models":
            models = [{"id": "m0", "object": "model", "owned_by": "loopback"}]
            await _reply(writer, 200, {"object": "list", "data": models})
        elif path == "/api/version":
            await _reply(writer, 200, {"version": "0.13.0"})
        elif path in ("/api/tags", "/api/ps"):
            await _reply(writer, 200, {"models": []})
        else:
            await _reply(writer, 404, {"error": f"no route {method} {path}"})

    def _answer(self, model: str) -> list[str]:
        return [*self.tokens, end_marker(model)] if self.mark_end else list(self.tokens)

    async def _paced(
        self, writer: asyncio.StreamWriter, chunks: Sequence[bytes], record: Recording
    ) -> None:
        """Writes chunk i at start + i/rate, on an absolute schedule so nothing drifts."""
        start = time.monotonic()
        for i, chunk in enumerate(chunks):
            if self.rate > 0:
                due = start + i / self.rate
                delay = due - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
            writer.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            await writer.drain()
            record.sent.append(time.monotonic())

    async def _openai_chat(self, request: dict[str, object], writer: asyncio.StreamWriter) -> None:
        model = str(request.get("model", ""))
        record = Recording(model, "openai", prompt_chars=len(json.dumps(request["messages"])))
        self.recordings.append(record)
        stamp = int(time.time())

        def chunk(delta: dict[str, str], finish: str | None = None) -> bytes:
            choice = {"index": 0, "delta": delta, "finish_reason": finish}
            event = {"id": "loop", "object": "chat.completion.chunk", "created": stamp,
                     "model": model, "choices": [choice]}  # fmt: skip
            return b"data: " + json.dumps(event).encode() + b"\n\n"

        answer = self._answer(model)
        await _start_chunked(writer, "text/event-stream")
        writer.write(_chunk(chunk({"role": "assistant", "content": ""})))
        await self._paced(writer, [chunk({"content": t}) for t in answer], record)
        tail = [chunk({}, "stop")]
        options = request.get("stream_options")
        if isinstance(options, dict) and options.get("include_usage"):
            usage = {"prompt_tokens": record.prompt_chars // 4, "completion_tokens": len(answer),
                     "total_tokens": record.prompt_chars // 4 + len(answer)}  # fmt: skip
            event = {"id": "loop", "object": "chat.completion.chunk", "created": stamp,
                     "model": model, "choices": [], "usage": usage}  # fmt: skip
            tail.append(b"data: " + json.dumps(event).encode() + b"\n\n")
        tail.append(b"data: [DONE]\n\n")
        for piece in tail:
            writer.write(_chunk(piece))
        writer.write(b"0\r\n\r\n")
        await writer.drain()

    async def _ollama_chat(self, request: dict[str, object], writer: asyncio.StreamWriter) -> None:
        model = str(request.get("model", ""))
        record = Recording(model, "ollama", prompt_chars=len(json.dumps(request["messages"])))
        self.recordings.append(record)
        started = time.monotonic_ns()

        def line(content: str) -> bytes:
            message = {"role": "assistant", "content": content}
            event = {"model": model, "created_at": "2026-01-01T00:00:00Z", "message": message,
                     "done": False}  # fmt: skip
            return json.dumps(event).encode() + b"\n"

        answer = self._answer(model)
        await _start_chunked(writer, "application/x-ndjson")
        await self._paced(writer, [line(t) for t in answer], record)
        total = time.monotonic_ns() - started
        final = {"model": model, "created_at": "2026-01-01T00:00:00Z",
                 "message": {"role": "assistant", "content": ""}, "done": True,
                 "done_reason": "stop", "total_duration": total, "load_duration": 0,
                 "prompt_eval_count": record.prompt_chars // 4, "prompt_eval_duration": 1000,
                 "eval_count": len(answer), "eval_duration": total}  # fmt: skip
        writer.write(_chunk(json.dumps(final).encode() + b"\n"))
        writer.write(b"0\r\n\r\n")
        await writer.drain()


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


async def _start_chunked(writer: asyncio.StreamWriter, content_type: str) -> None:
    writer.write(
        f"HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\n"
        "Transfer-Encoding: chunked\r\nCache-Control: no-cache\r\n\r\n".encode()
    )
    await writer.drain()


async def _reply(writer: asyncio.StreamWriter, status: int, body: dict[str, object]) -> None:
    data = json.dumps(body).encode()
    reason = "OK" if status == 200 else "Not Found"
    writer.write(
        f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(data)}\r\n\r\n".encode()
        + data
    )
    await writer.drain()


def start_in_own_process(tokens: int, *, rate: float) -> tuple[subprocess.Popen[str], str]:
    """The instrument in a process of its own (its work not counted in the caller's), and
    its OpenAI base URL. Stop it with `terminate()`."""
    command = [sys.executable, __file__, "--rate", str(rate), "--tokens", str(tokens)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    line = process.stdout.readline()  # "listening on http://127.0.0.1:PORT/v1 (...)"
    if not line.startswith("listening on "):
        process.kill()
        raise RuntimeError(f"the loopback instrument did not start: {line!r}")
    return process, line.split()[2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--rate", type=float, default=500, help="tokens/s; 0 = unpaced")
    parser.add_argument("--tokens", type=int, default=2000)
    args = parser.parse_args()
    server = LoopbackStream(fixed_tokens(args.tokens), rate=args.rate, port=args.port)
    server.start()
    print(f"listening on {server.openai_url} ({args.rate:g} tok/s)", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()


if __name__ == "__main__":
    main()
