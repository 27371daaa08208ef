"""The summary row under the panes: which model won each figure of the last round."""

from __future__ import annotations

from rich.text import Text

from workbench.commands import format as fmt
from workbench.engine import summary
from workbench.tui.widgets.pane import Pane

_SHORT_FIGURES = {"fastest TTFT": "TTFT", "highest tok/s": "tok/s", "longest answer": "longest"}
NARROW = 120
"""Below this many columns the figures and names are shortened to keep to one row."""


SHORT_NAME = 22
"""Cells for a winner's name in a narrow summary row."""


def winners_line(panes: list[Pane], width: int) -> Text:
    results = [p.result for p in panes if p.result is not None]
    names = {p.result.name: p.display_name for p in panes if p.result is not None}
    narrow = width < NARROW
    short = fmt.distinct_targets(list(names.values()), SHORT_NAME)
    line = Text()
    for win in summary.winners(results):
        if line:
            line.append("  ·  ", style="dim")
        figure = _SHORT_FIGURES.get(win.figure, win.figure) if narrow else win.figure
        line.append(f"{figure}: ", style="dim")
        shown = [names.get(w, w) for w in win.winners]
        who = shown[0] if len(shown) == 1 else f"{len(shown)}-way tie"
        if narrow:  # whole settings dropped, never a value cut (`@temp…`, `=12…` of 128)
            who = short.get(who, who)
        line.append(who, style="bold")
        line.append(f" ({win.value})", style="dim")
    return line
