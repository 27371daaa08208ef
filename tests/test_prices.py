"""`workbench prices`: the age of the price data, and `--update` through genai-prices'
own updater against a loopback server serving data in genai-prices' format."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from genai_prices import data_snapshot
from pytest_httpserver import HTTPServer

from workbench import locations
from workbench.commands.costs import run_costs
from workbench.commands.prices import run_prices
from workbench.engine import price_data
from workbench.engine.pricing import PriceSource, cost_for, format_usd

# genai-prices' v2 data.json is a list of providers like this one; gpt-4o-mini at ten
# times its real price, so the test can tell which data priced it.
UPDATED = [
    {
        "id": "openai",
        "name": "OpenAI",
        "api_pattern": r"https://api\.openai\.com",
        "models": [
            {
                "id": "gpt-4o-mini",
                "match": {"equals": "gpt-4o-mini"},
                "prices": {"input_mtok": 1.5, "output_mtok": 6},
            }
        ],
    }
]
OPENAI = PriceSource(provider_id="openai")


def _mini_usd() -> float | None:
    return cost_for("gpt-4o-mini", OPENAI, input_tokens=1_000_000, output_tokens=1_000_000).usd


@pytest.fixture
def price_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("WORKBENCH_HOME", str(tmp_path))
    yield tmp_path
    # Fetched prices stay live in the process; later tests expect the bundled ones.
    data_snapshot.set_custom_snapshot(None)


@pytest.fixture
def served(httpserver: HTTPServer) -> str:
    httpserver.expect_request("/data.json").respond_with_json(UPDATED)
    return f"http://127.0.0.1:{httpserver.port}/data.json"


def test_bundled_prices_and_their_age_are_shown(
    price_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _mini_usd() == pytest.approx(0.15 + 0.60)
    assert run_prices() == 0
    out = capsys.readouterr().out
    assert f"genai-prices {price_data.genai_prices_version()} bundled data" in out
    assert "days ago" in out or "1 day ago" in out
    assert "--update" in out


def test_update_is_used_now_and_in_later_runs_offline(
    price_home: Path, served: str, httpserver: HTTPServer, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_prices(update=True, url=served) == 0
    assert "data fetched" in capsys.readouterr().out
    assert _mini_usd() == pytest.approx(1.5 + 6)
    stored = json.loads(locations.prices_path().read_text())
    assert stored["url"] == served and stored["providers"] == UPDATED

    later = subprocess.run(
        [sys.executable, "-c",
         "from workbench.engine import price_data, pricing\n"
         "src = pricing.PriceSource(provider_id='openai')\n"
         "usd = pricing.cost_for('gpt-4o-mini', src, input_tokens=10**6, output_tokens=10**6).usd\n"
         "print(usd)\n"
         "print(price_data.current().describe())"],
        env={**os.environ, "WORKBENCH_HOME": str(price_home)},
        capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    usd, described = later.stdout.splitlines()
    assert float(usd) == pytest.approx(7.5)
    assert len(httpserver.log) == 1  # the later run asked nobody: the prices were stored
    assert "(0 days old)" in described and served in described


def test_offline_update_fails_clearly_and_keeps_the_prices(
    price_home: Path, served: str, no_internet: None, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_prices(update=True, url=served) == 0  # loopback: allowed
    kept = locations.prices_path().read_bytes()
    capsys.readouterr()

    assert run_prices(update=True) == 1  # genai-prices' own URL, on GitHub: unreachable
    err = capsys.readouterr().err
    assert "could not update from https://raw.githubusercontent.com/pydantic/genai-prices" in err
    assert "unchanged" in err and served in err
    assert locations.prices_path().read_bytes() == kept
    assert _mini_usd() == pytest.approx(7.5)


def test_refused_connection_and_bad_data_change_nothing(
    price_home: Path, httpserver: HTTPServer, closed_port: int, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_prices(update=True, url=f"http://127.0.0.1:{closed_port}/data.json") == 1
    assert "ConnectError" in capsys.readouterr().err
    httpserver.expect_request("/bad.json").respond_with_json({"not": "a provider list"})
    assert run_prices(update=True, url=httpserver.url_for("/bad.json")) == 1
    for empty in ([], [{**UPDATED[0], "models": []}]):  # would leave every price unknown
        httpserver.expect_request("/empty.json").respond_with_json(empty)
        assert run_prices(update=True, url=httpserver.url_for("/empty.json")) == 1
        assert "prices no model" in capsys.readouterr().err
        httpserver.clear()
    httpserver.expect_request("/gone.json").respond_with_data("", status=404)
    assert run_prices(update=True, url=httpserver.url_for("/gone.json")) == 1
    assert "HTTP 404" in capsys.readouterr().err
    assert not locations.prices_path().exists()
    assert _mini_usd() == pytest.approx(0.15 + 0.60)


def test_a_password_in_the_url_is_never_shown_or_kept(
    price_home: Path, served: str, closed_port: int, capsys: pytest.CaptureFixture[str]
) -> None:
    password = "s3cret-pass-9f4e2"
    keyed = served.replace("http://", f"http://me:{password}@")
    assert run_prices(update=True, url=keyed) == 0
    assert run_prices() == 0
    refused = f"http://me:{password}@127.0.0.1:{closed_port}/data.json"
    assert run_prices(update=True, url=refused) == 1
    out, err = capsys.readouterr()
    assert "me:***@127.0.0.1" in out and "me:***@127.0.0.1" in err
    assert password not in out + err
    assert password not in locations.prices_path().read_text()


def test_a_damaged_stored_file_falls_back_to_the_bundled_data(
    price_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    locations.prices_path().write_text("{not json")
    assert _mini_usd() == pytest.approx(0.15 + 0.60)
    assert run_prices() == 0
    out = capsys.readouterr().out
    assert "bundled data" in out and "unusable" in out


def test_costs_output_says_how_old_the_prices_are(
    price_home: Path, served: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from providers.base import Message
    from providers.registry import Registry
    from workbench.engine.pricing import Cost
    from workbench.engine.result import TargetResult
    from workbench.store import Store

    result = TargetResult("embedded:smollm2", "embedded:smollm2", "embedded", "smollm2", True,
                          status="done", text="ok")  # fmt: skip
    result.input_tokens, result.output_tokens, result.cost = 1_000_000, 1_000_000, Cost("local", 0)
    store = Store(locations.database_path())
    store.add_response(result, [Message("user", "hi")], origin="ask", batch="b")
    store.close()
    assert run_prices(update=True, url=served) == 0
    capsys.readouterr()
    assert run_costs(Registry(env={}), per_day=1) == 0
    out = capsys.readouterr().out
    assert "data fetched" in out and "(0 days old)" in out and served in out
    assert "$7.5" in out  # the shadow price comes from the updated data


@pytest.mark.parametrize(
    ("usd", "shown"),
    [
        (0, "$0.00"),
        (4e-7, "$0.0000004"),  # one token of gpt-4o-mini's input: was `$0.`
        (2.4e-6, "$0.0000024"),  # was `$0.000002`, one figure
        (0.000138, "$0.000138"),
        (0.0099999, "$0.0100"),  # rounded up to a cent: shown as a cent is
        (0.01, "$0.0100"),
        (1.5, "$1.5000"),
    ],
)
def test_a_dollar_figure_keeps_three_significant_figures_below_a_cent(
    usd: float, shown: str
) -> None:
    assert format_usd(usd) == shown
