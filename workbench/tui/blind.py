"""Blind mode's panes: shuffled, called A, B, C… until the vote, so nothing on the screen
says which model is which."""

from __future__ import annotations

import random
import string

from textual.containers import Grid

from workbench.tui.widgets.pane import Pane


async def hide_names(panes: list[Pane], grid: Grid) -> None:
    """Shuffle the panes and call them A, B, C… so position gives nothing away."""
    random.shuffle(panes)
    for pane in reversed(panes):
        grid.move_child(pane, before=0)
    # Every pane alike once any has shown something: one added since the last vote, blank
    # among panes of earlier turns, would say which letter is the model just added.
    shown_before = any(pane.transcript for pane in panes)
    for letter, pane in zip(string.ascii_uppercase, panes, strict=False):
        pane.blind_name = letter
        if shown_before and not pane.busy:
            # What a pane showed under its name (answers, figures, "switched from X to
            # Y") would say which letter is which model: off the screen, not out of the
            # conversation.
            await pane.clear()
            await pane.note("earlier turns hidden in blind mode; the models still have them")
        pane.render_header()
        pane.render_metrics()


async def mount_hidden(pane: Pane, others: list[Pane], grid: Grid) -> None:
    """A pane added to a blind round: the next letter, at a random place in the grid, so
    the model just picked is not the one at the end; both before it is first drawn."""
    taken = {p.blind_name for p in others}
    pane.blind_name = next(c for c in string.ascii_uppercase if c not in taken)
    place = random.randrange(len(others) + 1)
    before = others[place] if place < len(others) else None
    await grid.mount(pane, before=before)


def reveal(panes: list[Pane]) -> None:
    for pane in panes:
        pane.blind_name = None
        pane.render_header()
        pane.render_metrics()
