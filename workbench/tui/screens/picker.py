"""The model picker: every available target, grouped by provider, with what helps choose."""

from __future__ import annotations

from rich.text import Text
from textual import events, on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label, OptionList
from textual.widgets.option_list import Option

from providers.registry import TargetError, parse_target
from workbench.commands import format as fmt
from workbench.commands.models import ProviderListing
from workbench.engine import fit
from workbench.sanitize import clean_line


class ModelPicker(ModalScreen[str | None]):
    """Returns the chosen target spec, or None."""

    BINDINGS = [Binding("escape", "dismiss_none", "Close")]

    def __init__(
        self,
        listings: list[ProviderListing],
        memory: tuple[int, int],
        title: str,
        embedded_context: int = fit.DEFAULT_CONTEXT,
    ) -> None:
        super().__init__()
        self.listings = listings
        self.memory = memory
        self.title_text = title
        self.embedded_context = embedded_context
        """The window an embedded model runs with (`embedded_context` in the config)."""

    def compose(self) -> ComposeResult:
        with Vertical(id="picker"):
            yield Label(clean_line(self.title_text), id="picker-title", markup=False)
            yield Input(placeholder="type a target (provider:model) or pick below", id="custom",
                        select_on_focus=False)  # fmt: skip
            yield OptionList(*self._options(), id="models")
            available, total = self.memory
            yield Label(
                f"RAM {fmt.size(available)} free of {fmt.size(total)} · Enter choose · Esc close",
                id="picker-help",
            )

    def _options(self, typed: str = "") -> list[Option]:
        """Every listed model, under its provider; with `typed`, only the models whose
        target contains it (and their providers)."""
        options: list[Option] = []
        available, total = self.memory
        wanted = typed.strip().casefold()
        for listing in self.listings:
            if wanted and not any(wanted in r.target.casefold() for r in listing.models):
                continue
            a = listing.availability
            where = "local" if a.is_local else "cloud"
            # The protocol, where it is not in the name already: `lmstudio · openai`.
            kind = "" if a.kind == a.provider else f" · {a.kind}"
            head = Text(f"{a.provider}{kind} · {where}", style="bold")
            if not a.available:
                head.append(f" — {clean_line(a.reason)}", style="dim")
            options.append(Option(head, disabled=True))
            if listing.error:
                options.append(Option(Text(f"  {clean_line(listing.error)}", "red"), disabled=True))
            for row in listing.models:
                if wanted not in row.target.casefold():
                    continue
                line = Text(f"  {clean_line(row.target)}")
                details = [f"ctx {fmt.count(row.context_length)}"]
                if row.info.size_bytes:
                    details.append(fmt.size(row.info.size_bytes))
                if row.info.quantization:
                    details.append(clean_line(row.info.quantization))
                if a.is_local:
                    details.append("free")
                elif row.per_million is not None:
                    details.append(f"${row.per_million[0]:g}/${row.per_million[1]:g} per 1M")
                else:
                    details.append("price unknown")
                if a.is_local and row.info.size_bytes:
                    # The KV cache is sized for the window the model will run with.
                    runs_with = self.embedded_context if a.kind == "embedded" else None
                    cap = runs_with or fit.DEFAULT_CONTEXT
                    context = min(row.context_length or cap, cap)
                    need = fit.estimated_memory(
                        row.info.size_bytes, row.info.kv_bytes_per_token, context
                    )
                    v = fit.verdict(need, available_bytes=available, total_bytes=total)
                    details.append(f"needs ~{fmt.size(need)} at {fmt.count(context)}: {v}")
                line.append("  " + " · ".join(details), style="dim")
                options.append(Option(line, id=row.target))
        return options

    def on_mount(self) -> None:
        self.query_one(OptionList).focus()

    def on_key(self, event: events.Key) -> None:
        # The list has the focus, for the arrows; what is typed goes to the box above it,
        # which narrows the list (the placeholder invites typing, and Enter on the list
        # would add its highlighted model, not what was typed). ↓ from the box goes back.
        box, models = self.query_one("#custom", Input), self.query_one(OptionList)
        if self.focused is not box and event.is_printable and event.character:
            box.focus()
            box.insert_text_at_cursor(event.character)
            event.stop()
            event.prevent_default()
        elif self.focused is box and event.key == "down":
            models.focus()
            event.stop()
            event.prevent_default()

    @on(Input.Changed, "#custom")
    def narrow(self, event: Input.Changed) -> None:
        self.query_one(OptionList).set_options(self._options(event.value))

    @on(OptionList.OptionSelected)
    def chosen(self, event: OptionList.OptionSelected) -> None:
        if event.option.id:
            try:  # the name came from a server, and may not make a target
                self.dismiss(parse_target(event.option.id).spec)
            except TargetError as exc:
                self.notify(str(exc), severity="error")

    @on(Input.Submitted)
    def typed(self, event: Input.Submitted) -> None:
        models = self.query_one(OptionList)
        matches = [o.id for o in models.options if o.id]
        # Narrowed down to one model (`smol`): that one. A whole target is taken as typed.
        chosen = matches[0] if ":" not in event.value and len(matches) == 1 else event.value
        try:
            self.dismiss(parse_target(chosen).spec)
        except TargetError as exc:
            self.notify(f"{exc} — or ↓ to pick from the list", severity="error")

    def action_dismiss_none(self) -> None:
        self.dismiss(None)
