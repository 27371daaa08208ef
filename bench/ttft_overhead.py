"""TTFT through the workbench engine against the same request through the raw SDK.

openai and anthropic talk to a real llama-server (its `/v1/chat/completions` and
`/v1/messages`); ollama talks to the loopback instrument's Ollama NDJSON endpoint, which
answers at once, so that figure is all client-side overhead. Rounds alternate raw and
engine so both see the same server state (llama-server's prompt cache warm alike).

The engine path is the TUI's: `stream_target` on the engine thread, with live token
estimates; the clock starts before the coroutine is handed to that thread and stops when
the first text reaches the caller. The raw path: the SDK's streaming call on a loop of its
own, clock from the call to the first non-empty text chunk. Clients are made once, before
the rounds, on both sides. Goal: median(engine) − median(raw) ≤ +5 ms.

    python bench/ttft_overhead.py [--rounds 30]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.loopback_stream import LoopbackStream, fixed_tokens
from providers.base import GenParams, Message
from providers.registry import EndpointSpec, Registry, Target
from tests.llama_server import MODEL_ALIAS, LlamaServer
from workbench.engine import tokens
from workbench.engine.fanout import new_result, request_for, stream_target
from workbench.engine.result import TargetResult
from workbench.engine.runner import EngineThread

PROMPT = "Say hello in three words."
MAX_TOKENS = 8
GOAL_MS = 5.0
_T = TypeVar("_T")


async def once_more_if_stale(call: Callable[[], Awaitable[_T]], error: type[Exception]) -> _T:
    """llama-server drops idle keep-alive connections; like the providers' `send`, the raw
    side repeats a request that met one, at once (the SDKs' own retry would sleep first)."""
    try:
        return await call()
    except error:
        return await call()


def raw_openai(base_url: str) -> Callable[[], Awaitable[float]]:
    import openai

    client = openai.AsyncOpenAI(api_key="x", base_url=base_url, max_retries=0)

    async def once() -> float:
        started = time.perf_counter()
        stream = await once_more_if_stale(lambda: client.chat.completions.create(
            model=MODEL_ALIAS, messages=[{"role": "user", "content": PROMPT}],
            max_tokens=MAX_TOKENS, temperature=0, stream=True,
            stream_options={"include_usage": True},
        ), openai.APIConnectionError)  # fmt: skip
        first = None
        async for chunk in stream:
            if first is None and chunk.choices and chunk.choices[0].delta.content:
                first = time.perf_counter() - started
        assert first is not None
        return first

    return once


def raw_anthropic(base_url: str) -> Callable[[], Awaitable[float]]:
    import anthropic

    client = anthropic.AsyncAnthropic(api_key="x", base_url=base_url, max_retries=0)

    async def once() -> float:
        started = time.perf_counter()
        stream = await once_more_if_stale(lambda: client.messages.create(
            model=MODEL_ALIAS, messages=[{"role": "user", "content": PROMPT}],
            max_tokens=MAX_TOKENS, stream=True, extra_body={"temperature": 0},
        ), anthropic.APIConnectionError)  # fmt: skip
        first = None
        async for event in stream:
            if (
                first is None
                and event.type == "content_block_delta"
                and event.delta.type == "text_delta"
                and event.delta.text
            ):
                first = time.perf_counter() - started
        assert first is not None
        return first

    return once


def raw_ollama(host: str) -> Callable[[], Awaitable[float]]:
    import ollama

    client = ollama.AsyncClient(host=host)

    async def once() -> float:
        started = time.perf_counter()
        parts = await client.chat(
            model="m0", messages=[{"role": "user", "content": PROMPT}], stream=True,
            options={"temperature": 0, "num_predict": MAX_TOKENS},
        )  # fmt: skip
        first = None
        async for part in parts:
            if first is None and part.message.content:
                first = time.perf_counter() - started
        assert first is not None
        return first

    return once


def engine_once(engine: EngineThread, registry: Registry, target: Target) -> float:
    first: list[float] = []

    def on_update(result: TargetResult) -> None:
        if not first and result.ttft_s is not None:
            first.append(time.perf_counter())

    async def go() -> TargetResult:
        provider = registry.get(target.provider)
        request = request_for(target, [Message("user", PROMPT)])
        result = new_result(target, registry)
        return await stream_target(target, provider, request, result, on_update=on_update)

    started = time.perf_counter()
    result = engine.submit(go()).result()
    if result.status != "done" or not first:
        raise RuntimeError(f"{target.spec}: {result.status} {result.error}")
    return first[0] - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args()
    server = LlamaServer(parallel=1)
    server.start()
    instrument = LoopbackStream(fixed_tokens(MAX_TOKENS), rate=0, mark_end=False)
    instrument.start()
    engine = EngineThread()
    engine.start()
    raw_loop = asyncio.new_event_loop()
    params = GenParams(temperature=0, max_tokens=MAX_TOKENS)
    registry = Registry(
        endpoints=[
            EndpointSpec("lsopenai", "openai", server.openai_url),
            EndpointSpec("lsanthropic", "anthropic", server.base_url),
            EndpointSpec("loopollama", "ollama", instrument.base_url),
        ],
        env={},
    )
    cases = [
        ("openai", Target("lsopenai", MODEL_ALIAS, params), raw_openai(server.openai_url)),
        ("anthropic", Target("lsanthropic", MODEL_ALIAS, params), raw_anthropic(server.base_url)),
        ("ollama", Target("loopollama", "m0", params), raw_ollama(instrument.base_url)),
    ]
    tokens.warm()  # the TUI loads the encodings at start-up, before anyone asks anything
    rows = []
    try:
        for name, target, raw in cases:
            for _ in range(3):  # warm-up: connections, SDK imports, server caches
                raw_loop.run_until_complete(raw())
                engine_once(engine, registry, target)
            raws, ours = [], []
            for i in range(args.rounds):
                if i % 2:
                    ours.append(engine_once(engine, registry, target))
                    raws.append(raw_loop.run_until_complete(raw()))
                else:
                    raws.append(raw_loop.run_until_complete(raw()))
                    ours.append(engine_once(engine, registry, target))
            rows.append((name, statistics.median(raws), statistics.median(ours)))
    finally:
        engine.submit(registry.aclose()).result(timeout=5)
        engine.stop()
        raw_loop.run_until_complete(raw_loop.shutdown_asyncgens())
        raw_loop.close()
        instrument.stop()
        server.stop()

    print(f"TTFT, median of {args.rounds} alternated rounds, max_tokens {MAX_TOKENS}")
    header = f"{'protocol':10} {'raw SDK':>10} {'engine':>10} {'overhead':>10}"
    print(f"{header}  goal ≤ +{GOAL_MS:g} ms")
    for name, raw_s, ours_s in rows:
        delta_ms = (ours_s - raw_s) * 1000
        verdict = "PASS" if delta_ms <= GOAL_MS else "MISS"
        print(f"{name:10} {raw_s * 1000:8.2f}ms {ours_s * 1000:8.2f}ms "
              f"{delta_ms:+8.2f}ms  {verdict}")  # fmt: skip
    print("(openai, anthropic: llama-server with SmolLM2; ollama: the loopback instrument)")


if __name__ == "__main__":
    main()
