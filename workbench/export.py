"""A comparison written out as Markdown: each pane's conversation, answers and figures."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from workbench.commands import format as fmt
from workbench.engine.conversation import Conversation
from workbench.engine.result import TargetResult
from workbench.sanitize import clean, clean_line


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
            f"{fmt.tokens(r.input_tokens, r.tokens_exact)} | "
            f"{fmt.tokens(r.output_tokens, r.tokens_exact)} | {fmt.cost(r)} |"
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
