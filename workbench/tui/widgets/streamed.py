"""Markdown that streams in at the cost of what arrived, not of what is already shown.

Textual's `Markdown` widget mounts a widget per block and re-parses its tail on every
append; four panes at 500 tok/s kept a core busy laying those out (bench/tui_stream.py,
docs/performance.md). Here one scrolling view holds a pane's turns as rendered lines: a
block is rendered as Markdown once, when it is complete, and the block still being written
is shown as plain text, re-wrapping only its last line. Textual asks for visible lines alone.
"""

from __future__ import annotations

import math
import re
import time
from bisect import bisect_right
from collections.abc import Iterable

from rich.console import Console, ConsoleOptions, RenderableType
from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from rich.theme import Theme
from textual.geometry import Size
from textual.scroll_view import ScrollView
from textual.selection import Selection
from textual.strip import Strip

_FENCE = re.compile(r" *(`{3,}|~{3,})(.*)")
_LIST_ITEM = re.compile(r"([-*+]|\d{1,9}[.)])( |\t|$)")
_LIST_START = frozenset("-*+0123456789")

SCROLL_PERIOD = 0.25
"""Seconds between the moves of a view that follows streaming text (see `_move`)."""
LONG_LINE = 4096
"""Characters of an unfinished line wrapped together (see `_Turn._render_tail`)."""
SCROLLBAR_PERIOD = 1.0
"""Seconds between scrollbar updates while a view follows streaming text."""


class BlockSplitter:
    """Cuts streamed Markdown into complete blocks: text up to a blank line (outside a code
    fence) that the next line does not continue, or a whole fenced block.

    Each line is looked at once, so feeding a long answer costs O(its length)."""

    def __init__(self) -> None:
        self.pending = ""
        """Text not yet part of a complete block."""
        self._scanned = 0
        """Where in `pending` the next unexamined line starts."""
        self._fence = ""
        """The opening fence while inside a code block."""
        self._blank_at = -1
        """Where a blank line ended the text before it, until the next line says whether it
        continues the block (an indented line does: a list item's second paragraph)."""
        self._has_text = False
        """The current block has a line that is not blank (leading blank lines do not end
        a block)."""
        self._in_list = False
        """The current block is a list."""
        self._fence_indented = False

    def feed(self, text: str) -> list[str]:
        """Add `text`; returns the blocks it completed, oldest first."""
        self.pending += text
        blocks: list[str] = []
        while (end := self.pending.find("\n", self._scanned)) >= 0:
            line = self.pending[self._scanned : end]
            start, self._scanned = self._scanned, end + 1
            stripped = line.strip()
            if self._fence:
                if stripped.startswith(self._fence) and not stripped.strip(self._fence[0]):
                    self._fence = ""
                    if not self._fence_indented:  # one inside a list item: the item goes on
                        blocks += self._cut(self._scanned)
                continue
            if self._blank_at >= 0:
                if not stripped:
                    continue
                if not self._ends_block(line):
                    self._blank_at = -1
                else:
                    blocks += self._cut(start)
            if not stripped:
                if self._has_text:
                    self._blank_at = start
                continue
            if not self._has_text:
                self._in_list = _LIST_ITEM.match(line) is not None
            self._has_text = True
            indent = len(line) - len(line.lstrip(" "))
            opening = _FENCE.match(line)
            if opening and indent < 4 and not (opening[1][0] == "`" and "`" in opening[2]):
                # (A backtick fence's info string has no backticks: "```x``` y" is code
                # inline, not a fence.)
                self._fence, self._fence_indented = opening[1], indent > 0
        # A gap, then the first character of a line that cannot continue the block: the
        # block before the gap is complete now, not only once that line is.
        if self._blank_at >= 0:
            first = self.pending[self._scanned : self._scanned + 1]
            if first and first not in " \t\n" and not (self._in_list and first in _LIST_START):
                blocks += self._cut(self._scanned)
        return blocks

    def _ends_block(self, line: str) -> bool:
        """After a gap, does `line` start a new block? Not when it is indented (a list item's
        next paragraph) or, in a list, the list's next item (a loose list is one list)."""
        if line[:1] in (" ", "\t"):
            return False
        return not (self._in_list and _LIST_ITEM.match(line))

    def flush(self) -> list[str]:
        """The rest, as a last block (an unclosed fence is closed by the end of the text)."""
        rest, self.pending, self._scanned, self._fence, self._blank_at = (
            self.pending, "", 0, "", -1
        )  # fmt: skip
        self._has_text = self._in_list = False
        return [rest] if rest.strip() else []

    def _cut(self, at: int) -> list[str]:
        block, self.pending = self.pending[:at], self.pending[at:]
        self._scanned -= at
        self._blank_at = -1
        self._has_text = self._in_list = False  # the line being looked at sets them again
        return [block] if block.strip() else []


class _Turn:
    """The lines of one turn: its complete blocks rendered as Markdown, then the block being
    written as plain text (its complete lines wrapped once each, its last line each time)."""

    def __init__(self, *, rule: bool = False) -> None:
        self.rule = rule
        """Drawn above the turn, to part it from the one before."""
        self.splitter = BlockSplitter()
        self.blocks: list[str] = []
        self.lines: list[Strip] = []
        """The complete blocks, with a blank line between them; only grows at one width."""
        self.tail: list[Strip] = []
        self.tail_done = 0
        """How much of the splitter's pending text `tail` covers."""
        self.last: list[Strip] = []

    @property
    def height(self) -> int:
        return len(self.lines) + len(self.tail) + len(self.last)

    @property
    def source(self) -> str:
        return "".join(self.blocks) + self.splitter.pending

    def line(self, y: int) -> Strip:
        if y < len(self.lines):
            return self.lines[y]
        if (y := y - len(self.lines)) < len(self.tail):
            return self.tail[y]
        return self.last[y - len(self.tail)]

    def write(self, console: Console, width: int, markdown: str, *, final: bool) -> int:
        """Add `markdown`; returns the first line that looks different."""
        blocks = self.splitter.feed(markdown)
        if final:
            blocks += self.splitter.flush()
        if not width:
            self.blocks += blocks
            return 0
        # Lines from here on may be re-rendered: a finished block replaces the plain tail.
        first = len(self.lines) if blocks or final else len(self.lines) + len(self.tail)
        before = [self.line(y) for y in range(first, self.height)]
        if blocks or final:  # whitespace left at the end is no longer shown either
            self.tail, self.tail_done = [], 0
        for block in blocks:
            self.blocks.append(block)
            self.lines += self._render_block(console, block, width, len(self.blocks) == 1)
        self._render_tail(console, width)
        # A plain paragraph often renders as Markdown exactly as it was shown: those lines
        # need no repaint.
        same = 0
        for old in before:
            if first + same >= self.height or self.line(first + same) != old:
                break
            same += 1
        return first + same

    def render(self, console: Console, width: int) -> None:
        self.lines = _rule(width) if self.rule else []
        for i, block in enumerate(self.blocks):
            self.lines += self._render_block(console, block, width, i == 0)
        self.tail, self.tail_done = [], 0
        self._render_tail(console, width)

    @staticmethod
    def _render_block(console: Console, block: str, width: int, first: bool) -> list[Strip]:
        text = block.strip("\n")
        renderable: RenderableType = Text(text)
        if not _is_plain(text):
            # Imported here, not with the module: markdown-it would cost the first frame
            # ~0.1 s. The app imports it (`warm`) once the first frame is up.
            from workbench.tui.model_markdown import rich_markdown

            renderable = rich_markdown(block)
        lines = _render(console, renderable, width)
        return lines if first else [Strip.blank(0), *lines]

    def _render_tail(self, console: Console, width: int) -> None:
        """Wrap what the open block gained: complete lines once each, then the unfinished
        last line. A line that never ends is wrapped in pieces of LONG_LINE characters, so
        a frame costs the piece, not the line (1 MB on one line would take seconds)."""
        pending = self.splitter.pending
        cut = pending.rfind("\n") + 1
        if cut > self.tail_done:
            self._add_tail(console, width, pending[self.tail_done : cut - 1])
            self.tail_done = cut
        while len(pending) - self.tail_done > LONG_LINE:
            end = self.tail_done + LONG_LINE
            space = pending.rfind(" ", self.tail_done, end)
            end = space + 1 if space > self.tail_done else end  # whole words where it can
            self._add_tail(console, width, pending[self.tail_done : end])
            self.tail_done = end
        rest = pending[self.tail_done :]
        self.last = _render(console, Text(rest), width) if rest else []
        if self.last and self.blocks and not self.tail:
            self.last.insert(0, Strip.blank(0))

    def _add_tail(self, console: Console, width: int, text: str) -> None:
        if not self.tail and self.blocks:
            self.tail.append(Strip.blank(0))
        self.tail += _render(console, Text(text), width)


_TRACK_STYLES = (
    "scrollbar_background",
    "scrollbar_background_hover",
    "scrollbar_background_active",
)


class Transcript(ScrollView, can_focus=True):
    """A pane's turns as one scrolling view of rendered lines.

    A turn is written in pieces; a block is rendered as Markdown once, when it is complete,
    and only the lines that changed are repainted. Untrusted text stays text: Markdown is
    rendered by Rich's parser, which has no markup of its own, and the plain tail goes into
    a `Text`, never through `Text.from_markup`.

    Focusable, so the keyboard scrolls it (arrows, Page Up/Down, Home/End) as it does any
    scrolling view; End, like scrolling to the end, follows the text again. In a pane the
    pane takes the focus instead, and passes these keys on (`Pane.BINDINGS`)."""

    # The scrollbar is always there, so that its coming never lays out the screen (a
    # repaint of every pane); its track shows once there is something to scroll.
    DEFAULT_CSS = """
    Transcript {
        height: 1fr;
        overflow-x: hidden;
        overflow-y: scroll;
    }
    """

    def __init__(self, *, max_turns: int, classes: str | None = None) -> None:
        super().__init__(classes=classes)
        self.max_turns = max_turns
        self._turns: list[_Turn] = []
        self._starts: list[int] = [0]
        """The first line of each turn on screen (the hidden-turns note first, if any)."""
        self._hidden = 0
        self._note: _Turn | None = None
        """Says how many turns are no longer shown, once some are not."""
        self._width = 0
        self._style: Style | None = None
        self._blank: Strip | None = None
        self._styled: dict[int, Strip] = {}
        """Lines ready for the screen; dropped from the first line a change touches."""
        self.follow = True
        """Keep the newest line in view, until the user scrolls away from the end."""
        self._last_move = (time.monotonic(), 0)
        """When the view last scrolled to follow the text, and how many lines there were."""
        self._window = 0
        """The scroll period the view last moved in."""
        self.phase = 0.0
        """Where in each SCROLL_PERIOD the view moves, as a fraction of it: views given
        different phases move in different frames."""
        self._following = False
        self._catching_up = False
        self._scrollbar_at = 0.0
        self._lines_shown = 0
        self.scrollable = False
        """The text is taller than the view: the scrollbar's track shows."""
        self._show_track(False)

    # --- writing -------------------------------------------------------------------

    @property
    def source(self) -> str:
        """The Markdown of the turns still shown."""
        return "".join(turn.source for turn in self._turns)

    @property
    def hidden_turns(self) -> int:
        return self._hidden

    def begin_turn(self) -> None:
        """Later writes go to a new turn; the oldest leaves once `max_turns` are shown, so a
        long chat does not grow the rendered lines without bound."""
        turn = _Turn(rule=bool(self._turns))
        if self._width:
            turn.render(self.app.console, self._width)
        first = self.line_count  # where the new turn's rule goes
        self._turns.append(turn)
        if len(self._turns) > self.max_turns:
            self._hidden += len(self._turns) - self.max_turns
            del self._turns[: -self.max_turns]
            self._note = _Turn()
            note = f"*— {self._hidden} earlier turns are not shown here; an export has them all —*"
            self._note.write(self.app.console, self._width, note, final=True)
            self._relayout(0, settle=True)  # fewer lines now: the view may be past the end
        else:
            self._relayout(first)

    def write(self, markdown: str, *, final: bool = False) -> None:
        """Add `markdown` to the current turn; `final` renders what is still open as well."""
        if not self._turns:
            self.begin_turn()
        turn = self._turns[-1]
        changed = turn.write(self.app.console, self._width, markdown, final=final)
        self._relayout(self._starts[-1] + changed)

    def finish(self) -> None:
        """The turn is over: render the block still open as Markdown, and bring the
        scrollbar up to date. A last line out of view is brought into it, with no room
        below (as is a view left mostly past the end); one in view stays where it is, and
        so does the room below it. Taking the room back would move the view, a repaint of
        every row of the pane (the panes' answers often end within a few milliseconds, and
        their moves made the longest frame of a round), and the text would jump once it
        had stopped."""
        if not self._turns:
            return
        changed = self._turns[-1].write(self.app.console, self._width, "", final=True)
        if not self.is_mounted:
            self._relayout(self._starts[-1] + changed)
            return
        view = self.scrollable_content_region.height
        lines, top = self.line_count, round(self.scroll_y)
        # A text that fits once finished is shown whole, from its first line.
        move = self.follow and (self._behind(lines, top, view) or (lines <= view and top > 0))
        self._relayout(self._starts[-1] + changed, settle=move)
        if not move and (self.scrollable or self.virtual_size.height > view):
            self._sync_scrollbar()

    def clear(self) -> None:
        self._turns, self._hidden, self._note = [], 0, None
        self.follow = True
        self._relayout(0, settle=True)

    # --- layout --------------------------------------------------------------------

    @property
    def line_count(self) -> int:
        return self._starts[-1] + (self._turns[-1].height if self._turns else 0)

    def _all_turns(self) -> list[_Turn]:
        return [self._note, *self._turns] if self._note else self._turns

    def _relayout(self, changed_from: int, *, settle: bool = False) -> None:
        turns = self._all_turns()
        starts = [0]
        for turn in turns[:-1]:
            starts.append(starts[-1] + turn.height)
        self._starts = starts
        # Cached lines are those on screen since the last change, so below the line count
        # then: O(lines changed), not O(lines cached), on every frame's write.
        for y in range(changed_from, max(self._lines_shown, self.line_count)):
            self._styled.pop(y, None)
        if not self.is_mounted:
            return
        lines, before = self.line_count, self._lines_shown
        self._lines_shown = lines
        self._move(lines, settle=settle)
        top, view = round(self.scroll_y), self.scrollable_content_region.height
        end = min(max(lines, before), top + view)
        if (changed := max(changed_from, top)) < end:
            self.refresh_lines(changed, end - changed)

    def _move(self, lines: int, *, settle: bool) -> None:
        """Follow the text, at most once per SCROLL_PERIOD and at the view's `phase` of
        it; `settle` (the turn is over) moves now and leaves no room.

        A move repaints every row of the view, where a line added between moves repaints
        itself alone. The app gives the panes different phases, so that each pane's move is
        a frame of its own. A move leaves room below the last line for what arrives in one
        period, so text that comes slowly still scrolls a line at a time."""
        now = time.monotonic()
        window = math.floor(now / SCROLL_PERIOD - self.phase)
        if not settle and window == self._window:
            if not self._catching_up:
                # If nothing more is written, the view catches up a quarter period into the
                # next one; written to, it moves with that write, in its pane's own frame.
                self._catching_up = True
                due = (window + 1.25 + self.phase) * SCROLL_PERIOD
                self.set_timer(due - now, self._catch_up)
            return
        view = self.scrollable_content_region.height
        top, height = round(self.scroll_y), self.virtual_size.height
        if self.follow and (settle or self._behind(lines, top, view)):
            then, lines_then = self._last_move
            rate = (lines - lines_then) / (now - then) if now > then else 0.0
            room = 0 if settle else max(0, min(round(rate * SCROLL_PERIOD), view // 3))
            self._last_move, self._window = (now, lines), window
            self._following = True  # this scroll is ours, not the user's
            try:
                self.set_reactive(Transcript.virtual_size, Size(self._width, lines + room))
                self.scroll_to(y=max(0, lines + room - view), animate=False, immediate=True)
            finally:
                self._following = False
            overflowing = lines + room > view
            if (
                settle
                or now - self._scrollbar_at >= SCROLLBAR_PERIOD
                or overflowing != self.scrollable  # the reader can scroll now
            ):
                self._sync_scrollbar()
        elif settle or (not self.follow and height != lines) or height < min(lines, view):
            self._window = window
            # Never below the bottom of the view: the scroll position would be clamped, and
            # a reader who scrolled up a line would find the view following again.
            keep = lines if self.follow else max(lines, min(height, top + view))
            self.set_reactive(Transcript.virtual_size, Size(self._width, keep))
            # While the text fits the view its bar shows nothing, and a sync would repaint
            # all of it: every row of the screen it crosses, four times a second.
            if settle or keep > view or self.scrollable:
                self._sync_scrollbar()

    @staticmethod
    def _behind(lines: int, top: int, view: int) -> bool:
        """Following, a move is due: the last line is below the view, or the view is mostly
        past the end (turns left the screen, or the finished text took fewer lines)."""
        return lines > top + view or (top > 0 and lines < top + view - max(1, view // 3))

    def _catch_up(self) -> None:
        self._catching_up = False
        self._move(self.line_count, settle=False)

    def _sync_scrollbar(self) -> None:
        """Bring the scrollbar up to date with the virtual height and the scroll position.

        Without a layout of the screen: setting `virtual_size` lays out the screen, and a
        layout repaints every pane. The view's size does not depend on its virtual size
        (its scrollbar is always shown), so updating the scrollbar is all a layout would
        do. While following, this runs once per SCROLLBAR_PERIOD: each sync repaints every
        row of the bar, which cost four panes as much as their text."""
        self._scrollbar_at = time.monotonic()
        self._scroll_update(self.virtual_size)
        scrollable = self.virtual_size.height > self.scrollable_content_region.height
        if scrollable != self.scrollable:
            self.scrollable = scrollable
            self._show_track(scrollable)
        self.vertical_scrollbar.position = self.scroll_y

    def _show_track(self, show: bool) -> None:
        # Inline styles, not a CSS class: a class restyles the scrollbar widget, and that
        # lays out the whole screen (a repaint of every pane, in the middle of a stream).
        # Cleared, the stylesheet's colours (the theme's) apply again.
        for name in _TRACK_STYLES:
            setattr(self.styles, name, None if show else "transparent")

    def watch_scroll_y(self, old_value: float, new_value: float) -> None:
        if not self._following:
            self.vertical_scrollbar.position = new_value
        if (moved := round(new_value) - round(old_value)) != 0:
            self._scrolled(moved)
        if not self._following:
            # Scrolled up by the user: stop following; back at the end: follow again.
            self.follow = new_value >= self.max_scroll_y

    def _scrolled(self, moved: int) -> None:
        """Repaint the view, keeping the rows Textual has styled that are still in it.

        Textual keeps a widget's styled rows by their place in the view, so a scroll
        restyles every row (half the time of a frame in which four panes scroll); a row's
        content does not depend on its place, so the rows still in view are moved instead
        and only the rows scrolled into view are styled."""
        cache = getattr(self, "_styles_cache", None)
        rows = getattr(cache, "_cache", None)
        dirty = getattr(cache, "_dirty_lines", None)
        if not isinstance(rows, dict) or not isinstance(dirty, set):
            self.refresh(self.size.region)  # another Textual: restyle all, only slower
            return
        # Rows of the view's content only: padding rows keep their place.
        first, stale = self.styles.gutter.top, set(dirty)
        end = first + self.scrollable_content_region.height
        kept = {
            y if not first <= y < end else y - moved: strip
            for y, strip in rows.items()
            if y not in stale and (not first <= y < end or first <= y - moved < end)
        }
        self.refresh(self.size.region)
        rows.clear()
        rows.update(kept)
        dirty.difference_update(kept)

    def on_resize(self) -> None:
        if not self._ensure_width():
            # Taller or shorter (a summary row came or went): the end stays in view.
            self._relayout(self.line_count, settle=True)

    def _ensure_width(self) -> bool:
        """Render everything again at a new width; True if it did."""
        width = self.scrollable_content_region.width
        if width <= 0 or width == self._width:
            return False
        self._width, self._style = width, None
        for turn in self._all_turns():
            turn.render(self.app.console, width)
        self._styled.clear()
        self._relayout(0, settle=True)
        return True

    # --- rendering -----------------------------------------------------------------

    def render_line(self, y: int) -> Strip:
        self._ensure_width()
        y += round(self.scroll_y)
        selection = self.text_selection
        if selection is None and (strip := self._styled.get(y)) is not None:
            return strip
        if self._style is None:  # looked up through every ancestor: once per style change
            self._style = self.rich_style
            self._blank = Strip.blank(self._width, self._style)
        turns = self._all_turns()
        index = bisect_right(self._starts, y) - 1
        if index < 0 or index >= len(turns) or y - self._starts[index] >= turns[index].height:
            assert self._blank is not None
            return self._blank
        line = turns[index].line(y - self._starts[index])
        style = self._style
        strip = line.crop_extend(0, self._width, style).apply_style(style)
        if selection is not None:
            return self._selected(strip, selection, y).apply_offsets(0, y)
        strip = strip.apply_offsets(0, y)
        self._styled[y] = strip
        return strip

    def _selected(self, strip: Strip, selection: Selection, y: int) -> Strip:
        """`strip` with the part of line `y` inside the mouse selection highlighted."""
        span = selection.get_span(y)
        if span is None:
            return strip
        start, end = span
        end = strip.cell_length if end == -1 else min(end, strip.cell_length)
        if start >= end:
            return strip
        before, inside, after = strip.divide([start, end, strip.cell_length])
        highlight = self.screen.get_component_rich_style("screen--selection")
        inside = Strip(Segment.apply_style(inside, post_style=highlight), inside.cell_length)
        return Strip.join([before, inside, after])

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._styled.clear()
        self._style = None

    def get_selection(self, selection: Selection) -> tuple[str, str] | None:
        return selection.extract("\n".join(self.plain_lines())), "\n"

    def plain_lines(self) -> list[str]:
        """Every rendered line as text, as far as it is rendered (the widget knows its
        width once it is laid out)."""
        turns = self._all_turns()
        return [turn.line(i).text.rstrip() for turn in turns for i in range(turn.height)]


_INLINE_SYNTAX = frozenset("\\`*_[]<>&~!|$")
_LINE_START_SYNTAX = frozenset("#>-+=0123456789 \t")


def warm() -> None:
    """Import what the first block rendered as Markdown needs (rich.markdown, markdown-it:
    ~0.1 s), so that the first prompt does not wait for it."""
    import rich.markdown  # noqa: F401


def _is_plain(text: str) -> bool:
    """A one-line paragraph with nothing Markdown would change: shown as the text itself,
    which is what Markdown renders it as, without building a parser for it."""
    return bool(text) and (
        "\n" not in text and text[0] not in _LINE_START_SYNTAX and _INLINE_SYNTAX.isdisjoint(text)
    )


_THEME = Theme({"markdown.block_quote": "bright_blue"})
"""Rich quotes in magenta, which beside a red error reads as one: the prompt is quoted."""


def _render(console: Console, renderable: RenderableType, width: int) -> list[Strip]:
    options: ConsoleOptions = console.options.update_width(width)
    with console.use_theme(_THEME):
        lines = [
            _trimmed(Segment.simplify(line))
            for line in console.render_lines(renderable, options, pad=False)
        ]
    # Rich puts a blank line before some blocks (lists, quotes) and after others (a rule):
    # the transcript puts exactly one between blocks itself.
    while lines and not lines[0].cell_length:
        del lines[0]
    while lines and not lines[-1].cell_length:
        del lines[-1]
    return lines or [Strip.blank(0)]


def _rule(width: int) -> list[Strip]:
    """The line between two turns, with a blank line either side."""
    return [Strip.blank(0), Strip([Segment("─" * width, Style(dim=True))]), Strip.blank(0)]


def _trimmed(segments: Iterable[Segment]) -> Strip:
    """The line without the unstyled spaces that pad it: Rich pads a Markdown paragraph to
    the width and a wrapped `Text` not, so a plain paragraph rendered as Markdown once it
    is complete compares equal to the lines it replaces, and is not repainted."""
    line = list(segments)
    while line and not line[-1].style and not line[-1].control:
        text = line[-1].text.rstrip(" ")
        if text:
            line[-1] = Segment(text, line[-1].style)
            break
        line.pop()
    return Strip(line)
