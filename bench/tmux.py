"""A real terminal for the TUI benchmarks: tmux on a private socket, read with capture-pane.

What tmux holds is what a user would see, so "on screen" means on screen, not "handed to
a widget". The private socket (`-L`) keeps these sessions away from any tmux the user runs.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path


class Tmux:
    def __init__(self, *, width: int = 200, height: int = 50) -> None:
        self.socket = f"workbench-bench-{os.getpid()}"
        self.width, self.height = width, height
        self._serial = 0
        self._socket_path = ""

    def _tmux(self, *args: str, check: bool = True) -> str:
        done = subprocess.run(
            ["tmux", "-L", self.socket, *args], capture_output=True, text=True, check=False
        )
        if check and done.returncode != 0:
            raise RuntimeError(f"tmux {' '.join(args)}: {done.stderr.strip()}")
        return done.stdout

    def start_server(self) -> None:
        """A server with one idle session, so no measured start pays for tmux's own start."""
        self._tmux("new-session", "-d", "-s", "idle", "-x", "20", "-y", "5", "sleep 86400")
        self._socket_path = self._tmux("display-message", "-p", "#{socket_path}").strip()

    def open(
        self, command: Sequence[str], env: Mapping[str, str], *, cwd: str | None = None
    ) -> str:
        """Start `command` in a new session of the set size; returns the session's name."""
        self._serial += 1
        name = f"s{self._serial}"
        exports = " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items())
        # `exec env` so the pane's process is the program itself, and its RSS is measurable.
        shell = f"exec env {exports} {shlex.join(command)}"
        args = ["new-session", "-d", "-s", name, "-x", str(self.width), "-y", str(self.height)]
        if cwd:
            args += ["-c", cwd]
        self._tmux(*args, shell)
        return name

    def capture(self, name: str) -> str:
        return self._tmux("capture-pane", "-p", "-t", name, check=False)

    def send_keys(self, name: str, *keys: str, literal: bool = False) -> None:
        self._tmux("send-keys", "-t", name, *(["-l"] if literal else []), *keys, check=False)

    def pane_pid(self, name: str) -> int:
        return int(self._tmux("display-message", "-p", "-t", name, "#{pane_pid}").strip())

    def wait_for(self, name: str, text: str, timeout_s: float = 30.0) -> float | None:
        """Poll the screen until `text` shows; `time.monotonic()` of the capture that saw it."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            screen = self.capture(name)
            seen = time.monotonic()
            if text in screen:
                return seen
        return None

    def close(self, name: str) -> None:
        self._tmux("kill-session", "-t", name, check=False)

    def stop_server(self) -> None:
        self._tmux("kill-server", check=False)
        if self._socket_path:  # a killed server leaves its socket file behind
            Path(self._socket_path).unlink(missing_ok=True)
