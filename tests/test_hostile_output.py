"""Untrusted text from servers: the sanitizer's properties, and the app under hostile streams.

Model output, model names and error messages may carry Rich markup, terminal escapes, BiDi
controls, NUL and other C0/C1 controls, enormous lines and enormous answers. They must
reach the screen as inert text, and the app must stay responsive while they do.
"""

from __future__ import annotations

import io
import re
import time
import unicodedata
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pytest_httpserver import HTTPServer
from rich.console import Console
from rich.markdown import Markdown as RichMarkdown
from rich.text import Text
from werkzeug import Request, Response

from tests.fault_servers import WIRES
from tests.tui_helpers import one_pane_app, send, shown, wait_finished, wait_until
from workbench.sanitize import clean, clean_line, unfinished_escape

EXAMPLES = settings(max_examples=200, deadline=None)

BIDI = set("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
MARKUP = ["[bold red]", "[/]", "[link=http://evil]", "[/link]", "[@click=app.quit]", "[on red]"]
COMPLETE_ESCAPES = [
    "\x1b[31m",  # SGR colour
    "\x1b[2J",  # clear screen
    "\x1b[?1049h",  # alternate screen
    "\x1b]0;pwned\x07",  # window title (BEL)
    "\x1b]8;;http://evil\x1b\\",  # hyperlink (ST)
    "\x1b]52;c;cm0gLXJmIC8=\x07",  # clipboard write
    "\x1bP+q544e\x1b\\",  # DCS
    "\x1b_apc\x1b\\",  # APC
    "\x1bc",  # reset
    "\x1b(0",  # charset
    "\x9b2J",  # 8-bit CSI
    "\x9d0;pwned\x9c",  # 8-bit OSC
    "\x90q#0\x9c",  # 8-bit DCS (sixel)
]
FRAGMENTS = [
    *COMPLETE_ESCAPES,
    *MARKUP,
    *BIDI,
    "\x00",
    "\x07",
    "\x08",
    "\x7f",
    "\x85",
    "\r",
    "\r\n",
    "\x1b",
    "\x1b[",
    "\x1b]0;no terminator",
    "\x9b",
    "\x9d",
    "\ud800",
    "\udfff",
]

# Text a person could have written: no controls, BiDi controls or surrogates.
safe_text = st.text(
    st.characters(
        blacklist_categories=("Cc", "Cs"),
        blacklist_characters="".join(BIDI),
    )
    | st.sampled_from("\n\t"),
)
hostile_text = st.lists(
    st.one_of(safe_text, st.sampled_from(FRAGMENTS), st.text()), max_size=12
).map("".join)


def _forbidden(char: str) -> bool:
    if char in "\n\t":
        return False
    return unicodedata.category(char) in ("Cc", "Cs") or char in BIDI


# --- the sanitizer ----------------------------------------------------------------


@EXAMPLES
@given(hostile_text)
def test_clean_leaves_no_control_escape_bidi_or_surrogate(text: str) -> None:
    out = clean(text)
    assert not [c for c in out if _forbidden(c)]
    assert "\x1b" not in out and "\r" not in out
    out.encode("utf-8")  # a terminal or SQLite can take it


@EXAMPLES
@given(hostile_text)
def test_clean_and_clean_line_are_idempotent(text: str) -> None:
    once = clean(text)
    assert clean(once) == once
    line = clean_line(text)
    assert clean_line(line) == line
    assert "\n" not in line and "\t" not in line and "  " not in line


@EXAMPLES
@given(safe_text)
def test_printable_text_is_kept_as_it_is(text: str) -> None:
    assert clean(text) == text


@EXAMPLES
@given(st.lists(st.one_of(safe_text, st.sampled_from(COMPLETE_ESCAPES)), max_size=12))
def test_complete_escape_sequences_vanish_and_only_they(parts: list[str]) -> None:
    kept = "".join(p for p in parts if p not in COMPLETE_ESCAPES)
    assert clean("".join(parts)) == kept


@EXAMPLES
@given(safe_text, st.sampled_from(MARKUP), safe_text)
def test_rich_markup_is_kept_literally(before: str, markup: str, after: str) -> None:
    assert markup in clean(before + markup + after)
    assert markup in clean_line(f"{before} {markup} {after}")


@EXAMPLES
@given(st.lists(st.one_of(safe_text, st.sampled_from(COMPLETE_ESCAPES)), max_size=12), st.data())
def test_an_escape_split_between_chunks_is_cleaned_as_if_whole(
    parts: list[str], data: st.DataObject
) -> None:
    """A stream shows text up to an escape that may not be finished, and the rest with the
    next chunk: what is shown is the clean whole answer, with no `[31m` left behind."""
    text = "".join(parts)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(text)), max_size=8)))
    chunks = [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)], strict=True)]
    shown, held = "", ""
    for i, chunk in enumerate(chunks):
        pending = held + chunk
        cut = len(pending) if i == len(chunks) - 1 else unfinished_escape(pending)
        shown += clean(pending[:cut])
        held = pending[cut:]
    assert shown == clean(text) == "".join(p for p in parts if p not in COMPLETE_ESCAPES)


def test_unterminated_string_escapes_lose_only_their_introducer() -> None:
    assert clean("a\x1b]0;pwned then the rest") == "a0;pwned then the rest"
    assert clean("a\x9dthe rest") == "athe rest"
    assert clean("\x1b]0;" + "x" * 10_000 + "\x07tail").endswith("tail")


@pytest.mark.parametrize(
    "text",
    [
        "\x9d" * 1_000_000,
        "\x1b]" * 500_000,
        "\x1b[" + "0" * 1_000_000,
        ("\x90" + "a" * 5_000) * 200,
        "\x1b" * 1_000_000,
        "[bold]" * 200_000,
    ],
    ids=["osc8bit", "osc", "csi-params", "dcs-gaps", "esc", "markup"],
)
def test_a_megabyte_of_hostile_bytes_is_cleaned_in_linear_time(text: str) -> None:
    started = time.perf_counter()
    out = clean(text)
    assert time.perf_counter() - started < 10  # quadratic backtracking would take hours
    assert "\x1b" not in out


# --- the Markdown path --------------------------------------------------------------

_SGR = re.compile(r"\x1b\[[0-9;]*m")


def _render(markdown: str, *, color: bool) -> str:
    console = Console(
        file=io.StringIO(),
        force_terminal=color,
        color_system="truecolor" if color else None,
        width=80,
        legacy_windows=False,
    )
    console.print(RichMarkdown(markdown, hyperlinks=False))
    assert isinstance(console.file, io.StringIO)
    return console.file.getvalue()


@settings(max_examples=100, deadline=None)
@given(hostile_text)
def test_rendered_markdown_carries_no_escape_but_its_own_colours(text: str) -> None:
    """The pane streams `clean(answer)` as Markdown: only the renderer's own SGR may appear."""
    out = _SGR.sub("", _render(clean(text), color=True))
    assert "\x1b" not in out
    assert not [c for c in out if _forbidden(c)]


words = st.text(st.sampled_from("abcdefghij XYZ0123"), max_size=30)


@settings(max_examples=100, deadline=None)
@given(words, st.sampled_from(MARKUP), words)
def test_markup_in_markdown_renders_as_brackets(before: str, markup: str, after: str) -> None:
    out = _render(clean(f"{before} {markup}x{markup} {after}"), color=False)
    assert f"{markup}x{markup}" in " ".join(out.split())


# --- the app under hostile servers ----------------------------------------------------

HOSTILE = (
    "[bold red]x[/] [link=http://evil]y[/link] [@click=app.quit]q[/] \x1b[2J\x1b]0;pwned\x07"
    "\x1b[31mred\u202e\u2066evil\x00\x07\x9b2J\x90q\x9c"
)
LONG_LINE = ("abcdefghi " * 1_000).strip()  # 10 000 characters, one line
MEGABYTE = 1024 * 1024


def _big_answer() -> list[str]:
    """About a megabyte in 2 KB chunks: long lines, markup and escapes all the way."""
    chunks: list[str] = []
    size = 0
    i = 0
    while size < MEGABYTE:
        if i % 50 == 0:
            piece = f"\n\n{LONG_LINE}\n\n"
        elif i % 7 == 0:
            piece = f" {HOSTILE} "
        else:
            piece = f"word{i} " * 250
        chunks.append(piece)
        size += len(piece)
        i += 1
    return chunks


@pytest.fixture
def big_server(httpserver: HTTPServer) -> Iterator[str]:
    wire = WIRES["openai"]
    chunks = _big_answer()
    httpserver.expect_request(wire.path).respond_with_handler(lambda _: wire.stream(*chunks))
    yield httpserver.url_for("/v1")


async def test_a_megabyte_answer_of_long_hostile_lines_streams_and_keys_still_work(
    big_server: str,
) -> None:
    app = one_pane_app(big_server)
    async with app.run_test(size=(120, 40)) as pilot:
        (pane,) = app.panes
        await send(pilot, "hi")
        await wait_until(pilot, lambda: pane.result is not None and bool(pane.result.text))
        await pilot.press("ctrl+p")  # the command palette opens while the answer streams
        await wait_until(pilot, lambda: type(app.screen).__name__ == "CommandPalette", 60)
        await pilot.press("escape")
        await wait_until(pilot, lambda: type(app.screen).__name__ != "CommandPalette", 60)
        await wait_finished(pilot, timeout_s=300)
        assert pane.result is not None and pane.result.status == "done"
        assert len(pane.result.text) >= MEGABYTE
        document = pane.transcript
        assert LONG_LINE in document
        assert "[bold red]x[/]" in document and "[@click=app.quit]q[/]" in document
        assert not [c for c in document if _forbidden(c)]
        assert app.is_running and "pwned" not in app.title


@pytest.fixture
def hostile_names(httpserver: HTTPServer) -> Iterator[str]:
    """An OpenAI-compatible server whose model names and errors are all hostile."""
    wire = WIRES["openai"]
    names = [f"m{i}{HOSTILE}" for i in range(3)] + ["x" * 10_000, "m@temperature=hot"]
    models = {"object": "list", "data": [{"id": n, "object": "model", "created": 0,
                                          "owned_by": HOSTILE} for n in names]}  # fmt: skip

    def chat(request: Request) -> Response:
        return wire.error(400, f"context too long {HOSTILE}\n{LONG_LINE}")

    httpserver.expect_request("/v1/models").respond_with_json(models)
    httpserver.expect_request(wire.path).respond_with_handler(chat)
    yield httpserver.url_for("/v1")


async def test_hostile_model_names_and_errors_are_shown_inert(hostile_names: str) -> None:
    app = one_pane_app(hostile_names, model=f"m{HOSTILE}")
    async with app.run_test(size=(120, 40)) as pilot:
        (pane,) = app.panes
        header = shown(pane, "header")
        assert "[bold red]x[/]" in header and not [c for c in header if _forbidden(c)]
        await send(pilot, "hi")
        await wait_finished(pilot)
        error = shown(pane, "error")
        assert pane.result is not None and pane.result.status == "failed"
        assert "context too long [bold red]x[/]" in error
        assert not [c for c in error if _forbidden(c)]

        await pilot.press("ctrl+o")  # the model picker lists the server's names
        await wait_until(pilot, lambda: type(app.screen).__name__ == "ModelPicker", 60)
        from textual.widgets import OptionList

        options = app.screen.query_one("#models", OptionList)
        await wait_until(pilot, lambda: options.option_count > 4, 60)
        prompts = [str(options.get_option_at_index(i).prompt) for i in range(options.option_count)]
        listed = "\n".join(prompts)
        assert listed.count("[bold red]x[/]") >= 3
        assert not [c for c in listed if _forbidden(c) and c != "\n"]
        svg = app.export_screenshot()
        assert "\x1b" not in svg and "\u202e" not in svg
        # A name that is not a valid target is refused, not a crash.
        bad = next(i for i, p in enumerate(prompts) if "hot" in p)
        options.highlighted = bad
        options.focus()
        await pilot.press("enter")
        await wait_until(pilot, lambda: bool(app._notifications), 60)
        assert "temperature must be a number" in list(app._notifications)[-1].message
        await pilot.press("escape")
        await wait_until(pilot, lambda: type(app.screen).__name__ != "ModelPicker", 60)
        assert app.is_running and pane.target.model.startswith("m[bold red]")

        await pilot.press("ctrl+o")  # the first hostile name is a target like any other
        await wait_until(pilot, lambda: type(app.screen).__name__ == "ModelPicker", 60)
        options = app.screen.query_one("#models", OptionList)
        await wait_until(pilot, lambda: options.option_count > 4, 60)
        options.highlighted = next(
            i
            for i in range(options.option_count)
            if "m1" in str(options.get_option_at_index(i).prompt)
        )
        options.focus()
        await pilot.press("enter")
        await wait_until(pilot, lambda: pane.target.model.startswith("m1"), 60)
        assert "[bold red]x[/]" in shown(pane, "header")
        assert "switched from" in pane.transcript and "\x1b" not in pane.transcript


def test_rich_text_of_a_clean_line_is_not_markup() -> None:
    """Where a front end builds `Text(clean_line(x))`, markup stays text."""
    text = Text(clean_line(HOSTILE))
    assert "[bold red]x[/]" in text.plain and not text.spans


@pytest.fixture
def surrogate_server(httpserver: HTTPServer) -> Iterator[str]:
    """JSON may escape half a surrogate pair: the client then decodes a lone surrogate."""
    wire = WIRES["openai"]
    httpserver.expect_request(wire.path).respond_with_handler(
        lambda _: wire.stream("before \ud800 middle \udfff after")
    )
    yield httpserver.url_for("/v1")


async def test_a_lone_surrogate_in_an_answer_is_shown_and_stored(surrogate_server: str) -> None:
    app = one_pane_app(surrogate_server)
    async with app.run_test(size=(100, 30)) as pilot:
        await send(pilot, "hi")
        await wait_finished(pilot)
        (pane,) = app.panes
        assert pane.result is not None and pane.result.status == "done"
        assert "before \ufffd middle \ufffd after" in pane.transcript
        (row,) = [r for r in app.store.responses(pane.batch_id)]
        assert "middle" in str(row["text"])
