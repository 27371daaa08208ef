"""A password written into a base URL (`http://user:secret@host/v1`) never reaches output,
history or errors: every place a provider names its URL shows it as `user:***@host`."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

from providers.base import Message, ProviderError
from providers.registry import EndpointSpec, Registry, parse_target
from workbench.commands.models import run_models
from workbench.engine.fanout import fanout
from workbench.engine.result import TargetResult

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "secretpass-7f3a"


def with_password(port: int, path: str = "") -> str:
    return f"http://user:{PASSWORD}@127.0.0.1:{port}{path}"


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
async def test_a_failed_request_shows_the_url_without_its_password(
    kind: str, closed_port: int
) -> None:
    url = with_password(closed_port, "/v1" if kind == "openai" else "")
    registry = Registry(endpoints=[EndpointSpec("fake", kind, url)], env={})  # type: ignore[arg-type]
    try:
        (result,) = await fanout(registry, [parse_target("fake:m")], [Message("user", "hi")])
    finally:
        await registry.aclose()
    assert isinstance(result, TargetResult)
    assert result.error_kind == "connection"
    message = result.error or ""
    assert PASSWORD not in message
    assert f"user:***@127.0.0.1:{closed_port}" in message


@pytest.mark.parametrize("models", [(), ("smollm2",)], ids=["listed", "configured"])
async def test_models_shows_the_url_without_its_password(
    closed_port: int, models: tuple[str, ...]
) -> None:
    url = with_password(closed_port, "/v1")
    registry = Registry(
        endpoints=[EndpointSpec("fake", "openai", url, models=models)],
        env={"OLLAMA_HOST": "127.0.0.1:9"},
    )
    for as_json in (False, True):
        out = io.StringIO()
        await run_models(registry, as_json=as_json, out=out)
        assert PASSWORD not in out.getvalue()
        assert f"user:***@127.0.0.1:{closed_port}" in out.getvalue()


def test_private_mode_names_the_url_without_its_password() -> None:
    url = f"https://user:{PASSWORD}@llm.example.com/v1"
    registry = Registry(endpoints=[EndpointSpec("corp", "openai", url)], env={}, private=True)
    with pytest.raises(ProviderError) as refused:
        registry.get("corp")
    assert PASSWORD not in refused.value.message
    assert "https://user:***@llm.example.com/v1" in refused.value.message


def test_ask_and_models_write_the_password_nowhere(tmp_path: Path, closed_port: int) -> None:
    """The real commands: their output, and every byte of the data dir (history included)."""
    config = tmp_path / "config.toml"
    url = with_password(closed_port, "/v1")
    config.write_text(f'[endpoints.fake]\nkind = "openai"\nbase_url = "{url}"\n')
    home = tmp_path / "home"
    env = dict(os.environ) | {
        "WORKBENCH_HOME": str(home),
        "WORKBENCH_CONFIG": str(config),
        "OLLAMA_HOST": "127.0.0.1:9",
        "PYTHONPATH": str(ROOT),
    }
    said = []
    for args in (["ask", "hi", "-t", "fake:m"], ["ask", "hi", "-t", "fake:m", "--json"],
                 ["models"], ["models", "--json"]):  # fmt: skip
        done = subprocess.run(
            [sys.executable, "-m", "workbench.cli", *args],
            env=env, cwd=ROOT, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        said.append(done.stdout + done.stderr)
    assert "user:***@127.0.0.1" in said[0]  # the error was shown, its URL masked
    assert not [s for s in said if PASSWORD in s]
    stored = [p for p in home.rglob("*") if p.is_file() and PASSWORD.encode() in p.read_bytes()]
    assert stored == []
    assert any(p.is_file() for p in home.rglob("*"))  # the failed answers were stored
