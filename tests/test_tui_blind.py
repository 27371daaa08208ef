"""Blind mode driven for real: letters for names, a vote on the panes the last prompt went
to, and nothing on the screen that tells the models apart. Each test drives the app with
Pilot, the real embedded model or loopback servers."""

from __future__ import annotations

from pathlib import Path

from textual.pilot import Pilot

from tests.tui_helpers import (
    Loop,
    app_for,
    pick_typed,
    screen_text,
    send,
    shown,
    transcript_text,
    wait_finished,
    wait_until,
)
from workbench.tui.app import WorkbenchApp
from workbench.tui.screens.leaderboard import LeaderboardScreen
from workbench.tui.screens.vote import VoteScreen
from workbench.tui.widgets.fitted_table import FittedTable
from workbench.tui.widgets.prompt import PromptBox

LOCAL = "embedded:smollm2@max_tokens=4,temperature=0"


async def _blind_round(pilot: Pilot[None]) -> None:
    """Blind mode on, and one prompt answered by every pane."""
    await pilot.press("f2")
    await send(pilot, "hi")
    await wait_finished(pilot)


def _battles(app: WorkbenchApp) -> dict[str, int]:
    """Each target's battles so far, in the store the tests share."""
    return {s.target: s.battles for s in app.store.leaderboard()}


async def test_blind_mode_names_no_model_in_a_pane_old_or_new(loop: Loop) -> None:
    app = app_for(loop, "loop:y", LOCAL)
    async with app.run_test(size=(160, 40)) as pilot:
        await send(pilot, "hi")
        await wait_finished(pilot)
        await pick_typed(pilot, "ctrl+o", "loop:z")  # the current pane: the first
        switched = app.panes[0]
        await wait_until(pilot, lambda: "switched from" in switched.transcript)
        await pilot.press("f2")
        await wait_until(pilot, lambda: all(p.blind_name for p in app.panes))
        for pane in app.panes:
            for text in (pane.transcript, transcript_text(pane)):
                assert "loop:" not in text and "smollm2" not in text
                assert "hidden in blind mode" in text
        await pick_typed(pilot, "ctrl+o", LOCAL)
        await wait_until(pilot, lambda: switched.target.provider == "embedded")
        await pilot.pause(0.1)
        for text in (switched.transcript, transcript_text(switched)):
            assert "model switched" in text
            assert "loop:" not in text and "smollm2" not in text
        assert shown(switched, "header").startswith("Model ")


async def test_a_pane_added_in_a_blind_round_is_named_by_letter_and_not_voted_on(
    loop: Loop,
) -> None:
    app = app_for(loop, "loop:y", "loop:z")
    async with app.run_test(size=(160, 40)) as pilot:
        await pilot.press("f2")
        await send(pilot, "hi")
        await wait_finished(pilot)
        await pick_typed(pilot, "ctrl+n", "loop:w")
        await wait_until(pilot, lambda: len(app.panes) == 3)
        (added,) = [p for p in app.panes if p.target.model == "w"]
        assert added.blind_name == "C"
        for text in (shown(added, "header"), transcript_text(added)):
            assert "loop:" not in text
        await pilot.press("f3")
        await wait_until(pilot, lambda: isinstance(app.screen, VoteScreen))
        assert isinstance(app.screen, VoteScreen)
        assert sorted(app.screen.names) == ["A", "B"]


async def test_a_pane_added_after_the_vote_looks_like_the_others_in_the_next_round(
    loop: Loop,
) -> None:
    app = app_for(loop, "loop:y", "loop:z")
    async with app.run_test(size=(160, 40)) as pilot:
        await _blind_round(pilot)
        await pilot.press("f3")
        await wait_until(pilot, lambda: isinstance(app.screen, VoteScreen))
        await pilot.press("enter")
        await wait_until(pilot, lambda: not any(p.blind_name for p in app.panes))
        await pick_typed(pilot, "ctrl+n", "loop:w")
        await wait_until(pilot, lambda: len(app.panes) == 3)
        app.query_one(PromptBox).focus()
        await send(pilot, "again")
        await wait_until(pilot, lambda: all(p.blind_name for p in app.panes))
        await wait_finished(pilot)
        for pane in app.panes:
            assert transcript_text(pane).startswith("— earlier turns hidden in blind mode")


async def test_the_blind_vote_is_on_the_panes_the_last_prompt_went_to(loop: Loop) -> None:
    """A cloud pane kept out of a private prompt still shows the round before: it is not
    voted on as if it had answered this one."""
    app = app_for(loop, LOCAL, "loop:a", "openai:gpt-4o-mini")
    async with app.run_test(size=(160, 40)) as pilot:
        local, other, cloud = app.panes
        await pilot.press("f2")
        await send(pilot, "first, to all")
        await wait_finished(pilot)
        assert cloud.result is not None  # it answered (with its missing key) the first
        app.query_one(PromptBox).focus()
        await pilot.press("f5")  # private: local models only
        await send(pilot, "second, private")
        await wait_until(pilot, lambda: len(local.conversation.turns) == 4, 30)
        await wait_finished(pilot)
        await pilot.press("f3")
        await wait_until(pilot, lambda: isinstance(app.screen, VoteScreen))
        assert isinstance(app.screen, VoteScreen)
        assert sorted(app.screen.names) == sorted([local.blind_name, other.blind_name])


async def test_a_pane_that_failed_is_not_voted_on_and_loses_no_battle(loop: Loop) -> None:
    app = app_for(loop, "loop:a", "loop:b", "openai:gpt-4o-mini")  # no key: it fails
    async with app.run_test(size=(160, 40), notifications=True) as pilot:
        answering = [p for p in app.panes if p.is_local]
        (failed,) = [p for p in app.panes if not p.is_local]
        before = _battles(app)
        await _blind_round(pilot)
        await pilot.press("f3")
        await wait_until(pilot, lambda: isinstance(app.screen, VoteScreen))
        assert isinstance(app.screen, VoteScreen)
        assert sorted(app.screen.names) == sorted(p.blind_name for p in answering)
        letter = failed.blind_name
        await pilot.press("enter")  # the first answer wins
        await wait_until(pilot, lambda: not isinstance(app.screen, VoteScreen))
        after = _battles(app)
        fought = {t: n - before.get(t, 0) for t, n in after.items() if n != before.get(t, 0)}
        assert fought == {"loop:a": 1, "loop:b": 1}
        # The reveal names every letter, the one that failed too.
        reveal = next(n.message for n in app._notifications if n.message.startswith("Voted"))
        assert f"{letter} = openai:gpt-4o-mini" in reveal
        await pilot.press("f3")  # names shown again, blind mode still on
        await wait_until(pilot, lambda: "This round is voted on" in screen_text(app), 5)


async def test_one_answer_is_no_battle(loop: Loop) -> None:
    app = app_for(loop, "loop:a", "openai:gpt-4o-mini")
    async with app.run_test(size=(160, 40), notifications=True) as pilot:
        (local,) = [p for p in app.panes if p.is_local]
        before = _battles(app)
        await _blind_round(pilot)
        await pilot.pause(0.3)
        assert "Which answer was best" not in screen_text(app)  # F3 would only say no
        await pilot.press("f3")
        note = f"A vote needs two answers, and only Model {local.blind_name} answered"
        await wait_until(pilot, lambda: note in screen_text(app), 5)
        assert not isinstance(app.screen, VoteScreen)
        assert _battles(app) == before


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
        screen = screen_text(app).lower()
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


async def test_the_leaderboard_shows_every_column_at_80_columns(home: Path) -> None:
    """At 80x24 the dialog took 70 % of the width and the long names the rest: "win"
    was the last header shown. Now it takes the whole width, and the names shorten, each
    still told apart from the others."""
    targets = [
        "anthropic:claude-3-5-haiku-latest",
        "ollama:qwen2.5-coder:14b-instruct-q4_K_M",
        "embedded:smollm2@temperature=0.2,max_tokens=60",
        "embedded:smollm2@temperature=1.2,max_tokens=60",
    ]
    app = app_for(None)
    async with app.run_test(size=(80, 24)) as pilot:
        for i, pair in enumerate(zip(targets, [*targets[2:], *targets[:2]], strict=True)):
            app.store.add_vote(f"narrow-{i}", pair, None if i == 3 else pair[0])
        await pilot.press("f4")
        await wait_until(pilot, lambda: isinstance(app.screen, LeaderboardScreen))
        table = app.screen.query_one(FittedTable)
        await wait_until(pilot, lambda: table.row_count == len(targets))
        header = table.render_line(0).text
        assert header.split() == ["target", "win", "rate", "wins", "ties", "battles"], header
        shown = []
        for standing in app.store.leaderboard():
            index = table.get_row_index(standing.target)
            line = table.render_line(1 + index).text
            figures = f"{standing.win_rate:.0%} {standing.wins} {standing.ties} {standing.battles}"
            assert line.split()[1:] == figures.split(), line
            shown.append(line.split()[0])
        assert len(set(shown)) == len(targets)  # told apart
        assert "embedded:smollm2@temperature=0.2,…" in shown
        assert sum(c.get_render_width(table) for c in table.ordered_columns) <= table.size.width
        assert app.screen.query_one("#leaderboard").outer_size.width == 80

        await pilot.resize_terminal(150, 42)
        dialog = app.screen.query_one("#leaderboard")
        await wait_until(pilot, lambda: all(target in screen_text(app) for target in targets))
        assert dialog.outer_size.width == 90  # as it was
