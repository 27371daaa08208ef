"""A conversation several windows long is summarized whole: in window-sized pieces, oldest
first, each request carrying the summary so far, so no turn is left out unsaid."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from providers.base import ChatRequest, Message, ProviderError, StreamEvent, TextDelta, Usage
from providers.registry import parse_target
from workbench.config import Settings
from workbench.engine import context, tokens
from workbench.engine.conversation import SUMMARY_NOTE, Conversation
from workbench.wiring import make_registry

ENV = {"OLLAMA_HOST": "127.0.0.1:9"}
TARGET = "embedded:smollm2@max_tokens=24,temperature=0"
FACT = "The vault in Lisbon opens with the word PELICAN."


def lockers(exchanges: int) -> Conversation:
    """Short questions, long answers: a piece cut by size alone would end on a question.
    The oldest question carries a fact no later turn repeats. Words, not digits: SmolLM2
    spends a token on each digit, past what ESTIMATE_SLACK allows for."""
    c = Conversation(system="Be brief.")
    for i in range(exchanges):
        c.ask(FACT if i == 0 else f"Note {i}: what does locker {i} keep?")
        c.answered(f"Locker {i} keeps the blue coat, the brass key and the old map. " * 6)
    return c


def test_pieces_cover_every_turn_oldest_first_in_whole_exchanges_that_fill_the_window() -> None:
    target, window = parse_target(TARGET), 512
    c = lockers(12)
    plan = context.plan_summary(target, c.messages(), window)
    assert len(plan.pieces) > 2
    # Every turn once, in order: the oldest ones (and their fact) are summarized, not lost.
    assert [i for piece in plan.pieces for i in piece] == list(range(len(c.turns)))
    assert plan.turns[plan.pieces[0][0]].content == FACT
    estimator = tokens.estimator_for(target.provider, target.model)
    room = 24
    carried = "fact " * room  # as long as the plan allows for a summary carried
    spare = room + window // context.ESTIMATE_SLACK

    def cost(piece: range, summary: str | None) -> int:
        return estimator.count_messages(plan.request(target, piece, summary).messages) + spare

    for n, piece in enumerate(plan.pieces):
        summary = carried if n else None
        request = plan.request(target, piece, summary)
        assert request.params.max_tokens == room
        assert request.messages[1].role == "user"  # never an answer without its question
        assert request.messages[-1] == Message("user", context.SUMMARY_PROMPT)
        assert (SUMMARY_NOTE in request.messages[0].content) == bool(n)
        assert cost(piece, summary) <= window
        if n < len(plan.pieces) - 1:  # it is as long as fits: one more exchange would not
            assert cost(range(piece.start, piece.stop + 2), summary) > window


def test_a_conversation_that_fits_is_summarized_in_one_request() -> None:
    plan = context.plan_summary(parse_target(TARGET), lockers(2).messages(), 512)
    assert plan.pieces == (range(4),)


async def test_an_earlier_turn_too_long_to_summarize_is_not_left_out_silently() -> None:
    registry = make_registry(Settings(embedded_context=512), ENV)
    c = Conversation()
    # ~580 tokens by SmolLM2's own count, with the summary's room: past 512 with no slack.
    c.ask("Remember this. " + "The quick brown fox jumps over the lazy dog. " * 48)
    c.answered("I will.")
    c.ask("Thanks.")
    c.answered("You are welcome.")
    with pytest.raises(ProviderError, match="even an earlier turn does not fit") as caught:
        await context.summarize(registry, parse_target(TARGET), c.messages())
    assert "drop the earlier turns instead" in caught.value.message


async def test_a_conversation_several_windows_long_is_summarized_piece_by_piece(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    window = 768
    registry = make_registry(Settings(embedded_context=window), ENV)
    target = parse_target(TARGET)
    c = lockers(20)
    estimator = tokens.estimator_for(target.provider, target.model)
    assert estimator.count_messages(c.messages()) > 3 * window
    # What the real model was sent, and what it answered: its own stream, passed through.
    provider = registry.get(target.provider)
    real_stream = provider.stream
    sent: list[ChatRequest] = []
    answers: list[str] = []

    async def stream(request: ChatRequest) -> AsyncIterator[StreamEvent]:
        sent.append(request)
        answers.append("")
        async for event in real_stream(request):
            if isinstance(event, TextDelta):
                answers[-1] += event.text
            yield event

    monkeypatch.setattr(provider, "stream", stream)
    summary = await context.summarize(registry, target, c.messages())
    assert summary and summary == answers[-1].strip()
    assert len(sent) > 2
    turns = [list(r.messages[1:-1]) for r in sent]
    assert [m for piece in turns for m in piece] == c.turns  # every turn, oldest first
    assert turns[0][0].content == FACT
    for before, request in zip(answers, sent[1:], strict=False):
        assert request.messages[0].content.endswith(f"{SUMMARY_NOTE}{before.strip()}")
        assert request.messages[1].role == "user"
    # Planned again after each piece, with the summary it got: never more than foreseen.
    plan = context.plan_summary(target, c.messages(), window, registry=registry)
    assert len(sent) <= len(plan.pieces)


UNCAPPED = "embedded:smollm2@temperature=0"
"""A target that sets no max_tokens: the provider's default would let a summary run on."""
FRUIT = ["red apple", "green pear", "yellow lemon", "blue plum", "brown nut", "white egg"]


@pytest.mark.parametrize(("window", "room"), [(512, 512 // 4), (4096, context.SUMMARY_TOKENS)])
def test_a_summary_is_asked_for_in_no_more_than_its_room_when_max_tokens_is_unset(
    window: int, room: int
) -> None:
    target = parse_target(UNCAPPED)
    assert target.params.max_tokens is None
    c = lockers(12)
    plan = context.plan_summary(target, c.messages(), window)
    for n, piece in enumerate(plan.pieces):
        request = plan.request(target, piece, "fact" if n else None)
        assert request.params.max_tokens == room
        assert request.params.temperature == 0  # the target's other settings stay


def crates(big: int) -> Conversation:
    """Five short lists, which SmolLM2 summarizes by listing on until it is stopped, then one
    long one, which fits beside a summary as long as planned but not beside a longer one."""
    c = Conversation(system="List every item of every crate, one per line, in full.")
    for i, lines in enumerate([6] * 5 + [big]):
        c.ask(f"List the items in crate {i}, one per line.")
        c.answered("\n".join(f"{j + 1}. a {FRUIT[j % 6]} from crate {i}" for j in range(lines)))
    return c


async def test_a_rambling_summary_is_cut_at_its_room_and_the_next_piece_still_fits(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Uncapped, the first summary ran on to the end of the window (263 tokens where 192
    were planned), and the last crate no longer fit beside it: "even the latest turn does
    not fit", which blamed the turn. Cut at its room, it is still a summary, and carried."""
    window = 768
    room = window // 4
    registry = make_registry(Settings(embedded_context=window), ENV)
    target = parse_target(UNCAPPED)
    provider = registry.get(target.provider)
    real_stream = provider.stream
    sent: list[tuple[ChatRequest, Usage]] = []
    answers: list[str] = []

    async def stream(request: ChatRequest) -> AsyncIterator[StreamEvent]:
        answers.append("")
        async for event in real_stream(request):
            if isinstance(event, TextDelta):
                answers[-1] += event.text
            if isinstance(event, Usage):
                sent.append((request, event))
            yield event

    monkeypatch.setattr(provider, "stream", stream)
    c = crates(22)
    summary = await context.summarize(registry, target, c.messages())
    assert summary == answers[-1].strip()
    assert len(sent) == 2  # the five short crates, then the long one
    for request, usage in sent:
        assert request.params.max_tokens == room
        assert usage.output_tokens is not None and usage.output_tokens <= room
        assert usage.input_tokens is not None and usage.input_tokens + room <= window
    first = sent[0][1]
    assert first.output_tokens == room  # cut at the cap, and kept: the next piece carries it
    assert sent[1][0].messages[0].content.endswith(answers[0].strip())
