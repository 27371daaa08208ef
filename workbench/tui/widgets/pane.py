"""One target's pane: header, the conversation as streamed Markdown, a live metrics line."""

from __future__ import annotations

import functools
import re
import time
from collections.abc import Callable

from rich.cells import cell_len
from rich.text import Text
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import Static

from providers.base import Message
from providers.registry import Target, split_settings
from workbench.commands import format as fmt
from workbench.engine.context import WARN_AT
from workbench.engine.conversation import Conversation, without_summary
from workbench.engine.result import TargetResult
from workbench.history import STATUS_MARKS, StoredTurn, turn_number
from workbench.sanitize import clean, clean_line, unfinished_escape
from workbench.tui.widgets.streamed import Transcript

_STATUS_STYLE = {
    "waiting": "yellow",
    "streaming": "cyan",
    "done": "green",
    "failed": "red",
    "cancelled": "magenta",
}


METRICS_EVERY_S = 0.25
"""How often a streaming pane's metrics line changes."""

SHOWN_TURNS = 12
"""Turns a pane keeps on screen; older ones leave it (the transcript keeps them all)."""


class Pane(Vertical, can_focus=True):
    """Reads its target's result once per frame and shows only what changed."""

    # The pane is the Tab stop (its transcript is not one of its own): these keys scroll
    # the transcript as they would were it focused.
    BINDINGS = [
        Binding(key, f"scroll_body('{action}')", show=False)
        for key, action in [
            ("up", "scroll_up"),
            ("down", "scroll_down"),
            ("pageup", "page_up"),
            ("pagedown", "page_down"),
            ("home", "scroll_home"),
            ("end", "scroll_end"),
        ]
    ]

    def __init__(self, target: Target, *, is_local: bool, system: str | None = None) -> None:
        super().__init__(classes="pane")
        self.target = target
        self.is_local = is_local
        self.conversation = Conversation(system=system)
        self.result: TargetResult | None = None
        self.sent: list[Message] = []
        """The messages of the current turn, as sent; stored with the response."""
        self.batch_id = ""
        """The fan-out the current turn belongs to."""
        self.opening: list[Message] = []
        """What its conversation held as its first prompt here was asked (another pane's
        turns, a chat re-run from history)."""
        self.ended: list[StoredTurn] = []
        """Every turn asked here as it ended, failed and retried ones included, which the
        conversation no longer holds: what an export shows, as History does."""
        self.unanswered: Message | None = None
        """The last turn's prompt, when that turn produced nothing: the conversation took
        it back (`Conversation.answered`), and a retry sends it again."""
        self.blind_name: str | None = None
        self.names_beside: Callable[[], list[str]] = list
        """The names of the other panes, which this one's must not be cut to look like."""
        self.memory_bytes: int | None = None
        self.window: int | None = None
        """The model's context window in tokens, once known."""
        self._shown = 0
        self._held = ""
        """The end of the text so far, if it may be the start of an escape sequence."""
        self._live = False
        self._document = ""
        self._metrics_at = 0.0
        self.model_state: tuple[str, str] | None = None
        """What the header says instead of the status while the model loads or if it could
        not (the note, its style)."""
        self.model_loading = False
        """Its model is loading: the border says so, outside blind mode (`render_header`)."""
        self.unusable: tuple[str, str] | None = None
        """Why no prompt can work here until the user acts (its provider's API key is not
        set): the header's note in place of `ready`, and the error line, what to do. A
        turn's own status and error take their place; blind, neither shows (it names the
        provider)."""
        self._body = Transcript(max_turns=SHOWN_TURNS, classes="pane-body")
        """Read every frame: kept, not looked up in the DOM."""
        self._body.can_focus = False  # one Tab stop a pane: the pane (see BINDINGS)
        # Kept too, for the frames that still come as the app closes: its lines are removed
        # before the pane, and a query for one then raised NoMatches from the frame timer.
        self._header = Static(id="header", classes="pane-header")
        self._error = Static(id="error", classes="pane-error")
        self._metrics = Static(id="metrics", classes="pane-metrics")

    def compose(self):  # type: ignore[no-untyped-def]
        yield self._header
        yield self._body
        yield self._error
        yield self._metrics

    def on_mount(self) -> None:
        self.render_header()
        self.render_metrics()

    def on_resize(self) -> None:
        # Compact or not follows the pane's width: a terminal resized, a pane added or gone;
        # so does how much of a long target name the header has room for.
        self.render_header()
        self.render_metrics()

    async def action_scroll_body(self, action: str) -> None:
        await self.app.run_action(action, self._body)

    @property
    def display_name(self) -> str:
        return f"Model {self.blind_name}" if self.blind_name else self.target.name

    @property
    def phase(self) -> float:
        """Where in each scroll period the pane's text moves (see `Transcript.phase`)."""
        return self._body.phase

    @phase.setter
    def phase(self, phase: float) -> None:
        self._body.phase = phase

    @property
    def busy(self) -> bool:
        """A turn is under way: its result is not finished, or not yet shown finished."""
        return self._live

    # --- turns ---------------------------------------------------------------------

    async def begin_turn(self, prompt: str, result: TargetResult, *, private: bool = False) -> None:
        """Show the prompt and start streaming the answer that `result` will fill."""
        self._end_stream()
        self.result = result
        self.unanswered = None
        self._shown = 0
        self._held = ""
        self._live = True
        if self._document:
            self._document += "\n\n---\n\n"  # on screen, the transcript draws its own rule
        quoted = "\n".join(f"> {line}" for line in clean(prompt).splitlines() or [""])
        if private:
            quoted = f"> *private prompt — local models only*\n>\n{quoted}"
        self._body.begin_turn()
        self._append(f"{quoted}\n\n", final=True)
        self.model_state = None  # the turn's own status and notes say it from here on
        self.render_header()

    def shown_turns(self) -> list[Message | StoredTurn]:
        """The pane's turns for an export: those it was given, then each asked here as it
        ended (the one under way as it is now); before any, the conversation it holds."""
        if not self.ended and not self._live:
            return list(self.conversation.turns)
        shown: list[Message | StoredTurn] = [*self.opening, *self.ended]
        if self._live and self.result is not None and self.sent:
            shown.append(self._turn_as_it_is(self.result))
        return shown

    def _turn_as_it_is(self, result: TargetResult) -> StoredTurn:
        system = without_summary(next((m.content for m in self.sent if m.role == "system"), None))
        return StoredTurn(self.sent[-1], result.text, result.status, result.error, self.batch_id,
                          result.name, system)  # fmt: skip

    def turn_ended(self, result: TargetResult) -> None:
        if self.sent:
            self.ended.append(self._turn_as_it_is(result))

    @property
    def turn(self) -> int:
        """Its chat's turn as History counts it: the prompts it was given, and one for each
        round asked here, whether it failed or not (a retry is the same round again)."""
        shown = self.shown_turns()
        given = [m for m in shown if isinstance(m, Message)]
        return turn_number(given, len({t.batch for t in shown if isinstance(t, StoredTurn)}))

    @property
    def transcript(self) -> str:
        """The Markdown the pane shows: prompts, answers and notes."""
        return self._document

    async def note(self, text: str) -> None:
        """A line in the transcript that is not a turn (a switch, a summary)."""
        self._append(f"\n\n*— {clean_line(text)} —*\n\n", final=True)

    async def mark_switch(self, old: str, new: str) -> None:
        self._append(
            f"\n\n*— switched from `{clean_line(old)}` to `{clean_line(new)}` —*\n\n",
            final=True,
        )

    async def tick(self) -> bool:
        """Bring the screen up to date with the result; True on the frame its turn ends."""
        result = self.result
        if result is None or not self._live:
            return False
        # Read before the text: the engine adds the last part before it marks the result
        # finished, so a finished result's text is whole.
        finished = result.finished
        # Only the parts that arrived since the last frame: O(new text), however long the
        # answer, and one write per frame, not per token.
        new, count = result.text_since(self._shown)
        text = self._held + new
        # An escape sequence split between frames is cleaned whole, with its next part.
        cut = len(text) if finished else unfinished_escape(text)
        if cut:
            self._body.write(clean(text[:cut]))
        self._held, self._shown = text[cut:], count
        now = time.monotonic()
        if finished or now - self._metrics_at >= METRICS_EVERY_S:
            # Read at a glance, not per frame: each repaint of four metric lines costs
            # as much as the text the frame adds.
            self._metrics_at = now
            self.render_metrics()
        self.render_header()
        if finished:
            self._end_stream()
            self._document += clean(result.text)
            if result.status != "done":
                self._append(self._ended_mark(result), final=True)
            self._live = False
            self.render_header()
            return True
        return False

    def _ended_mark(self, result: TargetResult) -> str:
        """Under a turn that failed or was cancelled: the metrics line says why only until
        the next turn, and its half answer (`half an`) would read as a short one after it.
        In blind mode without the reason, which can name the provider."""
        mark = f"{STATUS_MARKS.get(result.status, '…')} {result.status}"
        reason = "" if self.blind_name or not result.error else f": {clean_line(result.error)}"
        return f"\n\n**{mark}**{_literal(reason)}\n\n"

    def _append(self, markdown: str, *, final: bool = False) -> None:
        self._document += markdown
        self._body.write(markdown, final=final)

    def _end_stream(self) -> None:
        if self._live:
            self._body.finish()

    def forget_result(self) -> None:
        """Back to `ready`, for a pane whose model was replaced: the last turn's status and
        figures were the old model's."""
        if self._live:
            return  # still streaming: its result is read until it ends
        self.result = None
        self.memory_bytes = None
        self.render_header()
        self.render_metrics()

    async def clear(self) -> None:
        self._end_stream()
        self._document = ""
        self.result = None
        self._live = False
        self._body.clear()
        self.render_header()
        self.render_metrics()

    # --- rendering -----------------------------------------------------------------

    def render_header(self) -> None:
        # Only a local model loads: in blind mode its border would say which letter it is.
        self.set_class(self.model_loading and not self.blind_name, "loading")
        status = self.result.status if self.result else "ready"
        tail = self._header_tail(status)
        box = self._header
        # A model's settings give way to what follows its name, whole settings at a time,
        # never part of a value (`max_tokens=12…` of 128 reads as 12). `provider:model`
        # itself does not: where even that does not fit, the header's end is cut instead.
        name = clean_line(self.display_name)
        if room := self._room(box):  # laid out: before, its width is not known (on_resize)
            room -= tail.cell_len
            model, settings = split_settings(name)
            width = max(room, cell_len(model) + (2 if settings else 0))
            # Two settings of one model, each cut to `embedded:smollm2@…`, would read alike:
            # then what tells them apart is shown (`smollm2@max_tokens=30`).
            beside = tuple(clean_line(other) for other in self.names_beside())
            name = _told_apart((*beside, name), width).get(name, name)
        state = self._model_state
        header = Text(name, style="bold" if state is None else state[1])
        header.append_text(tail)
        # A note while waiting ("loading model…", a provider's rate limit) says which model.
        if self.result and self.result.notes and status == "waiting" and not self.blind_name:
            header.append(" · ", style="dim").append(clean_line(self.result.notes[-1]), "dim")
        _set_line(box, header)

    def _room(self, line: Static) -> int:
        """The cells `line` has for its text: 0 until the pane is laid out. From the pane's
        size, which leaves out its border, less the line's padding: at a resize the pane
        hears of its new size before its lines are laid out again."""
        return max(0, self.size.width - line.styles.gutter.width)

    def _header_tail(self, status: str) -> Text:
        """What follows the name: local or cloud and the status, or the model's state."""
        if (state := self._model_state) is not None:
            note, style = state
            return Text(f" · {clean_line(note)}", style=style)
        tail = Text()
        if not self.blind_name:
            badge = ("local", "green") if self.is_local else ("cloud", "blue")
            tail.append(" · ", style="dim").append(*badge)
        if (unusable := self._unusable) is not None:
            return tail.append(" · ", style="dim").append(unusable[0], "red")
        return tail.append(" · ", style="dim").append(status, _STATUS_STYLE.get(status, "dim"))

    @property
    def _unusable(self) -> tuple[str, str] | None:
        """`unusable`, until a turn says how it went, and never in blind mode."""
        return None if self.blind_name or self.result is not None else self.unusable

    @property
    def _model_state(self) -> tuple[str, str] | None:
        """`model_state`, but none in blind mode: loading, or why not, says which model."""
        return None if self.blind_name else self.model_state

    def render_metrics(self) -> None:
        compact = self.size.width < 60
        memory = None if self.blind_name else self.memory_bytes
        box = self._metrics
        blind, width = bool(self.blind_name), self._room(box) or None
        line = metrics_line(self.result, memory, compact=compact, blind=blind,
                            window=self.window, width=width)  # fmt: skip
        _set_line(box, line)
        error = self._error
        message = self.result.error if self.result is not None else None
        unusable = self._unusable
        error.display = bool(message or unusable)
        if message and self.result is not None:
            if self.blind_name:  # an error names its provider, or hints at it: after the vote
                message = "the reason is shown after the vote (or on leaving blind mode, F2)"
            error.update(Text(f"{self.result.status}: {clean_line(message)}", style="red"))
        elif unusable is not None:
            error.update(Text(clean_line(unusable[1]), style="red"))


def _set_line(static: Static, line: Text) -> None:
    """Update a one-line Static every frame at the cost of that line alone: nothing when it
    has not changed, and no layout pass when it has (its height is fixed at 1), where a
    plain `update` re-lays out the whole screen — four panes, 30 times a second."""
    if static.content != line:
        static.update(line, layout=False)


def metrics_line(
    result: TargetResult | None,
    memory_bytes: int | None = None,
    *,
    compact: bool = False,
    blind: bool = False,
    window: int | None = None,
    width: int | None = None,
) -> Text:
    """`TTFT 210ms · 87 tok/s · ctx 148/4k · in 36 / out ~112 · local · 240 MB`

    Compact, for narrow panes: `210ms · 87 t/s · ctx 148/4k · 36→~112 · 240 MB` (a local
    target's $0 left to the header's `local`), or `… · 36→112 · $0.0012` for a cloud one. The
    context figure comes before the token counts, cost and memory: in `width` cells, figures
    give way from the end, and its warning (past `WARN_AT` of the `window`) must stay in sight.
    """
    line = Text(no_wrap=True, overflow="ellipsis")
    if result is None:
        line.append("–", style="dim")
        return line
    if result.error and not result.text:
        return line  # the error line above says it all
    style = "" if result.finished else "dim"
    parts = _figures(result, memory_bytes, compact=compact, blind=blind, window=window)
    if width is not None and not compact and _cells(parts) > width:
        # The short forms of every figure before the last figures go (the memory first).
        parts = _figures(result, memory_bytes, compact=True, blind=blind, window=window)
    if width is not None:
        parts = _fit(parts, width)
    for index, (text, part_style) in enumerate(parts):
        if index:
            line.append(" · ", style=style)
        line.append(text, style=part_style)
    return line


def _figures(
    result: TargetResult,
    memory_bytes: int | None,
    *,
    compact: bool,
    blind: bool,
    window: int | None,
) -> list[tuple[str, str]]:
    """The metrics line's figures, each with its style."""
    style = "" if result.finished else "dim"
    parts: list[tuple[str, str]] = []
    if result.load_s and not blind:  # only a local model loads
        parts.append((f"load {fmt.seconds(result.load_s)}", style))
    if result.ttft_s is not None:
        ttft = fmt.seconds(result.ttft_s)
        parts.append((ttft if compact else f"TTFT {ttft}", style))
    rate = result.output_tps if result.finished else _live_rate(result)
    if rate is not None:  # as estimated as the count it is worked out from
        about = "" if result.output_exact else "~"
        parts.append((f"{about}{rate:.0f} {'t/s' if compact else 'tok/s'}", style))
    if window:
        used = result.input_tokens + result.output_tokens
        near = used >= window * WARN_AT
        if not blind:
            about = "" if result.input_exact and result.output_exact else "~"
            ctx = f"ctx {about}{fmt.count_short(used)}/{fmt.count(window)}"
            parts.append((ctx, "bold yellow" if near else style))
        elif near:  # the warning, not the window's size: that hints at the model
            parts.append(("ctx nearly full", "bold yellow"))
    if not blind:  # counts differ by tokenizer, and so hint at the model's family
        # Each count is marked on its own: a server may report one and leave out the other.
        sent = fmt.tokens(result.input_tokens, result.input_exact)
        answered = fmt.tokens(result.output_tokens, result.output_exact)
        tokens = f"{sent}→{answered}" if compact else f"in {sent} / out {answered}"
        parts.append((tokens, style))
    if blind:
        pass  # cost and memory would say local or cloud, and so give the model away
    elif compact and result.is_local:
        pass  # the header says local, and local costs nothing: room for the memory figure
    elif result.cost is not None:
        parts.append((result.cost.label, style))
    elif result.is_local:
        parts.append(("local", style))
    if memory_bytes:
        parts.append((fmt.size(memory_bytes), style))
    return parts


def _cells(shown: list[tuple[str, str]]) -> int:
    """The cells `shown` takes with ` · ` between the figures."""
    return sum(cell_len(text) for text, _ in shown) + 3 * (len(shown) - 1)


def _fit(parts: list[tuple[str, str]], width: int) -> list[tuple[str, str]]:
    """The parts that fit in `width` cells with ` · ` between them: whole figures give way
    from the end, and `…` says some did. Cut at the edge, a figure reads as another one
    (`316 …` of 316 MB)."""
    if _cells(parts) <= width:
        return parts
    for keep in range(len(parts) - 1, 0, -1):
        shown = [*parts[:keep], ("…", "dim")]
        if _cells(shown) <= width:
            return shown
    return parts[:1]  # narrower than one figure: the edge cuts it


def _live_rate(result: TargetResult) -> float | None:
    """The output rate so far, as `output_tps` is once the answer is over (tokens over the
    time since the request went): the figure converges on the final one, never changes
    meaning as the stream ends (a decode rate here dropped at the end by the TTFT). From the
    first token of any kind: a thinking model's reasoning counts among its output tokens."""
    if result.started_at is None or result.first_token_s is None or result.output_tokens < 2:
        return None
    elapsed = time.perf_counter() - result.started_at
    return result.output_tokens / elapsed if elapsed > 0 else None


@functools.lru_cache(maxsize=64)
def _told_apart(names: tuple[str, ...], width: int) -> dict[str, str]:
    """`distinct_targets`, once per set of names and width: the header is drawn every frame
    a pane streams, and its neighbours' names change only when panes come and go."""
    return fmt.distinct_targets(list(names), width)


_PUNCTUATION = re.compile(r"([\\`*_{}\[\]<>()#+\-.!|~])")


def _literal(text: str) -> str:
    """`text` as Markdown that shows it as written (CommonMark escapes any punctuation)."""
    return _PUNCTUATION.sub(r"\\\1", text)
