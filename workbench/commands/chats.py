"""`workbench history --chats`: past comparisons and chats, as the TUI's history lists them."""

from __future__ import annotations

import sys
import time
from typing import TextIO

from rich.table import Table
from rich.text import Text

from workbench import locations
from workbench.commands import format as fmt
from workbench.history import list_comparisons
from workbench.sanitize import clean_line
from workbench.store import Store


def run_chats(search: str = "", *, limit: int = 20, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    store = Store(locations.database_path())
    try:
        summaries = list_comparisons(store, search, limit=limit)
    finally:
        store.close()
    console = fmt.console(out)
    if not summaries:
        console.print("No matches." if search else 'Nothing yet: workbench ask "a question"')
        return 0
    table = Table(box=None, pad_edge=False, header_style="bold")
    for column in ("when", "from", "status", "prompt", "targets"):
        table.add_column(column)
    for s in summaries:
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(s.created_at))
        origin = f"{s.origin} · turn {s.turn}" if s.turn > 1 else s.origin
        statuses = ", ".join(sorted({f"{s.statuses.count(x)} {x}" for x in s.statuses}))
        table.add_row(when, origin, statuses, Text(clean_line(s.prompt)),
                      Text(", ".join(clean_line(t) for t in s.targets)))  # fmt: skip
    console.print(table)
    return 0
