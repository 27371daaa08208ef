"""`FittedTable`: target names and their figures, fitted to the table's width (the
leaderboard's and the costs screen's tables)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from rich.cells import cell_len
from rich.text import Text
from textual import events
from textual.widgets import DataTable

from workbench.commands.format import distinct_targets

Cell = str | Text


@dataclass(frozen=True, slots=True)
class Layout:
    """One way to show the figures: `headers` (column key to header, in order) and, for
    each row, its cells by column key (keys not in `headers` are left out)."""

    headers: dict[str, str]
    rows: Sequence[dict[str, Cell]]


class FittedTable(DataTable[Cell]):
    """A column of target names and their figures, fitted to the table's width whenever it
    changes: first the names are shortened (`distinct_targets`, never a setting's value
    cut), and when they would keep fewer than `MIN_TARGET` cells the next, narrower, of
    the layouts is tried. At 80 columns every figure that matters stays on screen."""

    MIN_TARGET = 24
    """Cells a name keeps before the figures give way to it."""
    LEAST = 12
    """Cells a name keeps when even the narrowest layout leaves less."""

    def __init__(self, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=True)
        self.keys: Sequence[str | None] = ()
        self.names: Sequence[str] = ()
        self.layouts: Sequence[Layout] = ()
        self.fitted_to: int | None = None
        """The width the table was last filled for."""

    def show(
        self, keys: Sequence[str | None], names: Sequence[str], layouts: Sequence[Layout]
    ) -> None:
        """One row per key, the target `names` first, then the figures of the first of
        `layouts` that fits (the widest first)."""
        self.keys, self.names, self.layouts = keys, names, layouts
        if self.fitted_to is not None:  # else on the first Resize, when the width is known
            self._fill()

    def on_resize(self, _: events.Resize) -> None:
        if self.layouts and self.content_region.width != self.fitted_to:
            self._fill()

    def _fill(self) -> None:
        self.fitted_to = self.content_region.width
        # Room for a vertical scrollbar whether it shows or not: it comes with the rows, and
        # the last figures must not go under it.
        width = self.fitted_to - self.styles.scrollbar_size_vertical
        padding = 2 * self.cell_padding
        longest = max(map(cell_len, self.names), default=0)
        room, layout = longest, self.layouts[0]
        for layout in self.layouts:
            room = width - sum(w + padding for w in _widths(layout).values()) - padding
            if room >= min(longest, self.MIN_TARGET):
                break
        shown = distinct_targets(list(self.names), max(room, self.LEAST))
        names = [Text(shown[name]) for name in self.names]
        widths = {"target": max([6, *(n.cell_len for n in names)]), **_widths(layout)}
        # A scrollbar only where the figures do not fit: the table's own choice was made
        # before a refill and kept after it, an empty bar under a table that fitted.
        fits = sum(w + padding for w in widths.values()) <= width
        self.styles.overflow_x = "hidden" if fits else "scroll"
        self.clear(columns=True)
        # Widths given, not measured: the table measures on idle, and a frame drawn before
        # that, after a refill, kept the header's width for the names ("anthro").
        headers = {"target": "target", **layout.headers}
        for column, header in headers.items():
            self.add_column(header, key=column, width=widths[column])
        for key, name, row in zip(self.keys, names, layout.rows, strict=True):
            self.add_row(name, *(row[k] for k in layout.headers), key=key)


def _widths(layout: Layout) -> dict[str, int]:
    """Each column's width: its header's, or its widest cell's."""
    return {
        key: max([cell_len(header), *(_cell_len(row[key]) for row in layout.rows)])
        for key, header in layout.headers.items()
    }


def _cell_len(cell: Cell) -> int:
    return cell.cell_len if isinstance(cell, Text) else cell_len(cell)
