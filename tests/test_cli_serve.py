"""`workbench serve`: the page a browser gets names an address that browser can reach."""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.child_process import workbench_env

ROOT = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _serve(tmp_path: Path, *args: str) -> tuple[str, str]:
    """The page served at `/` by `workbench serve ARGS --port P` (fetched over loopback),
    and what the command said on stderr."""
    port = _free_port()
    child = subprocess.Popen(
        [sys.executable, "-m", "workbench.cli", "serve", "--port", str(port), *args],
        env=workbench_env(tmp_path, "http://127.0.0.1:9/v1"), cwd=ROOT,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as reply:
                    page = reply.read().decode()
                break
            except (urllib.error.URLError, ConnectionError):
                if child.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(f"serve never answered: {child.communicate()}") from None
                time.sleep(0.1)
    finally:
        child.send_signal(signal.SIGINT)
        try:
            _, err = child.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            child.kill()
            _, err = child.communicate()
    return page, err


def _app_urls(page: str) -> tuple[str, str]:
    """Where the page loads its script, and its websocket."""
    script = re.search(r'<script src="([^"]*/textual\.js)"', page)
    websocket = re.search(r'data-session-websocket-url="([^"]*)"', page)
    assert script and websocket, page
    return script[1], websocket[1]


def test_a_public_url_is_what_the_page_points_browsers_at(tmp_path: Path) -> None:
    page, err = _serve(tmp_path, "--host", "0.0.0.0", "--public-url", "https://wb.example.test/")
    assert _app_urls(page) == (
        "https://wb.example.test/static/js/textual.js",
        "wss://wb.example.test/ws",
    )
    assert "serving on https://wb.example.test\n" in err


def test_listening_everywhere_the_page_names_this_machine(tmp_path: Path) -> None:
    page, err = _serve(tmp_path, "--host", "0.0.0.0")
    script, websocket = _app_urls(page)
    here = socket.gethostname()
    assert script.startswith(f"http://{here}:") and websocket.startswith(f"ws://{here}:")
    assert "0.0.0.0" not in page
    # Beyond loopback, anyone who reaches the port gets the app: say so.
    assert "warning: listening on 0.0.0.0" in err and "no login" in err
    assert f"serving on http://{here}:" in err and "give --public-url" in err


def test_on_loopback_nothing_is_said_about_logins(tmp_path: Path) -> None:
    page, err = _serve(tmp_path)
    script, websocket = _app_urls(page)
    assert script.startswith("http://127.0.0.1:") and websocket.startswith("ws://127.0.0.1:")
    assert "warning" not in err


@pytest.mark.parametrize("url", ["wb.example.test:8000", "ftp://wb.example.test", "http://"])
def test_a_public_url_that_is_not_one_is_refused(
    url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from workbench.cli import main

    with pytest.raises(SystemExit) as exit_:
        main(["serve", "--public-url", url])
    assert exit_.value.code == 2
    assert "is not an http:// or https:// URL with a host" in capsys.readouterr().err
