"""API keys never land anywhere: not the store, exports, reports, output or screenshots.

Fake keys are set for OpenAI, Anthropic and a named endpoint, and a loopback server turns
every keyed request down with a body that echoes the key and the request's headers, as
some proxies and SDK errors do. After a real `workbench ask`, suite runs with reports, and
a TUI session with an export and a screenshot, every byte written (the SQLite database
and its WAL included) is searched for the keys and their first 12 characters.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from tests.fault_servers import WIRES, presented_key, threaded_server
from tests.tui_helpers import send, wait_finished
from workbench.config import load_settings
from workbench.store import Store
from workbench.tui.app import make_app

ROOT = Path(__file__).resolve().parent.parent
KEY_VARS = ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "CORP_TOKEN")
CLOUD_TARGETS = ["openai:gpt-4o-mini", "openai:boom", "anthropic:claude-3-5-haiku-latest", "corp:m"]
LOCAL_TARGET = "embedded:smollm2@max_tokens=8,temperature=0"


@pytest.fixture(scope="module")
def make_httpserver() -> Iterator[HTTPServer]:
    with threaded_server() as server:  # the targets of one prompt ask at once
        yield server


@pytest.fixture
def keys() -> dict[str, str]:
    """Fresh random keys, so nothing can contain them by chance."""
    return {
        "OPENAI_API_KEY": "sk-proj-" + secrets.token_hex(20),
        "ANTHROPIC_API_KEY": "sk-ant-api03-" + secrets.token_hex(20),
        "CORP_TOKEN": "corp-" + secrets.token_hex(20),
    }


@pytest.fixture
def echo_server(httpserver: HTTPServer) -> Iterator[list[str]]:
    """Turns every request down (401, or 500 for model `boom`), echoing the key it got."""
    presented: list[str] = []

    def reject(request: Request) -> Response:
        key = presented_key(request)
        presented.append(key)
        wire = WIRES["anthropic" if request.path.endswith("/messages") else "openai"]
        status = 500 if json.loads(request.data).get("model") == "boom" else 401
        headers = "; ".join(f"{k}: {v}" for k, v in request.headers.items())
        masked = key[:12] + "*" * 8 + key[-4:]  # as APIs that hide most of it answer
        echo = f"Incorrect API key provided: {masked}. You sent: {headers}"
        return wire.error(status, echo)

    def reject_listing(request: Request) -> Response:
        # A local endpoint is asked for its models' windows (not counted as a request sent):
        # turned down the same way, the key echoed, so that path is searched for it too.
        key = presented_key(request)
        wire = WIRES["anthropic" if request.path.startswith("/anthropic") else "openai"]
        return wire.error(401, f"Incorrect API key provided: {key[:12]}{'*' * 8}{key[-4:]}")

    for prefix in ("/openai/v1/chat/completions", "/corp/v1/chat/completions"):
        httpserver.expect_request(prefix, method="POST").respond_with_handler(reject)
    httpserver.expect_request("/anthropic/v1/messages", method="POST").respond_with_handler(reject)
    for listing in ("/openai/v1/models", "/corp/v1/models", "/anthropic/v1/models"):
        httpserver.expect_request(listing, method="GET").respond_with_handler(reject_listing)
    yield presented
    httpserver.check()


@pytest.fixture
def world(
    tmp_path: Path, keys: dict[str, str], httpserver: HTTPServer, monkeypatch: pytest.MonkeyPatch
) -> dict[str, str]:
    """The environment of a user with keys set: for child processes and this one."""
    config = tmp_path / "config.toml"
    config.write_text(
        "connect_timeout_s = 30  # a loaded CI machine is slow to accept, not unreachable\n"
        f'[endpoints.corp]\nkind = "openai"\nbase_url = "{httpserver.url_for("/corp/v1")}"\n'
        'api_key_env = "CORP_TOKEN"\n'
    )
    env = {
        "WORKBENCH_HOME": str(tmp_path / "home"),
        "WORKBENCH_CONFIG": str(config),
        "OPENAI_BASE_URL": httpserver.url_for("/openai/v1"),
        "ANTHROPIC_BASE_URL": httpserver.url_for("/anthropic"),
        "OLLAMA_HOST": "127.0.0.1:9",
        **keys,
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return dict(os.environ) | {"PYTHONPATH": str(ROOT)}


def _workbench(env: dict[str, str], out: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run the CLI; its stdout and stderr are kept under `out` to be searched too."""
    done = subprocess.run(
        [sys.executable, "-m", "workbench.cli", *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
    )
    name = f"{len(list(out.glob('*.stdout')))}-{args[0]}"
    (out / f"{name}.stdout").write_text(done.stdout)
    (out / f"{name}.stderr").write_text(done.stderr)
    return done


def _leaks(root: Path, keys: dict[str, str]) -> list[str]:
    """Every file under `root` holding a key or a key's first 12 characters, read as bytes."""
    needles = {n.encode() for key in keys.values() for n in (key, key[:12])}
    found = []
    for path in _files(root):
        data = path.read_bytes()
        found += [f"{path}: {n!r}" for n in needles if n in data]
    return found


def _files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def _suite(tmp_path: Path) -> Path:
    path = tmp_path / "keyed.yaml"
    path.write_text(
        "name: keyed\n"
        f"targets: {json.dumps(CLOUD_TARGETS)}\n"
        "prompt: 'Say hi'\n"
        "cases:\n  - id: hi\n    expect: [{icontains: hi}]\n"
    )
    return path


async def test_no_key_is_written_anywhere(
    tmp_path: Path, keys: dict[str, str], world: dict[str, str], echo_server: list[str]
) -> None:
    home, out = tmp_path / "home", tmp_path / "outputs"
    out.mkdir()

    ask = _workbench(world, out, "ask", "-t", LOCAL_TARGET, *_each("-t", CLOUD_TARGETS), "Hi")
    assert ask.returncode == 1  # the cloud targets failed; the embedded one answered
    assert ask.stdout.count("HTTP 401") >= 3 and "HTTP 500" in ask.stdout
    asked_json = _workbench(world, out, "ask", "--json", *_each("-t", CLOUD_TARGETS), "Hi")
    assert asked_json.stdout.count('"kind": "auth"') == 3

    suite = _suite(tmp_path)
    for kind in ("json", "junit"):
        report = out / f"report.{kind}"
        run = _workbench(world, out, "run", str(suite), "--report", kind, "--out", str(report))
        assert run.returncode == 1, run.stderr
        assert "HTTP 401" in report.read_text()
    run = _workbench(world, out, "run", str(suite), "--report", "md")  # the report on stdout
    assert run.returncode == 1 and "HTTP 401" in run.stdout

    # The TUI, in this process: its store stays open, so the WAL is searched while it exists.
    app = make_app(load_settings(), ["corp:m", "anthropic:claude-3-5-haiku-latest", LOCAL_TARGET])
    async with app.run_test(size=(150, 40)) as pilot:
        await send(pilot, "Hi")
        await wait_finished(pilot, timeout_s=240)  # embedded model load on a busy machine
        await app.run_action("export")  # Ctrl+E, which the focused prompt box keeps for itself
        await pilot.press("ctrl+s")
        await pilot.pause(0.2)
        assert (home / "workbench.db-wal").stat().st_size > 0
        wal_leaks = _leaks(home, keys)
    (export,) = (home / "exports").glob("*.md")
    (screenshot,) = (home / "screenshots").glob("*.svg")
    assert "HTTP 401" in export.read_text()
    assert "401" in screenshot.read_text()  # the error was on screen when it was taken

    # Every keyed request reached the server with its key, so every echo above carried it.
    assert set(echo_server) == set(keys.values())
    assert len(echo_server) == 4 + 4 + 3 * 4 + 2  # ask, ask --json, 3 suite runs, TUI
    store = Store(home / "workbench.db")
    try:
        errors = [e for (e,) in store.db.execute("SELECT error FROM responses WHERE error != ''")]
    finally:
        store.close()
    assert len(errors) == len(echo_server)
    assert all("[redacted]" in e and "You sent:" in e for e in errors)

    assert wal_leaks == []
    assert _leaks(tmp_path, keys) == []
    searched = _files(tmp_path)
    assert {"workbench.db", "report.junit", "report.json"} <= {p.name for p in searched}
    print(f"searched {len(searched)} files, {sum(p.stat().st_size for p in searched)} bytes")

    # The search itself finds a key's beginning, even inside binary data.
    canary = tmp_path / "canary.bin"
    canary.write_bytes(b"\x00SQLite" + keys["CORP_TOKEN"][:12].encode() + b"\xff")
    assert len(_leaks(tmp_path, keys)) == 1


def _each(flag: str, values: list[str]) -> list[str]:
    return [part for value in values for part in (flag, value)]


@pytest.fixture
def loose_umask() -> Iterator[None]:
    """The common default (022): anything made without a mode is readable by everyone."""
    saved = os.umask(0o022)
    yield
    os.umask(saved)


def _mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


async def test_what_the_workbench_creates_is_user_only(
    tmp_path: Path, world: dict[str, str], echo_server: list[str], loose_umask: None
) -> None:
    home, config_home = tmp_path / "home", tmp_path / "config-home"
    out = tmp_path / "outputs"
    out.mkdir()
    # The platform's config dir, with no config in it yet (a named one must exist).
    env = {k: v for k, v in world.items() if k != "WORKBENCH_CONFIG"}
    env |= {"XDG_CONFIG_HOME": str(config_home)}
    asked = _workbench(env, out, "ask", "-t", "openai:gpt-4o-mini", "Hi")  # umask 022 too
    assert asked.returncode == 1 and "HTTP 401" in asked.stdout
    assert not config_home.exists(), "the workbench never writes a config file"
    assert (_mode(home), _mode(home / "workbench.db")) == (0o700, 0o600)

    app = make_app(load_settings(), ["corp:m"])
    async with app.run_test(size=(120, 30)) as pilot:
        await send(pilot, "Hi")
        await wait_finished(pilot, timeout_s=240)
        await app.run_action("export")
        await pilot.press("ctrl+s")
        await pilot.pause(0.2)
        for name in ("workbench.db", "workbench.db-wal", "workbench.db-shm"):
            assert _mode(home / name) == 0o600, name
    (export,) = (home / "exports").glob("*.md")
    (screenshot,) = (home / "screenshots").glob("*.svg")
    assert (_mode(export.parent), _mode(export)) == (0o700, 0o600)
    assert (_mode(screenshot.parent), _mode(screenshot)) == (0o700, 0o600)
    # Made before the umask was loosened? No: a file nobody asked about gets 0644 here.
    (home / "control").touch()
    assert _mode(home / "control") == 0o644
