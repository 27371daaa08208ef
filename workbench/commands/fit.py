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
            # Without --context, the window the model will run with (embedded_context for
            # embedded models, Ollama's num_ctx, llama-server's n_ctx): the KV cache it gets.
            # A model reads no further than it was trained for: a larger --context is sized
            # at that, and the table says so.
            ctx, capped = fit.sizing_context(
                row.context_length, row.info.trained_context, context or None
            )
            need = fit.estimated_memory(size, row.info.kv_bytes_per_token, ctx)
            verdict = fit.verdict(need, available_bytes=available, total_bytes=total)
            rows.append((row.target, size, ctx, capped, need, verdict, row.info.kv_bytes_per_token))
    if as_json:
        for target, size, ctx, capped, need, verdict, kv in rows:
            out.write(json.dumps({"target": target, "size_bytes": size, "context": ctx,
                                  "context_is_models_max": capped,
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
    for target, size, ctx, capped, need, verdict, kv in rows:
        kv_text = fmt.size(kv * ctx) if kv else "unknown"
        ctx_text = fmt.count(ctx) + (" (its max)" if capped else "")
        table.add_row(Text(clean_line(target)), fmt.size(size), ctx_text, kv_text,
                      fmt.size(need), Text(verdict, style=styles[verdict]))  # fmt: skip
    console.print(table)
    if any(capped for _, _, _, capped, *_ in rows):
        console.print(Text(f"(its max): the model reads at most that much; --context {context:,} "
                           "is sized at its own window instead", style="dim"))  # fmt: skip
    return 0
