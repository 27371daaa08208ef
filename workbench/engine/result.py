"""What one target produced for one request: the record every front end shows and stores."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from workbench.engine import metrics
from workbench.engine.pricing import Cost, PriceSource

Status = Literal["waiting", "streaming", "done", "failed", "cancelled"]


@dataclass(slots=True)
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
    text: str = ""
    reasoning: str = ""
    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0
    tokens_exact: bool = False
    """False while the counts are our estimates; True once the provider reported usage."""
    ttft_s: float | None = None
    e2e_s: float | None = None
    load_s: float | None = None
    """Model load time the provider reported, kept apart from TTFT."""
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

    @property
    def finished(self) -> bool:
        return self.status in ("done", "failed", "cancelled")

    @property
    def timing(self) -> metrics.Timing:
        return metrics.Timing(self.ttft_s, self.e2e_s, self.output_tokens)

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
                "e2e_s": self.e2e_s,
                "tpot_s": self.tpot_s,
                "output_tokens_per_s": self.output_tps,
                "decode_tokens_per_s": self.decode_tps,
                "load_s": self.load_s,
                "server_prompt_s": self.server_prompt_s,
                "server_decode_s": self.server_decode_s,
            },
            "tokens": {
                "input": self.input_tokens,
                "output": self.output_tokens,
                "cached_input": self.cached_input_tokens,
                "exact": self.tokens_exact,
            },
            "cost": self.cost.to_json() if self.cost else None,
            "error": {"kind": self.error_kind, "message": self.error} if self.error else None,
            "notes": self.notes,
        }
