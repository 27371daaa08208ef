"""What one target produced for one request: the record every front end shows and stores."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from workbench.engine import metrics
from workbench.engine.pricing import Cost, PriceSource

Status = Literal["waiting", "streaming", "done", "failed", "cancelled"]


class _AnswerText:
    """`TargetResult.text`: the answer kept as pieces, so each token is an O(1) append
    (`str +=` on an attribute copies the whole answer every time: quadratic for long ones).

    Reading joins only the pieces added since the last read onto a cached string. The
    engine thread appends while the UI thread reads: the cache is one (text, part count) tuple,
    read and replaced whole, so a reader never pairs a text with the wrong count.
    """

    def __get__(self, result: TargetResult | None, owner: type[TargetResult]) -> str:
        if result is None:
            return ""  # the dataclass default
        joined, count = result._joined
        parts = result.parts
        now = len(parts)
        if count != now:
            joined += "".join(parts[count:now])
            result._joined = (joined, now)
        return joined

    def __set__(self, result: TargetResult, value: str) -> None:
        parts = [value] if value else []
        result._joined = (value, len(parts))
        result.parts = parts


@dataclass
class TargetResult:
    """Filled in as events arrive; complete once `status` is done, failed or cancelled."""

    target: str
    """The target spec, e.g. `embedded:smollm2@temperature=0`."""
    name: str
    """What to call it on screen (label or spec)."""
    provider: str
    model: str
    is_local: bool
    status: Status = "waiting"
    parts: list[str] = field(default_factory=list, repr=False, compare=False, kw_only=True)
    """The answer as it arrived, append-only; `text` is their join."""
    text: _AnswerText = _AnswerText()
    reasoning: str = ""
    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0
    input_exact: bool = False
    """False while `input_tokens` is our estimate; True once the provider reported it."""
    output_exact: bool = False
    """False while `output_tokens` is our estimate; True once the provider reported it.
    Each count is exact or not on its own: a server may report one and leave out the other
    (Ollama omits `prompt_eval_count` for a cached prompt)."""
    ttft_s: float | None = None
    first_token_s: float | None = None
    """To the first token of any kind: a thinking model's reasoning comes before its answer
    (TTFT), and its decoding is timed from here (`metrics.Timing`)."""
    e2e_s: float | None = None
    load_s: float | None = None
    """Model load time the provider reported."""
    load_apart: bool = False
    """The load came before the request and is kept out of TTFT and E2E (an embedded
    model's); Ollama reports its load at the end, and it is inside its TTFT."""
    queue_s: float | None = None
    """How long the request waited for a model another request was using; kept out of
    TTFT and E2E."""
    server_prompt_s: float | None = None
    server_decode_s: float | None = None
    stop_reason: str | None = None
    error_kind: str | None = None
    error: str | None = None
    retry_after_s: float | None = None
    """For a rate-limited failure: how long the server asked us to wait."""
    notes: list[str] = field(default_factory=list)
    cost: Cost | None = None
    started_at: float | None = None
    """`time.perf_counter()` when the request was sent (after any model load)."""
    price_source: PriceSource = field(default_factory=PriceSource, repr=False)
    _joined: tuple[str, int] = field(default=("", 0), init=False, repr=False, compare=False)

    def add_text(self, piece: str) -> None:
        """O(1) whatever the answer's length: one more piece of the answer."""
        self.parts.append(piece)

    def text_since(self, count: int) -> tuple[str, int]:
        """The answer after its first `count` parts, and how many parts there are now: a
        reader that passes that number back next time gets only what is new."""
        parts = self.parts
        now = len(parts)  # read once: the engine thread may append meanwhile
        return "".join(parts[count:now]), now

    @property
    def tokens_exact(self) -> bool:
        """Both counts are the provider's: what anything priced from both of them (the cost)
        may claim, and the one flag older stored rows and exports carry."""
        return self.input_exact and self.output_exact

    @tokens_exact.setter
    def tokens_exact(self, exact: bool) -> None:
        self.input_exact = self.output_exact = exact

    @property
    def finished(self) -> bool:
        return self.status in ("done", "failed", "cancelled")

    @property
    def error_here(self) -> str:
        """The error without the `provider:model` it starts with when it does: provider
        errors name their target, and where the target is named already (a row of a
        table, a case × target) it would be said twice."""
        error = self.error or ""
        said = error.removeprefix(f"{self.provider}:{self.model}")
        if said != error and said.startswith((": ", " ")):
            return said.removeprefix(": ").lstrip()
        return error

    @property
    def timing(self) -> metrics.Timing:
        return metrics.Timing(self.ttft_s, self.e2e_s, self.output_tokens, self.first_token_s)

    @property
    def tpot_s(self) -> float | None:
        return metrics.tpot_s(self.timing)

    @property
    def output_tps(self) -> float | None:
        return metrics.output_tps(self.timing)

    @property
    def decode_tps(self) -> float | None:
        return metrics.decode_tps(self.timing)

    def to_json(self) -> dict[str, object]:
        return {
            "target": self.target,
            "name": self.name,
            "provider": self.provider,
            "model": self.model,
            "local": self.is_local,
            "status": self.status,
            "text": self.text,
            "reasoning": self.reasoning or None,
            "stop_reason": self.stop_reason,
            "metrics": {
                "ttft_s": self.ttft_s,
                "first_token_s": self.first_token_s,
                "e2e_s": self.e2e_s,
                "tpot_s": self.tpot_s,
                "output_tokens_per_s": self.output_tps,
                "decode_tokens_per_s": self.decode_tps,
                "load_s": self.load_s,
                "queue_s": self.queue_s,
                "server_prompt_s": self.server_prompt_s,
                "server_decode_s": self.server_decode_s,
            },
            "tokens": {
                "input": self.input_tokens,
                "output": self.output_tokens,
                "cached_input": self.cached_input_tokens,
                "exact": self.tokens_exact,
                "input_exact": self.input_exact,
                "output_exact": self.output_exact,
            },
            "cost": self.cost.to_json() if self.cost else None,
            "error": {"kind": self.error_kind, "message": self.error} if self.error else None,
            "notes": self.notes,
        }
