"""Embedded decode tok/s through the engine against raw llama-cpp-python
`create_chat_completion(stream=True)` on the same model, same settings (goal ≥ 0.97×).

Both load SmolLM2 the same way (n_ctx 8192, one thread per core), answer the same prompt
greedily, and are timed the same way: decode tok/s = (tokens − 1) / (E2E − TTFT), DESIGN §4.
The engine side is the TUI's path: `stream_target` on the engine thread, live estimates on.
Rounds alternate so heat and load from elsewhere fall on both.

    python bench/embedded_decode.py [--rounds 5] [--max-tokens 256]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from providers.base import GenParams, Message
from providers.embedded import EmbeddedProvider, smollm2_path
from providers.registry import Registry, Target
from workbench.engine import tokens
from workbench.engine.fanout import new_result, request_for, stream_target
from workbench.engine.runner import EngineThread

PROMPT = "Write a long story about a lighthouse keeper and a storm."
GOAL = 0.97


def raw_decode(llama: object, max_tokens: int) -> tuple[float, int]:
    first: float | None = None
    count = 0
    for chunk in llama.create_chat_completion(  # type: ignore[attr-defined]
        messages=[{"role": "user", "content": PROMPT}],
        max_tokens=max_tokens, temperature=0, stream=True,
    ):  # fmt: skip
        if chunk["choices"][0]["delta"].get("content"):
            count += 1
            if first is None:
                first = time.perf_counter()
    ended = time.perf_counter()
    assert first is not None and count > 1
    return (count - 1) / (ended - first), count


def engine_decode(
    engine: EngineThread, registry: Registry, provider: EmbeddedProvider, max_tokens: int
) -> tuple[float, int]:
    target = Target("embedded", "smollm2", GenParams(temperature=0, max_tokens=max_tokens))
    request = request_for(target, [Message("user", PROMPT)])
    result = engine.submit(
        stream_target(target, provider, request, new_result(target, registry))
    ).result()
    if result.status != "done" or result.decode_tps is None:
        raise RuntimeError(f"embedded: {result.status} {result.error}")
    return result.decode_tps, result.output_tokens


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--max-tokens", type=int, default=256)
    parser.add_argument("--threads", type=int, help="llama.cpp threads (default: half the cores)")
    args = parser.parse_args()
    from llama_cpp import Llama

    threads = args.threads or max(1, (os.cpu_count() or 1) // 2)  # both sides' default
    llama = Llama(model_path=str(smollm2_path()), n_ctx=8192, n_threads=threads, verbose=False)
    registry = Registry(env={}, embedded_threads=threads)
    provider = registry.get("embedded")
    assert isinstance(provider, EmbeddedProvider)
    engine = EngineThread()
    engine.start()
    tokens.warm()
    raw: list[tuple[float, int]] = []
    ours: list[tuple[float, int]] = []
    try:
        raw_decode(llama, 16)  # warm-up: both models loaded and run once
        engine_decode(engine, registry, provider, 16)
        for i in range(args.rounds):
            if i % 2:
                ours.append(engine_decode(engine, registry, provider, args.max_tokens))
                raw.append(raw_decode(llama, args.max_tokens))
            else:
                raw.append(raw_decode(llama, args.max_tokens))
                ours.append(engine_decode(engine, registry, provider, args.max_tokens))
    finally:
        engine.stop()

    def shown(values: list[tuple[float, int]]) -> str:
        return ", ".join(f"{rate:.0f}" for rate, _ in values)

    m_raw = statistics.median(rate for rate, _ in raw)
    m_ours = statistics.median(rate for rate, _ in ours)
    verdict = "PASS" if m_ours / m_raw >= GOAL else "MISS"
    print(f"embedded SmolLM2-135M, {threads} threads, max_tokens {args.max_tokens}, "
          f"median of {args.rounds} alternated rounds")  # fmt: skip
    print(f"raw llama-cpp-python   {m_raw:7.1f} tok/s  (all: {shown(raw)}; "
          f"tokens {raw[0][1]})")  # fmt: skip
    print(f"engine                 {m_ours:7.1f} tok/s  (all: {shown(ours)}; "
          f"tokens {ours[0][1]})")  # fmt: skip
    print(f"ratio                  {m_ours / m_raw:7.3f}×  (goal ≥ {GOAL}×)  {verdict}")


if __name__ == "__main__":
    main()
