"""The embedded provider's own promises: it finds models, queues politely, loads once."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
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
from providers.gguf import read_gguf
from workbench.config import Settings
from workbench.engine.result import TargetResult


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


async def test_a_cut_gguf_is_listed_without_figures_and_a_folder_is_not_listed(
    tmp_path: Path,
) -> None:
    whole = smollm2_path().read_bytes()
    # Cut inside the tokenizer's vocabulary: a download stopped midway.
    (tmp_path / "cut.gguf").write_bytes(whole[:100_000])
    (tmp_path / "garbled.gguf").write_bytes(whole[:24] + b"\xff" * 64)
    (tmp_path / "folder.gguf").mkdir()
    provider = EmbeddedProvider(models_dir=tmp_path, context_length=2048)
    listed = {m.id: m for m in await provider.list_models()}
    assert sorted(listed) == ["cut", "garbled", "smollm2"]
    assert listed["cut"].size_bytes == 100_000 and listed["cut"].quantization is None
    assert listed["smollm2"].quantization == "Q4_1"
    for name in ("cut", "garbled"):
        with pytest.raises(ValueError, match="ends inside its header: cut short, or damaged"):
            read_gguf(tmp_path / f"{name}.gguf")
    with pytest.raises(ProviderError, match=r"\(cut, garbled\)$"):
        await _events(provider, _request("nope"))


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


async def test_an_unknown_model_is_told_what_this_machine_has(tmp_path: Path) -> None:
    provider = EmbeddedProvider(models_dir=tmp_path / "models")
    with pytest.raises(ProviderError) as caught:
        await _events(provider, _request("nope"))
    assert caught.value.message == (
        "no embedded model 'nope': use smollm2, the absolute path of a .gguf file, or the name "
        f"of a .gguf file in {tmp_path / 'models'} (there are none yet)"
    )
    (tmp_path / "models").mkdir()
    os.symlink(smollm2_path(), tmp_path / "models" / "tiny.gguf")
    with pytest.raises(ProviderError) as caught:
        await _events(provider, _request("nope"))
    assert caught.value.message.endswith(f"in {tmp_path / 'models'} (tiny)")


async def test_a_file_that_is_no_model_says_why_it_did_not_load(tmp_path: Path) -> None:
    (tmp_path / "notes.gguf").write_text("hello, not a model")
    provider = EmbeddedProvider(models_dir=tmp_path)
    with pytest.raises(ProviderError) as caught:
        await _events(provider, _request("notes"))
    assert caught.value.message == (
        "cannot load notes.gguf: invalid magic characters: 'hell', expected 'GGUF'"
    )


async def test_an_answer_cut_inside_a_character_ends_before_it(embedded: EmbeddedProvider) -> None:
    """At temperature 0 SmolLM2 answers this with emoji, four bytes each, one token apiece
    or less: four tokens end inside the second. The cut half is left out, not shown as U+FFFD
    (which the model did not write)."""
    request = ChatRequest(
        "smollm2",
        (Message("user", "Give me a party emoji."),),
        GenParams(max_tokens=4, temperature=0),
    )
    text = "".join(e.text for e in await _events(embedded, request) if isinstance(e, TextDelta))
    assert text and "\ufffd" not in text
    assert len(text.encode("utf-8")) % 4 == 0  # whole emoji only


LOAD_WHILE_WRITING = """
import os, sys, threading
from providers.embedded import EmbeddedProvider

provider = EmbeddedProvider(context_length=512)
loaded = threading.Event()

def load() -> None:
    provider._load(provider.model_path("smollm2"))
    loaded.set()

threading.Thread(target=load).start()
written = 0
while not loaded.is_set() or written < 10:
    written += 1
    os.write(1, b"fd %d\\n" % written)
    print(f"print {written}", flush=True)
print(f"written {written}", file=sys.stderr, flush=True)
"""


def test_loading_a_model_loses_nothing_the_rest_of_the_program_writes(tmp_path: Path) -> None:
    """llama-cpp-python hides llama.cpp's chatter by pointing the process's stdout and
    stderr at /dev/null while a model loads: from its thread, for every thread. The TUI's
    frames and `ask`'s answers written meanwhile were lost."""
    done = subprocess.run(
        [sys.executable, "-c", LOAD_WHILE_WRITING],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).resolve().parent.parent,
        check=True,
    )
    written = int(done.stderr.strip().splitlines()[-1].removeprefix("written "))
    lines = done.stdout.splitlines()
    assert sum(line.startswith("fd ") for line in lines) == written
    assert sum(line.startswith("print ") for line in lines) == written
    # And llama.cpp stays quiet: nothing of its own on either stream.
    assert done.stderr.strip() == f"written {written}"


async def test_an_answer_cancelled_before_its_usage_counts_the_prompt_as_the_model_does(
    embedded: EmbeddedProvider,
) -> None:
    """Its count comes with the end of the answer: cancelled before, the prompt was estimated
    without the chat template (`in ~8` for 31 tokens)."""
    from providers.registry import parse_target
    from workbench.engine.fanout import new_result, request_for, stream_target
    from workbench.wiring import make_registry

    target = parse_target("embedded:smollm2@max_tokens=200")
    request = request_for(target, [Message("user", "Tell me a long story about a fox.")])
    await embedded.load("smollm2")
    result = new_result(target, make_registry(Settings(), {}))
    answering = asyncio.Event()

    def update(result: TargetResult) -> None:
        if result.text:
            answering.set()

    streaming = asyncio.create_task(
        stream_target(target, embedded, request, result, on_update=update, live_estimates=False)
    )
    await answering.wait()
    streaming.cancel()
    with pytest.raises(asyncio.CancelledError):
        await streaming
    counted = embedded.prompt_counter("smollm2")
    assert counted is not None
    assert result.status == "cancelled"
    assert (result.input_tokens, result.input_exact) == (counted(request.messages), True)


async def test_a_prompt_starts_from_the_cache_only_when_it_goes_on_with_its_conversation(
    tmp_path: Path,
) -> None:
    """Two settings of one model sent one prompt: the second started from the first one's
    cache, and won fastest TTFT at 18 ms against 250 ms. A conversation's next turn still
    starts from its own. Counted by llama.cpp itself: the prompt tokens it evaluated."""
    import llama_cpp

    provider = EmbeddedProvider(context_length=2048)
    await provider.load("smollm2")
    llama = provider._loaded[smollm2_path()].llama  # llama.cpp's counters, not ours

    async def evaluated(messages: list[Message]) -> tuple[int, str]:
        llama_cpp.llama_perf_context_reset(llama.ctx)
        request = ChatRequest("smollm2", tuple(messages), GenParams(max_tokens=8, temperature=0))
        text = "".join(e.text for e in await _events(provider, request) if isinstance(e, TextDelta))
        return llama_cpp.llama_perf_context(llama.ctx).n_p_eval, text

    first = [Message("user", "Name three rivers of Europe, briefly.")]
    whole, answer = await evaluated(first)
    again, _ = await evaluated(first)  # as another target on this model would send it
    assert again == whole > 10
    turn_two = [*first, Message("assistant", answer), Message("user", "And of Asia?")]
    counted = provider.prompt_counter("smollm2")
    assert counted is not None
    went_on, _ = await evaluated(turn_two)
    assert went_on < counted(turn_two) - whole // 2  # its first turn came from the cache
