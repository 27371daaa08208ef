"""The history screen's two small questions: which format to export, and whether a re-run
may replace the conversation that is open."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Footer, Label, OptionList
from textual.widgets.option_list import Option

from workbench.export import ExportFormat


class ExportFormatScreen(ModalScreen[ExportFormat | None]):
    """Dismissed with the format chosen, None (Esc) to export nothing."""

    BINDINGS = [
        Binding("escape", "cancel", "Don't export"),
        Binding("m", "choose('md')", "Markdown"),
        Binding("j", "choose('json')", "JSON"),
        Binding("c", "choose('csv')", "CSV"),
    ]

    def compose(self) -> ComposeResult:
        with Vertical(id="history-export"):
            yield Label("Export this comparison as…", classes="section")
            yield OptionList(
                Option("Markdown", id="md"), Option("JSON", id="json"), Option("CSV", id="csv")
            )
        yield Footer()  # the keys, which the dialog does not say

    def on_mount(self) -> None:
        self.query_one(OptionList).focus()

    @on(OptionList.OptionSelected)
    def chosen(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(event.option.id)  # type: ignore[arg-type]

    def action_choose(self, kind: ExportFormat) -> None:
        self.dismiss(kind)

    def action_cancel(self) -> None:
        self.dismiss(None)


class ReplaceSessionScreen(ModalScreen[bool]):
    """Dismissed with True to replace the open conversation with the re-run, False (Esc) to
    keep it and send nothing."""

    BINDINGS = [Binding("escape", "cancel", "Keep it")]

    def __init__(self, prompts: int) -> None:
        super().__init__()
        self.prompts = prompts

    def compose(self) -> ComposeResult:
        with Vertical(id="history-replace"):
            yield Label(
                f"The open conversation has {self.prompts} prompt"
                f"{'s' if self.prompts != 1 else ''} in it. Re-running replaces its panes"
                " with this comparison's and sends the prompt again.",
                markup=False,
            )
            yield OptionList(
                Option("Keep the open conversation (send nothing)", id="keep"),
                Option("Replace it and re-run", id="replace"),
            )
        yield Footer()  # the keys, which the dialog does not say

    def on_mount(self) -> None:
        self.query_one(OptionList).focus()  # highlighted first: Keep

    @on(OptionList.OptionSelected)
    def chosen(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(event.option.id == "replace")

    def action_cancel(self) -> None:
        self.dismiss(False)
