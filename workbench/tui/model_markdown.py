"""Markdown from a model, its HTML kept as text and its line breaks kept.

markdown-it reads `<div>` or `<b>bold</b>` as HTML, which Rich and Textual then leave out,
so an answer about HTML would lose its tags (`Use the  element`). Here a tag is text, shown
as written, as a chat shows it. A single newline is a line break, as chats show it too:
CommonMark joins such lines into one, and a poem or an address streamed line by line would
close up into a paragraph the moment it finished. markdown-it is imported on first use: it
would cost the first frame ~0.1 s.
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from markdown_it import MarkdownIt
    from markdown_it.rules_core import StateCore
    from rich.markdown import Markdown


def parser() -> MarkdownIt:
    """For Textual's `Markdown(parser_factory=…)`: its own "gfm-like" parser, without HTML."""
    from markdown_it import MarkdownIt

    return _keeping_breaks(MarkdownIt("gfm-like", {"html": False}))


def rich_markdown(markup: str, *, hyperlinks: bool = False) -> Markdown:
    """Rich's `Markdown(markup)`, parsed as Rich parses it (CommonMark, strikethrough,
    tables), without HTML."""
    from rich.markdown import Markdown

    markdown = Markdown("", hyperlinks=hyperlinks)
    markdown.markup, markdown.parsed = markup, _rich_parser().parse(markup)
    return markdown


@cache
def _rich_parser() -> MarkdownIt:
    from markdown_it import MarkdownIt

    parser = MarkdownIt("commonmark", {"html": False}).enable("strikethrough").enable("table")
    return _keeping_breaks(parser)


def _keeping_breaks(parser: MarkdownIt) -> MarkdownIt:
    # markdown-it's own `breaks` option is read by its HTML renderer alone, not by Rich's or
    # Textual's, which read the tokens: so the tokens say it.
    parser.core.ruler.push("breaks_kept", _hard_breaks)
    return parser


def _hard_breaks(state: StateCore) -> None:
    for token in state.tokens:
        for child in token.children or ():
            if child.type == "softbreak":
                child.type = "hardbreak"
