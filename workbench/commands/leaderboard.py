"""`workbench leaderboard`: win rates per target from the blind votes in the store."""

from __future__ import annotations

import json
import sys
from typing import TextIO

from rich.table import Table
from rich.text import Text

from workbench import locations
from workbench.commands import format as fmt
from workbench.sanitize import clean_line
from workbench.store import Store


def run_leaderboard(*, as_json: bool = False, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    store = Store(locations.database_path())
    try:
        standings = store.leaderboard()
    finally:
        store.close()
    if as_json:
        for s in standings:
            row = {"target": s.target, "battles": s.battles, "wins": s.wins, "ties": s.ties,
                   "win_rate": s.win_rate}  # fmt: skip
            out.write(json.dumps(row) + "\n")
        return 0
    console = fmt.console(out)
    if not standings:
        console.print("No votes yet: in the TUI, turn on blind mode (F2), ask, then vote.")
        return 0
    table = Table(box=None, pad_edge=False, header_style="bold")
    for column in ("target", "win rate", "wins", "ties", "battles"):
        table.add_column(column, justify="left" if column == "target" else "right")
    for s in standings:
        table.add_row(
            Text(clean_line(s.target)), f"{s.win_rate:.0%}", str(s.wins), str(s.ties),
            str(s.battles),
        )  # fmt: skip
    console.print(table)
    return 0
