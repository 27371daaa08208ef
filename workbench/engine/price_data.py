"""Which price data genai-prices uses: its bundled data, or data fetched with
`workbench prices --update` and kept in the data dir so later runs use it offline.

The fetch goes through genai-prices' own `UpdatePrices` (its background task, its error
reporting, its switch of the live snapshot); we only override `fetch()` to keep the payload.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import tempfile
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from providers.errors import redact, shown_url, url_secrets
from workbench import locations

if TYPE_CHECKING:
    from genai_prices import UpdatePrices
    from genai_prices.data_snapshot import DataSnapshot

UPDATE_TIMEOUT_S = 60.0

_lock = threading.Lock()
_installed: tuple[Path, int | None] | None = None
"""The stored file (and its mtime) whose prices are live in this process."""
_load_error: str | None = None


@dataclass(frozen=True, slots=True)
class PriceData:
    """Where the prices in use come from and how old they are."""

    version: str
    """The installed genai-prices version."""
    url: str | None
    """Where the data was fetched from; None for the data bundled with genai-prices."""
    dated: datetime
    """When it was fetched; for bundled data, when genai-prices was installed."""
    problem: str | None = None
    """Why a stored update is not in use, if it is not."""

    @property
    def age_days(self) -> int:
        return max(0, (datetime.now(UTC) - self.dated).days)

    def describe(self) -> str:
        day, age = f"{self.dated:%Y-%m-%d}", _days(self.age_days)
        if self.url is None:
            return f"prices: genai-prices {self.version} bundled data (installed {day}, {age} ago)"
        return (
            f"prices: genai-prices {self.version}, data fetched {day} ({age} old) from {self.url}"
        )


def _days(n: int) -> str:
    return "1 day" if n == 1 else f"{n} days"


class UpdateFailed(Exception):
    """The fetch failed; the prices in use are unchanged."""


def genai_prices_version() -> str:
    import genai_prices

    return str(genai_prices.__version__)


def use_stored() -> None:
    """Make genai-prices use the stored update, if there is one; cheap when nothing changed.

    Called before every price lookup rather than once at start-up, so every entry point
    (CLI, TUI, suites) and a data dir switched by `WORKBENCH_HOME` see the right data.
    """
    global _installed, _load_error
    path = locations.prices_path()
    key: tuple[Path, int | None]
    try:
        key = (path, path.stat().st_mtime_ns)
    except OSError:
        key = (path, None)
    if key == _installed:
        return
    from genai_prices import data_snapshot

    with _lock:
        if key == _installed:
            return
        snapshot = None
        _load_error = None
        if key[1] is not None:
            try:
                stored = json.loads(path.read_text(encoding="utf-8"))
                snapshot = _snapshot(
                    stored["providers"], datetime.fromisoformat(stored["fetched_at"])
                )
            except Exception as exc:  # a damaged or incompatible file: the bundled data still works
                _load_error = f"{path} is unusable ({type(exc).__name__}: {exc})"
        if snapshot is not None or _installed is not None:
            data_snapshot.set_custom_snapshot(snapshot)
        _installed = key


def current() -> PriceData:
    """What `use_stored` would put in use now."""
    use_stored()
    version = genai_prices_version()
    path = locations.prices_path()
    if _installed is not None and _installed[1] is not None and _load_error is None:
        stored = json.loads(path.read_text(encoding="utf-8"))
        return PriceData(version, str(stored["url"]), datetime.fromisoformat(stored["fetched_at"]))
    # The bundled data carries no date of its own; the day it was installed is the best bound.
    spec = importlib.util.find_spec("genai_prices.data")
    origin = spec.origin if spec and spec.origin else __file__
    installed = datetime.fromtimestamp(Path(origin).stat().st_mtime, UTC)
    return PriceData(version, None, installed, _load_error)


def update(url: str | None = None, timeout_s: float = UPDATE_TIMEOUT_S) -> PriceData:
    """Fetch fresh prices, keep them in the data dir and use them; UpdateFailed if it fails."""
    from genai_prices.update_prices import DEFAULT_UPDATE_URL

    # The updater logs its failures too; we report them ourselves, so without a handler
    # of the user's they would print twice (through logging's last resort).
    logging.getLogger("genai-prices").addHandler(logging.NullHandler())
    fetched = threading.Event()
    failures: list[Exception] = []
    updater = _keeping_update(url or DEFAULT_UPDATE_URL, fetched, failures)
    updater.start()
    try:
        # Not updater.wait(): while the shared task of an earlier update in this process is
        # still winding down, that returns the earlier outcome before our fetch has run.
        if not fetched.wait(timeout_s):
            raise UpdateFailed(f"no answer within {timeout_s:.0f} s")
    finally:
        # The shared task exits; prices fetched so far stay in use.
        updater.stop()  # type: ignore[no-untyped-call]
    if failures:
        why = redact(_reason(failures[0]), url_secrets(url))
        raise UpdateFailed(why) from failures[0]
    # The shared task puts the snapshot in use only after fetch() returns; current() puts
    # the stored copy in use itself, so the new prices apply from here on regardless.
    return current()


def _reason(exc: Exception) -> str:
    from providers.download import DownloadFailed

    if isinstance(exc, DownloadFailed):
        return str(exc)
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _snapshot(providers: Any, fetched_at: datetime) -> DataSnapshot:
    from genai_prices import data_snapshot

    # The parser genai-prices' own UpdatePrices.fetch() uses; it has no public name.
    from genai_prices.types import _providers_from_raw

    if not isinstance(providers, list):
        raise ValueError("expected a list of providers")
    parsed = _providers_from_raw(providers)
    # Put in use, a list with no prices would leave every cost unknown, silently, until
    # the file was found and deleted by hand.
    if not any(provider.models for provider in parsed):
        raise ValueError("the list prices no model")
    # Naive local time, as genai-prices stamps the snapshots it fetches itself.
    stamp = fetched_at.astimezone().replace(tzinfo=None)
    return data_snapshot.DataSnapshot(parsed, from_auto_update=True, timestamp=stamp)


def _store(url: str, providers: list[Any], fetched_at: datetime) -> None:
    """Write the whole file or nothing, so a failed write never loses the previous update."""
    path = locations.prices_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {
        "url": url,
        "fetched_at": fetched_at.isoformat(),
        "genai_prices": genai_prices_version(),
        "providers": providers,
    }
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=".prices-", suffix=".json")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            json.dump(record, file)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _keeping_update(url: str, fetched: threading.Event, failures: list[Exception]) -> UpdatePrices:
    """genai-prices' updater, fetching with our HTTP client and keeping what it fetched;
    `fetched` is set after its first attempt, and `failures` holds why that failed."""
    from genai_prices import UpdatePrices

    from providers.download import get_json

    class KeepingUpdate(UpdatePrices):
        def fetch(self) -> DataSnapshot | None:
            try:
                providers = get_json(self.url)
                fetched_at = datetime.now(UTC)
                snapshot = _snapshot(providers, fetched_at)  # checked before it replaces any
                _store(shown_url(self.url), providers, fetched_at)  # it is shown later
                return snapshot
            except Exception as exc:
                failures.append(exc)
                raise
            finally:
                fetched.set()

    # Once a day, should anyone leave it started; update() stops it after the first fetch.
    return KeepingUpdate(url=url, update_interval=86_400)
