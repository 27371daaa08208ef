"""Win rates per target from the stored arena votes."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import DataTable, Label

from workbench.sanitize import clean_line
from workbench.store import Standing


class LeaderboardScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape", "dismiss", "Close")]

    def __init__(self, standings: list[Standing]) -> None:
        super().__init__()
        self.standings = standings

    def compose(self) -> ComposeResult:
        with Vertical(id="leaderboard"):
            yield Label("Leaderboard — blind votes", id="leaderboard-title")
            table: DataTable[str] = DataTable(cursor_type="row", zebra_stripes=True)
            table.add_columns("target", "win rate", "wins", "ties", "battles")
            for s in self.standings:
                table.add_row(
                    clean_line(s.target), f"{s.win_rate:.0%}", str(s.wins), str(s.ties),
                    str(s.battles),
                )  # fmt: skip
            yield table
            if not self.standings:
                yield Label("No votes yet: turn on blind mode (F2), ask, then vote.")
            yield Label("Esc close", classes="help")

    def on_mount(self) -> None:
        self.query_one(DataTable).focus()
