"""Costs from the store: this session and all time per target, shadow prices for local
targets, a monthly projection at an adjustable daily volume, and bar charts of cost and
latency, where bars compare targets at a glance better than columns of figures."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Input, Label, Select, Static

from providers.registry import Registry, split_settings
from workbench.commands import format as fmt
from workbench.engine import price_data
from workbench.engine.pricing import format_usd
from workbench.sanitize import clean_line
from workbench.store import Store, usage_by_target
from workbench.tui.widgets.fitted_table import Cell, FittedTable, Layout
from workbench.usage import (
    DEFAULT_SHADOWS,
    MAX_PER_DAY,
    CostLine,
    TargetLatency,
    cost_lines,
    latency_by_target,
    shadow_choices,
)

BAR_WIDTH = 24
_EIGHTHS = " ▏▎▍▌▋▊▉"


def bar(value: float, top: float, width: int = BAR_WIDTH) -> str:
    """`value` as a run of blocks, `width` cells for `top`, to an eighth of a cell."""
    if top <= 0 or value <= 0:
        return ""
    eighths = round(min(value / top, 1.0) * width * 8)
    full, part = divmod(eighths, 8)
    return "█" * full + (_EIGHTHS[part] if part else "") or "▏"


class CostsScreen(Screen[None]):
    # Not "app.pop_screen": the app refuses its own actions while a screen is over it.
    BINDINGS = [Binding("escape", "dismiss", "Back")]

    def __init__(
        self, registry: Registry, store: Store, started_at: float, configured: Sequence[str] = ()
    ) -> None:
        super().__init__()
        self.registry = registry
        self.session = usage_by_target(store, started_at)
        self.all_time = usage_by_target(store)
        self.latency = latency_by_target(store)
        self.choices = shadow_choices(registry, self.all_time, configured)
        self.shadow = self.choices[0].spec if self.choices else DEFAULT_SHADOWS[0]
        self.per_day = 100

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="costs"):
            yield Label("Costs", classes="section")
            yield Static(id="costs-prices")
            with Horizontal(id="costs-controls"):
                yield Label("Shadow model ")
                if self.choices:
                    yield Select(
                        [(self._choice_label(c.spec), c.spec) for c in self.choices],
                        value=self.shadow, allow_blank=False, id="costs-shadow",
                    )  # fmt: skip
                else:
                    yield Label(f"{self.shadow} (no cloud model with a known price)")
                yield Label("  Requests a day ")
                yield Input(str(self.per_day), type="integer", id="costs-per-day")
            yield Label("This session", classes="section")
            yield FittedTable(id="costs-session")
            yield Label("All time", classes="section")
            yield FittedTable(id="costs-all")
            yield Static(id="costs-cost-chart")
            yield Static(id="costs-latency-chart")
        yield Footer()

    def on_mount(self) -> None:
        prices = price_data.current()
        note = prices.describe()
        if prices.problem:
            note += f" — {prices.problem}"
        self.query_one("#costs-prices", Static).update(Text(note, style="dim"))
        self.show_latency()
        self.show_costs()
        self.query_one("#costs-all", FittedTable).focus()

    def _choice_label(self, spec: str) -> str:
        choice = next(c for c in self.choices if c.spec == spec)
        return f"{clean_line(spec)}  ${choice.input_per_m:g}/${choice.output_per_m:g} per 1M"

    @on(Select.Changed, "#costs-shadow")
    def _shadow_changed(self, event: Select.Changed) -> None:
        if isinstance(event.value, str) and event.value != self.shadow:
            self.shadow = event.value
            self.show_costs()

    @on(Input.Changed, "#costs-per-day")
    def _per_day_changed(self, event: Input.Changed) -> None:
        try:
            per_day = int(event.value)
        except ValueError:
            return  # half-typed: keep the last figure
        if 0 <= per_day <= MAX_PER_DAY and per_day != self.per_day:
            self.per_day = per_day
            self.show_costs()

    def show_costs(self) -> None:
        session = cost_lines(self.registry, self.session, self.shadow)
        all_time = cost_lines(self.registry, self.all_time, self.shadow)
        self._fill(self.query_one("#costs-session", FittedTable), session, projection=False)
        self._fill(self.query_one("#costs-all", FittedTable), all_time, projection=True)
        self.query_one("#costs-cost-chart", Static).update(self._cost_chart(all_time))

    def _fill(self, table: FittedTable, lines: list[CostLine], projection: bool) -> None:
        """Every figure, or where the table is narrow (80 columns), short headers and
        figures, then without the request count, then without the token counts: the dollars
        stay on screen."""
        # The shadow model is named in the picker above: in the header it took a third of
        # the width, and the projection went off the right edge at 130 columns.
        full = {"requests": "requests", "in": "in", "out": "out", "cost": "cost",
                "shadow": "shadow"}  # fmt: skip
        if projection:
            full["month"] = f"month at {self.per_day}/day"
        short = full | {"requests": "req"} | ({"month": "month"} if projection else {})
        no_count = {k: v for k, v in short.items() if k != "requests"}
        dollars = {k: v for k, v in no_count.items() if k not in ("in", "out")}
        rows: list[dict[str, Cell]] = []
        compact: list[dict[str, Cell]] = []
        for line in lines:
            u = line.usage
            row: dict[str, Cell] = {
                "requests": str(u.requests), "in": fmt.tokens(u.input_tokens, u.input_exact),
                "out": fmt.tokens(u.output_tokens, u.output_exact), "cost": line.cost_label,
                "shadow": line.shadow_label, "month": line.monthly_label(self.per_day),
            }  # fmt: skip
            rows.append(row)
            compact.append(
                row | line.short_labels(self.per_day)
                | {"in": _short_tokens(u.input_tokens, u.input_exact),
                   "out": _short_tokens(u.output_tokens, u.output_exact)}
            )  # fmt: skip
        if not lines:  # one row that says so, every figure blank
            rows = compact = [dict.fromkeys(full, "")]
        names = [clean_line(line.usage.target) for line in lines] or ["nothing yet"]
        keys: list[str | None] = [line.usage.target for line in lines] or [None]
        layouts = [Layout(full, rows), *(Layout(h, compact) for h in (short, no_count, dollars))]
        table.show(keys, names, layouts)

    def _cost_chart(self, lines: Iterable[CostLine]) -> Group:
        title = Text(
            f"At {self.per_day} requests a day of the average size, a month costs "
            f"(local targets at the {self.shadow} shadow price):",
            style="bold",
        )
        figures = [(line, line.monthly_usd(self.per_day)) for line in lines]
        top = max((usd for _, usd in figures if usd is not None), default=0.0)
        chart = _chart_table()
        for line, usd in figures:
            label = "price unknown" if usd is None else format_usd(usd)
            if usd is not None and line.usage.is_local:
                label = f"~{label} shadow"
            style = "magenta" if line.usage.is_local else "green"
            chart.add_row(_wrappable(line.usage.target), Text(bar(usd or 0.0, top), style), label)
        return Group(title, chart)

    def show_latency(self) -> None:
        title = Text("Median latency, all time (TTFT, then end to end):", style="bold")
        top = max(
            (t for lat in self.latency for t in (lat.ttft_s, lat.e2e_s) if t is not None),
            default=0.0,
        )
        chart = _chart_table()
        for lat in self.latency:
            chart.add_row(_wrappable(lat.target), *_latency_cells("TTFT", lat.ttft_s, top))
            chart.add_row(
                Text(f"  ({_answers(lat)})", style="dim"), *_latency_cells("E2E", lat.e2e_s, top)
            )
        self.query_one("#costs-latency-chart", Static).update(Group(title, chart))


def _wrappable(target: str) -> Text:
    """A target for a chart's narrow first column: wrapped between its settings, where
    folded at the column's edge it split a value (`temperature=0.` / `9`)."""
    model, settings = split_settings(clean_line(target))
    return Text(f"{model} @{', '.join(settings)}" if settings else model)


def _short_tokens(count: int, exact: bool) -> str:
    """`12k`, `~1.2k`, `3.4M`: `fmt.tokens` in a tight space."""
    return ("" if exact else "~") + fmt.count_short(count)


def _chart_table() -> Table:
    table = Table(box=None, show_header=False, padding=(0, 1))
    # Folded, not cut: targets often differ only at the end (`…@temperature=0.2` / `=1.2`).
    table.add_column("target", overflow="fold")
    table.add_column("bar", width=BAR_WIDTH, no_wrap=True)
    table.add_column("figure", no_wrap=True)
    return table


def _latency_cells(name: str, seconds: float | None, top: float) -> tuple[Text, str]:
    if seconds is None:
        return Text(""), f"{name} –"
    style = "cyan" if name == "TTFT" else "blue"
    return Text(bar(seconds, top), style), f"{name} {seconds:.2f} s"


def _answers(latency: TargetLatency) -> str:
    return "1 answer" if latency.samples == 1 else f"{latency.samples} answers"
