"""Fan-out wall time: one prompt to 4 targets on llama-server (4 slots) through the engine,
against the slowest of the same 4 requests sent alone with the raw openai SDK (goal ≤ 1.05×).

A second baseline, the 4 raw requests sent at once, separates what the server pays for
serving four streams together (its batching on this machine's cores) from what the engine
adds on top of that. The targets are one model under four settings (seeds), as a user
comparing sampling would set them; every request is the same on both sides.

    python bench/fanout_overhead.py [--rounds 5] [--max-tokens 64]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from providers.base import GenParams, Message
from providers.registry import EndpointSpec, Registry, Target
from tests.llama_server import MODEL_ALIAS, LlamaServer
from workbench.engine import tokens
from workbench.engine.fanout import fanout
from workbench.engine.runner import EngineThread

PROMPT = "Write a long story about a lighthouse keeper and a storm."
SEEDS = (1, 2, 3, 4)
GOAL = 1.05


def targets(max_tokens: int) -> list[Target]:
    return [
        Target("llamacpp", MODEL_ALIAS, GenParams(temperature=0.7, max_tokens=max_tokens, seed=s))
        for s in SEEDS
    ]


class RawSDK:
    def __init__(self, base_url: str, max_tokens: int) -> None:
        import openai

        self._client = openai.AsyncOpenAI(api_key="x", base_url=base_url)
        self._max_tokens = max_tokens

    async def one(self, seed: int) -> float:
        started = time.perf_counter()
        stream = await self._client.chat.completions.create(
            model=MODEL_ALIAS, messages=[{"role": "user", "content": PROMPT}],
            max_tokens=self._max_tokens, temperature=0.7, seed=seed, stream=True,
            stream_options={"include_usage": True},
        )  # fmt: skip
        async for _ in stream:
            pass
        return time.perf_counter() - started

    async def aclose(self) -> None:
        await self._client.close()

    async def alone(self) -> float:
        """Each request on its own, one after another: the slowest of them."""
        return max([await self.one(seed) for seed in SEEDS])

    async def together(self) -> float:
        started = time.perf_counter()
        await asyncio.gather(*(self.one(seed) for seed in SEEDS))
        return time.perf_counter() - started


def engine_fanout(engine: EngineThread, registry: Registry, max_tokens: int) -> float:
    started = time.perf_counter()
    results = engine.submit(
        fanout(registry, targets(max_tokens), [Message("user", PROMPT)])
    ).result()
    elapsed = time.perf_counter() - started
    failed = [r for r in results if r.status != "done"]
    if failed:
        raise RuntimeError(f"{failed[0].target}: {failed[0].error}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--max-tokens", type=int, default=64)
    args = parser.parse_args()
    server = LlamaServer(parallel=len(SEEDS))
    server.start()
    engine = EngineThread()
    engine.start()
    raw_loop = asyncio.new_event_loop()
    registry = Registry(endpoints=[EndpointSpec("llamacpp", "openai", server.openai_url)], env={})
    tokens.warm()
    print("llama-server up; warming up", file=sys.stderr, flush=True)
    alone, together, ours = [], [], []
    raw = RawSDK(server.openai_url, args.max_tokens)
    try:
        raw_loop.run_until_complete(raw.together())  # warm-up, both sides
        engine_fanout(engine, registry, args.max_tokens)
        for i in range(args.rounds):
            print(f"round {i + 1}/{args.rounds}", file=sys.stderr, flush=True)
            alone.append(raw_loop.run_until_complete(raw.alone()))
            together.append(raw_loop.run_until_complete(raw.together()))
            ours.append(engine_fanout(engine, registry, args.max_tokens))
    finally:
        engine.submit(registry.aclose()).result(timeout=5)
        engine.stop()
        raw_loop.run_until_complete(raw.aclose())
        raw_loop.run_until_complete(raw_loop.shutdown_asyncgens())
        raw_loop.close()
        server.stop()

    def shown(values: list[float]) -> str:
        return ", ".join(f"{v:.2f}" for v in values)

    m_alone, m_together, m_ours = (statistics.median(v) for v in (alone, together, ours))
    verdict = "PASS" if m_ours / m_alone <= GOAL else "MISS"
    print(f"4 targets on llama-server ({len(SEEDS)} slots), max_tokens {args.max_tokens}, "
          f"median of {args.rounds} rounds")  # fmt: skip
    print(f"raw SDK, slowest alone   {m_alone:6.3f} s  (all: {shown(alone)})")
    print(f"raw SDK, 4 at once       {m_together:6.3f} s  (all: {shown(together)})")
    print(f"engine fan-out           {m_ours:6.3f} s  (all: {shown(ours)})")
    print(f"ratio vs slowest alone   {m_ours / m_alone:6.2f}×  (goal ≤ {GOAL}×)  {verdict}")
    print(f"ratio vs 4 raw at once   {m_ours / m_together:6.2f}×  (the engine's own share)")


if __name__ == "__main__":
    main()
