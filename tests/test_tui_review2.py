"""A second reviewer's findings driving the real TUI: each test drives the app with Pilot and
loopback servers, and failed before its fix."""

from __future__ import annotations

import time
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import Input, Label, OptionList, Static

from providers.base import Message
from tests.tui_helpers import Loop, send, shown, wait_finished, wait_until
from workbench import locations
from workbench.config import Settings
from workbench.engine import context
from workbench.engine.conversation import Conversation
from workbench.store import Store
from workbench.tui.app import WorkbenchApp, make_app
from workbench.tui.screens.overflow import OverflowScreen
from workbench.tui.screens.suites import SuitesScreen, TextScreen
from workbench.tui.widgets.pane import Pane

NO_KEYS = {"OLLAMA_HOST": "127.0.0.1:9"}


def _on_screen(app: WorkbenchApp) -> str:
    return app.export_screenshot().replace("&#160;", " ")


def _notes(
    app: WorkbenchApp, monkeypatch: pytest.MonkeyPatch, severity: str | None = None
) -> list[str]:
    """The messages of the toasts `app` shows from now on (only those of `severity`, if set)."""
    notes: list[str] = []
    real = app.notify

    def notify(message: str, **kwargs: Any) -> None:
        if severity is None or kwargs.get("severity") == severity:
            notes.append(message)
        real(message, **kwargs)

    monkeypatch.setattr(app, "notify", notify)
    return notes


async def test_quitting_mid_stream_stores_every_pane_cancelled_with_its_partial_text(
    loop: Loop,
) -> None:
    loop.held = {"a", "b"}
    app = loop.app("loop:a", "loop:b")
    async with app.run_test(size=(120, 32)) as pilot:
        await send(pilot, "hi")
        panes = app.panes
        await wait_until(
            pilot, lambda: all(p.result is not None and "la" in p.result.text for p in panes), 10
        )
        batch = panes[0].batch_id
        started = time.monotonic()
        await pilot.press("ctrl+q")
    assert time.monotonic() - started < 5  # quitting stays quick
    with Store(locations.database_path()) as store:
        rows = store.responses(batch)
    assert sorted(str(r["target"]) for r in rows) == ["loop:a", "loop:b"]
    for row in rows:
        assert row["status"] == "cancelled"
        assert str(row["text"]).startswith("partial la")


async def test_the_context_figure_survives_a_metrics_line_cut_at_the_panes_edge(
    loop: Loop,
) -> None:
    app = loop.app("loop:a", "loop:b")
    async with app.run_test(size=(140, 40)) as pilot:
        await send(pilot, "hi")
        await wait_finished(pilot)
        pane = app.panes[0]
        assert pane.result is not None
        # What a local model that had to load shows: a full line.
        pane.result.load_s, pane.memory_bytes = 2.5, 1_500_000_000
        pane.window = 8  # 7 of 8 tokens used: past the warning mark
        pane.render_metrics()
        await pilot.pause(0.1)
        metrics = pane.query_one("#metrics", Static)
        visible = metrics.render_line(0).text
        assert "…" in visible or len(shown(pane, "metrics")) > metrics.size.width
        assert "ctx 7/8" in visible
        ctx = next(s for s in metrics.render_line(0) if "ctx" in s.text)
        assert ctx.style is not None and ctx.style.bold


async def test_widening_the_terminal_brings_the_full_metrics_back_at_once(loop: Loop) -> None:
    app = loop.app("loop:a", "loop:b")
    async with app.run_test(size=(80, 32)) as pilot:
        await send(pilot, "hi")
        await wait_finished(pilot)
        assert all("TTFT" not in shown(p, "metrics") for p in app.panes)  # compact
        await pilot.resize_terminal(200, 32)
        await wait_until(pilot, lambda: all("TTFT" in shown(p, "metrics") for p in app.panes), 5)
        assert all("in 5 / out 2" in shown(p, "metrics") for p in app.panes)


async def _suite_running(pilot: Pilot[None], app: WorkbenchApp, loop: Loop) -> SuitesScreen:
    """The suites screen, running the shipped offline suite on `loop:m`."""
    await pilot.press("f8")
    await wait_until(pilot, lambda: isinstance(app.screen, SuitesScreen))
    screen = app.screen
    assert isinstance(screen, SuitesScreen)
    suites = screen.query_one("#suite-list", OptionList)
    names = [str(suites.get_option_at_index(i).id) for i in range(suites.option_count)]
    suites.focus()
    suites.highlighted = next(i for i, n in enumerate(names) if n.endswith("offline-basics.yaml"))
    await pilot.press("enter")
    await wait_until(pilot, lambda: screen.suite is not None)
    screen.query_one("#suite-targets", Input).value = "loop:m"
    await pilot.press("ctrl+r")
    await wait_until(pilot, lambda: bool(loop.asked), 10)  # the run is in the store
    return screen


def _held(loop: Loop, monkeypatch: pytest.MonkeyPatch) -> tuple[WorkbenchApp, list[str]]:
    """An app on a loop server that holds its answers, and the notes the app will show."""
    loop.held = {"a", "m"}  # the pane's model, and the suite's
    app = loop.app("loop:a")
    return app, _notes(app, monkeypatch)


async def test_suites_compare_waits_for_the_run_to_finish(
    loop: Loop, monkeypatch: pytest.MonkeyPatch
) -> None:
    app, notes = _held(loop, monkeypatch)
    async with app.run_test(size=(140, 40)) as pilot:
        screen = await _suite_running(pilot, app, loop)
        await pilot.press("f9")
        await pilot.pause(0.3)
        assert app.screen is screen and not isinstance(app.screen, TextScreen)
        assert any("still going" in note for note in notes)
        loop.release.set()


async def test_escape_during_a_suite_run_says_how_to_finish_it(
    loop: Loop, monkeypatch: pytest.MonkeyPatch
) -> None:
    app, notes = _held(loop, monkeypatch)
    async with app.run_test(size=(140, 40)) as pilot:
        screen = await _suite_running(pilot, app, loop)
        await pilot.press("escape")
        await wait_until(pilot, lambda: app.screen is app.screen_stack[0], 5)
        assert any(f"workbench run --resume {screen.run_id}" in note for note in notes)
        loop.release.set()


async def test_the_palette_has_one_leaderboard_and_one_screenshot_that_works(
    loop: Loop,
) -> None:
    app = loop.app("loop:a")
    saved = locations.screenshots_dir()
    before = set(saved.glob("*.svg")) if saved.is_dir() else set()
    async with app.run_test(size=(120, 32), notifications=True) as pilot:
        titles = [c.title for c in app.get_system_commands(app.screen)]
        assert titles.count("Leaderboard") == 1
        assert titles.count("Screenshot") == 1
        await pilot.press("ctrl+p")
        await pilot.pause(0.2)
        await pilot.press(*"Screenshot")
        await pilot.pause(0.5)  # the palette searches as it is typed
        await pilot.press("enter")
        await wait_until(pilot, lambda: saved.is_dir() and set(saved.glob("*.svg")) > before, 5)
        await pilot.pause(0.3)
        assert "Failed to save screenshot" not in _on_screen(app)


# --- a prompt too long for its pane's window, even once the conversation is made to fit ---

WINDOW = 768
SMOLLM2 = "embedded:smollm2@max_tokens=16,temperature=0"


async def _embedded(pilot: Pilot[None], app: WorkbenchApp) -> Pane:
    """The app's one pane, once its SmolLM2 is loaded with a window of WINDOW tokens (from
    then on its prompts are counted exactly), a few turns into a conversation."""
    (pane,) = app.panes
    await wait_until(pilot, lambda: pane.window == WINDOW, timeout_s=30)
    pane.conversation.system = "Be brief."
    for i, fact in enumerate(["The vault opens with PELICAN.", "The boat is called Heron."]):
        pane.conversation.ask(f"Remember fact {i + 1}: {fact}")
        pane.conversation.answered(f"Noted: {fact}")
    return pane


def _needed(app: WorkbenchApp, pane: Pane, conversation: Conversation, prompt: str) -> int:
    asked = [*conversation.messages(), Message("user", prompt)]
    return context.needed(pane.target, asked, registry=app.registry)


async def _choose(pilot: Pilot[None], app: WorkbenchApp, choice: str) -> None:
    await wait_until(pilot, lambda: isinstance(app.screen, OverflowScreen), timeout_s=30)
    options = app.screen.query_one(OptionList)
    options.highlighted = options.get_option_index(choice)
    await pilot.press("enter")


async def _settled(pilot: Pilot[None], pane: Pane) -> None:
    """Until the pane says it was not sent the prompt, or has the model's answer to it."""

    def settled() -> bool:
        answered = pane.result is not None and pane.result.finished
        return answered or "not sent" in pane._document

    await wait_until(pilot, settled, timeout_s=60)
    await pilot.pause(0.2)


async def test_a_prompt_still_too_long_after_summarizing_is_not_sent_but_the_summary_stays(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    app = make_app(Settings(embedded_context=WINDOW), [SMOLLM2], env=NO_KEYS)
    errors = _notes(app, monkeypatch, severity="error")
    async with app.run_test(size=(140, 40)) as pilot:
        pane = await _embedded(pilot, app)
        # The prompt fits beside a one-token summary to the last token, and so beside no
        # real one: one token a word, it grows until it needs the whole window.
        floor = Conversation(pane.conversation.system, summary=".")
        prompt = "Read both facts back to me"
        while _needed(app, pane, floor, prompt + " now") <= WINDOW:
            prompt += " now"
        assert _needed(app, pane, floor, prompt) == WINDOW
        await send(pilot, prompt)
        await _choose(pilot, app, "summarize")
        await _settled(pilot, pane)
        assert pane.result is None  # nothing went to the model, which would refuse it
        summary = pane.conversation.summary
        assert summary and pane.conversation.turns == []  # summarized, and that is kept
        assert _needed(app, pane, pane.conversation, prompt) > WINDOW
        assert "summarized to fit" not in pane._document
        (note,) = errors
        assert "even with 4 earlier turns summarized" in note and "a shorter prompt" in note
        assert f"the context window is {WINDOW:,}" in note


@pytest.mark.parametrize("choice", ["drop", "summarize"])
async def test_a_prompt_too_long_alone_loses_no_turns_and_is_not_sent(
    choice: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Dropping every turn, or summarizing them, cannot make room for a prompt that is past
    the window on its own: the conversation is left as it was and the user told why."""
    app = make_app(Settings(embedded_context=WINDOW), [SMOLLM2], env=NO_KEYS)
    errors = _notes(app, monkeypatch, severity="error")
    async with app.run_test(size=(140, 40)) as pilot:
        pane = await _embedded(pilot, app)
        turns = list(pane.conversation.turns)
        prompt = "Read this back to me. " + "The quick brown fox jumps over the lazy dog. " * 80
        assert _needed(app, pane, Conversation(), prompt) > WINDOW
        await send(pilot, prompt)
        await _choose(pilot, app, choice)
        await _settled(pilot, pane)
        assert pane.result is None
        assert pane.conversation.turns == turns and pane.conversation.summary is None
        (note,) = errors
        assert "even with no earlier turns" in note and "a shorter prompt" in note
        assert "a smaller max_tokens (it is 16)" in note and "a larger embedded_context" in note


# --- blind mode gives nothing away: errors, the overflow dialog, notes, figures ---


async def _blind_round(pilot: Pilot[None]) -> None:
    """Blind mode on, and one prompt answered by every pane."""
    await pilot.press("f2")
    await send(pilot, "hi")
    await wait_finished(pilot)


async def test_a_failed_pane_in_blind_mode_keeps_its_reason_until_the_reveal(
    loop: Loop,
) -> None:
    """`failed: OPENAI_API_KEY is not set …` named the provider of Model A or B."""
    app = loop.app("openai:gpt-4o-mini", "loop:a")
    async with app.run_test(size=(140, 40)) as pilot:
        await _blind_round(pilot)
        (failed,) = [p for p in app.panes if p.result and p.result.status == "failed"]
        assert "OPENAI_API_KEY" in (failed.result.error or "")  # type: ignore[union-attr]
        error = shown(failed, "error")
        assert error.startswith("failed: ") and "after the vote" in error
        screen = _on_screen(app).lower()
        assert "openai" not in screen and "api_key" not in screen
        await pilot.press("f2")  # leaving blind mode reveals it
        await wait_until(pilot, lambda: "OPENAI_API_KEY" in shown(failed, "error"), 5)


async def test_a_blind_pane_shows_no_loading_or_provider_note_and_no_window_size(
    loop: Loop,
) -> None:
    app = loop.app("loop:a", "loop:b")
    async with app.run_test(size=(160, 40)) as pilot:
        await _blind_round(pilot)
        pane = app.panes[0]
        assert pane.result is not None
        # What a local model shows as it loads, a cloud one as it waits out a rate limit.
        pane.model_state = ("loading model…", "yellow")
        pane.result.status = "waiting"
        pane.result.notes.append("openai rate limit: retrying in 2s")
        pane.result.load_s, pane.window = 2.5, 8  # 7 of 8 tokens used
        pane.render_header()
        pane.render_metrics()
        await pilot.pause(0.1)
        header, metrics = shown(pane, "header"), shown(pane, "metrics")
        assert header.startswith("Model ") and header.endswith("· waiting"), header
        assert "load" not in metrics and "/8" not in metrics, metrics
        assert "ctx nearly full" in metrics  # still warned, without the window's size
        await pilot.press("f2")
        await wait_until(pilot, lambda: "loading model" in shown(pane, "header"), 5)
        assert "ctx 7/8" in shown(pane, "metrics") and "load 2.5" in shown(pane, "metrics")


async def test_the_overflow_dialog_and_note_in_blind_mode_give_no_window_size(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    app = make_app(Settings(embedded_context=WINDOW), [SMOLLM2], env=NO_KEYS)
    errors = _notes(app, monkeypatch, severity="error")
    async with app.run_test(size=(140, 40)) as pilot:
        pane = await _embedded(pilot, app)
        await pilot.press("f2")
        prompt = "Read this back to me. " + "The quick brown fox jumps over the lazy dog. " * 80
        await send(pilot, prompt)
        await wait_until(pilot, lambda: isinstance(app.screen, OverflowScreen), timeout_s=30)
        said = str(app.screen.query_one(Label).content)
        assert said == "The conversation no longer fits Model A's context window.", said
        await _choose(pilot, app, "drop")
        await _settled(pilot, pane)
        (note,) = errors
        assert "Model A" in note and "a shorter prompt" in note
        for hint in (f"{WINDOW}", "max_tokens", "embedded", "smollm"):
            assert hint not in note and hint not in pane._document, hint


# --- a small window: room for the answer scales with it, and advice that can work ---


async def test_a_short_first_prompt_fits_a_512_token_window() -> None:
    """A fixed 512 tokens kept for the answer filled the window before any prompt: the
    first question opened the overflow dialog, and nothing in it could help."""
    app = make_app(Settings(embedded_context=512), ["embedded:smollm2@temperature=0"], env=NO_KEYS)
    async with app.run_test(size=(140, 40)) as pilot:
        (pane,) = app.panes
        await wait_until(pilot, lambda: pane.window == 512, timeout_s=30)
        await send(pilot, "What is the capital of France? One word.")
        await wait_until(
            pilot,
            lambda: isinstance(app.screen, OverflowScreen) or pane.result is not None,
            timeout_s=30,
        )
        assert not isinstance(app.screen, OverflowScreen)
        await wait_finished(pilot)
        assert pane.result is not None and pane.result.status == "done"


async def test_a_prompt_too_long_with_no_earlier_turns_is_offered_only_what_helps() -> None:
    """With no turns, summarizing or dropping them cannot make room: the dialog says what
    can, and offers neither."""
    app = make_app(Settings(embedded_context=512), [SMOLLM2], env=NO_KEYS)
    async with app.run_test(size=(140, 40)) as pilot:
        (pane,) = app.panes
        await wait_until(pilot, lambda: pane.window == 512, timeout_s=30)
        await send(pilot, "Read this back to me. " + "The quick brown fox jumps. " * 80)
        await wait_until(pilot, lambda: isinstance(app.screen, OverflowScreen), timeout_s=30)
        said = str(app.screen.query_one(Label).content)
        assert "no earlier turns to summarize or drop" in said, said
        assert "a shorter prompt" in said and "a smaller max_tokens (it is 16)" in said
        assert "a larger embedded_context" in said
        options = app.screen.query_one(OptionList)
        ids = [options.get_option_at_index(i).id for i in range(options.option_count)]
        assert ids == ["send", "skip"]
        await pilot.press("escape")
        await pilot.pause(0.2)
        assert pane.result is None and pane.conversation.turns == []
