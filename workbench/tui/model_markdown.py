"""Markdown from a model, its HTML kept as text.

markdown-it reads `<div>` or `<b>bold</b>` as HTML, which Rich and Textual then leave out,
so an answer about HTML would lose its tags (`Use the  element`). Here a tag is text, shown
as written, as a chat shows it. markdown-it is imported on first use: it would cost the
first frame ~0.1 s.
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from markdown_it import MarkdownIt
    from rich.markdown import Markdown


def parser() -> MarkdownIt:
    """For Textual's `Markdown(parser_factory=…)`: its own "gfm-like" parser, without HTML."""
    from markdown_it import MarkdownIt

    return MarkdownIt("gfm-like", {"html": False})


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

    return MarkdownIt("commonmark", {"html": False}).enable("strikethrough").enable("table")
