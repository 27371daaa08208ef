"""The pane's transcript: Markdown streamed in pieces, rendered a block at a time, followed
to the end unless the reader scrolls away."""

from __future__ import annotations

import gc
import time
from collections.abc import Callable

import pytest
from textual.app import App, ComposeResult
from textual.containers import Horizontal
from textual.geometry import Offset, Region
from textual.pilot import Pilot
from textual.selection import Selection
from textual.widgets import Static

from workbench.tui.widgets.streamed import SCROLL_PERIOD, BlockSplitter, Transcript

DOCUMENT = """# Fruit

Apples are crisp and pears are soft; both keep for weeks in a cool place.

- apple
- pear

  a second paragraph inside the pear item

```python
def ripe(fruit):

    return fruit.days > 3
```

1. pick
2. wash

| fruit | colour |
|-------|--------|
| apple | red    |

> a quote with **bold** and `code`

The end."""


def pieces(text: str, size: int) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)]


# --- cutting the stream into blocks ---------------------------------------------------


@pytest.mark.parametrize("size", [1, 3, 7, 1000])
def test_blocks_are_the_same_however_the_text_is_cut(size: int) -> None:
    splitter = BlockSplitter()
    blocks = [block for piece in pieces(DOCUMENT, size) for block in splitter.feed(piece)]
    blocks += splitter.flush()
    assert "".join(blocks) == DOCUMENT
    whole = BlockSplitter()
    assert blocks == whole.feed(DOCUMENT) + whole.flush()


def test_a_code_block_with_blank_lines_is_one_block() -> None:
    splitter = BlockSplitter()
    blocks = splitter.feed("```\nline one\n\n\nline two\n```\nafter\n\nnext")
    assert blocks == ["```\nline one\n\n\nline two\n```\n", "after\n\n"]
    assert splitter.pending == "next"


def test_an_indented_line_after_a_gap_continues_the_block() -> None:
    splitter = BlockSplitter()
    assert splitter.feed("- item\n\n  more of the item\n\n") == []
    assert splitter.feed("Next paragraph\n") == ["- item\n\n  more of the item\n\n"]


def test_a_longer_fence_is_closed_only_by_one_as_long() -> None:
    splitter = BlockSplitter()
    assert splitter.feed("````\n```\nstill code\n\n") == []
    assert splitter.feed("````\n") == ["````\n```\nstill code\n\n````\n"]


def test_an_unclosed_fence_is_closed_by_the_end_of_the_answer() -> None:
    splitter = BlockSplitter()
    assert splitter.feed("```\ncode\n\nmore code\n") == []
    assert splitter.flush() == ["```\ncode\n\nmore code\n"]


def test_a_line_without_its_newline_stays_pending() -> None:
    splitter = BlockSplitter()
    assert splitter.feed("one paragraph that has not ended") == []
    assert splitter.pending == "one paragraph that has not ended"


# --- the widget -----------------------------------------------------------------------


class TranscriptApp(App[None]):
    CSS = "Transcript { padding: 1 1 0 1; }"  # as in a pane: rows that are not content

    def __init__(self, max_turns: int = 12) -> None:
        super().__init__()
        self.max_turns = max_turns

    def compose(self) -> ComposeResult:
        yield Transcript(max_turns=self.max_turns)

    @property
    def transcript(self) -> Transcript:
        return self.query_one(Transcript)


def shown(view: Transcript) -> list[str]:
    """The rows of text the view gives the screen, as Textual asks for them (through its
    cache of styled rows), without the padding."""
    width, height = view.outer_size
    rows = view.render_lines(Region(0, 0, width, height))
    gutter = view.styles.gutter
    content = rows[gutter.top : height - gutter.bottom]
    return [row.text[gutter.left : width - gutter.right].rstrip() for row in content]


async def answer(pilot: Pilot[None], view: Transcript, name: str, lines: int, end: str) -> None:
    """A whole turn at once: `lines` lines called `name 0`, `name 1`…, each ending in `end`."""
    view.begin_turn()
    view.write("".join(f"{name} {i}{end}" for i in range(lines)))
    view.finish()
    await pilot.pause()


async def test_markdown_written_in_pieces_renders_as_written_at_once() -> None:
    app = TranscriptApp()
    async with app.run_test(size=(60, 40)) as pilot:
        view = app.transcript
        view.begin_turn()
        for piece in pieces(DOCUMENT, 7):
            view.write(piece)
            await pilot.pause()
        view.finish()
        streamed = view.plain_lines()
        view.clear()
        view.begin_turn()
        view.write(DOCUMENT, final=True)
        assert view.plain_lines() == streamed
    text = "\n".join(streamed)
    # Markdown, not its source: the markers are gone, the content stays.
    assert "def ripe(fruit):" in text and "```" not in text
    assert "**" not in text and "bold" in text
    assert "Fruit" in text and "# Fruit" not in text
    assert "apple" in text and "red" in text


async def test_the_block_being_written_shows_as_it_arrives() -> None:
    app = TranscriptApp()
    async with app.run_test(size=(60, 20)) as pilot:
        view = app.transcript
        view.begin_turn()
        view.write("A sentence that is still **being")
        await pilot.pause()
        # Plain until the block is complete: half a Markdown mark is shown as it is.
        assert any("still **being" in line for line in shown(view))
        view.write(" written** now.\n\nNext")
        await pilot.pause()
        lines = shown(view)
        assert any("still being written now." in line for line in lines)
        assert any(line == "Next" for line in lines)


async def test_model_output_is_never_markup() -> None:
    app = TranscriptApp()
    async with app.run_test(size=(60, 20)) as pilot:
        view = app.transcript
        view.begin_turn()
        view.write("[bold red]x[/] and [link=http://evil]y[/link]\n\nstill [b]going")
        await pilot.pause()
        text = "\n".join(shown(view))
        assert "[bold red]x[/]" in text and "[link=http://evil]y[/link]" in text
        assert "[b]going" in text


async def test_html_in_an_answer_is_shown_as_written() -> None:
    """markdown-it reads tags as HTML, which Rich leaves out: `Use the  element`."""
    answer = (
        "Use the <div> element and <b>bold</b> tags, or `<span>`.\n\n"
        "<script>alert(1)</script>\n\n"
        "**Also** <br/> &amp; *more*\n"
    )
    lines = await _finished_answer(answer)
    assert "Use the <div> element and <b>bold</b> tags, or <span>." in lines
    assert "<script>alert(1)</script>" in lines
    assert "Also <br/> & more" in lines  # Markdown still applies around the tags


async def test_single_line_breaks_stay_once_the_answer_is_finished() -> None:
    """CommonMark joins lines into a paragraph; a chat keeps them, as they streamed."""
    poem = "Roses are *red*,\nviolets are blue,\nthis line stays\nits own.\n\nA new verse.\n"
    lines = [line for line in await _finished_answer(poem) if line]
    assert lines[:5] == ["Roses are red,", "violets are blue,", "this line stays", "its own.",
                         "A new verse."]  # fmt: skip


async def _finished_answer(answer: str) -> list[str]:
    """The rows a whole answer is shown in, at 80 columns, stripped."""
    app = TranscriptApp()
    async with app.run_test(size=(80, 20)) as pilot:
        view = app.transcript
        view.begin_turn()
        view.write(answer, final=True)
        await pilot.pause()
        return [line.strip() for line in shown(view)]


async def test_the_view_follows_the_text_to_its_end() -> None:
    app = TranscriptApp()
    async with app.run_test(size=(40, 10)) as pilot:
        view = app.transcript
        view.begin_turn()
        for i in range(60):
            view.write(f"line {i}\n\n")
            await pilot.pause()
        view.finish()
        await pilot.pause()
        assert view.scroll_y == view.max_scroll_y > 0
        assert "line 59" in shown(view)
        # The scrollbar knows the whole height once the answer is done (with any room kept
        # below the last line: see the next tests).
        bar = view.vertical_scrollbar
        assert bar.window_virtual_size == view.virtual_size.height >= view.line_count


async def test_scrolling_up_stops_following_and_the_end_resumes_it() -> None:
    app = TranscriptApp()
    async with app.run_test(size=(40, 10)) as pilot:
        view = app.transcript
        await answer(pilot, view, "line", 40, "\n\n")
        view.scroll_home(animate=False, immediate=True)
        await pilot.pause()
        assert not view.follow
        await answer(pilot, view, "more", 40, "\n\n")
        assert view.scroll_y == 0 and "line 0" in shown(view)
        view.scroll_end(animate=False, immediate=True)
        await pilot.pause()
        assert view.follow
        await answer(pilot, view, "last", 40, "\n\n")
        assert "last 39" in shown(view)


async def test_text_written_between_moves_comes_into_view_without_more_writes() -> None:
    """A view moves at most once per period; what was written in between is shown once
    the period is over, even when nothing follows it (a note, say)."""
    app = TranscriptApp()
    async with app.run_test(size=(40, 10)) as pilot:
        view = app.transcript
        await answer(pilot, view, "line", 40, "\n\n")
        view.write("\n\n*— a note —*\n\n", final=True)
        view.write("\n\n*— another note —*\n\n", final=True)
        await pilot.pause(2 * SCROLL_PERIOD)
        assert "— another note —" in shown(view)


async def test_only_the_newest_turns_stay_on_screen() -> None:
    app = TranscriptApp(max_turns=2)
    async with app.run_test(size=(60, 20)) as pilot:
        view = app.transcript
        for turn in range(4):
            view.begin_turn()
            view.write(f"answer {turn}\n\n", final=True)
        await pilot.pause()
        assert view.hidden_turns == 2
        assert "answer 0" not in view.source and "answer 3" in view.source
        assert view.plain_lines()[0].startswith("— 2 earlier turns are not shown here")


async def test_a_narrower_view_wraps_again() -> None:
    app = TranscriptApp()
    async with app.run_test(size=(80, 20)) as pilot:
        view = app.transcript
        view.begin_turn()
        view.write("word " * 60 + "\n\nand a plain tail still being written " * 3, final=False)
        await pilot.pause()
        wide = view.plain_lines()
        await pilot.resize_terminal(40, 20)
        await pilot.pause()
        narrow = view.plain_lines()
        assert len(narrow) > len(wide)
        width = view.scrollable_content_region.width
        assert all(len(line) <= width for line in narrow)
        assert " ".join(" ".join(narrow).split()) == " ".join(" ".join(wide).split())


async def test_selected_text_is_the_rendered_text() -> None:
    app = TranscriptApp()
    async with app.run_test(size=(60, 20)) as pilot:
        view = app.transcript
        view.begin_turn()
        view.write("First line of **the** answer.\n\nSecond line.", final=True)
        await pilot.pause()
        selected = view.get_selection(Selection(Offset(0, 0), Offset(60, 3)))
        assert selected is not None
        assert "First line of the answer." in selected[0] and "Second line." in selected[0]


async def test_a_line_that_never_ends_is_shown_whole_as_it_grows() -> None:
    """Wrapped in pieces, so a frame costs the piece, not the whole line."""
    app = TranscriptApp()
    async with app.run_test(size=(60, 20)) as pilot:
        view = app.transcript
        view.begin_turn()
        words = [f"w{i}" for i in range(6000)]  # ~40 000 characters, no newline
        for i in range(0, len(words), 500):
            view.write(" ".join(words[i : i + 500]) + " ")
            await pilot.pause()
        assert " ".join(" ".join(view.plain_lines()).split()) == " ".join(words)
        view.finish()
        await pilot.pause()
        assert " ".join(" ".join(view.plain_lines()).split()) == " ".join(words)


class ShrinkingApp(TranscriptApp):
    """A transcript above a box that appears, as the summary row does under the panes."""

    def compose(self) -> ComposeResult:
        yield Transcript(max_turns=12)
        yield Static("summary\nsecond line\nthird line", id="below")

    def on_mount(self) -> None:
        self.query_one("#below").display = False


async def test_the_end_stays_in_view_when_the_view_gets_shorter() -> None:
    app = ShrinkingApp()
    async with app.run_test(size=(40, 16)) as pilot:
        view = app.transcript
        await answer(pilot, view, "line", 40, "\n\n")
        assert "line 39" in shown(view)
        app.query_one("#below").display = True
        await pilot.pause()
        assert view.size.height < 16
        assert "line 39" in shown(view)


async def test_the_keyboard_scrolls_away_and_back_to_following() -> None:
    app = TranscriptApp()
    async with app.run_test(size=(40, 10)) as pilot:
        view = app.transcript
        await answer(pilot, view, "line", 40, "\n\n")
        view.focus()
        await pilot.press("home")
        assert not view.follow and "line 0" in shown(view)
        await pilot.press("pagedown")
        assert not view.follow and view.scroll_y > 0
        await pilot.press("end")
        assert view.follow and "line 39" in shown(view)


# --- found in review -------------------------------------------------------------------


def test_a_fence_inside_a_list_item_keeps_the_list_whole() -> None:
    text = "1. Install:\n   ```bash\n   pip install x\n   ```\n   Then run it.\n2. Done\n"
    splitter = BlockSplitter()
    blocks = [block for piece in pieces(text, 5) for block in splitter.feed(piece)]
    assert blocks + splitter.flush() == [text]


def test_backticks_with_text_after_them_are_inline_code_not_a_fence() -> None:
    splitter = BlockSplitter()
    blocks = splitter.feed("```foo``` bar\n\nnext paragraph\n\n")
    assert blocks == ["```foo``` bar\n\n"]


def test_a_loose_list_is_one_block() -> None:
    splitter = BlockSplitter()
    text = "1. one\n\n1. two\n\n1. three\n\nAfter the list.\n"
    blocks = [block for piece in pieces(text, 3) for block in splitter.feed(piece)]
    assert blocks == ["1. one\n\n1. two\n\n1. three\n\n"]


async def test_a_lazily_numbered_loose_list_counts_up() -> None:
    app = TranscriptApp()
    async with app.run_test(size=(40, 20)) as pilot:
        view = app.transcript
        view.begin_turn()
        for piece in pieces("1. one\n\n1. two\n\n1. three\n\nAfter.", 4):
            view.write(piece)
        view.finish()
        await pilot.pause()
        numbered = [line.split()[0] for line in view.plain_lines() if line.strip()[:1].isdigit()]
        assert numbered == ["1", "2", "3"]


async def test_an_answer_ending_in_a_fence_leaves_nothing_behind_it() -> None:
    app = TranscriptApp()
    async with app.run_test(size=(40, 20)) as pilot:
        view = app.transcript
        view.begin_turn()
        view.write("```\nx = 1\n```\n\n")
        view.finish()
        await pilot.pause()
        lines = view.plain_lines()
        assert lines[-1].strip() == "" and lines[-2].strip() == "x = 1"  # the code's padding
        view.write("hello world")
        await pilot.pause()
        assert view.plain_lines()[-1] == "hello world"


async def test_rows_match_the_text_at_any_scroll_position() -> None:
    """Textual rounds a fractional scroll offset; the rows shown must round the same way."""
    app = TranscriptApp()
    async with app.run_test(size=(40, 10)) as pilot:
        view = app.transcript
        await answer(pilot, view, "line", 200, "\n")
        view.focus()
        for y in (110.4, 110.6, 57.5, 3.49):
            view.scroll_to(y=y, animate=False, immediate=True)
            await pilot.pause()
            top = round(view.scroll_y)
            assert shown(view) == view.plain_lines()[top : top + view.size.height]
        for key in ("pageup", "up", "up", "pagedown", "down"):
            await pilot.press(key)
            await pilot.pause(0.5)  # the scroll animates through fractions
            top = round(view.scroll_y)
            assert shown(view) == view.plain_lines()[top : top + view.size.height]


async def test_a_new_turn_shows_while_it_streams_after_old_turns_leave() -> None:
    app = TranscriptApp(max_turns=2)
    async with app.run_test(size=(40, 10)) as pilot:
        view = app.transcript
        for turn in range(2):
            await answer(pilot, view, f"turn {turn} line", 40, "\n\n")
        view.begin_turn()  # the first turn leaves the screen: 80 lines fewer
        view.write("> the new prompt\n\n", final=True)
        view.write("the answer begins")
        await pilot.pause(2 * SCROLL_PERIOD)
        assert "the answer begins" in shown(view)


async def test_after_a_clear_the_next_answer_is_followed() -> None:
    app = TranscriptApp()
    async with app.run_test(size=(40, 10)) as pilot:
        view = app.transcript
        await answer(pilot, view, "old", 40, "\n\n")
        view.clear()
        view.begin_turn()
        for i in range(30):
            view.write(f"new {i}\n\n")
            await pilot.pause(0.02)
        await pilot.pause(2 * SCROLL_PERIOD)
        assert view.follow and "new 29" in shown(view)
        assert view.max_scroll_y < 60  # the old answer's height is gone with it


MARKED = " **alpha** **bravo** **charlie** **delta**\n"
"""The end of a line two rows long at 40 columns as it streams, one once rendered."""


async def stream_until_room(pilot: Pilot[None], view: Transcript, end: str) -> str:
    """Lines written fast, past a screenful, until the view has left room below the last
    one and shows it; that line."""
    view.begin_turn()
    for i in range(300):
        view.write(f"line {i}{end}")
        await pilot.pause(0.01)
        room = view.virtual_size.height - view.line_count
        starts = [" ".join(row.split()[:2]) for row in shown(view)]
        if i > 30 and room > 0 and f"line {i}" in starts:
            return f"line {i}"
    pytest.fail("the view never left room below the last line")


async def test_an_answer_that_ends_in_view_leaves_the_view_where_it_is() -> None:
    """A move repaints every row of a pane, and the panes' answers often end together: an
    answer whose last line is in view when it ends leaves the view, and the room below the
    line, as they are (the text does not jump once it has stopped). The scrollbar catches
    up."""
    app = TranscriptApp()
    async with app.run_test(size=(40, 12)) as pilot:
        view = app.transcript
        last = await stream_until_room(pilot, view, "\n\n")
        top = view.scroll_y
        view.finish()
        await pilot.pause(2 * SCROLL_PERIOD)
        assert view.scroll_y == top
        assert last in shown(view)
        assert view.vertical_scrollbar.window_virtual_size == view.virtual_size.height


async def test_an_answer_that_takes_fewer_lines_once_finished_is_in_view_at_once() -> None:
    """Lines that wrap as they stream fit a row each once their Markdown marks are gone:
    the view, left past the end of the shorter text, is brought back at once."""
    app = TranscriptApp()
    async with app.run_test(size=(40, 12)) as pilot:
        view = app.transcript
        last = await stream_until_room(pilot, view, MARKED)
        streamed = view.line_count
        view.finish()
        await pilot.pause()
        assert view.line_count <= streamed // 2 + 1
        assert last in " ".join(shown(view))


async def test_an_answer_that_fits_once_finished_is_shown_from_its_first_line() -> None:
    """Its last lines, rid of their Markdown marks, take fewer rows than they did
    streaming: a text that now fits the view is shown whole, not scrolled past its first
    lines."""
    app = TranscriptApp()
    async with app.run_test(size=(40, 12)) as pilot:
        view = app.transcript
        view.begin_turn()
        for piece in [f"para {i}\n\n" for i in range(4)] + [f"{i}{MARKED}" for i in range(3)]:
            view.write(piece)
            await pilot.pause(0.3)
        assert view.scroll_y > 0  # streaming, the view had moved
        view.finish()
        await pilot.pause(2 * SCROLL_PERIOD)
        assert view.line_count <= view.scrollable_content_region.height
        assert view.scroll_y == 0 and "para 0" in shown(view)


async def test_scrolling_up_a_line_while_it_follows_is_not_undone() -> None:
    app = TranscriptApp()
    async with app.run_test(size=(40, 12)) as pilot:
        view = app.transcript
        view.begin_turn()
        for i in range(60):  # fast enough to leave room below the last line
            view.write(f"line {i}\n")
            await pilot.pause(0.01)
        view.scroll_to(y=view.scroll_y - 1, animate=False, immediate=True)
        await pilot.pause()
        assert not view.follow
        for i in range(10):
            view.write(f"more {i}\n")
            await pilot.pause(0.05)
        await pilot.pause(2 * SCROLL_PERIOD)
        assert not view.follow


async def test_the_scrollbar_is_there_from_the_start_and_its_track_once_it_can_scroll() -> None:
    """A scrollbar that appears lays out the whole screen (every pane is repainted): it is
    there from the start, and only its track shows when there is something to scroll."""
    app = TranscriptApp()
    async with app.run_test(size=(40, 10)) as pilot:
        view = app.transcript
        view.begin_turn()
        view.write("one line\n\n")
        await pilot.pause()
        assert view.show_vertical_scrollbar and view.styles.scrollbar_background.a == 0
        await answer(pilot, view, "line", 40, "\n\n")
        await pilot.pause(2 * SCROLL_PERIOD)
        assert view.show_vertical_scrollbar and view.styles.scrollbar_background.a > 0


class TwoViews(App[None]):
    CSS = "Transcript { width: 1fr; }"

    def compose(self) -> ComposeResult:
        with Horizontal():
            yield Transcript(max_turns=12)
            yield Transcript(max_turns=12)


async def test_views_given_different_phases_move_in_different_frames() -> None:
    """The app gives each pane a phase of the scroll period, and a pane's move repaints
    its own rows in a frame of its own, however the text arrives."""
    app = TwoViews()
    async with app.run_test(size=(80, 12)) as pilot:
        views = list(app.query(Transcript))
        views[1].phase = 0.5
        moves: list[list[float]] = [[], []]

        def when_moved(times: list[float]) -> Callable[[float], None]:
            return lambda _: times.append(time.monotonic())

        for view, times in zip(views, moves, strict=True):
            app.watch(view, "scroll_y", when_moved(times), init=False)
            view.begin_turn()
        ends = time.monotonic() + 8 * SCROLL_PERIOD
        line = 0
        gc.disable()  # a collection of what earlier tests left would stall this loop
        try:
            while time.monotonic() < ends:
                for view in views:
                    view.write(f"line {line}\n\n")
                line += 1
                await pilot.pause(0.01)
        finally:
            gc.enable()
        first, second = moves
        assert len(first) >= 6 and len(second) >= 6
        together = [a for a in first if any(abs(a - b) < SCROLL_PERIOD / 10 for b in second)]
        # A stall of the loop under load can still bring two moves together once.
        assert len(together) <= 1


async def test_selected_text_is_highlighted() -> None:
    app = TranscriptApp()
    async with app.run_test(size=(60, 10)) as pilot:
        view = app.transcript
        view.begin_turn()
        view.write("first line\n\nsecond line", final=True)
        await pilot.pause()
        plain = view.render_line(0)
        view.screen.selections = {view: Selection(Offset(0, 0), Offset(5, 0))}
        await pilot.pause()
        selected = view.render_line(0)
        assert selected.text == plain.text
        assert list(selected) != list(plain)  # the first word is styled as selected


async def test_a_rule_parts_two_turns_on_screen() -> None:
    app = TranscriptApp()
    async with app.run_test(size=(40, 20)) as pilot:
        view = app.transcript
        for prompt in ("first", "second"):
            view.begin_turn()
            view.write(f"> {prompt}\n\n", final=True)
            view.finish()
            await pilot.pause()
        rows = shown(view)
        assert rows.index("▌ first") < rows.index("─" * 36) < rows.index("▌ second")
