"""Each target's clock covers its own request alone: no target pays for another's set-up.

A provider's set-up is an SDK's import, and it holds the event loop. Run in a fresh
interpreter, where anthropic has not been imported yet, a fan-out to an OpenAI endpoint and
an Anthropic one used to start the first clock, then import anthropic (0.5–3 s) while it ran.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from providers.base import Message
from providers.registry import EndpointSpec, Registry, parse_target
from tests.fault_servers import WIRES
from workbench.engine.fanout import fanout

ROOT = Path(__file__).resolve().parent.parent
FANOUT = """
import asyncio, json, sys, time
from providers.base import Message
from providers.registry import EndpointSpec, Registry, parse_target
from workbench.engine.fanout import fanout
assert "anthropic" not in sys.modules
registry = Registry(endpoints=[EndpointSpec("o", "openai", sys.argv[1] + "/v1"),
                               EndpointSpec("a", "anthropic", sys.argv[1])], env={})
targets = [parse_target("o:m"), parse_target("a:m")]
results = asyncio.run(fanout(registry, targets, [Message("user", "hi")]))
print(json.dumps([[r.status, r.started_at] for r in results]))
"""


def test_no_target_s_clock_runs_while_another_provider_is_set_up(httpserver: HTTPServer) -> None:
    for kind in ("openai", "anthropic"):
        wire = WIRES[kind]
        httpserver.expect_request(wire.path).respond_with_handler(
            lambda _request, wire=wire: wire.stream("hello")
        )
    took = subprocess.run(
        [sys.executable, "-c", "import time; t = time.perf_counter(); import anthropic; "
         "print(time.perf_counter() - t)"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    import_s = float(took.stdout)
    ran = subprocess.run(
        [sys.executable, "-c", FANOUT, httpserver.url_for("").rstrip("/")],
        capture_output=True, text=True, cwd=ROOT, check=True,
    )  # fmt: skip
    (first, first_at), (second, second_at) = json.loads(ran.stdout)
    assert (first, second) == ("done", "done")
    # Both clocks start once both providers are set up: together, not an import apart.
    assert abs(second_at - first_at) < import_s / 2, (second_at - first_at, import_s)


@pytest.mark.parametrize("counts", [True, False], ids=["with counts", "without counts"])
async def test_a_load_ollama_reports_at_the_end_is_inside_its_times(
    httpserver: HTTPServer, counts: bool
) -> None:
    """Ollama's load_duration comes with its last line, after the answer: the load was
    inside the TTFT and E2E, and taking it off them (as an embedded model's load, which
    comes before, is) made a 3 s request read 0.5 s when its answer was empty. Without the
    counts (a cached prompt), the last line is still known for the end by its timings."""
    wire = WIRES["ollama"]
    last = json.loads(wire.end()[0])
    last["load_duration"] = 2_000_000_000  # 2 s, longer than the whole request here
    if not counts:
        del last["prompt_eval_count"], last["eval_count"]

    def slow(_request: Request) -> Response:
        time.sleep(0.3)
        return Response(json.dumps(last) + "\n", content_type=wire.content_type)

    httpserver.expect_request(wire.path).respond_with_handler(slow)
    registry = Registry(endpoints=[EndpointSpec("l", "ollama", httpserver.url_for(""))], env={})
    try:
        (result,) = await fanout(registry, [parse_target("l:m")], [Message("user", "hi")])
    finally:
        await registry.aclose()
    assert result.status == "done" and result.load_s == 2.0 and not result.load_apart
    assert result.e2e_s is not None and result.e2e_s >= 0.3


async def test_a_target_waiting_for_the_model_another_has_is_timed_from_when_it_gets_it() -> None:
    """Two targets on one embedded model: the second waits for the first's answer (it
    says so), and its TTFT and E2E start when the model is its own."""
    registry = Registry(env={})
    targets = [parse_target(f"embedded:smollm2@max_tokens=8,label={n}") for n in "ab"]
    try:
        first, second = await fanout(registry, targets, [Message("user", "Say hi.")])
    finally:
        await registry.aclose()
    assert (first.status, second.status) == ("done", "done")
    assert second.queue_s is not None and second.queue_s > 0
    assert any(note.startswith("queued") for note in second.notes)
    assert first.started_at is not None and first.e2e_s is not None
    assert second.started_at is not None
    assert second.started_at >= first.started_at + first.e2e_s - 0.05
