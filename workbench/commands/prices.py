"""`workbench prices [--update]`: where the prices come from, how old they are, and a way
to refresh them with genai-prices' own updater."""

from __future__ import annotations

import sys
from typing import TextIO

from providers.errors import shown_url
from workbench.engine import price_data


def run_prices(*, update: bool = False, url: str | None = None, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    if update:
        before = price_data.current()
        try:
            now = price_data.update(url)
        except price_data.UpdateFailed as exc:
            from genai_prices.update_prices import DEFAULT_UPDATE_URL

            kept = before.describe().removeprefix("prices: ")
            where = shown_url(url or DEFAULT_UPDATE_URL)
            print(f"workbench prices: could not update from {where} ({exc}); "
                  f"the prices in use are unchanged: {kept}", file=sys.stderr)  # fmt: skip
            return 1
        out.write(f"updated: {now.describe()}\n")
        return 0
    now = price_data.current()
    out.write(now.describe() + "\n")
    if now.problem:
        out.write(f"warning: {now.problem}; the bundled data is used\n")
    if now.url is None:
        out.write("`workbench prices --update` fetches the latest data when online.\n")
    return 0
