"""What the Ollama and OpenAI adapters put on the wire and take from it, at the edges where
servers differ: counts a server leaves out, and how OpenAI names the output limit.

Served by pytest-httpserver in each API's own format; each request goes through the
registry and the fan-out, as a `-t` target would.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from providers.base import ChatRequest, GenParams, Message, Usage
from providers.registry import EndpointSpec, Registry, parse_target
from tests.fault_servers import WIRES, streamed
from tests.ollama_wire import go_json
from workbench.engine.fanout import fanout

ANSWER = ("The sky looks blue ", "because air scatters ", "short wavelengths most.")
PROMPT = [Message("user", "Why is the sky blue? Answer in one sentence, please.")]
COUNTS = {"prompt_eval_count": 26, "eval_count": 9}
# Estimated (tiktoken) from the prompt and the answer, for a count the server left out.
ESTIMATES = {"input": range(10, 41), "output": range(8, 21)}


@pytest.fixture(autouse=True)
def server_was_used_as_meant(httpserver: HTTPServer) -> Iterator[None]:
    """A request no handler expected (or a handler that raised) fails the test."""
    yield
    httpserver.check()


# --- Ollama: a count left out of the final chunk ----------------------------------


def ollama_chat(counts: dict[str, int]) -> Response:
    """`/api/chat` streamed as Ollama writes it, its final chunk holding only `counts`."""
    wire = WIRES["ollama"]
    final = json.loads(wire.end()[0])
    for key in COUNTS:
        final.pop(key)
    final |= counts
    return streamed([*map(wire.text, ANSWER), go_json(final) + b"\n"], wire.content_type)


async def ask_ollama(
    httpserver: HTTPServer, counts: dict[str, int], *, live_estimates: bool
) -> dict[str, Any]:
    httpserver.expect_request("/api/chat", method="POST").respond_with_handler(
        lambda _request: ollama_chat(counts)
    )
    registry = Registry(env={"OLLAMA_HOST": httpserver.url_for("").rstrip("/")})
    return await ask(registry, "ollama:llama3.2:1b", live_estimates=live_estimates)


async def ask(registry: Registry, target: str, *, live_estimates: bool) -> dict[str, Any]:
    try:
        (result,) = await fanout(
            registry, [parse_target(target)], PROMPT, live_estimates=live_estimates
        )
    finally:
        await registry.aclose()
    assert (result.status, result.error) == ("done", None)
    assert result.text == "".join(ANSWER)
    # As `ask --json` and the store show them.
    tokens = result.to_json()["tokens"]
    assert isinstance(tokens, dict)
    return tokens


@pytest.mark.parametrize("live_estimates", [True, False], ids=["live", "at-end"])
@pytest.mark.parametrize(
    "left_out",
    [("prompt_eval_count",), ("eval_count",), ("prompt_eval_count", "eval_count")],
    ids=["cached-prompt", "no-eval-count", "neither"],
)
async def test_only_the_count_ollama_left_out_is_estimated(
    httpserver: HTTPServer, left_out: tuple[str, ...], live_estimates: bool
) -> None:
    """Ollama omits `prompt_eval_count` when the prompt came from its cache (ollama#2068):
    that count is estimated, never an exact 0, and the one it sent is kept, exact."""
    counts = {key: value for key, value in COUNTS.items() if key not in left_out}
    tokens = await ask_ollama(httpserver, counts, live_estimates=live_estimates)
    assert tokens["exact"] is False  # not both: a cost priced from them is an estimate
    sent = {"input": counts.get("prompt_eval_count"), "output": counts.get("eval_count")}
    assert_counts(tokens, sent)


def assert_counts(tokens: dict[str, Any], sent: dict[str, int | None]) -> None:
    """Each count the server's where it `sent` one, and marked so; an estimate elsewhere."""
    for side, count in sent.items():
        if count is None:
            assert tokens[f"{side}_exact"] is False
            assert tokens[side] in ESTIMATES[side]
        else:
            assert (tokens[side], tokens[f"{side}_exact"]) == (count, True)


async def test_both_counts_from_ollama_are_exact(httpserver: HTTPServer) -> None:
    tokens = await ask_ollama(httpserver, COUNTS, live_estimates=True)
    assert tokens["exact"] is True
    assert (tokens["input"], tokens["output"]) == (26, 9)
    assert tokens["input_exact"] is tokens["output_exact"] is True


# --- OpenAI-compatible: usage that lacks one of its counts -------------------------


@pytest.mark.parametrize("live_estimates", [True, False], ids=["live", "at-end"])
@pytest.mark.parametrize(
    "usage",
    [{"completion_tokens": 9}, {"prompt_tokens": 26}],
    ids=["no-prompt-tokens", "no-completion-tokens"],
)
async def test_only_the_count_an_openai_compatible_server_left_out_is_estimated(
    httpserver: HTTPServer, usage: dict[str, int], live_estimates: bool
) -> None:
    wire = WIRES["openai"]
    finish, usage_chunk, done = wire.end()
    ending = [finish, with_usage(usage_chunk, usage), done]
    httpserver.expect_request(wire.path, method="POST").respond_with_response(
        wire.stream(*ANSWER, then=ending)
    )
    endpoint = EndpointSpec("local", "openai", httpserver.url_for("/v1"))
    registry = Registry(endpoints=[endpoint], env={})
    tokens = await ask(registry, "local:m", live_estimates=live_estimates)
    assert tokens["exact"] is False
    sent = {"input": usage.get("prompt_tokens"), "output": usage.get("completion_tokens")}
    assert_counts(tokens, sent)


def with_usage(event: bytes, usage: dict[str, int]) -> bytes:
    """The `data: ...` server-sent event with `usage` in place of the one it carried."""
    chunk = json.loads(event.decode().removeprefix("data: "))
    return f"data: {json.dumps({**chunk, 'usage': usage})}\n\n".encode()


# --- OpenAI: max_completion_tokens for the official API, max_tokens elsewhere --------


async def sent_body(httpserver: HTTPServer, registry: Registry, target: str) -> dict[str, Any]:
    """The JSON body `target`'s provider sent to the server for a 16-token limit."""
    bodies: list[dict[str, Any]] = []

    def answer(request: Request) -> Response:
        bodies.append(json.loads(request.get_data()))
        return WIRES["openai"].stream(*ANSWER)

    httpserver.expect_request("/v1/chat/completions", method="POST").respond_with_handler(answer)
    spec = parse_target(target)
    try:
        provider = registry.get(spec.provider)
        request = ChatRequest(spec.model, tuple(PROMPT), GenParams(max_tokens=16))
        events = [event async for event in provider.stream(request)]
    finally:
        await registry.aclose()
    assert any(isinstance(e, Usage) for e in events)  # the server understood the request
    (body,) = bodies
    return body


async def test_the_openai_provider_limits_output_with_max_completion_tokens(
    httpserver: HTTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """OpenAI's reasoning models (o1, o3, gpt-5) refuse `max_tokens` with a 400."""
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-dummy")
    monkeypatch.setenv("OPENAI_BASE_URL", httpserver.url_for("/v1"))
    registry = Registry()  # the built-in provider, configured from the environment
    body = await sent_body(httpserver, registry, "openai:o4-mini")
    assert body["max_completion_tokens"] == 16
    assert "max_tokens" not in body


async def test_a_named_endpoint_limits_output_with_max_tokens(httpserver: HTTPServer) -> None:
    """OpenAI-compatible servers (LM Studio, vLLM, older llama-server) know `max_tokens`."""
    endpoint = EndpointSpec("lmstudio", "openai", httpserver.url_for("/v1"))
    body = await sent_body(httpserver, Registry(endpoints=[endpoint], env={}), "lmstudio:qwen2.5")
    assert body["max_tokens"] == 16
    assert "max_completion_tokens" not in body


# --- Ollama: a 404 from a server that is not Ollama ------------------------------------


def file_not_found(_request: Request) -> Response:
    """What llama-server answers on a path it does not serve, `/api/chat` among them."""
    return Response("File Not Found", status=404, content_type="text/plain")


async def test_a_404_from_a_server_that_is_not_ollama_says_so(httpserver: HTTPServer) -> None:
    """`ollama pull` would not help: OLLAMA_HOST points at some other server."""
    httpserver.expect_request("/api/chat", method="POST").respond_with_handler(file_not_found)
    host = httpserver.url_for("").rstrip("/")
    registry = Registry(env={"OLLAMA_HOST": host})
    try:
        (result,) = await fanout(registry, [parse_target("ollama:llama3.2:1b")], PROMPT)
    finally:
        await registry.aclose()
    assert (result.status, result.error_kind) == ("failed", "not_found")
    message = result.error or ""
    assert f"the server at OLLAMA_HOST ({host}) does not look like Ollama" in message
    assert "ollama pull" not in message


async def test_ollamas_own_404_for_a_missing_model_still_says_pull_it(
    httpserver: HTTPServer,
) -> None:
    httpserver.expect_request("/api/chat", method="POST").respond_with_json(
        {"error": "model 'llama3.2:1b' not found"}, status=404
    )
    registry = Registry(env={"OLLAMA_HOST": httpserver.url_for("").rstrip("/")})
    try:
        (result,) = await fanout(registry, [parse_target("ollama:llama3.2:1b")], PROMPT)
    finally:
        await registry.aclose()
    assert result.error_kind == "not_found"
    assert "fetch it with `ollama pull llama3.2:1b`" in (result.error or "")
    assert "does not look like Ollama" not in (result.error or "")


async def test_a_named_endpoint_that_is_not_ollama_is_unavailable_and_says_so(
    httpserver: HTTPServer,
) -> None:
    httpserver.expect_request("/api/version", method="GET").respond_with_handler(file_not_found)
    url = httpserver.url_for("").rstrip("/")
    registry = Registry(endpoints=[EndpointSpec("box", "ollama", url)], env={})
    try:
        found = await registry.availability("box")
    finally:
        await registry.aclose()
    assert not found.available
    assert f"the server at {url} does not look like Ollama" in found.reason
    assert "check base_url in [endpoints.box]" in found.reason
