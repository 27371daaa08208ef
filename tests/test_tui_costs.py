"""The costs screen (F10), after real answers from the embedded model."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from rich.console import Console
from textual.widgets import DataTable, Input, Select, Static

from providers.base import Message
from tests.tui_helpers import send, wait_finished, wait_until
from workbench import locations
from workbench.config import Settings
from workbench.engine.pricing import Cost, format_usd
from workbench.engine.result import TargetResult
from workbench.store import Store
from workbench.tui.app import WorkbenchApp, make_app
from workbench.tui.screens.costs import BAR_WIDTH, bar

# genai-prices' bundled rates, dollars per 1M tokens in / out.
GPT_4O_MINI = (0.15, 0.60)
CLAUDE_35_HAIKU = (0.80, 4.00)


@pytest.fixture
def fresh_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A data dir of the test's own, so "all time" holds only what the test stored."""
    monkeypatch.setenv("WORKBENCH_HOME", str(tmp_path))
    return tmp_path


def _earlier_cloud_answer() -> None:
    """A priced cloud answer from before the app started: all time, not this session."""
    result = TargetResult("openai:gpt-4o", "openai:gpt-4o", "openai", "gpt-4o", False,
                          status="done", text="ok")  # fmt: skip
    result.input_tokens, result.output_tokens, result.tokens_exact = 1000, 1000, True
    result.ttft_s, result.e2e_s = 0.4, 1.2
    result.cost = Cost("priced", 0.0125)
    store = Store(locations.database_path())
    store.add_response(result, [Message("user", "hi")], origin="ask", batch="earlier")
    store.close()


def _cells(app: WorkbenchApp, table_id: str, row: str) -> dict[str, str]:
    table = app.screen.query_one(f"#{table_id}", DataTable)
    keys = [column.key.value for column in table.ordered_columns]
    return {str(k): str(v) for k, v in zip(keys, table.get_row(row), strict=True)}


def _plain(app: WorkbenchApp, static_id: str, width: int = 140) -> str:
    console = Console(width=width, record=True, file=io.StringIO())
    console.print(app.screen.query_one(f"#{static_id}", Static).content)
    return console.export_text()


def _usd(tokens_in: int, tokens_out: int, rates: tuple[float, float]) -> float:
    return (tokens_in * rates[0] + tokens_out * rates[1]) / 1e6


async def test_costs_screen_after_real_answers(fresh_home: Path) -> None:
    _earlier_cloud_answer()
    target = "embedded:smollm2@max_tokens=6"
    app = make_app(Settings(), [target], env={"OLLAMA_HOST": "127.0.0.1:9"})
    async with app.run_test(size=(150, 50)) as pilot:
        for prompt in ("Hi", "Name a colour."):
            await send(pilot, prompt)
            await wait_finished(pilot)
        tokens_in = tokens_out = 0
        for row in app.store.db.execute("SELECT input_tokens, output_tokens FROM responses "
                                        "WHERE target = ?", (target,)):  # fmt: skip
            tokens_in, tokens_out = tokens_in + row[0], tokens_out + row[1]
        assert tokens_in > 0 and tokens_out > 0

        assert "Costs" in [c.title for c in app.get_system_commands(app.screen)]  # palette
        await pilot.press("f10")
        await wait_until(pilot, lambda: type(app.screen).__name__ == "CostsScreen")
        await pilot.pause(0.1)
        session = _cells(app, "costs-session", target)
        shadow = _usd(tokens_in, tokens_out, GPT_4O_MINI)  # the cheapest cloud model we know
        assert session["requests"] == "2"
        assert (session["in"], session["out"]) == (str(tokens_in), str(tokens_out))
        assert session["cost"] == "$0 local"
        assert session["shadow"] == format_usd(shadow)
        session_targets = app.screen.query_one("#costs-session", DataTable).rows
        assert "openai:gpt-4o" not in session_targets  # stored before this session

        cloud = _cells(app, "costs-all", "openai:gpt-4o")
        assert cloud["cost"] == "$0.0125" and cloud["shadow"] == "–"
        assert cloud["month"] == format_usd(0.0125 * 100 * 30)
        local = _cells(app, "costs-all", target)
        assert local["month"] == "~" + format_usd(shadow / 2 * 100 * 30)
        assert "genai-prices" in str(app.screen.query_one("#costs-prices", Static).content)

        per_day = app.screen.query_one("#costs-per-day", Input)
        per_day.focus()
        per_day.value = ""
        await pilot.press(*"2000")
        await pilot.pause(0.1)
        local = _cells(app, "costs-all", target)
        assert local["month"] == "~" + format_usd(shadow / 2 * 2000 * 30)
        assert _cells(app, "costs-all", "openai:gpt-4o")["month"] == format_usd(0.0125 * 60_000)
        assert "At 2000 requests a day" in _plain(app, "costs-cost-chart")

        app.screen.query_one("#costs-shadow", Select).value = "anthropic:claude-3-5-haiku-latest"
        await pilot.pause(0.1)
        haiku = _usd(tokens_in, tokens_out, CLAUDE_35_HAIKU)
        assert _cells(app, "costs-session", target)["shadow"] == format_usd(haiku)

        costs_chart = _plain(app, "costs-cost-chart")
        cloud_line = next(line for line in costs_chart.splitlines() if "openai:gpt-4o" in line)
        local_line = next(line for line in costs_chart.splitlines() if "smollm2" in line)
        # The bars are to scale: the bigger monthly figure gets the full width.
        cloud_month, local_month = 0.0125 * 60_000, haiku / 2 * 60_000
        assert cloud_month > local_month
        assert cloud_line.count("█") == BAR_WIDTH and local_line.count("█") < BAR_WIDTH
        assert "█" in local_line or "▏" in local_line
        assert "shadow" in local_line and format_usd(local_month) in local_line
        latency = _plain(app, "costs-latency-chart")
        assert "TTFT" in latency and "E2E" in latency and "█" in latency
        assert "openai:gpt-4o" in latency and "TTFT 0.40 s" in latency and "E2E 1.20 s" in latency

        await pilot.press("escape")
        await wait_until(pilot, lambda: app.screen is app.screen_stack[0])


async def test_targets_that_differ_at_the_end_can_be_told_apart(fresh_home: Path) -> None:
    """Targets are often one model under two settings; a chart that cut their names
    showed the same name twice. Each header fits as well, so nothing is off the edge."""
    store = Store(locations.database_path())
    targets = [f"embedded:smollm2@temperature={t},max_tokens=60" for t in ("0.2", "1.2")]
    for target in targets:
        result = TargetResult(target, target, "embedded", "smollm2", True, status="done")
        result.text, result.input_tokens, result.output_tokens = "ok", 10, 20
        result.ttft_s, result.e2e_s = 0.1, 0.5
        store.add_response(result, [Message("user", "hi")], origin="ask", batch=target)
    store.close()
    app = make_app(Settings(), [], env={"OLLAMA_HOST": "127.0.0.1:9"})
    async with app.run_test(size=(130, 50)) as pilot:
        await pilot.press("f10")
        await wait_until(pilot, lambda: type(app.screen).__name__ == "CostsScreen")
        await pilot.pause(0.1)
        for chart in ("costs-cost-chart", "costs-latency-chart"):
            shown = _plain(app, chart)
            for t in ("0.2", "1.2"):
                assert f"embedded:smollm2 @temperature={t}, max_tokens=60" in shown, shown
            # At 80 columns a name wraps between its settings: folded, it split a value.
            narrow = _plain(app, chart, width=78)
            assert narrow.count("embedded:smollm2") == narrow.count("max_tokens=60") == 2
            assert "temperature=0.2," in narrow and "temperature=1.2," in narrow, narrow
        table = app.screen.query_one("#costs-all", DataTable)
        assert [str(c.label) for c in table.ordered_columns][-2:] == ["shadow", "month at 100/day"]
        assert sum(c.get_render_width(table) for c in table.ordered_columns) <= 130


def test_bars_are_drawn_to_an_eighth_of_a_cell() -> None:
    assert bar(1.0, 1.0, width=8) == "█" * 8
    assert bar(0.5, 1.0, width=8) == "█" * 4
    assert bar(1 / 16, 1.0, width=8) == "▌"
    assert bar(3.0, 1.0, width=4) == "████"  # never wider than the chart
    assert bar(1e-9, 1.0) == "▏"  # a tiny figure still shows
    assert bar(0.0, 1.0) == "" and bar(1.0, 0.0) == ""


async def test_counts_a_server_did_not_report_are_marked_estimated(fresh_home: Path) -> None:
    """An OpenAI-compatible server that sends no usage leaves our estimates: `~24`."""
    result = TargetResult("llamacpp:m", "llamacpp:m", "llamacpp", "m", True, status="done",
                          text="ok")  # fmt: skip
    result.input_tokens, result.output_tokens = 24, 10
    result.input_exact, result.output_exact = False, True
    result.ttft_s, result.e2e_s, result.cost = 0.2, 0.5, Cost("local", 0.0)
    store = Store(locations.database_path())
    store.add_response(result, [Message("user", "hi")], origin="ask", batch="earlier")
    store.close()
    app = make_app(Settings(), ["embedded:smollm2"], env={"OLLAMA_HOST": "127.0.0.1:9"})
    async with app.run_test(size=(150, 50)) as pilot:
        await pilot.press("f10")
        await wait_until(pilot, lambda: type(app.screen).__name__ == "CostsScreen")
        await pilot.pause(0.1)
        row = _cells(app, "costs-all", "llamacpp:m")
        assert (row["in"], row["out"]) == ("~24", "10")


NARROW_TARGETS = {
    "openai:gpt-4o": Cost("priced", 0.0125),
    "openai:a-model-genai-prices-does-not-know": Cost("unknown"),
    "ollama:qwen2.5-coder:14b-instruct-q4_K_M": Cost("local", 0.0),
    "embedded:smollm2@temperature=0.2,max_tokens=60": Cost("local", 0.0),
    "embedded:smollm2@temperature=1.2,max_tokens=60": Cost("local", 0.0),
}


def _store_narrow_targets() -> None:
    store = Store(locations.database_path())
    for target, cost in NARROW_TARGETS.items():
        provider, _, model = target.partition(":")
        result = TargetResult(target, target, provider, model.split("@")[0],
                              cost.kind == "local", status="done", text="ok")  # fmt: skip
        result.input_tokens, result.output_tokens, result.tokens_exact = 12345, 6789, True
        result.ttft_s, result.e2e_s, result.cost = 0.3, 1.5, cost
        store.add_response(result, [Message("user", "hi")], origin="ask", batch=target)
    store.close()


def _table_lines(app: WorkbenchApp, table_id: str) -> dict[str | None, str]:
    """The lines the table shows, as drawn (what is off its right edge is not there): the
    header's under None, each row's under its key."""
    table = app.screen.query_one(f"#{table_id}", DataTable)
    assert table.scroll_x == 0
    lines: dict[str | None, str] = {None: table.render_line(0).text}
    for key in table.rows:
        lines[key.value] = table.render_line(1 + table.get_row_index(key)).text
    return lines


def _columns(app: WorkbenchApp) -> list[str]:
    table = app.screen.query_one("#costs-all", DataTable)
    return [str(c.key.value) for c in table.ordered_columns]


def _all_time_headers(app: WorkbenchApp) -> list[str]:
    return [str(c.label) for c in app.screen.query_one("#costs-all", DataTable).ordered_columns]


def _all_time_shown(app: WorkbenchApp) -> tuple[list[str], dict[str | None, str]]:
    """The all-time table's column keys and its lines as drawn, after checking that each
    row shows every cell it holds, and the columns fit the table's width."""
    table = app.screen.query_one("#costs-all", DataTable)
    columns = [str(c.key.value) for c in table.ordered_columns]
    lines = _table_lines(app, "costs-all")
    for column in table.ordered_columns:
        assert str(column.label) in lines[None], (column.label, lines[None])
    for target in NARROW_TARGETS:
        for column, cell in _cells(app, "costs-all", target).items():
            if column != "target":
                assert cell in lines[target], (column, cell, lines[target])
    assert sum(c.get_render_width(table) for c in table.ordered_columns) <= table.size.width
    return columns, lines


async def test_every_cost_column_is_on_screen_at_80_columns(fresh_home: Path) -> None:
    """A presenter's 80x24 terminal: the all-time table ran off the right edge before its
    dollars. Now headers and figures shorten and the request count gives way, at 80 as at
    60 columns, and long names shorten where they still tell targets apart; at 150 columns
    the table is as it was."""
    _store_narrow_targets()
    app = make_app(Settings(), [], env={"OLLAMA_HOST": "127.0.0.1:9"})
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("f10")
        await wait_until(pilot, lambda: type(app.screen).__name__ == "CostsScreen")
        await wait_until(pilot, lambda: "cost" in _columns(app))
        columns, lines = _all_time_shown(app)
        assert columns[-3:] == ["cost", "shadow", "month"]
        assert "in" in columns and "out" in columns  # 80 columns hold the tokens too
        cloud = _cells(app, "costs-all", "openai:gpt-4o")
        assert cloud["cost"] == "$0.0125" and cloud["month"] == "$37.50"  # not $37.5000
        unknown = _cells(app, "costs-all", "openai:a-model-genai-prices-does-not-know")
        assert unknown["cost"] == unknown["month"] == "unknown"  # "price unknown", headed "cost"
        local = [lines[t] for t in NARROW_TARGETS if t.startswith("embedded:")]
        assert "temperature=0.2" in local[0] and "temperature=1.2" in local[1]

        await pilot.resize_terminal(150, 42)
        await wait_until(pilot, lambda: "month at 100/day" in _all_time_headers(app))
        columns, lines = _all_time_shown(app)
        assert columns == ["target", "requests", "in", "out", "cost", "shadow", "month"]
        assert lines[None].split() == ["target", "requests", "in", "out", "cost", "shadow",
                                       "month", "at", "100/day"]  # fmt: skip
        assert _cells(app, "costs-all", "openai:gpt-4o")["month"] == format_usd(37.5)
        assert all(target in lines[target] for target in NARROW_TARGETS)  # whole names

        await pilot.resize_terminal(60, 24)
        await wait_until(pilot, lambda: "requests" not in _columns(app))
        columns, _ = _all_time_shown(app)
        assert "requests" not in columns and columns[-3:] == ["cost", "shadow", "month"]
        assert not app.screen.query_one("#costs-all", DataTable).show_horizontal_scrollbar
