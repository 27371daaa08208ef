"""`workbench costs`: what each target cost, what local runs would have cost in the cloud
(the shadow price), and what a steady workload would cost a month."""

from __future__ import annotations

import json
import sys
import time
from typing import TextIO

from rich.table import Table
from rich.text import Text

from providers.registry import Registry, TargetError, parse_target
from workbench import locations
from workbench.commands import format as fmt
from workbench.engine import pricing
from workbench.engine.fanout import price_source
from workbench.engine.pricing import format_usd
from workbench.sanitize import clean_line
from workbench.store import Store, TargetUsage, usage_by_target

DEFAULT_SHADOWS = ("openai:gpt-4o-mini", "anthropic:claude-3-5-haiku-latest")


def shadow_target(registry: Registry, used: list[TargetUsage], chosen: str | None) -> str:
    """The user's choice, else the cheapest cloud target in the history, else gpt-4o-mini."""
    if chosen:
        return chosen
    candidates = [u.target.split("@")[0] for u in used if not u.is_local]
    best: tuple[float, str] | None = None
    for spec in [*candidates, *DEFAULT_SHADOWS]:
        try:
            target = parse_target(spec)
            per_m = pricing.per_million(target.model, price_source(registry, target.provider))
        except TargetError:
            continue
        if per_m is not None and (best is None or sum(per_m) < best[0]):
            best = (sum(per_m), spec)
    return best[1] if best else DEFAULT_SHADOWS[0]


def shadow_cost(registry: Registry, shadow: str, usage: TargetUsage) -> float | None:
    target = parse_target(shadow)
    source = price_source(registry, target.provider)
    if source.is_local:
        return None
    cost = pricing.cost_for(target.model, source, input_tokens=usage.input_tokens,
                            output_tokens=usage.output_tokens)  # fmt: skip
    return cost.usd


def run_costs(
    registry: Registry,
    *,
    shadow: str | None = None,
    per_day: int = 100,
    days: float | None = None,
    as_json: bool = False,
    out: TextIO | None = None,
) -> int:
    out = out or sys.stdout
    since = time.time() - days * 86_400 if days else 0.0
    store = Store(locations.database_path())
    try:
        used = usage_by_target(store, since)
    finally:
        store.close()
    try:
        reference = shadow_target(registry, used, shadow)
        parse_target(reference)
    except TargetError as exc:
        print(f"workbench costs: {exc}", file=sys.stderr)
        return 2
    rows = []
    for u in used:
        shadow_usd = shadow_cost(registry, reference, u) if u.is_local else None
        per_request = (shadow_usd if u.is_local else u.cost_usd) or 0.0
        monthly = per_request / u.requests * per_day * 30 if u.requests else 0.0
        rows.append((u, shadow_usd, monthly))
    if as_json:
        for u, shadow_usd, monthly in rows:
            out.write(json.dumps({
                "target": u.target, "local": u.is_local, "requests": u.requests,
                "input_tokens": u.input_tokens, "output_tokens": u.output_tokens,
                "cost_usd": 0.0 if u.is_local else u.cost_usd, "shadow": reference,
                "shadow_usd": shadow_usd, "per_day": per_day, "monthly_usd": monthly,
            }) + "\n")  # fmt: skip
        return 0
    console = fmt.console(out)
    if not rows:
        console.print("Nothing stored yet: ask something first (workbench ask, or the TUI).")
        return 0
    table = Table(box=None, header_style="bold")
    for column in ("target", "requests", "in", "out", "cost", f"shadow ({reference})",
                   f"month at {per_day}/day"):  # fmt: skip
        table.add_column(column, justify="left" if column == "target" else "right")
    for u, shadow_usd, monthly in rows:
        cost = (
            "$0 local"
            if u.is_local
            else ("price unknown" if u.cost_usd is None else format_usd(u.cost_usd))
        )
        shadow_text = "–" if shadow_usd is None else format_usd(shadow_usd)
        month = ("~" if u.is_local else "") + format_usd(monthly)
        table.add_row(Text(clean_line(u.target)), str(u.requests), str(u.input_tokens),
                      str(u.output_tokens), cost, shadow_text, month)  # fmt: skip
    console.print(table)
    console.print(Text(f"Shadow price: what the local targets' tokens would have cost on "
                       f"{reference}. The month column prices local targets at that rate.",
                       style="dim"))  # fmt: skip
    return 0
