"""A conversation that no longer fits its model's window: summarize, drop, or send anyway."""

from __future__ import annotations

from typing import Literal

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Label, OptionList
from textual.widgets.option_list import Option

from workbench.sanitize import clean_line

Choice = Literal["summarize", "drop", "send", "skip"]


class OverflowScreen(ModalScreen[Choice]):
    BINDINGS = [Binding("escape", "skip", "Skip this pane")]

    def __init__(self, pane: str, needed: int, window: int) -> None:
        super().__init__()
        self.pane, self.needed, self.window = pane, needed, window

    def compose(self) -> ComposeResult:
        with Vertical(id="overflow"):
            yield Label(f"{clean_line(self.pane)}: the conversation needs ~{self.needed:,} tokens; "
                        f"its window is {self.window:,}.", markup=False)  # fmt: skip
            yield OptionList(
                Option(
                    "Summarize earlier turns (the model writes a summary that replaces them)",
                    id="summarize",
                ),
                Option("Drop the oldest turns until it fits", id="drop"),
                Option("Send anyway (the server may refuse or cut it)", id="send"),
                Option("Skip this pane for this prompt", id="skip"),
            )

    def on_mount(self) -> None:
        self.query_one(OptionList).focus()

    @on(OptionList.OptionSelected)
    def chosen(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(event.option.id)  # type: ignore[arg-type]

    def action_skip(self) -> None:
        self.dismiss("skip")
