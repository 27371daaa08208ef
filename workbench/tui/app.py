"""The workbench TUI: one prompt, one pane per target, side by side.

`make_app` is the factory the CLI and the tests share.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import sqlite3
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence

from rich.text import Text
from textual import events, on, work
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding
from textual.containers import Grid
from textual.css.query import NoMatches
from textual.message import Message as TextualMessage
from textual.notifications import SeverityLevel
from textual.screen import Screen
from textual.widgets import Footer, Static

from providers.base import Message, ProviderError
from providers.embedded import EmbeddedProvider
from providers.registry import Registry, Target, TargetError, parse_target
from workbench import locations
from workbench.commands import format as fmt
from workbench.commands.models import list_everything
from workbench.config import Settings
from workbench.engine import context, fit, tokens
from workbench.engine.fanout import new_result, prepare_all, request_for, stream_target
from workbench.engine.result import TargetResult
from workbench.engine.runner import EngineThread
from workbench.export import PaneRecord, comparison_markdown
from workbench.sanitize import clean, clean_line
from workbench.store import SchemaTooNewError, Store, why_not_written
from workbench.tui import blind as blind_mode
from workbench.tui import history_writer as writer
from workbench.tui import palette, runtime, saving
from workbench.tui.room import make_room
from workbench.tui.screens.leaderboard import LeaderboardScreen
from workbench.tui.screens.picker import ModelPicker
from workbench.tui.screens.system_prompt import SystemPromptEditor
from workbench.tui.screens.vote import TIE, VoteScreen
from workbench.tui.widgets import streamed
from workbench.tui.widgets.pane import Pane
from workbench.tui.widgets.prompt import PromptBox
from workbench.tui.winners import winners_line
from workbench.wiring import make_registry

FRAME_S = 1 / 20
"""How often a pane takes what the engine has received. 20 a second reads as smooth, and
against 30, four panes at 500 tok/s left the UI a fifth more time for keys."""
PHASES = 4
"""Panes take turns a quarter of a frame apart, and move at different quarters of the
scroll period, so that a repaint seldom holds more than one pane's change: a key waits for
the repaint under way, and one that moved four panes took 10–12 ms (bench/tui_stream.py)."""
KEY_FIRST_S = 0.03
"""A pane's turn that falls this soon after a key is put off for the next one, so that the
key is drawn before another pane's repaint: at most KEY_FIRST_TURNS turns in a row, or a
held key would stop the panes."""
KEY_FIRST_TURNS = 2
# Allowed on any screen; pop_screen is the Escape of screens pushed over the panes, and
# Tab / Shift+Tab are the screen's bindings for these two app actions.
_SCREEN_ACTIONS = {
    "quit",
    "command_palette",
    "change_theme",
    "save_svg",
    "help_quit",
    "pop_screen",
    "focus_next",
    "focus_previous",
}
MIN_PANE_WIDTH = 40
CANCEL_WAIT_S = 2.0
"""How long New chat waits for cancelled streams to end before it stores their turns."""


class WorkbenchApp(App[None]):
    CSS_PATH = "app.tcss"
    TITLE = "llm-workbench"
    # Keys the prompt box (a TextArea) keeps for editing are avoided: ctrl+w/k/u/y/v/x/z/c,
    # f5-f7; so is ctrl+b, tmux's prefix, for presenters demoing over SSH inside tmux.
    BINDINGS = [
        Binding("escape", "cancel_all", "Cancel all"),
        Binding("ctrl+n", "add_pane", "Add model"),
        Binding("ctrl+o", "switch_model", "Switch model"),
        # Priority: the prompt box, which has the focus nearly always, would take it as
        # delete-right (Delete still does that). Over another screen the app refuses it
        # (`check_action`), and the key goes on to that screen's text boxes.
        Binding("ctrl+d", "remove_pane", "Remove", priority=True),
        Binding("ctrl+r", "retry", "Retry"),
        Binding("ctrl+f", "keep_pane", "Keep this"),
        Binding("ctrl+t", "system_prompt", "System"),
        # Priority: the prompt box would take these as line start / line end (Home and End
        # still do that), and copying an answer is mostly done from the prompt.
        Binding("ctrl+a", "copy_answer", "Copy", priority=True),
        Binding("ctrl+e", "export", "Export", priority=True),
        Binding("ctrl+s", "save_svg", "Screenshot"),
        Binding("f2", "blind", "Blind"),
        Binding("f3", "vote", "Vote"),
        Binding("f4", "leaderboard", "Leaderboard", show=False),
        Binding("f5", "private_prompt", "Private prompt"),
        Binding("f8", "suites", "Suites"),
        Binding("f9", "history", "History"),
        Binding("f10", "costs", "Costs"),
        Binding("ctrl+g", "cancel_pane", "Cancel pane", show=False),
        Binding("ctrl+l", "clear", "New chat", show=False),
    ]

    def __init__(
        self, settings: Settings, targets: Sequence[Target], registry: Registry, store: Store
    ) -> None:
        super().__init__()
        self.settings = settings
        self.registry = registry
        self.store = store
        self.blind = False
        self._round = ""
        """The batch of the last prompt sent: what a blind vote is about."""
        self._in_round: set[Pane] = set()
        """The panes that prompt went to (a retry stays in it)."""
        self.engine = EngineThread()
        self.initial_targets = list(targets)
        self.system_prompt: str | None = None
        self.current: Pane | None = None
        self._panes_removed = False
        self._sending = False
        """A prompt is on its way to the panes, whose turns have not all started."""
        self._memory_due: list[Pane] = []
        """Panes whose turn ended while others still streamed: their memory is read after."""
        self.send_step = ""
        """What that prompt waits for, as Enter's refusal words it ("summarizing …")."""
        self._sends = 0
        """Prompts sent so far: which send is the last, whose end ends `_sending`."""
        self._phase = 0
        # Not `_key_…`: Textual calls an attribute `_key_<name>` as the handler of that key
        # (`_key_at` is `@`'s, and a float there crashed the app at the first `@` typed).
        self._last_key_time = 0.0
        """When a key last reached the app (see `post_message`)."""
        self._turns_put_off = 0
        self.memory_probe = fit.machine_memory
        """(available, total) RAM for model-fit verdicts; tests give fixed figures."""
        self._pane_serial = 0
        self.started_at = time.time()
        """Where "this session" starts on the costs screen."""
        self._summarized = False
        """The summary row shows the winners (see `render_summary`)."""
        self._history = writer.HistoryWriter(store, self._history_note)
        self._quitting = False
        """Ctrl+Q waits for the turns the history has not taken (see `action_quit`)."""
        self.unstored = 0
        """Turns and suite results the history would not take at exit: the CLI says so."""
        self._unstored: dict[int, tuple[TargetResult, list[Message], str, str]] = {}
        """The turns under way, by `id` of their result, with what they were sent, their
        batch and their conversation's id: each is stored when it ends, or as the app
        closes (see `on_unmount`)."""

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Pane actions belong to the comparison screen, not to screens pushed over it."""
        if action in _SCREEN_ACTIONS:
            return True
        return self.screen is self.screen_stack[0]

    # --- layout --------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield Static(id="title")
        self._grid = Grid(id="panes")
        yield self._grid
        yield Static(id="summary")
        yield PromptBox(id="prompt")
        yield Footer()

    async def on_mount(self) -> None:
        self.engine.start()
        # Once the first frame is up (bench/first_frame.py): see `_warm`.
        self.call_after_refresh(self._warm, list(self.initial_targets))
        for target in self.initial_targets:
            await self.add_pane(target)
        self.render_title()
        # Runs only while a pane streams: idle, the app takes no turns.
        self._turns = self.set_interval(FRAME_S / PHASES, self._next_phase, pause=True)
        self.set_interval(5, self.render_title)  # free RAM moves as models load
        self.set_interval(writer.RETRY_S, self._history.retry)  # turns a busy history turned away
        if self.store.read_only:
            self.notify("The history is read-only to you: this session is not stored",
                        severity="warning", timeout=8)  # fmt: skip
        self.query_one(PromptBox).focus()

    @work(group="warm")
    async def _warm(self, targets: list[Target]) -> None:
        """Start-up work the first prompt would otherwise wait for, done off the UI while
        the user reads the first frame: each of them holds the GIL for 0.1–1.3 s, which
        the UI would share with four streams if it came with the first answers."""
        runtime.settle()  # first: its collection pauses the UI ~70 ms, before anyone types
        models = [t.model for t in targets]
        await asyncio.wrap_future(self.engine.submit(asyncio.to_thread(tokens.warm, models)))
        await asyncio.to_thread(streamed.warm)
        for name in dict.fromkeys(t.provider for t in targets):
            # The SDK's import (openai 0.6 s, anthropic 1.3 s); a provider that cannot be
            # set up says why when it is asked for an answer.
            with contextlib.suppress(ProviderError, TargetError):
                await self.engine.run(self.registry.get(name).prepare())
        runtime.keep()

    def on_unmount(self) -> None:
        runtime.restore()
        closing = self.engine.submit(self.registry.aclose())
        # Closing connections must never keep the app from exiting.
        with contextlib.suppress(Exception):
            closing.result(timeout=2)
        self.engine.stop()  # cancels the streams still running: their results end cancelled
        # A turn quit in the middle is stored like one cancelled with Esc, partial text and all.
        for result, *_ in list(self._unstored.values()):
            if not result.finished:  # its stream outlived the engine's stop
                result.status = "cancelled"
            self._store_turn(result, now=False)
        # One wait for them all; none more after a second Ctrl+Q.
        self._history.retry(writer.WAIT_S if self._quitting else writer.CLOSING_WAIT_S)
        self.unstored += self._history.lost + self._history.waiting
        self.store.close()

    def on_resize(self) -> None:
        # This runs before App's own handler has taken the new size in: act once it has.
        self.call_later(self._resized)

    def _resized(self) -> None:
        self.relayout()
        if self._summarized:  # its wording depends on the width
            self.render_summary()

    @property
    def panes(self) -> list[Pane]:
        # The grid's children, not a query of the whole DOM: read every frame.
        return [child for child in self._grid.children if isinstance(child, Pane)]

    def notify(
        self,
        message: str,
        *,
        title: str = "",
        severity: SeverityLevel = "information",
        timeout: float | None = None,
        markup: bool = False,
    ) -> None:
        """Toasts carry model names, suite names and server errors: never parse markup.
        Textual's own toasts are markup too, so the app words those it shows itself (see
        `action_help_quit`)."""
        super().notify(clean(message), title=clean_line(title), severity=severity,
                       timeout=timeout, markup=False)  # fmt: skip

    def action_help_quit(self) -> None:
        """Ctrl+C, which quits most terminal programs: say which key quits this one.
        Textual's own message is markup (`Press [b]ctrl+q[/b]…`), shown as typed here."""
        for key, active in self.active_bindings.items():
            if active.binding.action in ("quit", "app.quit"):
                shown = "+".join(part.capitalize() for part in key.split("+"))
                self.notify(f"Press {shown} to quit the app", title="Do you want to quit?")
                return

    def relayout(self) -> None:
        grid, count = self._grid, max(len(self.panes), 1)
        columns = max(1, min(count, self.size.width // MIN_PANE_WIDTH))
        grid.styles.grid_size_columns = columns
        grid.styles.grid_size_rows = math.ceil(count / columns)
        for pane in self.panes:  # a name beside it may have come or gone
            pane.render_header()

    def render_title(self) -> None:
        title = Text("llm-workbench", style="bold")
        count = len(self.panes)
        title.append(f" · {count} model{'s' if count != 1 else ''}", style="dim")
        if self.system_prompt:
            title.append(" · system prompt set", style="yellow")
        if self.blind:
            title.append(" · blind mode", style="magenta")
        if self.registry.private:
            title.append(" · private: local targets only", style="green")
        available, total = self.memory_probe()
        title.append(f" · RAM {fmt.size(available)} free of {fmt.size(total)}", style="dim")
        title.append(" · Ctrl+P commands", style="dim")
        try:
            box = self.query_one("#title", Static)
        except NoMatches:  # the 5 s timer, firing as the app closes and its widgets go
            return
        # One row, always: no layout of the screen (a repaint of every pane) every 5 s.
        box.update(title, layout=False)

    # --- panes ---------------------------------------------------------------------

    async def add_pane(self, target: Target, *, history_from: Pane | None = None) -> Pane:
        try:
            local = self.registry.is_local(target.provider)
        except TargetError as exc:
            self.notify(str(exc), severity="error")
            raise
        pane = Pane(target, is_local=local, system=target.system or self.system_prompt)
        pane.names_beside = lambda: [p.display_name for p in self.panes if p is not pane]
        self._check_key(pane)  # before it is first drawn, as `ready`
        self._pane_serial += 1
        pane.id = f"pane-{self._pane_serial}"
        kept_out = 0
        if history_from is not None:
            history = history_from.conversation
            pane.conversation.turns = list(history.turns if local else history.without_private())
            kept_out = len(history.turns) - len(pane.conversation.turns)
        if self.blind and any(p.blind_name for p in self.panes):
            await blind_mode.mount_hidden(pane, self.panes, self._grid)
        else:
            await self.query_one("#panes", Grid).mount(pane)
        if kept_out:
            await pane.note(f"{kept_out} private turns kept from this cloud model")
        self.relayout()
        self.render_title()
        if self.current is None:
            self.current = pane
        self._mark_current()
        if target.provider == "embedded":
            self._warm_embedded(pane)
        self._fetch_window(pane)
        return pane

    def _check_key(self, pane: Pane) -> None:
        """A pane whose provider's API key is not set says so, and what to do, at once: not
        `ready` until a prompt fails. Asked of the registry, which sends nothing to find out
        for a keyed provider; the key is read once, at start, so a restart is needed."""
        pane.unusable = self._missing_key(pane)
        # Whatever it is now: the pane may still show the note of a key it no longer needs
        # (private mode turned on, a model switched).
        if pane.is_attached:
            pane.render_header()
            pane.render_metrics()

    def _missing_key(self, pane: Pane) -> tuple[str, str] | None:
        """`Pane.unusable` for the pane's provider: its API key's note, if the key is not set."""
        # Private mode's refusal (cloud targets are off) is the title's to say: it comes and
        # goes, where the key is there or not for the whole session.
        if self.registry.private and not pane.is_local:
            return None
        try:
            variable = self.registry.missing_key(pane.target.provider)
        except TargetError:
            return None  # an unknown provider: its pane fails with that when it is used
        if variable is None:
            return None
        return (
            f"needs {variable}",
            f"{variable} is not set — export it and start the workbench again, "
            "or Ctrl+O for another model",
        )

    @work(group="window")
    async def _fetch_window(self, pane: Pane) -> None:
        target = pane.target
        window = await self.engine.run(context.window_of(self.registry, target))
        # Not switched or removed meanwhile; and a window known already is kept when it
        # cannot be read again (private mode refusing the server, the server gone).
        if pane.target is target and pane.is_attached and window is not None:
            pane.window = window
            pane.render_metrics()

    def _window_may_change(self, pane: Pane) -> bool:
        """Ollama's `/api/ps` says which window a model runs with only once it is loaded, and
        a model unloaded meanwhile may be loaded again with another: read it after each turn."""
        try:
            return self.registry.kind(pane.target.provider) == "ollama"
        except TargetError:
            return False

    @work(group="warm")
    async def _warm_embedded(self, pane: Pane) -> None:
        provider = self.registry.get("embedded")
        if not isinstance(provider, EmbeddedProvider) or provider.is_loaded(pane.target.model):
            return
        pane.model_loading = True
        pane.model_state = ("loading model…", "yellow")
        pane.render_header()
        try:
            await self.engine.run(provider.load(pane.target.model))
        except Exception as exc:  # shown in the pane; the first prompt will report it again
            pane.model_state = (str(exc), "red")
        else:
            pane.model_state = None
        finally:
            pane.model_loading = False
        if pane.is_attached:  # a pane removed while its model loaded has no header
            pane.render_header()

    def on_descendant_focus(self) -> None:
        focused = self.focused
        while focused is not None and not isinstance(focused, Pane):
            focused = focused.parent  # type: ignore[assignment]
        if isinstance(focused, Pane):
            self.current = focused
            self._mark_current()

    def _current(self) -> Pane | None:
        if self.current is not None and self.current.is_attached:
            return self.current
        panes = self.panes
        self.current = panes[0] if panes else None
        return self.current

    def _mark_current(self) -> None:
        """Show which pane Ctrl+D, Ctrl+R… act on: the focus is mostly in the prompt box,
        where the pane's focus style does not show it. One pane needs no mark."""
        current, panes = self._current(), self.panes
        for pane in panes:
            pane.set_class(pane is current and len(panes) > 1, "current")

    # --- sending -------------------------------------------------------------------

    @on(PromptBox.Submitted)
    def send(self, event: PromptBox.Submitted) -> None:
        if (refused := self._refusal(event.private)) is not None:
            # Left in the box: once the reason is gone, Enter sends it.
            self.notify(f"Not sent: {refused}", severity="warning")
            return
        self.query_one(PromptBox).sent(event.text, event.private)
        self._start_send(event.text, event.private)

    def _refusal(self, private: bool) -> str | None:
        """Why a prompt cannot go to the panes now, if it cannot. It goes to every pane or
        to none: sent to the idle ones only, the panes' conversations would differ."""
        panes = self.panes
        if not panes:
            return "there are no models; add one with Ctrl+N"
        if private and not any(p.is_local for p in panes):
            return (
                "a private prompt goes only to local models, and no pane has one; "
                "add one with Ctrl+N"
            )
        busy = [p.display_name for p in panes if p.busy]
        if not busy and not self._sending:
            return None
        why = []
        if busy:
            why.append(f"{', '.join(busy)} {'is' if len(busy) == 1 else 'are'} still answering")
        if self._sending:  # some panes' turns have not started: a summary, a model set up…
            why.append(f"the last prompt is still being sent ({self.send_step}…)")
        them = "it" if len(busy) + self._sending == 1 else "them"
        return (
            f"{', and '.join(why)}. Wait for {them}, or press Esc to cancel; "
            "the prompt stays in the box for Enter"
        )

    def _start_send(self, prompt: str, private: bool = False) -> None:
        # Until its turns have started, the panes are not busy: a second Enter meanwhile
        # would be sent beside it (see `_refusal`).
        self._sending = True
        self.send_step = "setting up the models"
        self._sends += 1
        self._send(prompt, private, self._sends)

    @work(group="send")
    async def _send(self, prompt: str, private: bool, serial: int) -> None:
        try:
            await self._send_to_panes(prompt, private)
        except asyncio.CancelledError:
            # Esc: the panes not sent it yet never will be; a summary under way is dropped
            # whole (the turns it was to replace stay), as a summary is kept only once done.
            self.notify("Sending cancelled; ↑ in the prompt box brings the prompt back")
            raise
        finally:
            if serial == self._sends:  # not a send cancelled as a re-run started another
                self._sending = False

    async def _send_to_panes(self, prompt: str, private: bool) -> None:
        self._set_summary(Text())
        if self.blind and not any(p.blind_name for p in self.panes):
            await blind_mode.hide_names(self.panes, self._grid)
        batch = uuid.uuid4().hex
        if private and not any(p.is_local for p in self.panes):  # a re-run from history
            self.notify(f"Not sent: {self._refusal(private)}", severity="warning")
            return
        # Before any pane's clock starts (a pane added since start-up has not been set up).
        await self.engine.run(prepare_all(self.registry, [p.target for p in self.panes]))
        for pane in self.panes:
            if pane.busy:  # never two turns in a pane (Enter and Ctrl+R wait for this send)
                continue
            if private and not pane.is_local:
                await pane.note("a private prompt was not sent to this cloud model")
                continue
            if await make_room(self, pane, prompt):
                await self.start_turn(pane, prompt, batch, private=private)
                if self._round != batch:  # the first pane the prompt went to
                    self._round, self._in_round = batch, set()
                self._in_round.add(pane)

    async def start_turn(
        self, pane: Pane, prompt: str, batch: str | None = None, *, private: bool = False
    ) -> None:
        if not pane.ended and not pane.busy:  # its first prompt here: what it was given
            pane.opening = list(pane.conversation.turns)
        messages = pane.conversation.ask(prompt, private=private)
        pane.sent, pane.batch_id = messages, batch or uuid.uuid4().hex
        result = new_result(pane.target, self.registry)
        await pane.begin_turn(prompt, result, private=private)
        # The conversation's id as the turn starts: a New chat while it streams starts
        # another conversation, not this turn's.
        self._unstored[id(result)] = (result, messages, pane.batch_id, pane.conversation.id)
        self._turns.resume()
        self.run_worker(
            self._stream(pane.target, messages, result),
            group=pane.id or "pane",
            exclusive=True,
            exit_on_error=False,
        )

    async def _stream(self, target: Target, messages: list[Message], result: TargetResult) -> None:
        """Runs on the engine loop; the pane reads `result` once per frame."""

        async def go() -> None:
            try:
                provider = self.registry.get(target.provider)
            except TargetError as exc:
                result.status, result.error_kind, result.error = "failed", "bad_request", str(exc)
                return
            request = request_for(target, messages)
            max_time_s = self.settings.max_time_s
            await stream_target(target, provider, request, result, max_time_s=max_time_s)

        await self.engine.run(go())
        # Show the end now rather than at the pane's next turn: the last words wait for no
        # timer.
        await self._frame([pane for pane in self.panes if pane.result is result])

    def post_message(self, message: TextualMessage) -> bool:
        # A key from the driver comes through here before the prompt box sees it: the
        # earliest the app can know that one waits to be drawn.
        if isinstance(message, events.Key):
            self._last_key_time = time.monotonic()
        return super().post_message(message)

    async def _next_phase(self) -> None:
        recent = time.monotonic() - self._last_key_time < KEY_FIRST_S
        if recent and self._turns_put_off < KEY_FIRST_TURNS:
            self._turns_put_off += 1
            return
        self._turns_put_off = 0
        self._phase = (self._phase + 1) % PHASES
        every = self.panes
        panes = every[self._phase :: PHASES]
        for pane in panes:
            pane.phase = self._phase / PHASES  # its moves a quarter period from the others'
        await self._frame(panes)
        if not any(pane.busy for pane in every):
            self._turns.pause()

    async def _frame(self, panes: list[Pane]) -> None:
        """Bring `panes` up to date with what the engine has received."""
        finished_now = []
        for pane in panes:
            if await pane.tick() and pane.result is not None:
                pane.turn_ended(pane.result)
                pane.conversation.answered(pane.result.text)
                if not pane.result.text.strip() and pane.sent:
                    # The conversation took the turn back: Ctrl+R finds its prompt here.
                    pane.unanswered = pane.sent[-1]
                self._store_turn(pane.result)
                finished_now.append(pane)
        for pane in finished_now:
            if self._window_may_change(pane):
                self._fetch_window(pane)
        self._memory_due.extend(finished_now)
        if finished_now and not any(p.busy for p in self.panes):
            # Memory once every pane is done: finding a local server's process reads the
            # system's socket tables, Python holding the GIL, which would hold up the last
            # tokens of the panes still streaming.
            for pane in self._memory_due:
                if pane.is_attached:
                    self._fetch_memory(pane)
            self._memory_due.clear()
            self.set_timer(0.2, self._collect)
            if self.blind and any(p.blind_name for p in self.panes):
                if len(self._answers()) >= 2:  # else F3 says why there is no vote
                    self.notify("Which answer was best? F3 to vote", timeout=6)
            else:
                self.render_summary()

    def _store_turn(self, result: TargetResult, *, now: bool = True) -> None:
        """Store a finished turn's response, once."""
        if (turn := self._unstored.pop(id(result), None)) is not None:
            _, sent, batch, conversation = turn
            self._history.add(writer.Turn(result, sent, batch, conversation), now=now)

    async def action_quit(self) -> None:
        """Turns a busy history has not taken yet are waited for, unless asked again."""
        waiting = self._history.waiting
        if not waiting or self._quitting:
            self.exit()
            return
        self._quitting = True
        self.notify(f"Quitting once the history takes the {fmt.plural(waiting, 'turn')} it has "
                    "not stored yet (another process holds it); Ctrl+Q again quits without them",
                    severity="warning", timeout=60)  # fmt: skip
        self.set_interval(writer.WAIT_S, self._quit_once_stored)

    def _quit_once_stored(self) -> None:
        self._history.retry()
        if not self._history.waiting:
            self.exit()

    def _history_note(self, message: str, error: bool) -> None:
        self.notify(message, severity="error" if error else "information", timeout=8)

    def _collect(self) -> None:
        runtime.collect(frozen_too=self._panes_removed)
        self._panes_removed = False

    async def _remove(self, pane: Pane) -> None:
        await pane.remove()
        self._panes_removed = True  # its cycles may be frozen: see runtime.collect
        self._mark_current()  # the current pane may have gone, or left one alone

    @work(group="memory")
    async def _fetch_memory(self, pane: Pane) -> None:
        if not pane.is_local:
            return
        try:
            provider = self.registry.get(pane.target.provider)
            usage = await self.engine.run(provider.resources(pane.target.model))
        except Exception:
            return
        pane.memory_bytes = usage.memory_bytes if usage else None
        if pane.is_attached:
            pane.render_metrics()

    # --- blind mode ----------------------------------------------------------------

    async def action_blind(self) -> None:
        if not self.blind and any(p.busy for p in self.panes):
            # A pane's answer has been streaming under its name: hiding it now hides nothing.
            self.notify("Wait for the answers (or Esc) before blind mode", severity="warning")
            return
        self.blind = not self.blind
        if self.blind:
            await blind_mode.hide_names(self.panes, self._grid)
            self._set_summary(Text())
            self.notify("Blind mode: names hidden until you vote (F3)")
        else:
            blind_mode.reveal(self.panes)
        self.render_title()

    def _answers(self, *, done_only: bool = True) -> list[Pane]:
        """The blind round's panes, those the last prompt went to; `done_only`, those that
        answered: as on Chatbot Arena, a model that failed or was stopped lost no battle."""
        asked = [p for p in self.panes if p.blind_name and p in self._in_round and p.result]
        return [p for p in asked if p.result and p.result.status == "done"] if done_only else asked

    @work
    async def action_vote(self) -> None:
        asked = self._answers(done_only=False)
        if self.blind and self._in_round and not any(p.blind_name for p in self.panes):
            self.notify("This round is voted on: ask again for the next", severity="warning")
            return
        if not self.blind or not asked:
            self.notify("Votes are for blind mode: F2, then ask", severity="warning")
            return
        if any(p.busy for p in asked):
            self.notify("Wait for every answer before voting", severity="warning")
            return
        panes = self._answers()
        if len(panes) < 2:
            answered = f"only Model {panes[0].blind_name} answered" if panes else "none answered"
            self.notify(f"A vote needs two answers, and {answered}: ask again, or F2 to leave "
                        "blind mode and see what went wrong", severity="warning")  # fmt: skip
            return
        choice = await self.push_screen_wait(VoteScreen([p.blind_name or "" for p in panes]))
        if choice is None:
            return
        winner = next((p for p in panes if p.blind_name == choice), None)
        batch = self._round
        targets = [p.target.spec for p in panes]
        try:
            with self.store.waiting_at_most(writer.WAIT_S):  # the screen waits with it
                self.store.add_vote(batch, targets, winner.target.spec if winner else None)
        except (sqlite3.Error, SchemaTooNewError) as error:
            why = why_not_written(error, self.store.path, writer.WAIT_S)
            self.notify(f"The vote was not stored: {why}", severity="error")
        reveal = ", ".join(f"{p.blind_name} = {p.target.name}" for p in asked)
        verdict = "a tie" if choice == TIE else f"Model {choice}"
        self.notify(f"Voted {verdict}. {reveal}", timeout=8)
        blind_mode.reveal(self.panes)
        self.render_summary()

    def action_private_prompt(self) -> None:
        on = self.query_one(PromptBox).toggle_private()
        if on:
            self.notify("This prompt is private: only local models will get it")

    def action_private(self) -> None:
        self.registry.private = not self.registry.private
        state = "on: cloud targets are refused" if self.registry.private else "off"
        self.notify(f"Private mode {state}")
        self.render_title()
        for pane in self.panes:  # a key not set is not the news while cloud targets are off
            self._check_key(pane)

    def action_suites(self) -> None:
        from workbench.tui.screens.suites import SuitesScreen

        screen = SuitesScreen(self.registry, self.engine, self.settings)
        screen.read_only = self.store.read_only
        self.push_screen(screen)

    def _while_blind(self, what: str) -> bool:
        """Refuse `what` while the panes' names are hidden, saying why; True if refused.
        History, costs and exports list targets with their figures and errors, which
        would tell the letters apart."""
        if not any(p.blind_name for p in self.panes):
            return False
        self.notify(
            f"{what} after the vote (F3), or leave blind mode with F2: "
            "it would say which model is which",
            severity="warning",
        )
        return True

    def action_costs(self) -> None:
        if self._while_blind("Costs"):
            return
        from workbench.tui.screens.costs import CostsScreen

        configured = [*self.settings.targets, *(p.target.spec for p in self.panes)]
        self.push_screen(CostsScreen(self.registry, self.store, self.started_at, configured))

    def action_history(self) -> None:
        if self._while_blind("History"):
            return
        from workbench.tui.screens.history import HistoryScreen

        self.push_screen(HistoryScreen())

    @work(group="replay", exclusive=True)
    async def replay(
        self,
        runs: Sequence[tuple[Target, Sequence[Message]]],
        prompt: str,
        *,
        private: bool = False,
    ) -> None:
        """Run a stored comparison again: back on this screen, the panes become the
        targets of `runs`, each with its history (the turns before `prompt`, system prompt
        first) as its conversation, and `prompt` is sent."""
        usable = []
        for target, history in runs:
            try:
                self.registry.is_local(target.provider)
            except TargetError as exc:  # e.g. an endpoint since removed from the config
                self.notify(str(exc), severity="error")
                continue
            usable.append((target, history))
        if not usable:
            return  # the current panes stay as they are
        while len(self.screen_stack) > 1:
            await self.pop_screen()
        self.action_cancel_all()
        for old in self.panes:
            await self._remove(old)
        self.current = None
        for target, history in usable:
            system = next((m.content for m in history if m.role == "system"), None)
            turns = [m for m in history if m.role != "system"]
            pane = await self.add_pane(target)
            if system and target.system is None:
                pane.conversation.system = system
            pane.conversation.turns = list(turns)
            if not pane.is_local and pane.conversation.private_turns:
                pane.conversation.turns = pane.conversation.without_private()
            if pane.conversation.turns:
                await pane.note(f"{len(pane.conversation.turns)} earlier turns from history")
        if self.panes:
            self._start_send(prompt, private)

    def action_leaderboard(self) -> None:
        self.push_screen(LeaderboardScreen(self.store.leaderboard()))

    def render_summary(self) -> None:
        self._set_summary(winners_line(self.panes, self.size.width))

    def _set_summary(self, line: Text) -> None:
        self._summarized = bool(line)
        box = self.query_one("#summary", Static)
        # A summary that stays one row long needs no layout of the screen, which would
        # repaint every pane just as the answers end and the user starts typing again.
        # The app's width, not the box's: after a resize the box is laid out only later.
        width = self.size.width - box.styles.gutter.width
        same_height = box.size.height == 1 and line.cell_len <= width
        box.update(line, layout=not same_height)

    # --- actions -------------------------------------------------------------------

    def action_cancel_all(self) -> None:
        # The prompt still on its way first (a summary, the models set up): no pane is busy
        # with it yet, and what Enter's refusal offers is Esc.
        self.workers.cancel_group(self, "send")
        for pane in self.panes:
            if pane.busy:
                self.workers.cancel_group(self, pane.id or "pane")

    def action_cancel_pane(self) -> None:
        pane = self._current()
        if pane is not None and pane.busy:
            self.workers.cancel_group(self, pane.id or "pane")

    @work
    async def action_add_pane(self) -> None:
        choice = await self._pick("Add a model")
        if choice:
            with contextlib.suppress(TargetError):  # an unknown provider: add_pane said so
                await self.add_pane(parse_target(choice), history_from=self._current())

    @work
    async def action_switch_model(self) -> None:
        pane = self._current()
        if pane is None:
            return
        choice = await self._pick(f"Replace {pane.display_name}")
        if not choice:
            return
        target = parse_target(choice)
        try:  # before anything changes: a typed provider may be unknown
            is_local = self.registry.is_local(target.provider)
        except TargetError as exc:
            self.notify(str(exc), severity="error")
            return
        await self._stop(pane)
        old = pane.target.name
        pane.target, pane.is_local = target, is_local
        pane.conversation.switched(pane.target.spec)
        if pane.blind_name:
            await pane.note("model switched; names stay hidden until the vote")
        else:
            await pane.mark_switch(old, pane.target.name)
        if not pane.is_local and pane.conversation.private_turns:
            kept_out = pane.conversation.private_turns
            pane.conversation.turns = pane.conversation.without_private()
            await pane.note(f"{kept_out} private turns kept from this cloud model")
        self._check_key(pane)
        pane.forget_result()  # the status and figures were the old model's
        self._in_round.discard(pane)  # the new model did not answer the last prompt
        self._set_summary(Text())
        if pane.target.provider == "embedded":
            self._warm_embedded(pane)
        pane.window = None
        self._fetch_window(pane)

    async def _pick(self, title: str) -> str | None:
        listings = await self.engine.run(list_everything(self.registry))
        return await self.push_screen_wait(
            ModelPicker(listings, self.memory_probe(), title, self.settings.embedded_context)
        )

    async def action_remove_pane(self) -> None:
        pane = self._current()
        if pane is None:
            return
        self.workers.cancel_group(self, pane.id or "pane")
        await self._remove(pane)  # the first pane is current now, and marked so
        self._set_summary(Text())  # it may name the pane that went
        self.relayout()
        self.render_title()

    async def action_keep_pane(self) -> None:
        """The winner: the other panes close and the chat goes on with this model."""
        keep = self._current()
        for pane in self.panes:
            if pane is not keep:
                self.workers.cancel_group(self, pane.id or "pane")
                await self._remove(pane)
        self._set_summary(Text())
        self.relayout()
        self.render_title()

    async def _stop(self, pane: Pane) -> None:
        """Cancel the pane's turn and take its end in (the answer so far into the
        conversation and the store), before the pane's turn or model is replaced."""
        if not pane.busy:
            return
        self.workers.cancel_group(self, pane.id or "pane")
        for _ in range(20):  # the engine ends a cancelled stream within a frame or two
            await asyncio.sleep(FRAME_S)
            await self._frame([pane])
            if not pane.busy:
                return

    async def action_retry(self) -> None:
        pane = self._current()
        if pane is None:
            return
        if self._sending:
            # The prompt on its way would then skip this pane, busy with the retry: it goes
            # to every pane or to none.
            self.notify(
                "Not retried: the last prompt is still being sent. Wait for it, or press Esc "
                "to cancel",
                severity="warning",
            )
            return
        await self._stop(pane)
        # A turn that produced nothing (failed, or cancelled before a word) is no longer in
        # the conversation, and retrying a failure is what Ctrl+R is mostly for.
        prompt = pane.unanswered
        if prompt is not None and prompt.private and not pane.is_local:
            # It failed on a local model, and the pane has since been switched to the cloud.
            self.notify("That prompt is private: not sent to a cloud model", severity="warning")
            return
        prompt = prompt or pane.conversation.retract()
        if prompt is None:
            self.notify("Nothing to retry in this pane yet", severity="warning")
            return
        # The same turn again: in history it goes with the round it retries, not alone.
        await self.start_turn(pane, prompt.content, pane.batch_id, private=prompt.private)

    async def action_clear(self) -> None:
        streaming = [p.result for p in self.panes if p.busy and p.result is not None]
        self.action_cancel_all()
        # Stored now, as Esc would leave them: once cleared, the frame loop that stores a
        # finished turn no longer sees them (they waited for the app's exit).
        deadline = time.monotonic() + CANCEL_WAIT_S
        # The engine thread ends them, and signals nothing the UI loop could await.
        while any(not r.finished for r in streaming) and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.02)
        for result in streaming:
            if not result.finished:  # its stream did not hear the cancel in time
                result.status = "cancelled"
            self._store_turn(result)
        for pane in self.panes:
            await pane.clear()
            pane.conversation.turns.clear()
            pane.conversation.id = uuid.uuid4().hex  # a new chat: history keeps it apart
            pane.unanswered = None
            pane.opening, pane.ended = [], []
        self._set_summary(Text())

    @work
    async def action_system_prompt(self, only_current: bool = False) -> None:
        pane = self._current() if only_current else None
        scope = f"only {pane.display_name}" if pane else "every pane"
        current = pane.conversation.system if pane else self.system_prompt
        value = await self.push_screen_wait(SystemPromptEditor(current, scope))
        if value is None:
            return
        if pane is not None:
            pane.conversation.system = value or None
        else:
            self.system_prompt = value or None
            for each in self.panes:
                each.conversation.system = each.target.system or self.system_prompt
        self.render_title()

    def action_copy_answer(self) -> None:
        pane = self._current()
        if pane is None or pane.result is None or not pane.result.text:
            self.notify("Nothing to copy yet", severity="warning")
            return
        self.copy_to_clipboard(pane.result.text)
        self.notify(f"Copied {pane.display_name}'s answer")

    def action_export(self) -> None:
        if self._while_blind("Export"):
            return
        if not any(p.result is not None or p.conversation.turns for p in self.panes):
            self.notify("Nothing to export yet", severity="warning")
            return
        records = [
            PaneRecord(p.display_name, p.conversation.system, p.shown_turns(), p.result, p.turn)
            for p in self.panes
        ]
        path = saving.write_export(comparison_markdown(records))
        self.notify(f"Exported to {path}")

    def action_save_svg(self) -> None:
        self.notify(f"Screenshot saved to {saving.save_screenshot(self)}")

    def get_system_commands(self, screen: Screen[object]) -> Iterable[SystemCommand]:
        return palette.commands(self, super().get_system_commands(screen))


def make_app(
    settings: Settings,
    targets: Sequence[str | Target] | None = None,
    *,
    env: Mapping[str, str] | None = None,
) -> WorkbenchApp:
    """The app, built the same way for the CLI and the tests."""
    specs = list(targets) if targets else list(settings.targets)
    parsed = [t if isinstance(t, Target) else parse_target(t) for t in specs]
    registry = make_registry(settings, env)
    for target in parsed:
        registry.kind(target.provider)
    return WorkbenchApp(settings, parsed, registry, Store(locations.database_path()))
