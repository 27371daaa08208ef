"""Past comparisons and chats, read back from the store.

A comparison is the responses that share a `batch`: one prompt fanned out to its targets.
A chat turn is a batch too, and each response keeps every message it was sent, so the
latest turn of a chat carries the whole conversation before it — but for the turns that
failed, which were taken back out of it. Where a response names its pane's `conversation`,
the turns are put back together from that conversation's responses instead: failures and
retries (a retry is stored in the batch of the turn it retries) included.

Suite runs are left out by default: a run's batch is the whole run (every case against
every target, many prompts), which is not one comparison, and runs have their own history
(`workbench history`, the suites screen, `workbench compare`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from providers.base import Message
from providers.registry import TargetError, parse_target
from workbench.engine.conversation import Conversation, without_summary
from workbench.engine.pricing import Cost
from workbench.engine.result import TargetResult
from workbench.store import Store, exactness

INTERACTIVE = ("ask", "chat")
"""Origins that are comparisons; `suite` and `cached` are suite runs."""

STATUS_MARKS = {"done": "✓", "failed": "✗", "cancelled": "⊘"}
"""How a turn ended, as History and exports mark it."""


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
class StoredTurn:
    """One prompt of a pane's conversation and how its answer ended, as the pane showed it."""

    prompt: Message
    text: str
    status: str
    error: str | None
    batch: str
    by: str | None = None
    """The name of the target that answered it (a pane's model can be switched); None where
    not known, and then neither is `system`."""
    system: str | None = None
    """The system prompt it was asked under (it can be changed between turns)."""


@dataclass(frozen=True, slots=True)
class StoredPane:
    """One target's part of a stored comparison: what it was sent and what it answered."""

    sent: tuple[Message, ...]
    result: TargetResult
    created_at: float
    turns: tuple[StoredTurn, ...] = ()
    """Its conversation's stored turns up to this one, oldest first, each as it ended
    (retries and failed turns included); this one alone where the store does not know its
    conversation (written by `ask`, or by older code)."""
    opening: tuple[Message, ...] = ()
    """What its conversation carried before its first stored turn (a re-run from history,
    a pane added with another's conversation), system prompt left out."""

    @property
    def turn(self) -> int:
        """1 for a first prompt, n for the n-th prompt of its chat, failed ones counted."""
        if not self.turns:  # not loaded from the store
            return sum(m.role == "user" for m in self.sent)
        return turn_number(self.opening, len({t.batch for t in self.turns}))

    def transcript(self) -> list[Message | StoredTurn]:
        """What the pane showed: the turns it was opened with, then every stored turn as
        it ended."""
        if not self.turns:  # not loaded from the store: what it sent and was answered
            return [*self.conversation().turns]
        return [*self.opening, *self.turns]

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
    """One a pane, each as its turn ended (a retried turn: its retry)."""

    @property
    def prompt(self) -> str:
        return self.panes[0].prompt if self.panes else ""

    @property
    def turn(self) -> int:
        """The pane furthest into the chat tells the turn: one that failed earlier may
        have sent less."""
        return max((p.turn for p in self.panes), default=1)

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
            SELECT r.batch FROM responses r WHERE contains_folded(r.text, :p)
                OR contains_folded(json_extract(r.messages, '$[#-1].content'), :p))"""
    query = f"""SELECT batch FROM responses WHERE {where}
                GROUP BY batch ORDER BY MAX(id) DESC LIMIT :limit"""
    bindings = {**named, "p": search.strip().casefold(), "limit": limit}
    batches = [row[0] for row in store.db.execute(query, bindings)]
    if not batches:
        return []
    # With each response, where its pane's conversation is known, how many turns (batches)
    # that conversation had by then and what its first turn carried before it: a failed
    # turn is in no later turn's messages, and a retry is the same turn again.
    rows = store.db.execute(
        f"""SELECT r.batch, r.created_at, r.origin, r.target, r.status, r.messages,
                   r.conversation, r.id,
                   (SELECT COUNT(DISTINCT c.batch) FROM responses c
                     WHERE c.conversation = r.conversation AND c.id <= r.id),
                   (SELECT f.messages FROM responses f
                     WHERE f.conversation = r.conversation ORDER BY f.id LIMIT 1)
            FROM responses r WHERE r.batch IN ({",".join("?" * len(batches))})
            ORDER BY r.id""",
        batches,
    ).fetchall()
    grouped: dict[str, list[tuple[Any, ...]]] = {}
    for row in rows:
        grouped.setdefault(row[0], []).append(row)
    return [_summary(grouped[b]) for b in batches if b in grouped]


def load_comparison(store: Store, batch: str) -> Comparison | None:
    rows: list[dict[str, Any]] = store.responses(batch)
    if not rows:
        return None
    panes = []
    for row in _latest_per_pane(rows, lambda r: (r["conversation"], r["id"])):
        conversation = row["conversation"]
        turns = store.conversation(str(conversation), int(row["id"])) if conversation else [row]
        panes.append(_pane(row, turns))
    return Comparison(
        batch, float(str(rows[0]["created_at"])), str(rows[0]["origin"]), tuple(panes)
    )


_Row = TypeVar("_Row")


def _latest_per_pane(
    rows: Sequence[_Row], identity: Callable[[_Row], tuple[object, object]]
) -> list[_Row]:
    """A batch's responses, one a pane, in the order the panes first answered: the last of
    each, which is a retry where the pane's turn was retried. A pane is a conversation; a
    response with none (`identity` gives None and its own id) is a pane of its own."""
    latest: dict[object, _Row] = {}
    for row in rows:
        conversation, row_id = identity(row)
        latest[conversation if conversation is not None else ("row", row_id)] = row
    return list(latest.values())


def _origins(include_suites: bool) -> tuple[str, ...]:
    return (*INTERACTIVE, "suite", "cached") if include_suites else INTERACTIVE


def _summary(rows: Sequence[tuple[Any, ...]]) -> ComparisonSummary:
    panes = _latest_per_pane(rows, lambda r: (r[6], r[7]))
    # The prompt from the pane that sent the most: every pane was asked it.
    sent = max((_messages(r[5]) for r in panes), key=len)
    last = _last_user_index(sent)
    batch, created_at, origin = rows[0][:3]
    return ComparisonSummary(
        batch=batch,
        created_at=float(created_at),
        origin=origin,
        prompt=sent[last].content if last is not None else "",
        turn=max(_row_turn(r) for r in panes),
        targets=tuple(str(r[3]) for r in panes),
        statuses=tuple(str(r[4]) for r in panes),
    )


def _row_turn(row: tuple[Any, ...]) -> int:
    """The turn of a `list_comparisons` row: see `StoredPane.turn`."""
    conversation, batches, first_sent = row[6], row[8], row[9]
    if conversation is None:
        return turn_number(_opening(_messages(row[5])), 1)
    return turn_number(_opening(_messages(first_sent)), batches)


def turn_number(opening: Sequence[Message], batches: int) -> int:
    """The prompts a conversation was opened with, and one a turn (batch) since: a turn
    that failed counts, as the user asked it, and a retry does not, as it asks it again."""
    return sum(m.role == "user" for m in opening) + batches


def _pane(row: dict[str, Any], conversation: Sequence[dict[str, Any]]) -> StoredPane:
    """The pane of `row`, with the turns of its `conversation` up to it (`row` at least)."""
    spec = str(row["target"])
    result = TargetResult(spec, _name(spec), row["provider"], row["model"], bool(row["is_local"]))
    result.status = row["status"]
    result.text, result.reasoning = row["text"], row["reasoning"]
    result.input_tokens, result.output_tokens = row["input_tokens"], row["output_tokens"]
    result.cached_input_tokens = row["cached_input_tokens"]
    result.input_exact, result.output_exact = exactness(
        row["tokens_exact"], row["input_tokens_exact"], row["output_tokens_exact"]
    )
    result.ttft_s, result.e2e_s, result.load_s = row["ttft_s"], row["e2e_s"], row["load_s"]
    result.first_token_s = row["first_token_s"]
    result.stop_reason, result.error_kind, result.error = (
        row["stop_reason"],
        row["error_kind"],
        row["error"],
    )
    if row["cost_kind"] is not None:
        # Not stored, but it follows from the counts it was priced from (`pricing.cost_of`).
        result.cost = Cost(row["cost_kind"], row["cost_usd"], estimated=not result.tokens_exact)
    opening = tuple(_opening(_messages(conversation[0]["messages"])))
    turns = tuple(_turn(r) for r in conversation)
    sent = tuple(_messages(row["messages"]))
    return StoredPane(sent, result, float(row["created_at"]), turns, opening)


def _name(spec: str) -> str:
    """A stored target's name on screen (its label, else its spec)."""
    try:
        return parse_target(spec).name
    except TargetError:
        return spec


def _opening(sent: Sequence[Message]) -> list[Message]:
    """The turns a response sent before its prompt, system prompt left out."""
    last = _last_user_index(sent)
    return [m for m in sent[: last or 0] if m.role != "system"]


def _turn(row: dict[str, Any]) -> StoredTurn:
    sent = _messages(row["messages"])
    last = _last_user_index(sent)
    prompt = sent[last] if last is not None else Message("user", "")
    error = str(row["error"]) if row["error"] is not None else None
    system = without_summary(next((m.content for m in sent if m.role == "system"), None))
    by = _name(str(row["target"]))
    return StoredTurn(prompt, str(row["text"]), str(row["status"]), error, str(row["batch"]), by,
                      system)  # fmt: skip


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
