"""Arena voting: which anonymous answer was best, or a tie."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Label, OptionList
from textual.widgets.option_list import Option

TIE = "tie"


class VoteScreen(ModalScreen[str | None]):
    """Returns the blind name voted for, `TIE`, or None when closed without a vote."""

    BINDINGS = [Binding("escape", "dismiss_none", "Close")]

    def __init__(self, names: list[str]) -> None:
        super().__init__()
        self.names = names

    def compose(self) -> ComposeResult:
        with Vertical(id="vote"):
            yield Label("Which answer was best?", id="vote-title")
            options = [Option(f"Model {name}", id=name) for name in self.names]
            yield OptionList(*options, Option("Tie — all equally good (or bad)", id=TIE))
            yield Label("Enter vote · Esc close", classes="help")

    def on_mount(self) -> None:
        self.query_one(OptionList).focus()

    @on(OptionList.OptionSelected)
    def voted(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(event.option.id)

    def action_dismiss_none(self) -> None:
        self.dismiss(None)
