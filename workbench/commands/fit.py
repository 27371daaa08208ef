"""`workbench models --fit`: which local models this machine can run, before anyone pulls
40 GB: weights plus the KV cache at the chosen context, against free and total RAM."""

from __future__ import annotations

import json
import sys
from typing import TextIO

from rich.table import Table
from rich.text import Text

from providers.registry import Registry
from workbench.commands import format as fmt
from workbench.commands.models import list_everything
from workbench.engine import fit
from workbench.sanitize import clean_line


async def run_fit(
    registry: Registry,
    *,
    context: int | None = None,
    as_json: bool = False,
    memory: tuple[int, int] | None = None,
    out: TextIO | None = None,
) -> int:
    out = out or sys.stdout
    available, total = memory or fit.machine_memory()
    try:
        listings = await list_everything(registry)
    finally:
        await registry.aclose()
    rows = []
    for listing in listings:
        if not listing.availability.is_local:
            continue
        for row in listing.models:
            size = row.info.size_bytes
            if not size:
                continue
            ctx = context or min(row.context_length or fit.DEFAULT_CONTEXT, fit.DEFAULT_CONTEXT)
            need = fit.estimated_memory(size, row.info.kv_bytes_per_token, ctx)
            verdict = fit.verdict(need, available_bytes=available, total_bytes=total)
            rows.append((row.target, size, ctx, need, verdict, row.info.kv_bytes_per_token))
    if as_json:
        for target, size, ctx, need, verdict, kv in rows:
            out.write(json.dumps({"target": target, "size_bytes": size, "context": ctx,
                                  "kv_bytes_per_token": kv, "estimated_bytes": need,
                                  "verdict": verdict, "available_bytes": available,
                                  "total_bytes": total}) + "\n")  # fmt: skip
        return 0
    console = fmt.console(out)
    console.print(f"This machine: {fmt.size(available)} free of {fmt.size(total)} RAM")
    table = Table(box=None, header_style="bold")
    for column in ("target", "file", "context", "KV cache", "needs ~", "verdict"):
        table.add_column(column, justify="left" if column in ("target", "verdict") else "right")
    styles = {"fits": "green", "tight": "yellow", "won't fit": "red"}
    for target, size, ctx, need, verdict, kv in rows:
        kv_text = fmt.size(kv * ctx) if kv else "unknown"
        table.add_row(Text(clean_line(target)), fmt.size(size), fmt.count(ctx), kv_text,
                      fmt.size(need), Text(verdict, style=styles[verdict]))  # fmt: skip
    console.print(table)
    return 0
