"""A comparison written out: each pane's conversation, answers and figures.

Live panes go to Markdown; a stored comparison (from history) to Markdown, JSON or CSV.
Every string passes through `sanitize`, and CSV cells cannot start a spreadsheet formula.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from workbench import locations
from workbench.commands import format as fmt
from workbench.engine.conversation import Conversation
from workbench.engine.result import TargetResult
from workbench.sanitize import clean, clean_line

if TYPE_CHECKING:
    from workbench.history import Comparison


@dataclass(frozen=True, slots=True)
class PaneRecord:
    name: str
    conversation: Conversation
    last: TargetResult | None


def comparison_markdown(panes: Sequence[PaneRecord], when: datetime | None = None) -> str:
    when = when or datetime.now()
    lines = [f"# llm-workbench comparison — {when:%Y-%m-%d %H:%M}", ""]
    lines += [
        "| target | status | TTFT | E2E | tok/s | in | out | cost |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for pane in panes:
        r = pane.last
        if r is None:
            lines.append(f"| {_cell(pane.name)} | – | – | – | – | – | – | – |")
            continue
        lines.append(
            f"| {_cell(pane.name)} | {r.status} | {fmt.seconds(r.ttft_s)} | "
            f"{fmt.seconds(r.e2e_s)} | {fmt.rate(r.output_tps)} | "
            f"{fmt.tokens(r.input_tokens, r.input_exact)} | "
            f"{fmt.tokens(r.output_tokens, r.output_exact)} | {fmt.cost(r)} |"
        )
    for pane in panes:
        lines += ["", f"## {clean_line(pane.name)}", ""]
        if pane.conversation.system:
            lines += [f"*System:* {clean_line(pane.conversation.system)}", ""]
        for message in pane.conversation.turns:
            if message.role == "user":
                lines += ["**You:**", "", _quote(clean(message.content)), ""]
            else:
                lines += [clean(message.content).rstrip(), ""]
        if pane.last is not None and pane.last.error:
            lines += [f"> **{pane.last.status}:** {clean_line(pane.last.error)}", ""]
    return "\n".join(lines).rstrip() + "\n"


def _cell(text: str) -> str:
    return clean_line(text).replace("|", "\\|")


def _quote(text: str) -> str:
    return "\n".join(f"> {line}" for line in text.splitlines())


# --- a stored comparison (the history screen) ---------------------------------------

ExportFormat = Literal["md", "json", "csv"]

CSV_COLUMNS = (
    "batch", "created_at", "origin", "turn", "target", "provider", "model", "status",
    "prompt", "answer", "ttft_s", "e2e_s", "output_tokens_per_s", "input_tokens",
    "output_tokens", "tokens_exact", "cost_usd", "cost_kind", "error_kind", "error",
    "input_tokens_exact", "output_tokens_exact",
)  # fmt: skip
"""`tokens_exact` says both counts are exact, as it did before each count had its own flag;
the per-count flags come last, so a reader that takes columns by position still can."""
_FORMULA_STARTS = ("=", "+", "-", "@", "\t")


def stored_markdown(comparison: Comparison) -> str:
    records = [PaneRecord(p.result.name, p.conversation(), p.result) for p in comparison.panes]
    return comparison_markdown(records, datetime.fromtimestamp(comparison.created_at))


def stored_json(comparison: Comparison) -> str:
    document = {
        "batch": comparison.batch,
        "created_at": _iso(comparison.created_at),
        "origin": comparison.origin,
        "prompt": comparison.prompt,
        "panes": [
            {
                "target": p.result.target,
                "system": p.system,
                "history": [
                    {"role": m.role, "content": m.content} for m in p.history if m.role != "system"
                ],
                "prompt": p.prompt,
                "result": p.result.to_json(),
            }
            for p in comparison.panes
        ],
    }
    return json.dumps(_cleaned(document), ensure_ascii=False, indent=2) + "\n"


def stored_csv(comparison: Comparison) -> str:
    """One row per target; text cells cannot start a spreadsheet formula."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    for p in comparison.panes:
        r = p.result
        turn = sum(1 for m in p.sent if m.role == "user")
        cost_usd = r.cost.usd if r.cost else None
        cost_kind = r.cost.kind if r.cost else None
        row: list[object] = [
            comparison.batch, _iso(comparison.created_at), comparison.origin, turn, r.target,
            r.provider, r.model, r.status, p.prompt, r.text, r.ttft_s, r.e2e_s, r.output_tps,
            r.input_tokens, r.output_tokens, r.tokens_exact, cost_usd, cost_kind,
            r.error_kind, r.error, r.input_exact, r.output_exact,
        ]  # fmt: skip
        writer.writerow([csv_cell(value) for value in row])
    return out.getvalue()


def write_stored(comparison: Comparison, kind: ExportFormat) -> Path:
    """Write the comparison under the data dir's `exports/`; the file's path."""
    text = {"md": stored_markdown, "json": stored_json, "csv": stored_csv}[kind](comparison)
    directory = locations.data_dir() / "exports"
    directory.mkdir(parents=True, exist_ok=True)
    stamp = datetime.fromtimestamp(comparison.created_at).strftime("%Y%m%d-%H%M%S")
    path = directory / f"comparison-{stamp}-{comparison.batch[:8]}.{kind}"
    path.touch(mode=0o600)  # like the store: prompts can be private
    path.write_text(text, encoding="utf-8", newline="")
    return path


def _iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp).astimezone().isoformat(timespec="seconds")


def _cleaned(value: object) -> object:
    if isinstance(value, str):
        return clean(value)
    if isinstance(value, dict):
        return {clean_line(str(k)): _cleaned(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_cleaned(v) for v in value]
    return value


def csv_cell(value: object) -> str:
    """A CSV cell: text cleaned and unable to start a formula; numbers as written."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    text = clean(str(value))
    # A cell a spreadsheet would evaluate (=HYPERLINK(...), +cmd|...) is made plain text.
    return f"'{text}" if text.startswith(_FORMULA_STARTS) else text
