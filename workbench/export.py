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

from providers.base import Message
from workbench import locations
from workbench.commands import format as fmt
from workbench.engine.result import TargetResult
from workbench.history import STATUS_MARKS, StoredTurn
from workbench.sanitize import clean, clean_line

if TYPE_CHECKING:
    from workbench.history import Comparison, StoredPane


@dataclass(frozen=True, slots=True)
class PaneRecord:
    name: str
    system: str | None
    transcript: Sequence[Message | StoredTurn]
    """What the pane showed: the turns it was given, then each turn asked in it as it
    ended, failed and retried ones included (see `StoredPane.transcript`)."""
    last: TargetResult | None
    turn: int = 1
    """The chat's turn, counted as History counts it (see `StoredPane.turn`)."""


def comparison_markdown(
    panes: Sequence[PaneRecord], when: datetime | None = None, origin: str = "chat"
) -> str:
    when = when or datetime.now()
    turn = max((p.turn for p in panes), default=1)
    lines = [f"# llm-workbench comparison — {when:%Y-%m-%d %H:%M}", ""]
    lines += [f"*{clean_line(origin)} · turn {turn}*", ""]  # History's label for it
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
        lines += _transcript(pane)
    return "\n".join(lines).rstrip() + "\n"


def _transcript(pane: PaneRecord) -> list[str]:
    """The pane's turns, each answer under the name of the model that gave it and each
    change of system prompt where it came: the pane is named for its model and system
    prompt as they are now, and both may have been changed between turns."""
    known = [t for t in pane.transcript if isinstance(t, StoredTurn) and t.by is not None]
    system = known[0].system if known else pane.system
    lines = [f"*System:* {clean_line(system)}", ""] if system else []
    for item in pane.transcript:
        if isinstance(item, Message):
            lines += _said(item.role, item.content)
            continue
        if item.by is not None and item.system != system:
            system = item.system
            lines += [f"*System, from here:* {clean_line(system) if system else '(none)'}", ""]
        lines += _said("user", item.prompt.content)
        if item.by is not None and item.by != pane.name:
            lines += [f"*Answered by {clean_line(item.by)}:*", ""]
        if item.text.strip():  # what a failed or cancelled turn wrote before it ended
            lines += _said("assistant", item.text)
        if item.status != "done":
            lines += [_ended(item.status, item.error), ""]
    last, marked = pane.last, any(isinstance(i, StoredTurn) for i in pane.transcript)
    if last is not None and last.error and not marked:
        lines += [_ended(last.status, last.error), ""]
    return lines


def _said(role: str, content: str) -> list[str]:
    if role == "user":
        return ["**You:**", "", _quote(clean(content)), ""]
    return [clean(content).rstrip(), ""]


def _ended(status: str, error: str | None) -> str:
    """A turn that did not end done: its mark and reason, as History shows them, on a line
    of its own (quoted, it read as part of the prompt quoted above it)."""
    mark = f"{STATUS_MARKS.get(status, '…')} {clean_line(status)}"
    return f"**{mark}:** {clean_line(error)}" if error else f"**{mark}**"


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
    records = [
        PaneRecord(p.result.name, p.system, p.transcript(), p.result, p.turn)
        for p in comparison.panes
    ]
    when = datetime.fromtimestamp(comparison.created_at)
    return comparison_markdown(records, when, comparison.origin)


def stored_json(comparison: Comparison) -> str:
    document = {
        "batch": comparison.batch,
        "created_at": _iso(comparison.created_at),
        "origin": comparison.origin,
        "prompt": comparison.prompt,
        "turn": comparison.turn,
        "panes": [
            {
                "target": p.result.target,
                "system": p.system,
                "history": [
                    {"role": m.role, "content": m.content} for m in p.history if m.role != "system"
                ],
                "prompt": p.prompt,
                "turn": p.turn,
                **_turns_json(p),
                "result": p.result.to_json(),
            }
            for p in comparison.panes
        ],
    }
    return json.dumps(_cleaned(document), ensure_ascii=False, indent=2) + "\n"


def _turns_json(pane: StoredPane) -> dict[str, object]:
    """`history` is what the model was sent, which leaves out the turns that failed; these
    are what the pane showed: the turns it was given (`opening`), then every turn asked in
    it as it ended."""
    opening = [m for m in pane.transcript() if isinstance(m, Message)]
    turns = [t for t in pane.transcript() if isinstance(t, StoredTurn)]
    return {
        "opening": [{"role": m.role, "content": m.content} for m in opening],
        "turns": [
            {"prompt": t.prompt.content, "answer": t.text, "status": t.status, "error": t.error}
            for t in turns
        ],
    }


def stored_csv(comparison: Comparison) -> str:
    """One row per target; text cells cannot start a spreadsheet formula."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    for p in comparison.panes:
        r = p.result
        turn = p.turn  # failed turns counted, as History counts them
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
