"""`workbench models` says what is available now: an endpoint whose models are written in
the config is still asked whether it answers, and one that does not is not available."""

from __future__ import annotations

import io
import json
from typing import Any

from pytest_httpserver import HTTPServer
from werkzeug import Response

from providers.registry import EndpointSpec, Registry
from workbench.commands.models import run_models


async def listing(registry: Registry, name: str) -> tuple[dict[str, Any], str]:
    """The endpoint's line of `models --json`, and the text `models` prints."""
    out = io.StringIO()
    await run_models(registry, as_json=True, out=out)
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    (found,) = [line for line in lines if line["provider"] == name]
    text = io.StringIO()
    await run_models(registry, out=text)
    return found, text.getvalue()


async def test_a_configured_endpoint_nobody_listens_on_is_not_available(
    closed_port: int,
) -> None:
    url = f"http://127.0.0.1:{closed_port}/v1"
    endpoint = EndpointSpec("fake", "openai", url, models=("smollm2",))
    registry = Registry(endpoints=[endpoint], env={"OLLAMA_HOST": "127.0.0.1:9"})
    found, text = await listing(registry, "fake")
    assert found["available"] is False
    assert "connection refused" in found["reason"]
    # Still listed, as configured, so the person sees what the config holds.
    assert [m["target"] for m in found["models"]] == ["fake:smollm2"]
    assert found["models_configured"] is True
    assert "· fake (openai, local) — connection refused" in text
    assert "fake:smollm2" in text


async def test_a_configured_endpoint_that_answers_is_available_with_its_models(
    httpserver: HTTPServer,
) -> None:
    """A server without `/v1/models` (some proxies) answers: the configured list stands."""
    httpserver.expect_request("/v1/models").respond_with_response(
        Response("File Not Found", status=404)
    )
    endpoint = EndpointSpec("fake", "openai", httpserver.url_for("/v1"), models=("smollm2",))
    registry = Registry(endpoints=[endpoint], env={"OLLAMA_HOST": "127.0.0.1:9"})
    found, _ = await listing(registry, "fake")
    assert (found["available"], found["error"]) == (True, None)
    assert [m["target"] for m in found["models"]] == ["fake:smollm2"]


async def test_a_configured_model_takes_the_window_the_server_lists(
    httpserver: HTTPServer,
) -> None:
    models = {"object": "list", "data": [
        {"id": "smollm2", "object": "model", "meta": {"n_ctx": 8192}},
        {"id": "other", "object": "model"},
    ]}  # fmt: skip
    httpserver.expect_request("/v1/models").respond_with_json(models)
    endpoint = EndpointSpec("fake", "openai", httpserver.url_for("/v1"), models=("smollm2",))
    registry = Registry(endpoints=[endpoint], env={"OLLAMA_HOST": "127.0.0.1:9"})
    found, _ = await listing(registry, "fake")
    assert found["available"] is True
    assert [(m["target"], m["context_length"]) for m in found["models"]] == [("fake:smollm2", 8192)]
