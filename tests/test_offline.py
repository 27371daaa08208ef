"""No internet: a cloud target fails fast as `offline`, and local targets never notice."""

from __future__ import annotations

import time

from providers.base import Message
from providers.registry import Registry, parse_target
from workbench.engine.fanout import fanout


async def test_unresolvable_cloud_host_fails_fast_and_local_targets_answer() -> None:
    registry = Registry(
        env={"OPENAI_API_KEY": "sk-test", "OPENAI_BASE_URL": "https://api.openai.invalid/v1",
             "ANTHROPIC_API_KEY": "sk-test", "ANTHROPIC_BASE_URL": "https://anthropic.invalid"},
    )  # fmt: skip
    targets = [parse_target(t) for t in (
        "openai:gpt-4o-mini", "anthropic:claude-3-5-haiku-latest", "embedded:smollm2@max_tokens=4",
    )]  # fmt: skip
    started = time.perf_counter()
    try:
        openai, anthropic, local = await fanout(registry, targets, [Message("user", "hi")])
    finally:
        await registry.aclose()
    for cloud in (openai, anthropic):
        assert cloud.status == "failed" and cloud.error_kind == "offline"
        assert cloud.e2e_s is not None and cloud.e2e_s < 3
        assert "no internet? local targets still work" in (cloud.error or "")
    assert local.status == "done" and local.text
    assert time.perf_counter() - started < 30  # the fan-out is not held up by the dead ones
