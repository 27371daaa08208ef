"""A promptfoo config with checks workbench cannot run: run the rest, or do not run.

The TUI's counterpart of `workbench run`'s refusal and its `--skip-unsupported`."""

from __future__ import annotations

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Footer, Label, OptionList, Static
from textual.widgets.option_list import Option

from workbench.sanitize import clean_line


class UncheckedScreen(ModalScreen[bool]):
    """Dismissed with True to run with those checks not checked, False not to run."""

    BINDINGS = [Binding("escape", "cancel", "Don't run")]

    def __init__(self, suite: str, unchecked: list[str]) -> None:
        super().__init__()
        self.suite, self.unchecked = suite, unchecked

    def compose(self) -> ComposeResult:
        with Vertical(id="unchecked"):
            yield Label(f"{clean_line(self.suite)}: these promptfoo checks cannot be run here",
                        classes="section", markup=False)  # fmt: skip
            lines = Text("\n".join(f"• {clean_line(line)}" for line in self.unchecked),
                         style="yellow")  # fmt: skip
            with VerticalScroll(id="unchecked-list"):
                yield Static(lines)
            yield Static(
                "The tests that use them could pass here where promptfoo fails them. Run the "
                "rest: a test none of whose checks can run is then shown as not checked, "
                "never as passed (as `workbench run --skip-unsupported`)."
            )
            yield OptionList(
                Option("Run, with these checks not checked", id="run"),
                Option("Don't run", id="cancel"),
            )
        yield Footer()  # Esc's meaning here, which the dialog does not say

    def on_mount(self) -> None:
        self.query_one(OptionList).focus()

    @on(OptionList.OptionSelected)
    def chosen(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(event.option.id == "run")

    def action_cancel(self) -> None:
        self.dismiss(False)
