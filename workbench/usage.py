"""What each target was used for and what it cost: the figures `workbench costs` prints and
the costs screen shows, from the stored responses."""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from dataclasses import dataclass

from providers.registry import Registry, TargetError, parse_target
from workbench.engine import pricing
from workbench.engine.fanout import price_source
from workbench.engine.pricing import format_usd
from workbench.store import Store, TargetUsage

DEFAULT_SHADOWS = ("openai:gpt-4o-mini", "anthropic:claude-3-5-haiku-latest")
DAYS_A_MONTH = 30
MAX_PER_DAY = 10_000_000
"""The most requests a day a projection is made for: beyond it, a typo (an extra 0 or
ten), and the month's figure ran to eighteen digits."""


@dataclass(frozen=True, slots=True)
class ShadowChoice:
    """A cloud model local runs can be priced on."""

    spec: str
    input_per_m: float
    output_per_m: float


@dataclass(frozen=True, slots=True)
class CostLine:
    usage: TargetUsage
    cost_usd: float | None
    """What it cost: 0 for local targets, None when a price was unknown."""
    shadow_usd: float | None
    """For local targets, what the same tokens would have cost on the shadow model."""

    @property
    def per_request_usd(self) -> float | None:
        """The average request, at the real price (cloud) or the shadow price (local)."""
        usd = self.shadow_usd if self.usage.is_local else self.cost_usd
        if usd is None or not self.usage.requests:
            return None
        return usd / self.usage.requests

    def monthly_usd(self, per_day: int) -> float | None:
        """`per_day` requests a day like the average one, for a month."""
        per_request = self.per_request_usd
        return None if per_request is None else per_request * per_day * DAYS_A_MONTH

    @property
    def estimated(self) -> bool:
        """Its dollars rest on token counts some of which are estimates."""
        return not self.usage.tokens_exact

    @property
    def cost_label(self) -> str:
        return self._cost()

    @property
    def shadow_label(self) -> str:
        return self._shadow()

    def monthly_label(self, per_day: int) -> str:
        return self._monthly(per_day)

    def short_labels(self, per_day: int) -> dict[str, str]:
        """The cost, shadow and month labels for a narrow table: a dollar or more to the
        cent (`$17.78`), and `unknown` where the column's header says what is unknown."""
        return {"cost": self._cost(short=True), "shadow": self._shadow(short=True),
                "month": self._monthly(per_day, short=True)}  # fmt: skip

    def _cost(self, short: bool = False) -> str:
        if self.usage.is_local:
            return "$0 local"
        if self.cost_usd is None:
            return "unknown" if short else "price unknown"
        return ("~" if self.estimated else "") + _usd(self.cost_usd, short)

    def _shadow(self, short: bool = False) -> str:
        if self.shadow_usd is None:
            return "–"
        return ("~" if self.estimated else "") + _usd(self.shadow_usd, short)

    def _monthly(self, per_day: int, short: bool = False) -> str:
        monthly = self.monthly_usd(per_day)
        if monthly is None:
            return "–" if self.usage.is_local else "unknown" if short else "price unknown"
        # A local target's month is a shadow figure, not a bill.
        return ("~" if self.usage.is_local or self.estimated else "") + _usd(monthly, short)


def _usd(usd: float, short: bool) -> str:
    # Below a dollar as always: a request often costs a millionth of one.
    return f"${usd:,.2f}" if short and usd >= 1 else format_usd(usd)


@dataclass(frozen=True, slots=True)
class TargetLatency:
    target: str
    ttft_s: float | None
    """Median time to first token over the answers that produced one."""
    e2e_s: float | None
    """Median time to the end over the answers that finished."""
    samples: int


def shadow_choices(
    registry: Registry, used: Iterable[TargetUsage], configured: Iterable[str] = ()
) -> list[ShadowChoice]:
    """Cloud targets genai-prices can price — from the history, the configuration and two
    cheap defaults — cheapest first."""
    specs = [u.target for u in used if not u.is_local]
    seen: set[str] = set()
    choices = []
    for spec in [*specs, *configured, *DEFAULT_SHADOWS]:
        spec = spec.split("@")[0]
        if spec in seen:
            continue
        seen.add(spec)
        try:
            target = parse_target(spec)
            source = price_source(registry, target.provider)
        except TargetError:
            continue
        if source.is_local:
            continue
        per_m = pricing.per_million(target.model, source)
        if per_m is not None:
            choices.append(ShadowChoice(spec, *per_m))
    return sorted(choices, key=lambda c: (c.input_per_m + c.output_per_m, c.spec))


def shadow_target(
    registry: Registry,
    used: Iterable[TargetUsage],
    chosen: str | None,
    configured: Iterable[str] = (),
) -> str:
    """The user's choice, else the cheapest cloud target we can price, else gpt-4o-mini.

    A choice that cannot price anything is refused (TargetError): every shadow figure
    would read `–`, with nothing to say why."""
    if chosen:
        target = parse_target(chosen)
        source = price_source(registry, target.provider)
        if source.is_local:
            raise TargetError(
                f"shadow {chosen}: a local target costs nothing; name a cloud model with a "
                f"known price, e.g. {DEFAULT_SHADOWS[0]}"
            )
        if pricing.per_million(target.model, source) is None:
            raise TargetError(
                f"shadow {chosen}: genai-prices has no price for {target.model!r}; name "
                f"a cloud model it prices, e.g. {' or '.join(DEFAULT_SHADOWS)}"
            )
        return chosen
    choices = shadow_choices(registry, used, configured)
    return choices[0].spec if choices else DEFAULT_SHADOWS[0]


def shadow_cost(registry: Registry, shadow: str, usage: TargetUsage) -> float | None:
    """What the target's requests would have cost on `shadow`, each priced on its own as the
    cloud bills them (a history priced as one request reaches tiers no request did)."""
    target = parse_target(shadow)
    source = price_source(registry, target.provider)
    if source.is_local:
        return None
    return pricing.cost_of_requests(target.model, source, usage.request_sizes)


def cost_lines(registry: Registry, used: Iterable[TargetUsage], shadow: str) -> list[CostLine]:
    return [
        CostLine(
            u,
            0.0 if u.is_local else u.cost_usd,
            shadow_cost(registry, shadow, u) if u.is_local else None,
        )
        for u in used
    ]


def latency_by_target(store: Store, since: float = 0.0) -> list[TargetLatency]:
    """Median TTFT and E2E per target over the answers that finished since `since`."""
    rows = store.db.execute(
        """SELECT target, ttft_s, e2e_s FROM responses
           WHERE created_at >= ? AND origin != 'cached' AND status = 'done'
           ORDER BY target""",
        (since,),
    ).fetchall()
    grouped: dict[str, list[tuple[float | None, float | None]]] = {}
    for target, ttft, e2e in rows:
        grouped.setdefault(target, []).append((ttft, e2e))
    return [
        TargetLatency(
            target,
            _median(t for t, _ in timings),
            _median(e for _, e in timings),
            len(timings),
        )
        for target, timings in grouped.items()
    ]


def _median(values: Iterable[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None
