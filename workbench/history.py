"""Past comparisons and chats, read back from the store.

A comparison is the responses that share a `batch`: one prompt fanned out to its targets.
A chat turn is a batch too, and each response keeps every message it was sent, so the
latest turn of a chat carries the whole conversation before it.

Suite runs are left out by default: a run's batch is the whole run (every case against
every target, many prompts), which is not one comparison, and runs have their own history
(`workbench history`, the suites screen, `workbench compare`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from providers.base import Message
from providers.registry import TargetError, parse_target
from workbench.engine.conversation import Conversation
from workbench.engine.pricing import Cost
from workbench.engine.result import TargetResult
from workbench.store import Store, exactness

INTERACTIVE = ("ask", "chat")
"""Origins that are comparisons; `suite` and `cached` are suite runs."""


@dataclass(frozen=True, slots=True)
class ComparisonSummary:
    """One row of the history list."""

    batch: str
    created_at: float
    origin: str
    prompt: str
    """The last user message: what this batch asked."""
    turn: int
    """1 for a first prompt, n for the n-th prompt of a chat."""
    targets: tuple[str, ...]
    statuses: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class StoredPane:
    """One target's part of a stored comparison: what it was sent and what it answered."""

    sent: tuple[Message, ...]
    result: TargetResult
    created_at: float

    @property
    def system(self) -> str | None:
        return next((m.content for m in self.sent if m.role == "system"), None)

    @property
    def history(self) -> list[Message]:
        """Everything sent before the last prompt, system prompt included."""
        last = _last_user_index(self.sent)
        return list(self.sent[:last] if last is not None else self.sent)

    @property
    def prompt(self) -> str:
        last = _last_user_index(self.sent)
        return self.sent[last].content if last is not None else ""

    @property
    def private(self) -> bool:
        """The prompt was marked private: only local models may be sent it."""
        last = _last_user_index(self.sent)
        return last is not None and self.sent[last].private

    def conversation(self) -> Conversation:
        """The pane's whole conversation, its answer to the last prompt included."""
        turns = [m for m in self.sent if m.role != "system"]
        if self.result.text.strip():  # a failed turn still shows what it was asked
            turns.append(Message("assistant", self.result.text, self.private))
        return Conversation(system=self.system, turns=turns)


@dataclass(frozen=True, slots=True)
class Comparison:
    batch: str
    created_at: float
    origin: str
    panes: tuple[StoredPane, ...]

    @property
    def prompt(self) -> str:
        return self.panes[0].prompt if self.panes else ""

    @property
    def private(self) -> bool:
        return any(p.private for p in self.panes)

    @property
    def targets(self) -> list[str]:
        return [p.result.target for p in self.panes]

    @property
    def history(self) -> list[Message]:
        """The fullest of the panes' turns before the last prompt: what a target that had
        no part in the comparison is given when it is re-run with it.

        The panes' histories differ when one's turn failed (it got no answer), was cut to
        fit its window, or a pane was added mid-chat; re-run with the same targets, each
        goes on from its own (`StoredPane.history`).
        """
        return max((p.history for p in self.panes), key=len, default=[])


def like_pattern(term: str) -> str:
    """A LIKE pattern matching `term` anywhere, its `%`, `_` and `\\` taken literally."""
    escaped = term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def list_comparisons(
    store: Store, search: str = "", *, limit: int = 200, include_suites: bool = False
) -> list[ComparisonSummary]:
    """Newest first; with `search`, only batches whose prompts or answers contain it."""
    named = {f"o{i}": origin for i, origin in enumerate(_origins(include_suites))}
    where = "origin IN (" + ",".join(f":{k}" for k in named) + ")"
    if search.strip():
        # A turn's own prompt is the last message it sent: the ones before it are earlier
        # turns, each listed already, and matching them listed every later turn of a chat
        # too. Matched by value, so quotes, newlines and non-ASCII text (escaped in the
        # JSON) match as typed.
        where += """ AND batch IN (
            SELECT r.batch FROM responses r WHERE r.text LIKE :p ESCAPE '\\'
                OR json_extract(r.messages, '$[#-1].content') LIKE :p ESCAPE '\\')"""
    query = f"""SELECT batch FROM responses WHERE {where}
                GROUP BY batch ORDER BY MAX(id) DESC LIMIT :limit"""
    bindings = {**named, "p": like_pattern(search.strip()), "limit": limit}
    batches = [row[0] for row in store.db.execute(query, bindings)]
    if not batches:
        return []
    rows = store.db.execute(
        f"""SELECT batch, created_at, origin, target, status, messages FROM responses
            WHERE batch IN ({",".join("?" * len(batches))}) ORDER BY id""",
        batches,
    ).fetchall()
    grouped: dict[str, list[tuple[Any, ...]]] = {}
    for row in rows:
        grouped.setdefault(row[0], []).append(row)
    return [_summary(grouped[b]) for b in batches if b in grouped]


def load_comparison(store: Store, batch: str) -> Comparison | None:
    rows = store.responses(batch)
    if not rows:
        return None
    panes = tuple(_pane(row) for row in rows)
    return Comparison(batch, float(str(rows[0]["created_at"])), str(rows[0]["origin"]), panes)


def _origins(include_suites: bool) -> tuple[str, ...]:
    return (*INTERACTIVE, "suite", "cached") if include_suites else INTERACTIVE


def _summary(rows: Sequence[tuple[Any, ...]]) -> ComparisonSummary:
    # The pane with the longest history tells the turn: one that failed earlier has less.
    sent = max((_messages(r[5]) for r in rows), key=len)
    last = _last_user_index(sent)
    batch, created_at, origin = rows[0][:3]
    return ComparisonSummary(
        batch=batch,
        created_at=float(created_at),
        origin=origin,
        prompt=sent[last].content if last is not None else "",
        turn=sum(1 for m in sent if m.role == "user"),
        targets=tuple(str(r[3]) for r in rows),
        statuses=tuple(str(r[4]) for r in rows),
    )


def _pane(row: dict[str, Any]) -> StoredPane:
    spec = str(row["target"])
    try:
        name = parse_target(spec).name
    except TargetError:
        name = spec
    result = TargetResult(spec, name, row["provider"], row["model"], bool(row["is_local"]))
    result.status = row["status"]
    result.text, result.reasoning = row["text"], row["reasoning"]
    result.input_tokens, result.output_tokens = row["input_tokens"], row["output_tokens"]
    result.cached_input_tokens = row["cached_input_tokens"]
    result.input_exact, result.output_exact = exactness(
        row["tokens_exact"], row["input_tokens_exact"], row["output_tokens_exact"]
    )
    result.ttft_s, result.e2e_s, result.load_s = row["ttft_s"], row["e2e_s"], row["load_s"]
    result.stop_reason, result.error_kind, result.error = (
        row["stop_reason"],
        row["error_kind"],
        row["error"],
    )
    if row["cost_kind"] is not None:
        # Not stored, but it follows from the counts it was priced from (`pricing.cost_of`).
        result.cost = Cost(row["cost_kind"], row["cost_usd"], estimated=not result.tokens_exact)
    return StoredPane(tuple(_messages(row["messages"])), result, float(row["created_at"]))


def _messages(messages_json: str) -> list[Message]:
    try:
        raw = json.loads(messages_json)
    except (json.JSONDecodeError, TypeError):
        return []
    # `private` marks a prompt only local models may see, and its answer; a re-run honours it.
    return [
        Message(str(m.get("role", "")), str(m.get("content", "")), bool(m.get("private")))  # type: ignore[arg-type]
        for m in raw
        if isinstance(m, dict)
    ]


def _last_user_index(messages: Sequence[Message]) -> int | None:
    return next((i for i in range(len(messages) - 1, -1, -1) if messages[i].role == "user"), None)
