"""Fan-out wall time: one prompt to 4 targets on llama-server (4 slots) through the engine,
against the slowest of the same 4 requests sent alone with the raw openai SDK (goal ≤ 1.05×).

A second baseline, the 4 raw requests sent at once, separates what the server pays for
serving four streams together (its batching on this machine's cores) from what the engine
adds on top of that. The targets are one model under four settings (seeds), as a user
comparing sampling would set them; every request is the same on both sides.

Then the same measure against a server with capacity to spare: the loopback instrument
(`loopback_stream.py`, in a process of its own) streams a fixed text at a set rate to each
request, so four at once cost it no more than one. What is left over the slowest alone is
the client side's: the engine's fan-out, or the raw SDK's four streams.

    python bench/fanout_overhead.py [--rounds 5] [--max-tokens 64]
        [--instrument-rate 100] [--instrument-tokens 100]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.loopback_stream import start_in_own_process
from providers.base import GenParams, Message
from providers.registry import EndpointSpec, Registry, Target
from tests.llama_server import MODEL_ALIAS, LlamaServer
from workbench.engine import tokens
from workbench.engine.fanout import fanout
from workbench.engine.runner import EngineThread

PROMPT = "Write a long story about a lighthouse keeper and a storm."
SEEDS = (1, 2, 3, 4)
GOAL = 1.05


def targets(model: str, max_tokens: int) -> list[Target]:
    return [
        Target("server", model, GenParams(temperature=0.7, max_tokens=max_tokens, seed=s))
        for s in SEEDS
    ]


class RawSDK:
    def __init__(self, base_url: str, model: str, max_tokens: int) -> None:
        import openai

        self._client = openai.AsyncOpenAI(api_key="x", base_url=base_url)
        self._model = model
        self._max_tokens = max_tokens

    async def one(self, seed: int) -> float:
        started = time.perf_counter()
        stream = await self._client.chat.completions.create(
            model=self._model, messages=[{"role": "user", "content": PROMPT}],
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


def engine_fanout(engine: EngineThread, registry: Registry, model: str, max_tokens: int) -> float:
    started = time.perf_counter()
    results = engine.submit(
        fanout(registry, targets(model, max_tokens), [Message("user", PROMPT)])
    ).result()
    elapsed = time.perf_counter() - started
    failed = [r for r in results if r.status != "done"]
    if failed:
        raise RuntimeError(f"{failed[0].target}: {failed[0].error}")
    return elapsed


@dataclass(frozen=True)
class Medians:
    alone: list[float]
    together: list[float]
    ours: list[float]

    def report(self, title: str) -> None:
        def shown(values: list[float]) -> str:
            return ", ".join(f"{v:.2f}" for v in values)

        alone, together, ours = (
            statistics.median(v) for v in (self.alone, self.together, self.ours)
        )
        verdict = "PASS" if ours / alone <= GOAL else "MISS"
        print(title)
        print(f"raw SDK, slowest alone   {alone:6.3f} s  (all: {shown(self.alone)})")
        print(f"raw SDK, 4 at once       {together:6.3f} s  (all: {shown(self.together)})")
        print(f"engine fan-out           {ours:6.3f} s  (all: {shown(self.ours)})")
        print(f"ratio vs slowest alone   {ours / alone:6.2f}×  (goal ≤ {GOAL}×)  {verdict}")
        print(f"ratio vs 4 raw at once   {ours / together:6.2f}×  (the engine's own share)")
        print(f"raw 4 at once vs alone   {together / alone:6.2f}×  (what the server pays)")


def measure(base_url: str, model: str, rounds: int, max_tokens: int) -> Medians:
    """Alternates the three sides, round by round, so that load falls on each alike."""
    engine = EngineThread()
    engine.start()
    raw_loop = asyncio.new_event_loop()
    registry = Registry(endpoints=[EndpointSpec("server", "openai", base_url)], env={})
    raw = RawSDK(base_url, model, max_tokens)
    medians = Medians([], [], [])
    try:
        raw_loop.run_until_complete(raw.together())  # warm-up, both sides
        engine_fanout(engine, registry, model, max_tokens)
        for i in range(rounds):
            print(f"round {i + 1}/{rounds}", file=sys.stderr, flush=True)
            medians.alone.append(raw_loop.run_until_complete(raw.alone()))
            medians.together.append(raw_loop.run_until_complete(raw.together()))
            medians.ours.append(engine_fanout(engine, registry, model, max_tokens))
    finally:
        engine.submit(registry.aclose()).result(timeout=5)
        engine.stop()
        raw_loop.run_until_complete(raw.aclose())
        raw_loop.run_until_complete(raw_loop.shutdown_asyncgens())
        raw_loop.close()
    return medians


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--instrument-rate", type=float, default=100, help="tokens/s")
    parser.add_argument("--instrument-tokens", type=int, default=100)
    args = parser.parse_args()
    tokens.warm()
    server = LlamaServer(parallel=len(SEEDS))
    server.start()
    print("llama-server up; warming up", file=sys.stderr, flush=True)
    try:
        on_llama = measure(server.openai_url, MODEL_ALIAS, args.rounds, args.max_tokens)
    finally:
        server.stop()
    instrument, url = start_in_own_process(args.instrument_tokens, rate=args.instrument_rate)
    print("loopback instrument up", file=sys.stderr, flush=True)
    try:
        on_instrument = measure(url, "instrument", args.rounds, args.max_tokens)
    finally:
        instrument.terminate()
        instrument.wait()
    on_llama.report(
        f"4 targets on llama-server ({len(SEEDS)} slots), max_tokens {args.max_tokens}, "
        f"median of {args.rounds} rounds"
    )
    print()
    on_instrument.report(
        f"4 targets on the loopback instrument (a server with capacity to spare: "
        f"{args.instrument_tokens} tokens at {args.instrument_rate:g} tok/s to each request), "
        f"median of {args.rounds} rounds"
    )


if __name__ == "__main__":
    main()
