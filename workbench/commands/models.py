"""`workbench models`: every provider, whether it is usable now, and its models."""

from __future__ import annotations

import asyncio
import json
import sys
from dataclasses import dataclass, replace
from typing import TextIO

from rich.table import Table
from rich.text import Text

from providers.base import UNREACHABLE, ModelInfo, ProviderError
from providers.registry import Availability, Registry
from workbench.commands import format as fmt
from workbench.engine import pricing
from workbench.engine.fanout import price_source
from workbench.sanitize import clean_line


@dataclass(frozen=True, slots=True)
class ModelRow:
    target: str
    info: ModelInfo
    context_length: int | None
    """The window the model runs with."""
    per_million: tuple[float, float] | None
    """Base rates; see `tier_above`."""
    tier_above: int | None = None
    """Input tokens of one request past which it is billed at a higher rate than `per_million`."""


@dataclass(frozen=True, slots=True)
class ProviderListing:
    availability: Availability
    models: list[ModelRow]
    error: str | None
    configured: bool = False
    """The models are the config's list for a server that did not answer, not its own."""


async def list_everything(registry: Registry) -> list[ProviderListing]:
    """Each provider's availability and, for the available ones, their models and prices."""
    available = await registry.available()
    return list(await asyncio.gather(*(_listing(registry, a) for a in available)))


async def _listing(registry: Registry, a: Availability) -> ProviderListing:
    if not a.available:
        return ProviderListing(a, [], None)
    try:
        infos = await registry.list_models(a.provider)
    except ProviderError as exc:
        if exc.kind in UNREACHABLE:  # a server that is not there is not available
            gone = replace(a, available=False, reason=exc.message)
            configured = registry.configured_models(a.provider)
            if configured:  # still shown, so the person sees what the config holds
                infos = [ModelInfo(i, is_local=a.is_local) for i in configured]
                return ProviderListing(gone, _rows(registry, a, infos), None, configured=True)
            return ProviderListing(gone, [], None)
        return ProviderListing(a, [], exc.message)
    return ProviderListing(a, _rows(registry, a, infos), None)


def _rows(registry: Registry, a: Availability, infos: list[ModelInfo]) -> list[ModelRow]:
    source = price_source(registry, a.provider)
    return [
        ModelRow(
            f"{a.provider}:{m.id}",
            m,
            m.context_length or pricing.context_window(m.id, source),
            pricing.per_million(m.id, source),
            pricing.tier_threshold(m.id, source),
        )
        for m in infos
    ]


async def run_models(
    registry: Registry, *, as_json: bool = False, out: TextIO | None = None
) -> int:
    out = out or sys.stdout
    try:
        listings = await list_everything(registry)
    finally:
        await registry.aclose()
    if as_json:
        for listing in listings:
            out.write(json.dumps(_as_json(listing)) + "\n")
    else:
        _print(listings, out)
    return 0


def _as_json(listing: ProviderListing) -> dict[str, object]:
    a = listing.availability
    return {
        "provider": a.provider,
        "kind": a.kind,
        "available": a.available,
        "local": a.is_local,
        "reason": a.reason,
        "error": listing.error,
        "models_configured": listing.configured,
        "models": [
            {
                "target": row.target,
                "context_length": row.context_length,
                "trained_context_length": row.info.trained_context,
                "size_bytes": row.info.size_bytes,
                "parameter_size": row.info.parameter_size,
                "quantization": row.info.quantization,
                "usd_per_1m_input": row.per_million[0] if row.per_million else None,
                "usd_per_1m_output": row.per_million[1] if row.per_million else None,
                "higher_rate_above_input_tokens": row.tier_above,
            }
            for row in listing.models
        ],
    }


def _print(listings: list[ProviderListing], out: TextIO) -> None:
    console = fmt.console(out)
    tiers: set[int] = set()
    for listing in listings:
        a = listing.availability
        mark = "✓" if a.available else "·"
        where = "local" if a.is_local else "cloud"
        line = f"{mark} {a.provider} ({a.kind}, {where}) — {clean_line(a.reason)}"
        console.print(Text(line, style="bold" if a.available else "dim"))
        if listing.error:
            console.print(Text(f"    cannot list models: {clean_line(listing.error)}", style="red"))
        if not listing.models:
            continue
        if listing.configured:
            console.print(Text("    configured (not reachable now):", style="dim"))
        table = Table(box=None, pad_edge=False, padding=(0, 1, 0, 4), header_style="bold")
        for column in ("target", "context", "size", "params", "quant", "$/1M in", "$/1M out"):
            left = column == "target"
            table.add_column(column, justify="left" if left else "right", no_wrap=left)
        for row in listing.models:
            table.add_row(
                Text(clean_line(row.target)),
                context_text(row),
                fmt.size(row.info.size_bytes),
                Text(clean_line(row.info.parameter_size or "–")),
                Text(clean_line(row.info.quantization or "–")),
                *_prices(row, a.is_local),
            )
            if row.tier_above and not a.is_local and row.per_million is not None:
                tiers.add(row.tier_above)
        console.print(table)
    if tiers:
        above = " or ".join(fmt.count(t) for t in sorted(tiers))
        console.print(Text(f"* the base rate: a request of more than {above} input tokens is "
                           "billed at a higher rate, all of it", style="dim"))  # fmt: skip


def context_text(row: ModelRow) -> str:
    """The window the model runs with, and its own longest where that is longer: `2k (max 8k)`."""
    shown = fmt.count(row.context_length)
    trained = row.info.trained_context
    if trained and row.context_length and trained > row.context_length:
        shown += f" (max {fmt.count(trained)})"
    return shown


def _prices(row: ModelRow, is_local: bool) -> tuple[str, str]:
    if is_local:
        return ("local", "local")
    if row.per_million is None:
        return ("price unknown", "price unknown")
    mark = "*" if row.tier_above else ""
    return (f"${row.per_million[0]:g}{mark}", f"${row.per_million[1]:g}{mark}")
