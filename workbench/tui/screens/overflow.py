"""A conversation that no longer fits its model's window: summarize, drop, or send anyway."""

from __future__ import annotations

from typing import Literal

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Footer, Label, OptionList
from textual.widgets.option_list import Option

from workbench.sanitize import clean_line

Choice = Literal["summarize", "drop", "send", "skip"]


class OverflowScreen(ModalScreen[Choice]):
    BINDINGS = [Binding("escape", "skip", "Skip this pane")]

    def __init__(
        self, pane: str, needed: int, window: int, *, blind: bool = False, advice: str = ""
    ) -> None:
        """`advice`, where there are no earlier turns: what would make room, in place of
        summarizing or dropping them, which cannot. In `blind` mode no figure is given: a
        window's size hints at the model."""
        super().__init__()
        self.pane, self.needed, self.window = pane, needed, window
        self.blind, self.advice = blind, advice

    def compose(self) -> ComposeResult:
        pane = clean_line(self.pane)
        if self.blind:
            said = f"The conversation no longer fits {pane}'s context window."
        else:
            said = (f"{pane}: the conversation needs ~{self.needed:,} tokens; "
                    f"its window is {self.window:,}.")  # fmt: skip
        if self.advice:
            said += f"\nThere are no earlier turns to summarize or drop. What helps: {self.advice}."
        options = [
            Option("Send anyway (the server may refuse or cut it)", id="send"),
            Option("Skip this pane for this prompt", id="skip"),
        ]
        if not self.advice:
            options[:0] = [
                Option(
                    "Summarize earlier turns (the model writes a summary that replaces them)",
                    id="summarize",
                ),
                Option("Drop the oldest turns until it fits", id="drop"),
            ]
        with Vertical(id="overflow"):
            yield Label(said, markup=False)
            yield OptionList(*options)
        yield Footer()  # Esc's meaning here, which the dialog does not say

    def on_mount(self) -> None:
        self.query_one(OptionList).focus()

    @on(OptionList.OptionSelected)
    def chosen(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(event.option.id)  # type: ignore[arg-type]

    def action_skip(self) -> None:
        self.dismiss("skip")
