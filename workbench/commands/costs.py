"""`workbench costs`: what each target cost, what local runs would have cost in the cloud
(the shadow price), and what a steady workload would cost a month."""

from __future__ import annotations

import json
import sys
import time
from typing import TextIO

from rich.table import Table
from rich.text import Text

from providers.registry import Registry, TargetError
from workbench import locations
from workbench.commands import format as fmt
from workbench.engine import price_data
from workbench.sanitize import clean_line
from workbench.store import Store, usage_by_target
from workbench.usage import MAX_PER_DAY, cost_lines, shadow_target


def run_costs(
    registry: Registry,
    *,
    shadow: str | None = None,
    per_day: int = 100,
    days: float | None = None,
    configured: list[str] | None = None,
    by_model: bool = False,
    as_json: bool = False,
    out: TextIO | None = None,
) -> int:
    out = out or sys.stdout
    if per_day > MAX_PER_DAY:
        print(f"workbench costs: --per-day must be at most {MAX_PER_DAY:,}, not {per_day:,}",
              file=sys.stderr)  # fmt: skip
        return 2
    since = time.time() - days * 86_400 if days else 0.0
    store = Store(locations.database_path())
    try:
        used = usage_by_target(store, since, by_model=by_model)
    finally:
        store.close()
    try:
        reference = shadow_target(registry, used, shadow, configured or ())
        lines = cost_lines(registry, used, reference)
    except TargetError as exc:
        print(f"workbench costs: {exc}", file=sys.stderr)
        return 2
    prices = price_data.current()
    if as_json:
        for line in lines:
            u = line.usage
            out.write(json.dumps({
                "target": u.target, "local": u.is_local, "requests": u.requests,
                "input_tokens": u.input_tokens, "output_tokens": u.output_tokens,
                "input_tokens_exact": u.input_exact, "output_tokens_exact": u.output_exact,
                "cost_usd": line.cost_usd, "shadow": reference, "shadow_usd": line.shadow_usd,
                "per_day": per_day, "monthly_usd": line.monthly_usd(per_day),
                "estimated": line.estimated, "prices_dated": prices.dated.isoformat(),
            }) + "\n")  # fmt: skip
        return 0
    console = fmt.console(out)
    if not lines:
        console.print("Nothing stored yet: ask something first (workbench ask, or the TUI).")
        return 0
    table = Table(box=None, header_style="bold")
    first = "model" if by_model else "target"
    for column in (first, "requests", "in", "out", "cost", f"shadow ({reference})",
                   f"month at {per_day}/day"):  # fmt: skip
        table.add_column(column, justify="left" if column == first else "right")
    for line in lines:
        u = line.usage
        table.add_row(Text(clean_line(u.target)), str(u.requests),
                      fmt.tokens(u.input_tokens, u.input_exact),
                      fmt.tokens(u.output_tokens, u.output_exact), line.cost_label,
                      line.shadow_label, line.monthly_label(per_day))  # fmt: skip
    console.print(table)
    if any(line.estimated for line in lines):
        console.print(Text("~ estimated: some token counts were not reported by the server, "
                           "and the dollars built on them are estimates too.",
                           style="dim"))  # fmt: skip
    console.print(Text(f"Shadow price: what the local targets' tokens would have cost on "
                       f"{reference}. The month column prices local targets at that rate.",
                       style="dim"))  # fmt: skip
    console.print(Text(prices.describe(), style="dim"))
    if prices.problem:
        console.print(Text(f"warning: {prices.problem}", style="yellow"))
    return 0
