"""The OpenAI and Anthropic providers read each streamed chunk as plain JSON, field by field.

The SDKs hand the chunks over undecorated (no pydantic model per chunk, which cost most of
a stream's CPU), so every shape a server could get wrong is checked by the provider: these
hand-written streams, served by pytest-httpserver, say which shapes are read and which
become a `protocol` error naming the endpoint, with the connection closed.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import psutil
import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from providers.anthropic import AnthropicProvider
from providers.base import (
    ChatRequest,
    Done,
    GenParams,
    Message,
    ProviderError,
    ReasoningDelta,
    ServerTimings,
    StreamEvent,
    TextDelta,
    Usage,
)
from providers.openai import OpenAIProvider
from tests.fault_servers import Endless, Part, presented_key, streamed, threaded_server

SECRET = "sk-test-RAW-456"
BOUND_S = 10.0
PROMPT = ChatRequest(
    "m",
    (Message("system", "Be brief."), Message("user", "Say hello.")),
    GenParams(temperature=1.5, max_tokens=16),
)


@pytest.fixture(scope="module")
def make_httpserver() -> Iterator[HTTPServer]:
    """Threaded, so an endless stream left behind blocks no later request."""
    with threaded_server() as server:
        yield server


@pytest.fixture(autouse=True)
def server_was_used_as_meant(httpserver: HTTPServer) -> Iterator[None]:
    yield
    httpserver.check()


@pytest.fixture
async def openai(httpserver: HTTPServer) -> AsyncIterator[OpenAIProvider]:
    provider = OpenAIProvider(base_url=httpserver.url_for("/v1"), api_key=SECRET)
    yield provider
    await provider.aclose()


@pytest.fixture
async def anthropic(httpserver: HTTPServer) -> AsyncIterator[AnthropicProvider]:
    provider = AnthropicProvider(base_url=httpserver.url_for("").rstrip("/"), api_key=SECRET)
    yield provider
    await provider.aclose()


def sse(data: object, event: str | None = None) -> bytes:
    """One server-sent event whose data is `data` as JSON, whatever its type."""
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {json.dumps(data)}\n\n".encode()


def serve(httpserver: HTTPServer, path: str, parts: list[Part]) -> list[dict[str, Any]]:
    """Answer `path` with `parts` as an event stream; returns the requests as they arrive."""
    seen: list[dict[str, Any]] = []

    def handler(request: Request) -> Response:
        headers = {k.lower(): v for k, v in request.headers.items()}
        seen.append({"headers": headers, "key": presented_key(request), "body": request.get_json()})
        return streamed(parts, "text/event-stream")

    httpserver.expect_request(path, method="POST").respond_with_handler(handler)
    return seen


async def events_of(provider: OpenAIProvider | AnthropicProvider) -> list[StreamEvent]:
    async with asyncio.timeout(BOUND_S):
        return [event async for event in provider.stream(PROMPT)]


async def failure_of(
    provider: OpenAIProvider | AnthropicProvider,
) -> tuple[list[StreamEvent], ProviderError]:
    """The events the provider yielded before it raised, and what it raised."""
    events: list[StreamEvent] = []
    with pytest.raises(ProviderError) as caught:
        async with asyncio.timeout(BOUND_S):
            async for event in provider.stream(PROMPT):
                events.append(event)
    assert not any(isinstance(e, Done) for e in events), "a failed stream must not say Done"
    assert SECRET not in caught.value.message
    return events, caught.value


def texts(events: list[StreamEvent]) -> str:
    return "".join(e.text for e in events if isinstance(e, TextDelta))


async def assert_no_connection_to(port: int, grace_s: float = 3.0) -> None:
    """This process holds no TCP connection to `port`: the provider closed its response."""
    deadline = time.monotonic() + grace_s
    while True:
        open_ = [
            c
            for c in psutil.Process().net_connections(kind="tcp")
            if c.raddr and c.raddr.port == port
        ]
        if not open_ or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.05)
    assert not open_, f"connections left open: {open_}"


# --- OpenAI chat.completions ---------------------------------------------------------


async def assert_unreadable(
    events: list[StreamEvent], failure: ProviderError, words: str, port: int
) -> None:
    """The text before the bad chunk kept; a `protocol` error that says what was wrong and
    names the endpoint; the connection closed though the server would go on sending."""
    assert texts(events) == "Hel"
    assert failure.kind == "protocol"
    assert "cannot read" in failure.message
    assert words in failure.message
    assert f"127.0.0.1:{port}" in failure.message
    await assert_no_connection_to(port)


def chunk(*choices: dict[str, Any], **extra: Any) -> bytes:
    return sse({"id": "c", "object": "chat.completion.chunk", "choices": list(choices), **extra})


def said(text: str) -> bytes:
    return chunk({"index": 0, "delta": {"content": text}, "finish_reason": None})


def openai_end(usage: dict[str, Any] | None = None) -> list[Part]:
    usage = usage or {"prompt_tokens": 5, "completion_tokens": 2}
    return [
        chunk({"index": 0, "delta": {}, "finish_reason": "stop"}),
        chunk(usage=usage),
        b"data: [DONE]\n\n",
    ]


async def test_openai_text_usage_and_cached_tokens(
    openai: OpenAIProvider, httpserver: HTTPServer
) -> None:
    usage = {
        "prompt_tokens": 40,
        "completion_tokens": 2,
        "total_tokens": 42,
        "prompt_tokens_details": {"cached_tokens": 32},
    }
    start = chunk({"index": 0, "delta": {"role": "assistant", "content": ""}})
    serve(httpserver, "/v1/chat/completions", [start, said("Hel"), said("lo"), *openai_end(usage)])
    events = await events_of(openai)
    assert events == [
        TextDelta("Hel"),
        TextDelta("lo"),
        Usage(input_tokens=40, output_tokens=2, cached_input_tokens=32),
        Done("stop"),
    ]


async def test_openai_sends_what_chat_completions_create_sends(
    openai: OpenAIProvider, httpserver: HTTPServer
) -> None:
    seen = serve(httpserver, "/v1/chat/completions", [said("Hi"), *openai_end()])
    await events_of(openai)
    (request,) = seen
    assert request["key"] == SECRET
    assert request["body"] == {
        "model": "m",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Say hello."},
        ],
        "stream": True,
        "stream_options": {"include_usage": True},
        "temperature": 1.5,
        # The built-in provider is OpenAI's API, whose reasoning models refuse max_tokens.
        "max_completion_tokens": 16,
    }


async def test_openai_reasoning_is_told_apart_from_the_answer(
    openai: OpenAIProvider, httpserver: HTTPServer
) -> None:
    thinking = [
        # llama-server and DeepSeek say reasoning_content; vLLM and others say reasoning.
        chunk({"index": 0, "delta": {"reasoning_content": "Think"}}),
        chunk({"index": 0, "delta": {"reasoning": "ing.", "content": None}}),
        # A shape we do not know is skipped: the answer still comes through.
        chunk({"index": 0, "delta": {"reasoning": {"summary": "?"}, "content": "Hi"}}),
    ]
    serve(httpserver, "/v1/chat/completions", [*thinking, *openai_end()])
    events = await events_of(openai)
    assert events[:3] == [ReasoningDelta("Think"), ReasoningDelta("ing."), TextDelta("Hi")]
    assert events[-1] == Done("stop")


async def test_openai_llama_server_timings(openai: OpenAIProvider, httpserver: HTTPServer) -> None:
    timings = {"prompt_n": 5, "prompt_ms": 12.5, "predicted_n": 2, "predicted_ms": 250}
    end = [
        chunk({"index": 0, "delta": {}, "finish_reason": "length"}),
        chunk(usage={"prompt_tokens": 5, "completion_tokens": 2}, timings=timings),
        b"data: [DONE]\n\n",
    ]
    serve(httpserver, "/v1/chat/completions", [said("Hi"), *end])
    events = await events_of(openai)
    assert ServerTimings(prompt_s=0.0125, decode_s=0.25) in events
    assert events[-1] == Done("length")


async def test_openai_error_object_mid_stream_keeps_the_text(
    openai: OpenAIProvider, httpserver: HTTPServer
) -> None:
    error = sse({"error": {"message": "the model runner died", "type": "server_error"}})
    serve(httpserver, "/v1/chat/completions", [said("Hel"), error])
    events, failure = await failure_of(openai)
    assert texts(events) == "Hel"
    assert failure.kind == "server"
    assert "the model runner died" in failure.message


async def test_openai_stream_without_a_finish_is_cut_short(
    openai: OpenAIProvider, httpserver: HTTPServer
) -> None:
    serve(httpserver, "/v1/chat/completions", [said("Hel"), b"data: [DONE]\n\n"])
    events, failure = await failure_of(openai)
    assert texts(events) == "Hel"
    assert failure.kind == "connection"
    assert "before the answer was finished" in failure.message


OPENAI_GARBAGE: dict[str, tuple[object, str]] = {
    "an array": ([1, 2], "an array"),
    "a string": ("hello", "a string"),
    "null": (None, "null"),
    "choices not a list": ({"choices": "abc"}, "`choices` is a string"),
    "a choice not an object": ({"choices": [7]}, "a number"),
    "delta not an object": ({"choices": [{"index": 0, "delta": "Hi"}]}, "`delta` is a string"),
    "content a number": ({"choices": [{"delta": {"content": 5}}]}, "`content` is a number"),
    "finish_reason a list": (
        {"choices": [{"delta": {}, "finish_reason": ["stop"]}]},
        "`finish_reason` is an array",
    ),
    "usage not an object": ({"choices": [], "usage": 7}, "`usage` is a number"),
    "usage fields strings": (
        {"choices": [], "usage": {"prompt_tokens": "5", "completion_tokens": "2"}},
        "`prompt_tokens` is a string",
    ),
    "usage count a boolean": (
        {"choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": True}},
        "`completion_tokens` is a boolean",
    ),
    "cached tokens a string": (
        {
            "choices": [],
            "usage": {
                "prompt_tokens": 5,
                "completion_tokens": 2,
                "prompt_tokens_details": {"cached_tokens": "3"},
            },
        },
        "`cached_tokens` is a string",
    ),
}


@pytest.mark.parametrize("bad", OPENAI_GARBAGE.values(), ids=OPENAI_GARBAGE.keys())
async def test_openai_malformed_chunk_is_protocol_and_closes(
    bad: tuple[object, str],
    openai: OpenAIProvider,
    httpserver: HTTPServer,
    release: threading.Event,
) -> None:
    data, words = bad
    # The server would go on sending: only the provider's close ends the connection.
    more = Endless(said(" la"), release, every_s=0.05)
    serve(httpserver, "/v1/chat/completions", [said("Hel"), sse(data), more])
    events, failure = await failure_of(openai)
    await assert_unreadable(events, failure, words, httpserver.port)


# --- Anthropic messages --------------------------------------------------------------


def message_start(usage: dict[str, Any]) -> bytes:
    message = {"id": "msg", "type": "message", "role": "assistant", "content": [], "usage": usage}
    return sse({"type": "message_start", "message": message}, "message_start")


def block_delta(delta: object) -> bytes:
    data = {"type": "content_block_delta", "index": 0, "delta": delta}
    return sse(data, "content_block_delta")


def text_delta(text: str) -> bytes:
    return block_delta({"type": "text_delta", "text": text})


START = message_start({"input_tokens": 5, "output_tokens": 1})
BLOCK = sse(
    {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
    "content_block_start",
)


def anthropic_end(usage: object = None, stop_reason: str = "end_turn") -> list[Part]:
    delta = {"stop_reason": stop_reason, "stop_sequence": None}
    usage = {"output_tokens": 2} if usage is None else usage
    return [
        sse({"type": "content_block_stop", "index": 0}, "content_block_stop"),
        sse({"type": "message_delta", "delta": delta, "usage": usage}, "message_delta"),
        sse({"type": "message_stop"}, "message_stop"),
    ]


async def test_anthropic_text_usage_and_cache_tokens(
    anthropic: AnthropicProvider, httpserver: HTTPServer
) -> None:
    start = message_start(
        {
            "input_tokens": 4,
            "cache_read_input_tokens": 30,
            "cache_creation_input_tokens": 6,
            "output_tokens": 1,
        }
    )
    ping = sse({"type": "ping"}, "ping")
    parts = [start, BLOCK, ping, text_delta("Hel"), ping, text_delta("lo")]
    serve(httpserver, "/v1/messages", [*parts, *anthropic_end({"output_tokens": 7}, "max_tokens")])
    events = await events_of(anthropic)
    assert events == [
        TextDelta("Hel"),
        TextDelta("lo"),
        # The uncached, cache-read and cache-written parts add up to the whole prompt.
        Usage(input_tokens=40, output_tokens=7, cached_input_tokens=30),
        Done("max_tokens"),
    ]


async def test_anthropic_sends_what_messages_create_sends(
    anthropic: AnthropicProvider, httpserver: HTTPServer
) -> None:
    seen = serve(httpserver, "/v1/messages", [START, text_delta("Hi"), *anthropic_end()])
    await events_of(anthropic)
    (request,) = seen
    assert request["key"] == SECRET
    assert request["headers"].get("anthropic-version")
    assert request["body"] == {
        "model": "m",
        "max_tokens": 16,
        "system": "Be brief.",
        "messages": [{"role": "user", "content": "Say hello."}],
        "stream": True,
        "temperature": 1.0,  # clamped to what the API accepts
    }


async def test_anthropic_thinking_is_told_apart_from_the_answer(
    anthropic: AnthropicProvider, httpserver: HTTPServer
) -> None:
    thinking = [
        block_delta({"type": "thinking_delta", "thinking": "Hmm."}),
        block_delta({"type": "signature_delta", "signature": "abc"}),
        text_delta("Hi"),
    ]
    serve(httpserver, "/v1/messages", [START, *thinking, *anthropic_end()])
    events = await events_of(anthropic)
    assert events[:2] == [ReasoningDelta("Hmm."), TextDelta("Hi")]
    assert events[-1] == Done("end_turn")


@pytest.mark.parametrize(
    ("error_type", "kind"),
    [("overloaded_error", "overloaded"), ("invalid_request_error", "bad_request")],
)
async def test_anthropic_error_event_mid_stream_keeps_the_text(
    error_type: str, kind: str, anthropic: AnthropicProvider, httpserver: HTTPServer
) -> None:
    error = {"type": "error", "error": {"type": error_type, "message": "the model is busy"}}
    serve(httpserver, "/v1/messages", [START, text_delta("Hel"), sse(error, "error")])
    events, failure = await failure_of(anthropic)
    assert texts(events) == "Hel"
    assert failure.kind == kind
    assert "the model is busy" in failure.message


ANTHROPIC_GARBAGE: dict[str, tuple[bytes, str]] = {
    "an array": (sse([1, 2], "content_block_delta"), "an array"),
    "type a number": (sse({"type": 3}, "content_block_delta"), "`type` is a number"),
    "delta not an object": (block_delta("Hi"), "`delta` is a string"),
    "text a number": (block_delta({"type": "text_delta", "text": 5}), "`text` is a number"),
    "stop_reason a number": (
        sse({"type": "message_delta", "delta": {"stop_reason": 1}}, "message_delta"),
        "`stop_reason` is a number",
    ),
    "output_tokens a string": (
        sse(
            {"type": "message_delta", "delta": {}, "usage": {"output_tokens": "2"}},
            "message_delta",
        ),
        "`output_tokens` is a string",
    ),
}


@pytest.mark.parametrize("bad", ANTHROPIC_GARBAGE.values(), ids=ANTHROPIC_GARBAGE.keys())
async def test_anthropic_malformed_event_is_protocol_and_closes(
    bad: tuple[bytes, str],
    anthropic: AnthropicProvider,
    httpserver: HTTPServer,
    release: threading.Event,
) -> None:
    event, words = bad
    more = Endless(text_delta(" la"), release, every_s=0.05)
    serve(httpserver, "/v1/messages", [START, text_delta("Hel"), event, more])
    events, failure = await failure_of(anthropic)
    await assert_unreadable(events, failure, words, httpserver.port)


@pytest.mark.parametrize(
    ("usage", "words"),
    [({"input_tokens": "5"}, "`input_tokens` is a string"), (None, "`usage` is null")],
)
async def test_anthropic_malformed_start_usage_is_protocol(
    usage: dict[str, Any] | None,
    words: str,
    anthropic: AnthropicProvider,
    httpserver: HTTPServer,
) -> None:
    start = sse({"type": "message_start", "message": {"usage": usage}}, "message_start")
    serve(httpserver, "/v1/messages", [start, text_delta("Hi"), *anthropic_end()])
    _, failure = await failure_of(anthropic)
    assert failure.kind == "protocol"
    assert words in failure.message
