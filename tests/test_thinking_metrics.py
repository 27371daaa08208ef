"""A thinking model's rate is timed from its first token, reasoning included.

Providers count reasoning among the output tokens (OpenAI's completion_tokens, Anthropic's
output_tokens, Ollama's eval_count), but TTFT is the answer's first token. Timed from TTFT,
the reasoning tokens would count as made in no time: a model that thought for half its
answer showed twice its rate. The server here speaks OpenAI's streaming wire
(`tests/fault_servers.OpenAIWire`) as a thinking model on llama-server or vLLM does —
`reasoning_content` deltas, then the answer — at a known pace; no model here reasons.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from providers.base import Message
from providers.registry import EndpointSpec, Registry, parse_target
from tests.fault_servers import OpenAIWire
from workbench.engine import tokens
from workbench.engine.fanout import fanout
from workbench.engine.result import TargetResult
from workbench.history import load_comparison
from workbench.store import Store

WIRE = OpenAIWire()
THOUGHT = ["Let", " me", " think", " about", " the", " sea", " first", " and", " then", " say"]
ANSWER = ["The", " sea", " is", " wide", " and", " deep", " and", " old", " and", " blue"]
PACE_S = 0.02
"""At least this long between chunks: `time.sleep` never returns early."""


def thinking_server(httpserver: HTTPServer, *, usage: bool) -> None:
    def chat(request: Request) -> Response:
        def body() -> Iterator[bytes]:
            yield from WIRE.start()
            for piece in THOUGHT:
                yield WIRE._chunk([{"index": 0, "delta": {"reasoning_content": piece}}])
                time.sleep(PACE_S)
            for piece in ANSWER:
                yield WIRE.text(piece)
                time.sleep(PACE_S)
            yield WIRE._chunk([{"index": 0, "delta": {}, "finish_reason": "stop"}])
            if usage:
                count = {"prompt_tokens": 9, "completion_tokens": 20, "total_tokens": 29}
                yield WIRE._chunk([], usage=count)
            yield b"data: [DONE]\n\n"

        return Response(body(), content_type=WIRE.content_type)

    httpserver.expect_request(WIRE.path, method="POST").respond_with_handler(chat)


async def ask(httpserver: HTTPServer) -> TargetResult:
    registry = Registry(endpoints=[EndpointSpec("local", "openai", httpserver.url_for("/v1"))])
    try:
        (result,) = await fanout(
            registry, [parse_target("local:thinker")], [Message("user", "The sea?")]
        )
    finally:
        await registry.aclose()
    assert result.status == "done", result.error
    return result


async def test_a_thinking_model_decodes_from_its_first_reasoning_token(
    httpserver: HTTPServer,
) -> None:
    thinking_server(httpserver, usage=True)
    result = await ask(httpserver)
    assert result.output_tokens == 20 and result.output_exact
    assert result.first_token_s is not None and result.ttft_s is not None
    assert result.first_token_s < result.ttft_s
    # 19 tokens after the first, each at least PACE_S later: no faster than 1/PACE_S. Timed
    # from the answer's first token, the rate came out about twice that.
    assert result.decode_tps is not None and result.decode_tps <= 1 / PACE_S
    assert result.e2e_s is not None and result.tpot_s is not None
    assert result.tpot_s * 19 == pytest.approx(result.e2e_s - result.first_token_s)


async def test_an_estimated_count_includes_the_reasoning(httpserver: HTTPServer) -> None:
    """With no usage from the server, the estimate counts what the provider would have."""
    thinking_server(httpserver, usage=False)
    result = await ask(httpserver)
    assert not result.output_exact
    estimator = tokens.estimator_for("local", "thinker")
    said = sum(estimator.count(piece) for piece in THOUGHT + ANSWER)
    assert result.output_tokens == said > estimator.count(result.text)


async def test_the_first_token_is_kept_in_history(httpserver: HTTPServer, tmp_path: Path) -> None:
    thinking_server(httpserver, usage=True)
    result = await ask(httpserver)
    store = Store(tmp_path / "workbench.db")
    store.add_response(result, [Message("user", "The sea?")], origin="ask", batch="b")
    stored = load_comparison(store, "b")
    store.close()
    assert stored is not None
    (pane,) = stored.panes
    assert pane.result.first_token_s == result.first_token_s
    assert pane.result.decode_tps == result.decode_tps
