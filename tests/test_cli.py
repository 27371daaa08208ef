"""`workbench ask` and `workbench models`, end to end, with real models behind them."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from providers.base import Message
from providers.registry import Registry, parse_target
from tests.child_process import workbench_env
from tests.fault_servers import WIRES, streamed, threaded_server
from tests.llama_server import LlamaServer
from workbench.cli import main
from workbench.commands.ask import print_metrics
from workbench.engine.fanout import fanout
from workbench.engine.result import TargetResult
from workbench.store import Store


@pytest.fixture
def endpoint_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, llama_server: LlamaServer
) -> Path:
    """A config file naming llama-server as an OpenAI-compatible endpoint, `llamacpp`."""
    config = tmp_path / "config.toml"
    config.write_text(
        f'[endpoints.llamacpp]\nkind = "openai"\nbase_url = "{llama_server.openai_url}"\n'
        f'[endpoints.llamacpp-claude]\nkind = "anthropic"\nbase_url = "{llama_server.base_url}"\n'
    )
    monkeypatch.setenv("WORKBENCH_CONFIG", str(config))
    return config


def _json_lines(out: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def test_ask_embedded_json(capsys: pytest.CaptureFixture[str]) -> None:
    prompt = "Explain in detail how a bicycle works."
    code = main(["ask", prompt, "-t", "embedded:smollm2@max_tokens=8,temperature=0", "--json"])
    (result,) = _json_lines(capsys.readouterr().out)
    assert code == 0
    assert result["status"] == "done"
    assert isinstance(result["text"], str) and result["text"].strip()
    assert result["tokens"] == {"input": result["tokens"]["input"], "output": 8,  # type: ignore[index]
                                "cached_input": 0, "exact": True, "input_exact": True,
                                "output_exact": True}  # fmt: skip
    assert result["cost"] == {"kind": "local", "usd": 0.0, "estimated": False}
    metrics = result["metrics"]
    assert isinstance(metrics, dict)
    assert 0 < metrics["ttft_s"] < metrics["e2e_s"]


def test_ask_two_targets_through_a_named_endpoint(
    endpoint_config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main([
        "ask", "What is a bicycle?", "--max-tokens", "10", "--temperature", "0", "--json",
        "-t", "embedded:smollm2", "-t", "llamacpp:smollm2",
    ])  # fmt: skip
    results = _json_lines(capsys.readouterr().out)
    assert code == 0
    assert [r["target"] for r in results] == [
        "embedded:smollm2@temperature=0,max_tokens=10",
        "llamacpp:smollm2@temperature=0,max_tokens=10",
    ]
    for r in results:
        assert r["status"] == "done" and r["text"] and r["local"] is True
        assert r["tokens"]["exact"] is True and r["tokens"]["output"] == 10  # type: ignore[index]
        assert r["cost"]["kind"] == "local"  # type: ignore[index]


def test_ask_text_output_keeps_answers_when_one_target_fails(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = main([
        "ask", "Say hello.", "-t", "embedded:smollm2@max_tokens=6", "-t", "openai:gpt-4o-mini",
    ])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 1
    assert "── embedded:smollm2@max_tokens=6 (done)" in out
    assert "TTFT" in out and "tok/s" in out and "local" in out
    assert "✗ openai:gpt-4o-mini: OPENAI_API_KEY is not set" in out


def test_unknown_target_is_refused_before_anything_runs(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["ask", "hi", "-t", "nope:model"]) == 2
    assert "unknown provider 'nope'" in capsys.readouterr().err
    assert main(["ask", "hi", "-t", "smollm2"]) == 2
    assert "not provider:model" in capsys.readouterr().err


def test_empty_prompt_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ask", "   "]) == 2
    assert "empty" in capsys.readouterr().err


def test_bad_config_names_file_and_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "config.toml"
    config.write_text('[endpoints.x]\nkind = "openai"\nbase_url = \n')
    monkeypatch.setenv("WORKBENCH_CONFIG", str(config))
    assert main(["models"]) == 2
    err = capsys.readouterr().err
    assert f"{config}:3:12: Invalid value" in err  # file:line:column, as compilers say it


def test_bad_config_field_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "config.toml"
    config.write_text('[endpoints.x]\nkind = "grpc"\nbase_url = "http://127.0.0.1:1"\n')
    monkeypatch.setenv("WORKBENCH_CONFIG", str(config))
    assert main(["models"]) == 2
    assert "endpoints.x.kind" in capsys.readouterr().err


@pytest.mark.parametrize("as_json", [False, True], ids=["text", "json"])
def test_ask_with_no_targets_anywhere_says_where_to_give_them(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    as_json: bool,
) -> None:
    config = tmp_path / "config.toml"
    config.write_text("targets = []\n")
    monkeypatch.setenv("WORKBENCH_CONFIG", str(config))
    monkeypatch.setenv("WORKBENCH_HOME", str(tmp_path / "home"))
    assert main(["ask", "hi", *(["--json"] if as_json else [])]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err == (
        f"workbench ask: no targets: give some with -t, or set targets in the config ({config})\n"
    )


def test_models_lists_what_is_available(
    endpoint_config: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("OLLAMA_HOST", "127.0.0.1:9")
    assert main(["models", "--json"]) == 0
    listings = {entry["provider"]: entry for entry in _json_lines(capsys.readouterr().out)}
    embedded = listings["embedded"]
    assert embedded["available"] is True
    (smollm2,) = [m for m in embedded["models"] if m["target"] == "embedded:smollm2"]  # type: ignore[attr-defined]
    assert smollm2["context_length"] == 8192 and smollm2["size_bytes"] > 90_000_000
    assert smollm2["usd_per_1m_input"] == 0.0
    assert listings["openai"]["available"] is False
    assert "OPENAI_API_KEY" in str(listings["openai"]["reason"])
    assert listings["ollama"]["available"] is False
    llamacpp = listings["llamacpp"]
    assert llamacpp["available"] is True and llamacpp["local"] is True
    assert [m["target"] for m in llamacpp["models"]] == ["llamacpp:smollm2"]  # type: ignore[attr-defined]


def test_models_prices_cloud_models_from_genai_prices(
    httpserver: HTTPServer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A cloud provider's models are priced per 1M tokens; unknown ones say so, never $0."""
    models = [
        {"id": "gpt-4o-mini", "object": "model", "created": 0, "owned_by": "openai"},
        {"id": "my-finetune-xyz", "object": "model", "created": 0, "owned_by": "me"},
    ]
    httpserver.expect_request("/v1/models").respond_with_json({"object": "list", "data": models})
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    monkeypatch.setenv("OLLAMA_HOST", "127.0.0.1:9")
    monkeypatch.setenv("OPENAI_BASE_URL", httpserver.url_for("/v1"))
    # A loopback base URL counts as local: price it as OpenAI by model name instead.
    registry = Registry(env={"OPENAI_API_KEY": "sk-test"})
    from workbench.engine import pricing
    from workbench.engine.fanout import price_source

    source = price_source(registry, "openai")
    assert source.provider_id == "openai"
    assert pricing.per_million("gpt-4o-mini", source) == (0.15, 0.6)
    assert pricing.per_million("my-finetune-xyz", source) is None
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "openai:my-finetune-xyz" in out


def test_markup_and_escapes_from_a_model_are_printed_inert(
    httpserver: HTTPServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    hostile = "[bold red]x[/] \x1b[2J\x1b]0;pwned\x07 done"

    def handler(request: Request) -> Response:
        chunk = {
            "id": "1",
            "object": "chat.completion.chunk",
            "created": 0,
            "model": "m",
            "choices": [{"index": 0, "delta": {"content": hostile}, "finish_reason": None}],
        }
        end = {"id": "1", "object": "chat.completion.chunk", "created": 0, "model": "m",
               "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}  # fmt: skip
        body = f"data: {json.dumps(chunk)}\n\ndata: {json.dumps(end)}\n\ndata: [DONE]\n\n"
        return Response(body, content_type="text/event-stream")

    httpserver.expect_request("/v1/chat/completions").respond_with_handler(handler)
    config = tmp_path / "config.toml"
    config.write_text(
        f'[endpoints.evil]\nkind = "openai"\nbase_url = "{httpserver.url_for("/v1")}"\n'
    )
    monkeypatch.setenv("WORKBENCH_CONFIG", str(config))
    assert main(["ask", "hi", "-t", "evil:m"]) == 0
    out = capsys.readouterr().out
    assert "[bold red]x[/]" in out
    assert "\x1b" not in out and "\x07" not in out


def test_estimated_tokens_are_marked(capsys: pytest.CaptureFixture[str]) -> None:
    result = TargetResult("openai:gpt-4o", "openai:gpt-4o", "openai", "gpt-4o", False,
                          status="failed", input_tokens=12, output_tokens=30)  # fmt: skip
    import io

    out = io.StringIO()
    print_metrics([result], out)
    assert "~12" in out.getvalue() and "~30" in out.getvalue()


async def test_fanout_streams_targets_concurrently(llama_server: LlamaServer) -> None:
    """Updates from the two targets interleave: neither waits for the other to finish."""
    from providers.registry import EndpointSpec

    registry = Registry(
        endpoints=[EndpointSpec("llamacpp", "openai", llama_server.openai_url)], env={}
    )
    order: list[str] = []
    targets = [
        parse_target("llamacpp:smollm2@max_tokens=40,temperature=0,label=a"),
        parse_target("llamacpp:smollm2@max_tokens=40,temperature=0,label=b"),
    ]
    try:
        results = await fanout(
            registry,
            targets,
            [Message("user", "Explain in detail how a bicycle works.")],
            on_update=lambda r: order.append(r.name),
        )
    finally:
        await registry.aclose()
    assert [r.status for r in results] == ["done", "done"]
    first_b, last_a = order.index("b"), len(order) - 1 - order[::-1].index("a")
    first_a, last_b = order.index("a"), len(order) - 1 - order[::-1].index("b")
    assert first_b < last_a and first_a < last_b


def test_error_lines_name_the_target_once(
    httpserver: HTTPServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    wire = WIRES["openai"]

    def handler(request: Request) -> Response:
        model = json.loads(request.data)["model"]
        return wire.error(500, "boom") if model == "e500" else wire.error(404, "no such model")

    httpserver.expect_request(wire.path).respond_with_handler(handler)
    config = tmp_path / "config.toml"
    config.write_text(
        f'[endpoints.evil]\nkind = "openai"\nbase_url = "{httpserver.url_for("/v1")}"\n'
    )
    monkeypatch.setenv("WORKBENCH_CONFIG", str(config))
    code = main(["ask", "hi", "-t", "evil:e500", "-t", "evil:e404@label=mine", "-t", "openai:x"])
    errors = [line for line in capsys.readouterr().out.splitlines() if line.startswith("✗")]
    assert code == 1
    assert [line.split(" (HTTP")[0].split(" — ")[0] for line in errors] == [
        "✗ evil:e500: server error",
        "✗ mine: not found",
        # A message that does not start with the target keeps the name in front of it.
        "✗ openai:x: OPENAI_API_KEY is not set",
    ]
    assert "boom" in errors[0] and "no such model" in errors[1]


ROOT = Path(__file__).resolve().parent.parent
PARTIAL = "Half an answer"


@dataclass
class Loopback:
    """An OpenAI-compatible server: model `fast` answers at once, `slow` sends half an
    answer and hangs; `prompts` holds what each request asked."""

    url: str
    stalled: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)
    prompts: list[str] = field(default_factory=list)


@pytest.fixture
def loopback() -> Iterator[Loopback]:
    wire = WIRES["openai"]
    # Threaded: the slow stream must not hold up the fast one.
    with threaded_server() as server:
        state = Loopback(server.url_for("/v1"))

        def answer(request: Request) -> Response:
            body = json.loads(request.data)
            state.prompts.append(body["messages"][-1]["content"])
            if body["model"] != "slow":
                return wire.stream("The whole answer.")

            def half_then_hang() -> Iterator[bytes]:
                yield from wire.start()
                yield wire.text(PARTIAL)
                state.stalled.set()
                state.release.wait(60)
                yield from wire.end()

            return streamed(half_then_hang(), wire.content_type)

        server.expect_request(wire.path, method="POST").respond_with_handler(answer)
        try:
            yield state
        finally:
            state.release.set()  # a stalled response thread must not outlive the test


def _stored(tmp_path: Path) -> list[tuple[str, str, str]]:
    connection = sqlite3.connect(tmp_path / "home" / "workbench.db")
    try:
        rows = connection.execute("SELECT target, status, text FROM responses ORDER BY target")
        return [(str(t), str(s), str(x)) for t, s, x in rows]
    finally:
        connection.close()


def _interrupt_when(
    proc: subprocess.Popen[str], ready: threading.Event, times: int, signum: int = signal.SIGINT
) -> None:
    deadline = time.monotonic() + 60
    while not ready.wait(0.05):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"never got to the stall: {proc.communicate()}")
    time.sleep(0.2)  # the half answer is read and printed by now
    for _ in range(times):  # `timeout -s INT` signals the child, then its process group
        proc.send_signal(signum)


def _ask_interrupted(
    tmp_path: Path, loopback: Loopback, *args: str, times: int, signum: int = signal.SIGINT
) -> tuple[int, str, str]:
    """`workbench ask hi ARGS`, Ctrl+C'd (or sent `signum`) `times` once the slow answer
    stalls."""
    child = subprocess.Popen(
        [sys.executable, "-m", "workbench.cli", "ask", "hi", *args],
        env=workbench_env(tmp_path, loopback.url), cwd=ROOT, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    _interrupt_when(child, loopback.stalled, times=times, signum=signum)
    out, err = child.communicate(timeout=60)
    return child.returncode, out, err


@pytest.mark.parametrize(("signum", "status"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_ctrl_c_prints_and_stores_every_target_once(
    tmp_path: Path, loopback: Loopback, signum: int, status: int
) -> None:
    """SIGTERM (`timeout`, a CI job cancelled) stops it as Ctrl+C does."""
    targets = ("-t", "loop:fast", "-t", "loop:slow")
    code, out, err = _ask_interrupted(
        tmp_path, loopback, *targets, "--json", times=2, signum=signum
    )
    assert code == status, err
    assert "Traceback" not in err and "interrupted" in err
    results = [(r["target"], r["status"], r["text"]) for r in _json_lines(out)]
    assert results == [
        ("loop:fast", "done", "The whole answer."),
        ("loop:slow", "cancelled", PARTIAL),
    ]
    assert _stored(tmp_path) == sorted(results)


def test_ctrl_c_shows_the_partial_answer_and_the_table(tmp_path: Path, loopback: Loopback) -> None:
    code, out, err = _ask_interrupted(tmp_path, loopback, "-t", "loop:slow", times=1)
    assert code == 130, err
    assert "Traceback" not in err
    answer, header, row, *_ = out.splitlines()
    assert answer == PARTIAL
    assert header.split()[:3] == ["target", "status", "TTFT"]
    assert row.split()[:2] == ["loop:slow", "cancelled"]
    assert _stored(tmp_path) == [("loop:slow", "cancelled", PARTIAL)]


def test_ctrl_c_does_not_sit_out_a_busy_history(tmp_path: Path, loopback: Loopback) -> None:
    """Another process holds the history: Ctrl+C ends the command at once, saying which
    answers it could not store, rather than after SQLite's 30 s wait for the lock."""
    history = tmp_path / "home" / "workbench.db"
    history.parent.mkdir()
    Store(history).close()
    other = sqlite3.connect(history, isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")
    child = subprocess.Popen(
        [sys.executable, "-m", "workbench.cli", "ask", "hi", "-t", "loop:fast", "-t", "loop:slow"],
        env=workbench_env(tmp_path, loopback.url), cwd=ROOT, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        _interrupt_when(child, loopback.stalled, times=1)
        # Well short of the 30 s the write of the fast answer would otherwise wait.
        out, err = child.communicate(timeout=20)
    finally:
        child.kill()
        other.execute("ROLLBACK")
        other.close()
    assert child.returncode == 130, err
    assert "The whole answer." in out and PARTIAL in out
    assert "Traceback" not in err and "interrupted" in err
    assert "not stored (loop:fast, loop:slow)" in err and "busy" in err, err
    assert _stored(tmp_path) == []


@pytest.mark.parametrize(
    ("how", "locale"),
    [("stdin", "C"), ("stdin", "C.UTF-8"), ("argument", "C.UTF-8")],
)
def test_bytes_that_are_not_utf8_are_replaced(
    tmp_path: Path, loopback: Loopback, how: str, locale: str
) -> None:
    prompt = b"\xe9t\xe9 hi"
    args: list[str | bytes] = ["ask", "-" if how == "stdin" else prompt, "-t", "loop:fast"]
    done = subprocess.run(
        [sys.executable, "-m", "workbench.cli", *args],
        env=workbench_env(tmp_path, loopback.url) | {"LC_ALL": locale}, cwd=ROOT,
        input=prompt if how == "stdin" else b"", capture_output=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    assert loopback.prompts == ["\ufffdt\ufffd hi"]


def test_a_reader_that_goes_away_stops_the_printing_not_the_targets(
    tmp_path: Path, loopback: Loopback
) -> None:
    """`workbench ask … | head -n 1`: the answer that ends after `head` has gone is still
    stored, with no traceback, and the exit status is the targets' own."""
    child = subprocess.Popen(
        [sys.executable, "-m", "workbench.cli", "ask", "hi", "-t", "loop:fast", "-t", "loop:slow"],
        env=workbench_env(tmp_path, loopback.url), cwd=ROOT, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    assert child.stdout is not None and child.stderr is not None
    try:
        first = child.stdout.readline()
        assert first.startswith("── loop:fast (done)"), first + child.stderr.read()
        assert loopback.stalled.wait(60)
        child.stdout.close()  # as `head -n 1` does once it has its line
        loopback.release.set()  # only now does the slow answer end, and get printed
        err = child.stderr.read()
        code = child.wait(60)
    finally:
        if child.poll() is None:
            child.kill()
    assert "Traceback" not in err and "BrokenPipe" not in err and "Exception" not in err, err
    assert code == 0
    assert _stored(tmp_path) == [
        ("loop:fast", "done", "The whole answer."),
        ("loop:slow", "done", PARTIAL),
    ]


def test_json_to_a_reader_that_is_gone_is_stored_and_exits_quietly(
    tmp_path: Path, llama_server: LlamaServer
) -> None:
    """The JSON lines are written last, after every target is stored; that they cannot be
    written, even by Python's own flush at exit, is no error of ours."""
    read_end, write_end = os.pipe()
    os.close(read_end)  # a reader gone before anything arrives: `… | true`
    targets = ["-t", "embedded:smollm2@max_tokens=4", "-t", "loop:smollm2@max_tokens=4"]
    try:
        done = subprocess.run(
            [sys.executable, "-m", "workbench.cli", "ask", "hi", "--json", *targets],
            env=workbench_env(tmp_path, llama_server.openai_url), cwd=ROOT,
            stdout=write_end, stderr=subprocess.PIPE, text=True, timeout=120,
        )  # fmt: skip
    finally:
        os.close(write_end)
    assert "BrokenPipe" not in done.stderr and "Exception" not in done.stderr, done.stderr
    assert done.returncode == 0
    stored = _stored(tmp_path)
    assert [(target, status) for target, status, _ in stored] == [
        ("embedded:smollm2@max_tokens=4", "done"),
        ("loop:smollm2@max_tokens=4", "done"),
    ]
    assert all(text for _, _, text in stored)


def test_an_endpoint_that_cannot_be_reached_is_not_available(
    endpoint_config: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """As for Ollama: a server that refuses connections is unavailable, and says why."""
    with endpoint_config.open("a") as config:
        config.write('[endpoints.down]\nkind = "openai"\nbase_url = "http://127.0.0.1:1/v1"\n')
    monkeypatch.setenv("OLLAMA_HOST", "127.0.0.1:9")
    assert main(["models", "--json"]) == 0
    listings = {entry["provider"]: entry for entry in _json_lines(capsys.readouterr().out)}
    down, ollama = listings["down"], listings["ollama"]
    assert (down["available"], down["error"], down["models"]) == (False, None, [])
    assert str(down["reason"]).startswith("connection refused by down at http://127.0.0.1:1/v1")
    assert (ollama["available"], ollama["error"]) == (False, None)  # the same, for Ollama
    assert listings["llamacpp"]["available"] is True  # one that answers still is
    assert main(["models"]) == 0
    lines = capsys.readouterr().out.splitlines()
    (line,) = [line for line in lines if " down (" in line]
    assert line.startswith("· down (openai, local) — connection refused by down at http://127.")
    assert not any("cannot list models" in line for line in lines)
