"""Dollar cost from genai-prices, never from a hand-written table.

Local targets cost nothing and say so; a cloud model genai-prices does not know is
`price unknown`, never $0.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from workbench.engine import price_data

if TYPE_CHECKING:
    from workbench.engine.result import TargetResult


@dataclass(frozen=True, slots=True)
class PriceSource:
    """How genai-prices should find a target's provider: by id, or by its API URL."""

    provider_id: str | None = None
    api_url: str | None = None
    is_local: bool = False


@dataclass(frozen=True, slots=True)
class Cost:
    kind: Literal["local", "priced", "unknown"]
    usd: float | None = None
    estimated: bool = False
    """True when the token counts behind it are estimates."""

    @property
    def label(self) -> str:
        if self.kind == "local":
            return "local"
        if self.kind == "unknown" or self.usd is None:
            return "price unknown"
        return f"{'~' if self.estimated else ''}{format_usd(self.usd)}"

    def to_json(self) -> dict[str, object]:
        return {"kind": self.kind, "usd": self.usd, "estimated": self.estimated}


def format_usd(usd: float) -> str:
    if usd == 0:
        return "$0.00"
    if usd < 0.01:
        return f"${usd:.6f}".rstrip("0")
    return f"${usd:.4f}"


def cost_for(
    model: str,
    source: PriceSource,
    *,
    input_tokens: int,
    output_tokens: int,
    cached_input_tokens: int = 0,
    estimated: bool = False,
) -> Cost:
    if source.is_local:
        return Cost("local", 0.0)
    from genai_prices import Usage, calc_price

    price_data.use_stored()
    usage = Usage(
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        cache_read_tokens=cached_input_tokens or None,
    )
    try:
        if source.provider_id is not None:
            price = calc_price(usage, model, provider_id=source.provider_id)
        elif source.api_url is not None:
            price = calc_price(usage, model, provider_api_url=source.api_url)
        else:
            return Cost("unknown")
    except (LookupError, ValueError):
        return Cost("unknown")
    return Cost("priced", float(price.total_price), estimated=estimated)


def cost_of(result: TargetResult) -> Cost | None:
    """The result's cost; None for a request that failed before the model produced anything.

    Estimated (`~`) unless both counts are the provider's: one estimated count is enough to
    make the sum an estimate."""
    reported = result.input_exact or result.output_exact
    if result.status == "failed" and not result.text and not reported:
        return None
    return cost_for(
        result.model,
        result.price_source,
        input_tokens=result.input_tokens,
        output_tokens=result.output_tokens,
        cached_input_tokens=result.cached_input_tokens,
        estimated=not result.tokens_exact,
    )


def per_million(model: str, source: PriceSource) -> tuple[float, float] | None:
    """Dollars per 1M input and per 1M output tokens, or None when unknown."""
    if source.is_local:
        return (0.0, 0.0)
    cost_in = cost_for(model, source, input_tokens=1_000_000, output_tokens=0)
    cost_out = cost_for(model, source, input_tokens=0, output_tokens=1_000_000)
    if cost_in.usd is None or cost_out.usd is None:
        return None
    return (cost_in.usd, cost_out.usd)


def context_window(model: str, source: PriceSource) -> int | None:
    """The model's context window as genai-prices records it."""
    from genai_prices import data_snapshot

    price_data.use_stored()
    try:
        _, info = data_snapshot.get_snapshot().find_provider_model(
            model, None, source.provider_id, source.api_url
        )
    except (LookupError, ValueError):
        return None
    return info.context_window
