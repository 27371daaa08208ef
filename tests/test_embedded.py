"""The embedded provider's own promises: it finds models, queues politely, loads once."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from providers.base import (
    ChatRequest,
    GenParams,
    Message,
    ProviderError,
    ServerTimings,
    Status,
    StreamEvent,
    TextDelta,
)
from providers.embedded import EmbeddedProvider, smollm2_path


def _request(model: str, max_tokens: int = 6) -> ChatRequest:
    return ChatRequest(model, (Message("user", "Name a fruit."),), GenParams(max_tokens=max_tokens))


async def _events(provider: EmbeddedProvider, request: ChatRequest) -> list[StreamEvent]:
    return [e async for e in provider.stream(request)]


async def test_a_second_request_queues_and_says_so(embedded: EmbeddedProvider) -> None:
    first, second = await asyncio.gather(
        _events(embedded, _request("smollm2", 24)), _events(embedded, _request("smollm2", 4))
    )
    notes = [e.text for e in first + second if isinstance(e, Status)]
    assert len(notes) == 1 and notes[0].startswith("queued: smollm2")
    assert all(any(isinstance(e, TextDelta) for e in events) for events in (first, second))


async def test_gguf_by_path_and_from_the_models_folder(tmp_path: Path) -> None:
    models = tmp_path / "models"
    models.mkdir()
    os.symlink(smollm2_path(), models / "tiny.gguf")
    provider = EmbeddedProvider(models_dir=models, context_length=2048)
    listed = [m.id for m in await provider.list_models()]
    assert listed == ["smollm2", "tiny"]
    for model in ("tiny", str(models / "tiny.gguf")):
        events = await _events(provider, _request(model))
        assert any(isinstance(e, TextDelta) for e in events)


async def test_the_first_request_reports_the_load_and_later_ones_do_not(tmp_path: Path) -> None:
    provider = EmbeddedProvider(context_length=2048)
    first = await _events(provider, _request("smollm2"))
    second = await _events(provider, _request("smollm2"))
    loads = [e.load_s for e in first if isinstance(e, ServerTimings) and e.load_s]
    assert loads and loads[0] > 0
    assert not [e for e in second if isinstance(e, ServerTimings) and e.load_s]


@pytest.mark.parametrize("model", ["nope", "/no/such/file.gguf"])
async def test_unknown_models_say_where_to_put_them(model: str, tmp_path: Path) -> None:
    provider = EmbeddedProvider(models_dir=tmp_path)
    with pytest.raises(ProviderError) as caught:
        await _events(provider, _request(model))
    assert caught.value.kind == "not_found"
    assert "smollm2" in caught.value.message or "no GGUF file" in caught.value.message
