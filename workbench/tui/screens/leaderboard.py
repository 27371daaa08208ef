"""Win rates per target from the stored arena votes."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Label

from workbench.sanitize import clean_line
from workbench.store import Standing
from workbench.tui.widgets.fitted_table import Cell, FittedTable, Layout


class LeaderboardScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape", "dismiss", "Close")]

    def __init__(self, standings: list[Standing]) -> None:
        super().__init__()
        self.standings = standings

    def compose(self) -> ComposeResult:
        with Vertical(id="leaderboard"):
            yield Label("Leaderboard — blind votes", id="leaderboard-title")
            yield FittedTable()
            if not self.standings:
                yield Label("No votes yet: turn on blind mode (F2), ask, then vote.")
            yield Label("Esc close", classes="help")

    def on_mount(self) -> None:
        rows: list[dict[str, Cell]] = [
            {"rate": f"{s.win_rate:.0%}", "wins": str(s.wins), "ties": str(s.ties),
             "battles": str(s.battles)}
            for s in self.standings
        ]  # fmt: skip
        full = {"rate": "win rate", "wins": "wins", "ties": "ties", "battles": "battles"}
        # Narrow, ties go first, then wins: both follow from the win rate and the battles.
        no_ties = {k: v for k, v in full.items() if k != "ties"}
        rate_only = {k: v for k, v in no_ties.items() if k != "wins"}
        table = self.query_one(FittedTable)
        table.show(
            [s.target for s in self.standings],
            [clean_line(s.target) for s in self.standings],
            [Layout(headers, rows) for headers in (full, no_ties, rate_only)],
        )
        table.focus()
