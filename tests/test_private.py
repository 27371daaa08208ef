"""Private mode: only loopback targets, enforced in the engine, proven with a socket guard."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from providers.base import Message
from providers.registry import EndpointSpec, Registry, parse_target
from tests.llama_server import LlamaServer
from workbench.cli import main
from workbench.engine.fanout import fanout


@pytest.mark.usefixtures("no_internet")
async def test_cloud_targets_are_refused_and_local_ones_answer(llama_server: LlamaServer) -> None:
    registry = Registry(
        endpoints=[
            EndpointSpec("llamacpp", "openai", llama_server.openai_url),
            EndpointSpec("router", "openai", "https://openrouter.ai/api/v1", "ROUTER_KEY"),
        ],
        env={"OPENAI_API_KEY": "sk-test", "ANTHROPIC_API_KEY": "sk-test", "ROUTER_KEY": "x"},
        private=True,
    )
    targets = [parse_target(t) for t in (
        "embedded:smollm2@max_tokens=4", "llamacpp:smollm2@max_tokens=4",
        "openai:gpt-4o-mini", "anthropic:claude-3-5-haiku-latest", "router:openai/gpt-4o",
    )]  # fmt: skip
    try:
        results = await fanout(registry, targets, [Message("user", "Say hi.")])
    finally:
        await registry.aclose()
    assert [r.status for r in results] == ["done", "done", "failed", "failed", "failed"]
    for refused in results[2:]:
        assert refused.error is not None and refused.error.startswith("private mode:")
    by_name = {a.provider: a for a in await registry.available()}
    assert not by_name["openai"].available and "private" in by_name["openai"].reason
    assert by_name["llamacpp"].available


def test_private_flag_on_the_command_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    code = main(["--private", "ask", "hi", "-t", "openai:gpt-4o-mini", "--json"])
    (result,) = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert code == 1
    assert result["error"]["message"].startswith("private mode: openai sends prompts off")


def test_a_loopback_endpoint_set_not_local_is_kept_out_and_priced(
    llama_server: LlamaServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A proxy on this machine to a cloud (LiteLLM, a tunnel) answers from elsewhere."""
    config = tmp_path / "config.toml"
    url = llama_server.openai_url
    config.write_text(
        f'[endpoints.proxy]\nkind = "openai"\nbase_url = "{url}"\nlocal = false\n'
        f'[endpoints.here]\nkind = "openai"\nbase_url = "{url}"\n'
    )
    monkeypatch.setenv("WORKBENCH_CONFIG", str(config))
    targets = ["-t", "proxy:smollm2@max_tokens=4", "-t", "here:smollm2@max_tokens=4"]
    assert main(["--private", "ask", "hi", *targets, "--json"]) == 1
    proxy, here = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert proxy["error"]["message"].startswith("private mode: proxy sends prompts off")
    assert here["status"] == "done" and here["cost"]["kind"] == "local"
    assert main(["ask", "hi", *targets, "--json"]) == 0
    proxy, here = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert proxy["status"] == "done" and proxy["cost"]["kind"] != "local"
