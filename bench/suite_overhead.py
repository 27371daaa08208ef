"""Suite runner overhead: a 24-case suite against llama-server (4 slots) at concurrency 4,
against the same 24 requests sent straight through the openai SDK at concurrency 4.

Prints both wall times, their ratio (goal ≤ 1.10×) and the runner's peak RSS (goal ≤ 120 MB).
A benchmark, not a test: nothing here is asserted.

    python bench/suite_overhead.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.llama_server import MODEL_ALIAS, LlamaServer

CASES = 24
MAX_TOKENS = 32
CONCURRENCY = 4
TOPICS = ["bicycles", "volcanoes", "bread", "tides", "owls", "glass", "rain", "chess",
          "copper", "tea", "bees", "maps"]  # fmt: skip


def prompts() -> list[str]:
    return [f"In one sentence, tell me a fact about {TOPICS[i % len(TOPICS)]} (#{i})."
            for i in range(CASES)]  # fmt: skip


def write_suite(directory: Path) -> Path:
    lines = ["name: overhead", f"targets: [llamacpp:{MODEL_ALIAS}]",
             f"params: {{temperature: 0, max_tokens: {MAX_TOKENS}}}", "cases:"]  # fmt: skip
    for i, prompt in enumerate(prompts()):
        lines += [f"  - id: case-{i}", f"    prompt: {prompt!r}", "    expect: [{min_length: 1}]"]
    path = directory / "overhead.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


async def raw_sdk(base_url: str) -> float:
    import openai

    client = openai.AsyncOpenAI(api_key="x", base_url=base_url)  # SDK defaults, retries on
    gate = asyncio.Semaphore(CONCURRENCY)

    async def one(prompt: str) -> None:
        async with gate:
            stream = await client.chat.completions.create(
                model=MODEL_ALIAS, messages=[{"role": "user", "content": prompt}],
                max_tokens=MAX_TOKENS, temperature=0, stream=True,
                stream_options={"include_usage": True},
            )  # fmt: skip
            async for _ in stream:
                pass

    started = time.perf_counter()
    await asyncio.gather(*(one(p) for p in prompts()))
    elapsed = time.perf_counter() - started
    await client.close()
    return elapsed


async def runner_in_process(suite_path: Path, base_url: str, home: Path) -> float:
    """The suite runner itself, store writes and assertions included, without process start."""
    import uuid

    from providers.registry import EndpointSpec, Registry
    from workbench.store import Store
    from workbench.suites.loader import load_suite
    from workbench.suites.runner import plan, run_jobs, suite_targets
    from workbench.suites.runs import RunInfo, start_run

    suite = load_suite(suite_path)
    registry = Registry(endpoints=[EndpointSpec("llamacpp", "openai", base_url)], env={})
    store = Store(home / "bench.db")
    run_id = uuid.uuid4().hex
    start_run(store, RunInfo(run_id, time.time(), None, suite.name, str(suite_path), [], {}))
    jobs = plan(suite, suite_targets(suite, None), None)
    started = time.perf_counter()
    await run_jobs(suite, jobs, registry, store, run_id, concurrency=CONCURRENCY)
    elapsed = time.perf_counter() - started
    await registry.aclose()
    store.close()
    return elapsed


def workbench_run(suite: Path, env: dict[str, str]) -> tuple[float, int]:
    """Wall time and peak RSS (bytes) of `workbench run` in its own process."""
    command = [sys.executable, "-m", "workbench.cli", "run", str(suite),
               "--concurrency", str(CONCURRENCY)]  # fmt: skip
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    started = time.perf_counter()
    subprocess.run(command, env=env, check=False, stdout=subprocess.DEVNULL)
    elapsed = time.perf_counter() - started
    peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return elapsed, max(peak_kb, before) * 1024


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    server = LlamaServer(parallel=CONCURRENCY)
    server.start()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            home = Path(tmp)
            config = home / "config.toml"
            config.write_text(f'[endpoints.llamacpp]\nkind = "openai"\n'
                              f'base_url = "{server.openai_url}"\n')  # fmt: skip
            env = os.environ | {"WORKBENCH_HOME": str(home / "data"),
                                "WORKBENCH_CONFIG": str(config)}  # fmt: skip
            suite = write_suite(home)
            asyncio.run(raw_sdk(server.openai_url))  # warm the server's caches alike
            raw, ours, whole, peaks = [], [], [], []
            for _ in range(args.rounds):
                raw.append(asyncio.run(raw_sdk(server.openai_url)))
                ours.append(asyncio.run(runner_in_process(suite, server.openai_url, home)))
                elapsed, peak = workbench_run(suite, env)
                whole.append(elapsed)
                peaks.append(peak)
    finally:
        server.stop()
    best_raw, best_ours = min(raw), min(ours)

    def shown(values: list[float]) -> str:
        return ", ".join(f"{v:.2f}" for v in values)

    print(f"{CASES} cases, concurrency {CONCURRENCY}, max_tokens {MAX_TOKENS}, "
          f"llama-server {CONCURRENCY} slots, {args.rounds} rounds (best of)")  # fmt: skip
    print(f"raw openai SDK      {best_raw:6.2f} s   (all: {shown(raw)})")
    print(f"suite runner        {best_ours:6.2f} s   (all: {shown(ours)})")
    print(f"ratio               {best_ours / best_raw:6.2f}×  (goal ≤ 1.10×)")
    print(f"workbench run       {min(whole):6.2f} s   (all: {shown(whole)}) — the whole command:"
          " start-up, suite load, store, report")  # fmt: skip
    print(f"peak RSS            {max(peaks) / 2**20:6.0f} MB (goal ≤ 120 MB), workbench run")


if __name__ == "__main__":
    main()
