"""The real app, driven with Pilot, against the embedded model and a real llama-server."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from pytest_httpserver import HTTPServer
from textual import events
from textual.widgets import OptionList

from providers.base import ChatRequest, GenParams, Usage
from providers.embedded import EmbeddedProvider
from tests.fault_servers import WIRES, Stall, streamed
from tests.llama_server import LlamaServer
from tests.tui_helpers import Loop, one_pane_app, send, shown, wait_finished, wait_until
from workbench.config import Endpoint, Settings
from workbench.tui import app as tui_app
from workbench.tui.app import WorkbenchApp, make_app
from workbench.tui.screens.picker import ModelPicker
from workbench.tui.widgets.pane import Pane
from workbench.tui.widgets.streamed import Transcript

NO_KEYS = {"OLLAMA_HOST": "127.0.0.1:9"}


@pytest.fixture
def settings(llama_server: LlamaServer) -> Settings:
    return Settings(
        endpoints={"llamacpp": Endpoint(kind="openai", base_url=llama_server.openai_url)}
    )


def _app(settings: Settings, *targets: str) -> WorkbenchApp:
    return make_app(settings, list(targets), env=NO_KEYS)


async def test_two_panes_finish_with_exact_tokens_and_a_summary(settings: Settings) -> None:
    app = _app(
        settings, "embedded:smollm2@max_tokens=8,label=a", "llamacpp:smollm2@max_tokens=8,label=b"
    )
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.pause()
        sizes = [pane.size for pane in app.panes]
        await send(pilot, "Name three fruits.")
        await wait_finished(pilot)
        # The summary's row is there from the start: a summary of one line moves nothing.
        assert [pane.size for pane in app.panes] == sizes
        for pane in app.panes:
            assert pane.result is not None and pane.result.status == "done"
            assert pane.result.text.strip()
            assert "done" in shown(pane, "header")
            metrics = shown(pane, "metrics")
            assert "out 8" in metrics and "~" not in metrics and "local" in metrics
            assert len(pane.conversation.turns) == 2  # the prompt and the answer
        summary = str(app.query_one("#summary").content)  # type: ignore[attr-defined]
        assert "fastest TTFT" in summary and "cheapest" in summary


async def test_escape_cancels_every_stream_and_keeps_partial_answers(settings: Settings) -> None:
    app = _app(settings, "embedded:smollm2@max_tokens=500", "llamacpp:smollm2@max_tokens=500")
    async with app.run_test(size=(160, 48)) as pilot:
        await send(pilot, "Explain in detail how a bicycle works, part by part.")
        await wait_until(
            pilot, lambda: all(p.result is not None and p.result.text for p in app.panes)
        )
        # A small model may end its answer early: only the panes still streaming are cut.
        streaming = [p for p in app.panes if p.result is not None and not p.result.finished]
        await pilot.press("escape")
        await wait_finished(pilot, timeout_s=5)
        assert streaming
        for pane in streaming:
            assert pane.result is not None and pane.result.status == "cancelled"
            assert pane.result.text
            assert "cancelled" in shown(pane, "header")
            assert pane.conversation.turns[-1].role == "assistant"  # the partial answer is kept


async def test_failed_provider_shows_its_error_while_the_other_completes(
    settings: Settings,
) -> None:
    app = _app(settings, "openai:gpt-4o-mini", "embedded:smollm2@max_tokens=6")
    async with app.run_test(size=(160, 48)) as pilot:
        await send(pilot, "Say hello.")
        await wait_finished(pilot)
        failed, ok = app.panes
        assert failed.result is not None and failed.result.status == "failed"
        assert "OPENAI_API_KEY is not set" in shown(failed, "error")
        assert "failed" in shown(failed, "header")
        assert ok.result is not None and ok.result.status == "done" and ok.result.text


async def test_switched_model_receives_the_whole_history(
    settings: Settings, embedded: EmbeddedProvider
) -> None:
    app = _app(settings, "embedded:smollm2@max_tokens=8,temperature=0")
    async with app.run_test(size=(120, 40)) as pilot:
        await send(pilot, "My name is Ada. Remember it.")
        await wait_finished(pilot)
        (pane,) = app.panes
        await pilot.press("ctrl+o")
        await wait_until(pilot, lambda: isinstance(app.screen, ModelPicker))
        app.screen.query_one("#custom").focus()
        await pilot.press(*"llamacpp:smollm2@max_tokens=8,temperature=0", "enter")
        await wait_until(pilot, lambda: pane.target.provider == "llamacpp")
        await send(pilot, "What is my name?")
        await wait_finished(pilot)
        assert pane.result is not None and pane.result.status == "done"
        history = pane.conversation.messages()[:-1]  # what was sent: all but the new answer
        assert [m.role for m in history] == ["user", "assistant", "user"]
        assert "switched from" in pane._document
        reference = [
            e
            async for e in embedded.stream(
                ChatRequest("smollm2", tuple(history), GenParams(max_tokens=1))
            )
            if isinstance(e, Usage)
        ]
        # llama-server counted the same prompt the whole conversation makes.
        assert pane.result.input_tokens == reference[0].input_tokens


@pytest.fixture
def hostile_server(httpserver: HTTPServer) -> Iterator[str]:
    hostile = "[bold red]x[/] [link=http://evil]y[/link] \x1b[2J\x1b]0;pwned\x07 \x1b[31mred\u202e"
    wire = WIRES["openai"]
    httpserver.expect_request(wire.path).respond_with_handler(lambda _: wire.stream(hostile))
    yield httpserver.url_for("/v1")


@pytest.fixture
def split_escape_server(httpserver: HTTPServer) -> Iterator[str]:
    """An escape sequence cut in two, with time between the halves for a frame to pass."""
    wire = WIRES["openai"]
    pause = Stall(threading.Event(), limit_s=0.4)  # never released: a 0.4 s wait
    parts = [*wire.start(), wire.text("red \x1b[3"), pause, wire.text("1mtext after it")]
    httpserver.expect_request(wire.path).respond_with_handler(
        lambda _: streamed([*parts, *wire.end()], wire.content_type)
    )
    yield httpserver.url_for("/v1")


async def test_an_escape_split_across_chunks_leaves_nothing_on_screen(
    split_escape_server: str,
) -> None:
    app = one_pane_app(split_escape_server)
    async with app.run_test(size=(120, 30)) as pilot:
        await send(pilot, "hi")
        await wait_finished(pilot)
        (pane,) = app.panes
        shown_text = " ".join(pane.query_one(Transcript).plain_lines())
        assert "red text after it" in shown_text and "1m" not in shown_text


async def test_markup_and_escapes_in_model_output_render_literally(hostile_server: str) -> None:
    app = one_pane_app(hostile_server)
    async with app.run_test(size=(120, 30)) as pilot:
        await send(pilot, "hi")
        await wait_finished(pilot)
        (pane,) = app.panes
        assert "[bold red]x[/]" in pane._document
        assert "\x1b" not in pane._document and "\x07" not in pane._document
        assert "\u202e" not in pane._document
        svg = app.export_screenshot()
        assert "[bold&#160;red]x[/]" in svg or "[bold red]x[/]" in svg
        assert "pwned" not in app.title


async def test_start_up_sets_up_the_panes_providers_before_the_first_prompt(
    settings: Settings,
) -> None:
    """An SDK's import (openai 0.6 s, anthropic 1.3 s) is done while the first frame is
    read, not while the first answers stream; a provider that cannot be set up (no key)
    says so when asked for an answer, and does not stop the others."""
    app = _app(settings, "openai:gpt-4o-mini", "llamacpp:smollm2@max_tokens=4")
    async with app.run_test(size=(160, 48)) as pilot:
        provider = app.registry.get("llamacpp")
        await wait_until(pilot, lambda: getattr(provider, "_client", None) is not None, 10)
        await send(pilot, "Hi")
        await wait_finished(pilot)
        keyless, local = app.panes
        assert "OPENAI_API_KEY is not set" in shown(keyless, "error")
        assert local.result is not None and local.result.status == "done"


async def test_panes_take_turns_each_at_its_own_phase_while_they_stream() -> None:
    """A frame brings a quarter of the panes up to date, each quarter scrolling at a phase
    of its own: a repaint then holds one pane's change, however many panes stream. Idle,
    the app takes no turns at all."""
    app = make_app(Settings(), ["embedded:smollm2@max_tokens=16"] * 5, env=NO_KEYS)
    async with app.run_test(size=(200, 40)) as pilot:
        turns: list[list[str]] = []
        take_turn = app._frame

        async def spied(panes: list[Pane]) -> None:
            turns.append([pane.id or "" for pane in panes])
            await take_turn(panes)

        app._frame = spied  # type: ignore[method-assign]
        await pilot.pause(0.3)
        assert turns == []
        await send(pilot, "Count to five.")
        await wait_until(pilot, lambda: len(turns) >= 8)
        ids = [pane.id for pane in app.panes]
        for i in range(5):  # long before the first answer ends
            four = [pane for turn in turns[i : i + 4] for pane in turn]
            assert sorted(four) == sorted(ids)  # each pane once in four turns
        assert [pane.phase for pane in app.panes] == [0.0, 0.25, 0.5, 0.75, 0.0]
        await wait_finished(pilot)
        taken = len(turns)
        await pilot.pause(0.3)
        assert len(turns) == taken


async def test_a_key_is_drawn_before_the_panes_next_turns_but_never_stops_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The two turns after a key are put off, so that no pane's repaint comes between the
    key and the screen; the third is taken however soon, or a held key would stop the
    panes."""
    app = make_app(Settings(), ["embedded:smollm2"] * 2, env=NO_KEYS)
    async with app.run_test(size=(120, 30)):
        taken: list[bool] = []
        take_turn = app._frame

        async def spied(panes: list[Pane]) -> None:
            taken.append(True)
            await take_turn(panes)

        app._frame = spied  # type: ignore[method-assign]

        async def turns(n: int) -> list[bool]:
            """Whether each of the next `n` turns was taken (the app's timer is idle)."""
            outcome = []
            for _ in range(n):
                before = len(taken)
                await app._next_phase()
                outcome.append(len(taken) > before)
            return outcome

        assert await turns(3) == [True] * 3  # no key yet
        # However slow this machine, the key counts as just read.
        monkeypatch.setattr(tui_app, "KEY_FIRST_S", 60.0)
        app.post_message(events.Key("a", "a"))
        assert await turns(6) == [False, False, True] * 2
        monkeypatch.setattr(tui_app, "KEY_FIRST_S", 0.0)
        assert await turns(3) == [True] * 3  # the key is long drawn


async def test_blind_mode_hides_names_until_the_vote(settings: Settings) -> None:
    app = _app(settings, "embedded:smollm2@max_tokens=6", "llamacpp:smollm2@max_tokens=6")
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.press("f2")
        headers = [shown(p, "header") for p in app.panes]
        assert sorted(h.split(" · ")[0] for h in headers) == ["Model A", "Model B"]
        assert not any("smollm2" in h or "local" in h for h in headers)
        await send(pilot, "Name a colour.")
        await wait_finished(pilot)
        assert not any("local" in shown(p, "metrics") for p in app.panes)
        await pilot.press("f3")
        await wait_until(pilot, lambda: type(app.screen).__name__ == "VoteScreen")
        await pilot.press("enter")  # the first option: Model A
        await wait_until(pilot, lambda: not any(p.blind_name for p in app.panes))
        board = app.store.leaderboard()
        assert len(board) == 2 and sum(s.wins for s in board) == 1
        assert {s.target for s in board} == {p.target.spec for p in app.panes}
        for pane in app.panes:  # revealed
            assert shown(pane, "header").startswith(pane.target.name)


async def test_the_picker_sizes_an_embedded_model_for_the_window_it_runs_with() -> None:
    """`embedded_context` sets the window an embedded model runs with, and so its KV cache:
    the picker's memory figure is for that window, not the 8k others are sized for."""
    app = make_app(Settings(embedded_context=512), ["embedded:smollm2"], env=NO_KEYS)
    async with app.run_test(size=(160, 40)) as pilot:
        await pilot.press("ctrl+n")
        await wait_until(pilot, lambda: isinstance(app.screen, ModelPicker))
        models = app.screen.query_one("#models", OptionList)
        line = str(models.get_option("embedded:smollm2").prompt)
        assert "needs ~" in line and "at 512:" in line, line
        await pilot.press("escape")


async def test_picker_headings_name_the_protocol_only_where_the_name_does_not(
    closed_port: int,
) -> None:
    endpoint = Endpoint(kind="openai", base_url=f"http://127.0.0.1:{closed_port}/v1")
    app = make_app(Settings(endpoints={"lm": endpoint}), ["embedded:smollm2"], env=NO_KEYS)
    async with app.run_test(size=(160, 40)) as pilot:
        await pilot.press("ctrl+n")
        await wait_until(pilot, lambda: isinstance(app.screen, ModelPicker))
        models = app.screen.query_one("#models", OptionList)
        heads = [str(o.prompt).split(" — ")[0] for o in models.options if o.disabled]
        assert heads == ["embedded · local", "ollama · local", "openai · cloud",
                         "anthropic · cloud", "lm · openai · local"]  # fmt: skip
        await pilot.press("escape")


async def test_a_long_target_name_gives_way_to_the_status_without_cutting_a_value() -> None:
    """In a narrow pane a model under several settings ran off the header's edge as
    `…max_tokens=12…` (of 128), and the status after it was not shown at all."""
    long = "embedded:smollm2@temperature=0,max_tokens=128,seed=42"
    app = make_app(Settings(), [long], env=NO_KEYS)
    async with app.run_test(size=(60, 24)) as pilot:
        pane = app.panes[0]
        await wait_until(pilot, lambda: not pane.has_class("loading"))
        await pilot.pause()
        header = shown(pane, "header")
        room = pane.query_one("#header").content_region.width
        assert len(header) <= room
        assert header == "embedded:smollm2@temperature=0,… · local · ready"
        await pilot.resize_terminal(160, 24)  # wide enough again: the whole name
        await pilot.pause()
        assert shown(pane, "header").startswith(long + " · local")


async def test_a_resize_keeps_the_header_saying_the_model_loads() -> None:
    """The header is drawn again at every resize: from the pane's state, not over it (the
    real load takes a fraction of a second, too short to resize in reliably)."""
    app = make_app(Settings(), ["embedded:smollm2@temperature=0,max_tokens=128"], env=NO_KEYS)
    async with app.run_test(size=(60, 24)) as pilot:
        pane = app.panes[0]
        await wait_until(pilot, lambda: not pane.has_class("loading"))
        pane.model_state = ("loading model…", "yellow")
        pane.render_header()
        await pilot.resize_terminal(50, 24)
        await pilot.pause()
        assert shown(pane, "header") == "embedded:smollm2@… · loading model…"
        await send(pilot, "Hi")  # the turn's own status from here on
        assert pane.model_state is None and " · local · " in shown(pane, "header")
        await wait_finished(pilot)


async def test_every_printable_key_outside_a_text_box_leaves_the_app_running() -> None:
    """`@` (Textual's key `at`, part of every target's settings) crashed the app when a pane
    had the focus: Textual took the app's `_key_at` float for that key's handler."""
    app = make_app(Settings(), ["embedded:smollm2"], env=NO_KEYS)
    async with app.run_test(size=(100, 30)) as pilot:
        app.panes[0].focus()
        await pilot.pause()
        for char in "@#$%&*+-=!?/:;,.~^_|":
            await pilot.press(char)
        await pilot.pause()
        assert app.is_running and app.focused is app.panes[0]


async def test_what_is_typed_in_the_picker_is_what_is_added() -> None:
    """The list had the focus: typed keys went nowhere, and Enter added its first model
    (a plain `embedded:smollm2`) instead of the target typed."""
    app = make_app(Settings(), ["embedded:smollm2"], env=NO_KEYS)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("ctrl+n")
        await wait_until(pilot, lambda: isinstance(app.screen, ModelPicker))
        await pilot.press(*"embedded:smollm2@max_tokens=4", "enter")
        await wait_until(pilot, lambda: len(app.panes) == 2)
        assert app.panes[1].target.spec == "embedded:smollm2@max_tokens=4"
        await pilot.press("ctrl+n")
        await wait_until(pilot, lambda: isinstance(app.screen, ModelPicker))
        await pilot.press(*"SMOL")  # narrows the list, to the one model here
        models = app.screen.query_one(OptionList)
        assert [o.id for o in models.options if o.id] == ["embedded:smollm2"]
        await pilot.press("enter")
        await wait_until(pilot, lambda: len(app.panes) == 3)
        assert app.panes[2].target.spec == "embedded:smollm2"
        for key in ("ctrl+n", "ctrl+o"):  # an unknown provider typed: said, not a crash
            await pilot.press(key)
            await wait_until(pilot, lambda: isinstance(app.screen, ModelPicker))
            await pilot.press(*"nosuch:model", "enter")
            await wait_until(pilot, lambda: not isinstance(app.screen, ModelPicker))
            await pilot.pause()
            assert app.is_running
            assert "unknown provider 'nosuch'" in list(app._notifications)[-1].message
            assert [p.target.provider for p in app.panes] == ["embedded"] * 3


async def test_ctrl_c_says_how_to_quit_in_words_not_markup(loop: Loop) -> None:
    """`Press [b]ctrl+q[/b] to quit the app`: the app shows every toast as plain text, and
    Textual's own message is markup."""
    app = loop.app("loop:a")
    async with app.run_test(size=(120, 32), notifications=True) as pilot:
        await pilot.press("ctrl+c")
        notes = app._notifications
        await wait_until(pilot, lambda: bool(notes), 5)
        await pilot.pause(0.2)
        screen = app.export_screenshot().replace("&#160;", " ")
        assert "Press Ctrl+Q to quit the app" in screen and "Do you want to quit?" in screen
        assert "[b]" not in screen and "[/b]" not in screen
        assert "[b]" not in list(notes)[-1].message
