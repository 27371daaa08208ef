"""A thinking model may spend a summary's whole room on its reasoning and write nothing.

The server here speaks OpenAI's streaming wire (`tests/fault_servers.OpenAIWire`) the way a
thinking model on llama-server or vLLM does: `reasoning_content` deltas, one per token, up
to the request's max_tokens, then the answer if there is room left. No model here
reasons (SmolLM2 does not), so this is the wire fixture for that budget behaviour, like
the fault tests' servers.
"""

from __future__ import annotations

import json

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from providers.base import Message, ProviderError
from providers.registry import EndpointSpec, Registry, parse_target
from tests.fault_servers import OpenAIWire
from workbench.engine import context
from workbench.engine.conversation import Conversation

WINDOW = 4096
SUMMARY = "The vault in Lisbon opens with the word PELICAN."
WIRE = OpenAIWire()


def thinker(httpserver: HTTPServer, thinks: int) -> list[int]:
    """Serve a model that reasons for `thinks` tokens before it answers; the max_tokens of
    each chat request, in order, is what the list returned collects."""
    asked: list[int] = []

    def chat(request: Request) -> Response:
        room = json.loads(request.data)["max_tokens"]
        asked.append(room)
        thought = min(thinks, room)
        chunks = [*WIRE.start()]
        for _ in range(thought):
            chunks.append(WIRE._chunk([{"index": 0, "delta": {"reasoning_content": "hmm "}}]))
        if thought < room:
            chunks.append(WIRE.text(SUMMARY))
        reason = "stop" if thought < room else "length"
        chunks.append(WIRE._chunk([{"index": 0, "delta": {}, "finish_reason": reason}]))
        chunks.append(b"data: [DONE]\n\n")
        return Response(chunks, content_type=WIRE.content_type)

    listed = {"object": "list", "data": [{"id": "thinker", "context_length": WINDOW}]}
    httpserver.expect_request("/v1/models").respond_with_json(listed)
    httpserver.expect_request(WIRE.path, method="POST").respond_with_handler(chat)
    return asked


def conversation() -> list[Message]:
    c = Conversation()
    c.ask("Remember: the vault in Lisbon opens with the word PELICAN.")
    c.answered("Noted.")
    return c.messages()


async def summarize(httpserver: HTTPServer) -> str:
    registry = Registry(
        endpoints=[EndpointSpec("local", "openai", httpserver.url_for("/v1"))], env={}
    )
    try:
        return await context.summarize(registry, parse_target("local:thinker"), conversation())
    finally:
        await registry.aclose()


async def test_a_summary_thought_out_is_asked_again_with_the_room_the_window_leaves(
    httpserver: HTTPServer,
) -> None:
    asked = thinker(httpserver, thinks=context.SUMMARY_TOKENS + 100)
    assert await summarize(httpserver) == SUMMARY
    first, second = asked
    assert first == context.SUMMARY_TOKENS
    # All the window leaves past the request: more than it thought, and short of the window.
    assert context.SUMMARY_TOKENS + 100 < second < WINDOW


async def test_a_model_that_thinks_past_the_window_says_so_and_what_to_do(
    httpserver: HTTPServer,
) -> None:
    asked = thinker(httpserver, thinks=10 * WINDOW)
    with pytest.raises(ProviderError) as caught:
        await summarize(httpserver)
    assert len(asked) == 2  # asked once more, not again and again
    said = str(caught.value)
    assert f"all {asked[1]:,} tokens it was given thinking" in said
    assert "drop the earlier turns" in said


async def test_a_model_that_answers_within_the_room_is_asked_once(
    httpserver: HTTPServer,
) -> None:
    asked = thinker(httpserver, thinks=10)
    assert await summarize(httpserver) == SUMMARY
    assert asked == [context.SUMMARY_TOKENS]
