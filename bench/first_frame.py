"""Time to first frame: `workbench` started in a fresh tmux session, until its prompt box is
on screen, against elia 1.10 measured the same way in the same run (goal: ≤ 0.6 s and faster
than elia).

elia lives in its own venv (default /work/elia-venv: `python -m venv /work/elia-venv &&
/work/elia-venv/bin/pip install 'elia-chat==1.10.*'`), with a throwaway HOME so it starts as
a first-time user would, without keys. The workbench starts with its default target (the
embedded model, loaded after the first frame) and a throwaway data dir and config.

    python bench/first_frame.py [--rounds 7] [--elia /work/elia-venv/bin/elia]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.tmux import Tmux

WORKBENCH_PROMPT = "prompt — Enter send"
"""The prompt box's border title: drawn once the first frame is on screen."""
ELIA_PROMPT = "Enter your message"
"""elia's message box, at the top of its first screen."""


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far: unlike wall time, barely moved by load
    from other processes on the machine."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def first_frame(
    tmux: Tmux, command: list[str], env: dict[str, str], marker: str
) -> tuple[float, float]:
    """Wall seconds from launch until `marker` is on screen, and the CPU seconds spent."""
    started = time.monotonic()
    name = tmux.open(command, env)
    try:
        pid = tmux.pane_pid(name)
        seen = tmux.wait_for(name, marker, timeout_s=30)
        cpu = cpu_seconds(pid)
    finally:
        tmux.close(name)
    if seen is None:
        raise RuntimeError(f"{command[0]}: {marker!r} never showed")
    return seen - started, cpu


def workbench_command() -> list[str]:
    script = Path(sys.executable).parent / "workbench"
    return [str(script)] if script.exists() else [sys.executable, "-m", "workbench.cli"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--elia", default="/work/elia-venv/bin/elia")
    args = parser.parse_args()
    base_env = {"TERM": "xterm-256color", "PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    tmux = Tmux(width=160, height=45)
    tmux.start_server()
    ours: list[tuple[float, float]] = []
    elia: list[tuple[float, float]] = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            home = Path(tmp)
            (home / "elia").mkdir()
            (home / "config.toml").write_text("")
            wb_env = base_env | {"HOME": str(home), "WORKBENCH_HOME": str(home / "data"),
                                 "WORKBENCH_CONFIG": str(home / "config.toml")}  # fmt: skip
            elia_env = base_env | {"HOME": str(home / "elia")}
            has_elia = Path(args.elia).exists()
            # One unmeasured start each: both then find their files in the page cache and
            # their first-run set-up (elia's database, our data dir) done.
            first_frame(tmux, workbench_command(), wb_env, WORKBENCH_PROMPT)
            if has_elia:
                first_frame(tmux, [args.elia], elia_env, ELIA_PROMPT)
            for _ in range(args.rounds):  # alternated, so load from elsewhere hits both alike
                ours.append(first_frame(tmux, workbench_command(), wb_env, WORKBENCH_PROMPT))
                if has_elia:
                    elia.append(first_frame(tmux, [args.elia], elia_env, ELIA_PROMPT))
    finally:
        tmux.stop_server()

    def shown(values: list[tuple[float, float]]) -> str:
        return ", ".join(f"{wall:.2f}" for wall, _ in values)

    def cpu(values: list[tuple[float, float]]) -> float:
        return statistics.median(c for _, c in values)

    ours_median = statistics.median(wall for wall, _ in ours)
    print(f"first frame in tmux 160×45, {args.rounds} rounds alternated (median)")
    print(f"workbench           {ours_median:6.3f} s  "
          f"(all: {shown(ours)}; CPU {cpu(ours):.2f} s)")  # fmt: skip
    if elia:
        elia_median = statistics.median(wall for wall, _ in elia)
        verdict = "PASS" if ours_median <= 0.6 and ours_median < elia_median else "MISS"
        print(f"elia 1.10           {elia_median:6.3f} s  "
              f"(all: {shown(elia)}; CPU {cpu(elia):.2f} s)")  # fmt: skip
        print(f"ratio               {ours_median / elia_median:6.2f}×  "
              f"(goal ≤ 0.6 s and < elia)  {verdict}")  # fmt: skip
    else:
        verdict = "PASS" if ours_median <= 0.6 else "MISS"
        print(f"elia not found at {args.elia}: goal ≤ 0.6 s only  {verdict}")


if __name__ == "__main__":
    main()
