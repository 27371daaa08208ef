"""The TUI under load: 4 panes, each fed 2 000 tokens at 500 tok/s by the loopback
instrument (bench/loopback_stream.py), in a real terminal (tmux).

Two figures, per pane and round:
- lag: when the pane's last token is on screen (tmux's capture shows it) minus when the
  instrument sent it — the stream's own arrival time, give or take loopback's microseconds
  (goal ≤ 100 ms);
- key latency: a character typed into the prompt box every `--key-every` seconds while the
  streams run, from `send-keys` until it is on screen (goal ≤ 50 ms, the worst of them).

Both are upper bounds: a figure includes the poll interval (one capture-pane, a few ms) and
tmux's own work. The workbench runs in its own process, as a user runs it; the instrument
and the poller share this one.

    python bench/tui_stream.py [--rounds 3] [--rate 500] [--tokens 2000]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.first_frame import WORKBENCH_PROMPT, cpu_seconds, workbench_command
from bench.loopback_stream import LoopbackStream, end_marker, fixed_tokens
from bench.tmux import Tmux

PANES = 4
LAG_GOAL_S = 0.100
KEY_GOAL_S = 0.050
KEY_PREFIX = "ping:"
POLL_S = 0.005
"""Between captures: polling flat out would take a core from the app it measures."""


@dataclass
class Round:
    lags: dict[str, float] = field(default_factory=dict)
    keys: list[float] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    cpu_s: float = 0.0
    """CPU seconds the workbench spent from sending the prompt to the last token shown."""
    cpu_share: float = 0.0
    """CPU seconds the workbench used per second of the run: above 1.0 it cannot keep up
    on one core (its UI loop holds the GIL), whatever the machine's other load."""


def wait_idle(pid: int, *, window_s: float = 0.25, timeout_s: float = 15) -> None:
    """Until the process uses under a tenth of a core over `window_s`."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        before = cpu_seconds(pid)
        time.sleep(window_s)
        if cpu_seconds(pid) - before < window_s / 10:
            return
    raise RuntimeError("the workbench never went idle after start-up")


def one_round(
    tmux: Tmux, server: LoopbackStream, env: dict[str, str], key_every: float, profile: str | None
) -> Round:
    models = [f"m{i}" for i in range(PANES)]
    targets = [arg for i, m in enumerate(models) for arg in ("-t", f"loop{i}:{m}")]
    command = [*workbench_command(), *targets]
    if profile and profile.endswith(".prof"):  # cProfile's stats, for pstats
        command = [sys.executable, "-m", "cProfile", "-o", profile, "-m", "workbench.cli",
                   *targets]  # fmt: skip
    elif profile:  # pyinstrument (pip install pyinstrument) writes its report when the app quits
        command = [str(Path(sys.executable).parent / "pyinstrument"), "-r", "text", "--show-all",
                   "-o", profile, "-m", "workbench.cli", *targets]  # fmt: skip
    name = tmux.open(command, env)
    outcome = Round()
    try:
        if tmux.wait_for(name, WORKBENCH_PROMPT, timeout_s=60) is None:
            raise RuntimeError("the workbench never drew its prompt box")
        pid = tmux.pane_pid(name)
        # Start-up work done after the first frame (encodings, the SDK's import) is over:
        # the keys measured are those typed while the panes stream.
        wait_idle(pid)
        already = len(server.recordings)
        cpu_before, wall_before = cpu_seconds(pid), time.monotonic()
        tmux.send_keys(name, "go", literal=True)
        tmux.send_keys(name, "Enter")
        seen: dict[str, float] = {}
        typed = ""
        pending: tuple[str, float] | None = None
        next_key = time.monotonic() + key_every
        deadline = time.monotonic() + 60
        while len(seen) < PANES and time.monotonic() < deadline:
            now = time.monotonic()
            if pending is None and now >= next_key:
                if not typed:
                    tmux.send_keys(name, KEY_PREFIX, literal=True)
                    typed = KEY_PREFIX
                    if tmux.wait_for(name, typed, timeout_s=10) is None:
                        raise RuntimeError("typing into the prompt box shows nothing")
                else:
                    digit = str(len(outcome.keys) % 10)
                    sent_at = time.monotonic()
                    tmux.send_keys(name, digit, literal=True)
                    typed += digit
                    pending = (typed, sent_at)
                next_key = time.monotonic() + key_every
            time.sleep(POLL_S)
            screen = tmux.capture(name)
            captured = time.monotonic()
            if pending is not None and pending[0] in screen:
                outcome.keys.append(captured - pending[1])
                pending = None
            for model in models:
                if model not in seen and end_marker(model) in screen:
                    seen[model] = captured
        outcome.cpu_s = cpu_seconds(pid) - cpu_before
        outcome.cpu_share = outcome.cpu_s / (time.monotonic() - wall_before)
        sent = {r.model: r.sent[-1] for r in server.recordings[already:] if r.sent}
        for model in models:
            if model in seen and model in sent:
                outcome.lags[model] = seen[model] - sent[model]
            else:
                outcome.missing.append(model)
        if profile:
            tmux.send_keys(name, "C-q")
            time.sleep(5)
    finally:
        tmux.close(name)
    return outcome


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rate", type=float, default=500)
    parser.add_argument("--tokens", type=int, default=2000)
    parser.add_argument("--key-every", type=float, default=0.1)
    parser.add_argument("--profile", help="run the workbench under pyinstrument, report here")
    args = parser.parse_args()
    server = LoopbackStream(fixed_tokens(args.tokens - 1), rate=args.rate)
    server.start()
    tmux = Tmux(width=200, height=50)
    tmux.start_server()
    rounds: list[Round] = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            home = Path(tmp)
            config = home / "config.toml"
            config.write_text("".join(
                f'[endpoints.loop{i}]\nkind = "openai"\nbase_url = "{server.openai_url}"\n'
                for i in range(PANES)
            ))  # fmt: skip
            env = {"TERM": "xterm-256color", "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                   "HOME": str(home), "WORKBENCH_HOME": str(home / "data"),
                   "WORKBENCH_CONFIG": str(config)}  # fmt: skip
            for i in range(args.rounds):
                print(f"round {i + 1}/{args.rounds}", file=sys.stderr, flush=True)
                rounds.append(one_round(tmux, server, env, args.key_every, args.profile))
    finally:
        tmux.stop_server()
        server.stop()

    lags = [lag for r in rounds for lag in r.lags.values()]
    keys = [k for r in rounds for k in r.keys]
    missing = [m for r in rounds for m in r.missing]
    print(f"{PANES} panes × {args.tokens} tokens at {args.rate:g} tok/s each, "
          f"{args.rounds} rounds, tmux 200×50")  # fmt: skip
    for i, r in enumerate(rounds, 1):
        shown = ", ".join(f"{m} {lag * 1000:.0f}" for m, lag in sorted(r.lags.items()))
        print(f"round {i}: CPU {r.cpu_s:.1f} s, {r.cpu_share:.2f} s/s; "
              f"last token on screen after arrival (ms): {shown}"
              + (f"; never seen: {', '.join(r.missing)}" if r.missing else ""))  # fmt: skip
    if lags:
        worst = max(lags)
        verdict = "PASS" if worst <= LAG_GOAL_S and not missing else "MISS"
        print(f"lag, last token       median {statistics.median(lags) * 1000:5.0f} ms, "
              f"worst {worst * 1000:5.0f} ms  "
              f"(goal ≤ {LAG_GOAL_S * 1000:.0f} ms)  {verdict}")  # fmt: skip
    if keys:
        worst_key = max(keys)
        verdict = "PASS" if worst_key <= KEY_GOAL_S else "MISS"
        print(f"key to screen         median {statistics.median(keys) * 1000:5.0f} ms, "
              f"worst {worst_key * 1000:5.0f} ms over {len(keys)} keys  "
              f"(goal ≤ {KEY_GOAL_S * 1000:.0f} ms)  {verdict}")  # fmt: skip
        late = sum(1 for k in keys if k > KEY_GOAL_S)
        p90 = statistics.quantiles(keys, n=10)[-1] if len(keys) > 1 else worst_key
        print(f"                      90th percentile {p90 * 1000:5.0f} ms; "
              f"{late} of {len(keys)} keys over {KEY_GOAL_S * 1000:.0f} ms")  # fmt: skip


if __name__ == "__main__":
    main()
