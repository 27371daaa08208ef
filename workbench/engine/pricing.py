"""Dollar cost from genai-prices, never from a hand-written table.

Local targets cost nothing and say so; a cloud model genai-prices does not know is
`price unknown`, never $0.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Literal

from workbench.engine import price_data

if TYPE_CHECKING:
    from genai_prices.types import ModelPrice

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
    """`$0.0125`, or below a cent three significant figures (`$0.000138`, `$0.0000004`): one
    request often costs a millionth of a dollar, which fixed places would show as `$0.`."""
    if usd == 0:
        return "$0.00"
    if abs(usd) < 0.01:
        places = 2 - math.floor(math.log10(abs(usd)))
        shown = f"{usd:.{places}f}"
        if abs(float(shown)) < 0.01:  # not rounded up to a cent: then as any cent is shown
            return "$" + shown.rstrip("0")
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
    """Dollars per 1M input and per 1M output tokens at the base rate, or None when unknown.

    The rate of an ordinary request: where genai-prices has tiers (a higher rate for the whole
    request past so many input tokens, as Anthropic and Google bill long prompts), the rate
    below the first one (`tier_threshold` says where that is). Pricing 1M tokens as one
    request would quote the long-prompt rate as the model's price."""
    if source.is_local:
        return (0.0, 0.0)
    prices = _model_prices(model, source)
    if prices is None:
        return None
    rates = [_base(getattr(prices, key, None)) for key in ("input_mtok", "output_mtok")]
    if rates[0] is None and rates[1] is None:
        return None
    return (rates[0] or 0.0, rates[1] or 0.0)


def tier_threshold(model: str, source: PriceSource) -> int | None:
    """The input tokens of one request past which genai-prices bills it at a higher rate
    than `per_million` gives; None for a model priced the same at any length."""
    prices = None if source.is_local else _model_prices(model, source)
    if prices is None:
        return None
    from genai_prices.types import TieredPrices

    starts = [
        tier.start
        for value in vars(prices).values()
        if isinstance(value, TieredPrices)
        for tier in value.tiers
    ]
    return min(starts) if starts else None


def cost_of_requests(
    model: str, source: PriceSource, requests: Iterable[tuple[int, int, int]]
) -> float | None:
    """What `count` requests of each (input tokens, output tokens, count) would cost, each
    priced as a request of its own, as providers bill them; None when the price is unknown.

    Summed into one request, a history crosses a tier no request of it reached (1000
    requests of 250 tokens priced as 250k tokens on claude-sonnet-4-5: $3.75 for $2.25)."""
    shapes = [(i, o, n) for i, o, n in requests if n > 0]
    if source.is_local:
        return 0.0
    rates = per_million(model, source)
    fee = cost_for(model, source, input_tokens=0, output_tokens=0).usd  # a fee per request
    if rates is None or fee is None:
        return None
    threshold = tier_threshold(model, source)
    # Up to the first tier a price is linear in the tokens, plus the fee: one calculation
    # for all of those (a chat's requests are nearly all of different sizes, and the costs
    # screen prices them as the user types). Only a request past the tier is priced alone.
    short = [s for s in shapes if threshold is None or s[0] <= threshold]
    tokens_in, tokens_out = (sum(s[k] * s[2] for s in short) for k in (0, 1))
    usd = (tokens_in * rates[0] + tokens_out * rates[1]) / 1e6 + fee * sum(s[2] for s in short)
    for input_tokens, output_tokens, count in shapes:
        if threshold is not None and input_tokens > threshold:
            cost = cost_for(model, source, input_tokens=input_tokens, output_tokens=output_tokens)
            if cost.usd is None:
                return None
            usd += cost.usd * count
    return usd


def _model_prices(model: str, source: PriceSource) -> ModelPrice | None:
    """The prices genai-prices charges for the model today, as it finds them for `cost_for`."""
    from genai_prices import data_snapshot

    price_data.use_stored()
    try:
        _, info = data_snapshot.get_snapshot().find_provider_model(
            model, None, source.provider_id, source.api_url
        )
        return info.get_prices(datetime.now(tz=UTC))
    except (LookupError, ValueError):
        return None


def _base(value: object) -> float | None:
    from genai_prices.types import TieredPrices

    if isinstance(value, TieredPrices):
        return float(value.base)
    return float(value) if isinstance(value, Decimal | int | float) else None


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
