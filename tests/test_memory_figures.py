"""Each local pane's memory figure is its own model's: an embedded model's RSS, its Ollama
`/api/ps` entry, or the RSS of the local server listening on its port (llama-server here)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import ollama
import psutil
import pytest

from providers.anthropic import AnthropicProvider
from providers.embedded import EmbeddedProvider, smollm2_path
from providers.openai import OpenAIProvider
from tests.conftest import free_port
from tests.llama_server import LlamaServer
from tests.ollama_server import OllamaServer
from tests.tui_helpers import send, wait_finished, wait_until
from workbench.config import Endpoint, Settings
from workbench.tui.app import make_app

NO_OLLAMA = {"OLLAMA_HOST": "127.0.0.1:9"}


def _server_rss(server: LlamaServer) -> int:
    assert server._process is not None
    return psutil.Process(server._process.pid).memory_info().rss


async def test_a_llama_server_pane_shows_the_servers_rss(llama_server: LlamaServer) -> None:
    settings = Settings(
        endpoints={"llamacpp": Endpoint(kind="openai", base_url=llama_server.openai_url)}
    )
    app = make_app(settings, ["llamacpp:smollm2@max_tokens=8"], env=NO_OLLAMA)
    async with app.run_test(size=(120, 40)) as pilot:
        await send(pilot, "Name a fruit.")
        await wait_finished(pilot)
        (pane,) = app.panes
        await wait_until(pilot, lambda: pane.memory_bytes is not None, timeout_s=10)
        assert pane.memory_bytes is not None
        # RSS moves a little as the server works: within 5 % of what psutil reads now.
        assert abs(pane.memory_bytes - _server_rss(llama_server)) < 0.05 * pane.memory_bytes


async def test_the_figure_is_the_loopback_servers_and_never_a_remote_hosts(
    llama_server: LlamaServer, no_internet: None
) -> None:
    assert llama_server._process is not None
    pid = llama_server._process.pid
    port = llama_server.port
    for provider in (
        OpenAIProvider("a", base_url=f"http://localhost:{port}/v1", is_local=True),
        AnthropicProvider("b", base_url=llama_server.base_url, is_local=True),
    ):
        usage = await provider.resources()
        assert usage is not None, provider.name
        assert abs(usage.memory_bytes - _server_rss(llama_server)) < 0.05 * usage.memory_bytes
        assert usage.detail == f"llama-server RSS (pid {pid})"
    # The same port on another machine (TEST-NET-1, never contacted) is not this process.
    remote = OpenAIProvider("r", base_url=f"http://192.0.2.1:{port}/v1")
    assert await remote.resources() is None
    assert await OpenAIProvider("cloud").resources() is None


def _listen(port: int) -> subprocess.Popen[bytes]:
    """A real process (Python's http.server) listening on loopback `port`."""
    command = [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return process
        except OSError:
            time.sleep(0.05)
    process.kill()
    raise AssertionError("http.server did not listen")


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    process.wait(timeout=10)


async def test_the_cached_server_is_checked_again_and_follows_a_restart() -> None:
    listener_port = free_port()
    provider = OpenAIProvider("local", base_url=f"http://127.0.0.1:{listener_port}/v1")
    first = _listen(listener_port)
    try:
        usage = await provider.resources()
        assert usage is not None and f"(pid {first.pid})" in usage.detail
        assert usage.memory_bytes == pytest.approx(
            psutil.Process(first.pid).memory_info().rss, rel=0.05
        )
    finally:
        _stop(first)
    assert await provider.resources() is None  # nothing listens now
    second = _listen(listener_port)
    try:
        usage = await provider.resources()
        assert usage is not None and f"(pid {second.pid})" in usage.detail
    finally:
        _stop(second)


async def test_two_embedded_panes_show_each_its_own_models_figure(home: Path) -> None:
    models = home / "home" / "models"
    models.mkdir(parents=True)
    shutil.copy(smollm2_path(), models / "copy.gguf")  # another path: another model
    app = make_app(
        Settings(embedded_context=1024),
        ["embedded:smollm2@max_tokens=4", "embedded:copy@max_tokens=4"],
        env=NO_OLLAMA,
    )
    async with app.run_test(size=(160, 40)) as pilot:
        await send(pilot, "Hi")
        await wait_finished(pilot)
        await wait_until(pilot, lambda: all(p.memory_bytes for p in app.panes), timeout_s=10)
        provider = app.registry.get("embedded")
        assert isinstance(provider, EmbeddedProvider)
        total = await provider.resources()
        assert total is not None
        first, second = (p.memory_bytes or 0 for p in app.panes)
        # Each is one model's RSS, and together they are what the process added.
        assert 0 < first < total.memory_bytes and 0 < second < total.memory_bytes
        assert first + second == total.memory_bytes


async def test_an_ollama_pane_shows_its_models_ps_entry_only(embedded: EmbeddedProvider) -> None:
    # Two names for one GGUF: both run, and /api/ps lists each with the file's size.
    with OllamaServer(
        embedded, models={"smollm2:135m": "smollm2", "other:1b": "smollm2"}
    ) as server:
        client = ollama.AsyncClient(host=server.host)
        await client.chat("other:1b", [], keep_alive="5m")  # running, but in no pane
        await client.close()  # type: ignore[no-untyped-call]
        app = make_app(
            Settings(), ["ollama:smollm2:135m@max_tokens=4"], env={"OLLAMA_HOST": server.host}
        )
        async with app.run_test(size=(120, 40)) as pilot:
            await send(pilot, "Hi")
            await wait_finished(pilot)
            (pane,) = app.panes
            await wait_until(pilot, lambda: pane.memory_bytes is not None, timeout_s=10)
            assert pane.memory_bytes == smollm2_path().stat().st_size
        assert server.errors == []
