"""Memory of the TUI over a long chat: 4 API panes answered by the loopback instrument
(bench/loopback_stream.py, in a process of its own so its bookkeeping is not counted),
RSS sampled after every turn.

Goals: ≤ 150 MB RSS after 50 turns, and flat over 500 turns: growth per turn no more
than the text the app keeps on purpose (each pane's conversation, its transcript and
the Markdown source it shows) times `KEEP_FACTOR`, the copies that design implies.

The app runs headless in this process (Textual's `run_test`), so the figure is the
workbench's own memory plus this small driver's, with no terminal attached.

    python bench/tui_memory.py [--turns 500] [--tokens 200]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.loopback_stream import start_in_own_process

PANES = 4
RSS_GOAL = 150 * 2**20
KEEP_FACTOR = 4.0
"""Growth per turn allowed per byte of text kept: the conversation, the transcript, the
Markdown widget's source, and the rendered blocks' own text."""


def rss() -> int:
    import psutil

    gc.collect()  # cyclic garbage waiting for a collection is not memory the app keeps
    return int(psutil.Process().memory_info().rss)


def text_kept(app: object) -> int:
    from workbench.tui.app import WorkbenchApp

    assert isinstance(app, WorkbenchApp)
    total = 0
    for pane in app.panes:
        total += sum(len(m.content) for m in pane.conversation.messages())
        total += len(pane.transcript)
    return total


def slope(xs: list[float], ys: list[float]) -> float:
    mean_x, mean_y = sum(xs) / len(xs), sum(ys) / len(ys)
    num = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True))
    den = sum((x - mean_x) ** 2 for x in xs)
    return num / den if den else 0.0


async def drive(url: str, turns: int, home: Path) -> list[tuple[int, float, int, float]]:
    """(turn, RSS, text kept, seconds) after each turn."""
    from workbench.config import Endpoint, Settings
    from workbench.tui.app import make_app
    from workbench.tui.widgets.prompt import PromptBox

    endpoints = {f"api{i}": Endpoint(kind="openai", base_url=url) for i in range(PANES)}
    settings = Settings(endpoints=endpoints)
    app = make_app(settings, [f"api{i}:m{i}" for i in range(PANES)], env={})
    samples: list[tuple[int, float, int, float]] = []
    async with app.run_test(size=(200, 50)) as pilot:
        await pilot.pause(0.5)
        for turn in range(1, turns + 1):
            started = time.perf_counter()
            box = app.query_one(PromptBox)
            box.focus()
            box.load_text(f"Tell me more, part {turn}.")
            await pilot.press("enter")
            deadline = time.monotonic() + 120
            while not all(p.result is not None and p.result.finished and not p.busy
                          for p in app.panes):  # fmt: skip
                if time.monotonic() > deadline:
                    raise RuntimeError(f"turn {turn} did not finish")
                await pilot.pause(0.02)
            elapsed = time.perf_counter() - started
            samples.append((turn, rss(), text_kept(app), elapsed))
            if turn in (1, 50) or turn % 100 == 0:
                print(f"turn {turn}: {samples[-1][1] / 2**20:.0f} MB, {elapsed:.2f} s",
                      file=sys.stderr, flush=True)  # fmt: skip
    del home
    return samples


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--turns", type=int, default=500)
    parser.add_argument("--tokens", type=int, default=200, help="answer length, tokens")
    args = parser.parse_args()
    process, url = start_in_own_process(args.tokens, rate=0)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            home = Path(tmp)
            os.environ["WORKBENCH_HOME"] = str(home / "data")
            os.environ["WORKBENCH_CONFIG"] = os.devnull  # no config
            samples = asyncio.run(drive(url, args.turns, home))
    finally:
        process.terminate()
        process.wait(5)

    by_turn = {turn: (memory, kept, secs) for turn, memory, kept, secs in samples}
    at50 = by_turn[min(50, args.turns)]
    last_turn = samples[-1][0]
    print(f"{PANES} API panes on the loopback instrument, {args.tokens}-token answers, "
          f"{last_turn} turns")  # fmt: skip
    verdict = "PASS" if at50[0] <= RSS_GOAL else "MISS"
    print(f"RSS after turn {min(50, args.turns):3}   {at50[0] / 2**20:7.1f} MB  "
          f"(goal ≤ {RSS_GOAL / 2**20:.0f} MB)  {verdict}")  # fmt: skip
    print(f"RSS after turn {last_turn:3}   {samples[-1][1] / 2**20:7.1f} MB")
    tail = [s for s in samples if s[0] >= min(10, last_turn)]
    if len(tail) >= 2:
        turns = [float(s[0]) for s in tail]
        growth = slope(turns, [float(s[1]) for s in tail])
        kept = slope(turns, [float(s[2]) for s in tail])
        verdict = "PASS" if growth <= KEEP_FACTOR * kept else "MISS"
        print(f"growth per turn     {growth / 1024:7.1f} KB  (text kept per turn "
              f"{kept / 1024:.1f} KB; ratio {growth / kept:.1f}, goal ≤ {KEEP_FACTOR:g})  "
              f"{verdict}")  # fmt: skip
    print(f"turn time           first {samples[0][3]:.2f} s, last {samples[-1][3]:.2f} s")


if __name__ == "__main__":
    main()
