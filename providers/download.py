"""Fetching a JSON document over HTTP, for data the workbench keeps (price updates).

The HTTP client lives down here with the SDKs, so `workbench/` never imports one.
"""

from __future__ import annotations

import json
from typing import Any


class DownloadFailed(Exception):
    """The document could not be fetched; the message says why, in a few words."""


def get_json(url: str, *, timeout_s: float = 10, connect_s: float = 5) -> Any:
    """The parsed JSON at `url`; DownloadFailed if it cannot be fetched, ValueError if it
    is not JSON."""
    import httpx

    try:
        response = httpx.get(url, timeout=httpx.Timeout(timeout_s, connect=connect_s))
        response.raise_for_status()
    except httpx.HTTPStatusError as exc:
        raise DownloadFailed(f"HTTP {exc.response.status_code}") from exc
    except httpx.HTTPError as exc:
        text = str(exc).strip()
        raise DownloadFailed(
            f"{type(exc).__name__}: {text}" if text else type(exc).__name__
        ) from exc
    return json.loads(response.content)
