"""Shared fixtures: an isolated data dir, the real embedded model, and a real llama-server."""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from providers.embedded import EmbeddedProvider
from tests.llama_server import LlamaServer
from tests.ollama_server import OllamaServer

if TYPE_CHECKING:
    from tests.tui_helpers import Loop


@pytest.fixture(scope="session", autouse=True)
def workbench_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Every test writes under a throwaway data dir, never the user's, and reads no config."""
    home = tmp_path_factory.mktemp("workbench-home")
    saved = {k: os.environ.get(k) for k in ("WORKBENCH_HOME", "WORKBENCH_CONFIG")}
    os.environ["WORKBENCH_HOME"] = str(home)
    empty = home / "empty-config.toml"
    empty.touch()
    os.environ["WORKBENCH_CONFIG"] = str(empty)
    for key in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "OPENAI_BASE_URL", "ANTHROPIC_BASE_URL"):
        os.environ.pop(key, None)
    yield home
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="session")
def embedded() -> EmbeddedProvider:
    """One embedded provider for the whole session, so SmolLM2 loads once."""
    return EmbeddedProvider(context_length=4096)


@pytest.fixture(scope="session")
def llama_server() -> Iterator[LlamaServer]:
    """llama.cpp's real `llama-server` with SmolLM2, on a free loopback port."""
    server = LlamaServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def ollama_server(embedded: EmbeddedProvider) -> Iterator[OllamaServer]:
    """Ollama's API on a free loopback port, answering with the session's embedded SmolLM2."""
    server = OllamaServer(embedded)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def loop() -> Iterator[Loop]:
    """An OpenAI-compatible server on loopback of the test's own (see `tui_helpers.Loop`)."""
    # Imported here: the TUI is not loaded for the tests that do not drive it.
    from tests.fault_servers import WIRES, threaded_server
    from tests.tui_helpers import Loop

    with threaded_server() as server:  # a held stream blocks no other request
        served = Loop(server.url_for("/v1"))
        server.expect_request(WIRES["openai"].path).respond_with_handler(served.answer)
        try:
            yield served
        finally:
            served.release.set()  # before the server stops: it waits for its streams


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A data dir (`home/`) and an empty config file of the test's own, under tmp_path."""
    monkeypatch.setenv("WORKBENCH_HOME", str(tmp_path / "home"))
    config = tmp_path / "config.toml"
    config.write_text("")
    monkeypatch.setenv("WORKBENCH_CONFIG", str(config))
    return tmp_path


@pytest.fixture
def closed_port() -> int:
    """A loopback port nothing listens on."""
    return free_port()


@pytest.fixture
def no_internet(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any connection to a non-loopback address fails the test loudly."""
    real_connect = socket.socket.connect

    def guarded(self: socket.socket, address: object) -> None:
        host = address[0] if isinstance(address, tuple) else str(address)
        if self.family in (socket.AF_INET, socket.AF_INET6) and not _loopback(str(host)):
            raise AssertionError(f"test tried to reach the network: {address}")
        real_connect(self, address)  # type: ignore[arg-type]

    def no_lookup(*args: object, **kwargs: object) -> object:
        host = str(args[0]) if args else ""
        if not _loopback(host) and host not in ("localhost",):
            raise AssertionError(f"test tried to resolve {host}")
        return real_getaddrinfo(*args, **kwargs)  # type: ignore[arg-type]

    real_getaddrinfo = socket.getaddrinfo
    monkeypatch.setattr(socket.socket, "connect", guarded)
    monkeypatch.setattr(socket, "getaddrinfo", no_lookup)


def _loopback(host: str) -> bool:
    import ipaddress

    if host in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@pytest.fixture
def release() -> Iterator[threading.Event]:
    """Set when the test ends, so a fault server's stalled or endless response finishes."""
    event = threading.Event()
    yield event
    event.set()
