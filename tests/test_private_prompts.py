"""Private prompts: marked in the TUI (F5) or a suite, they reach local models only.

A recording socket guard proves the refusal happens before any connection is attempted:
a cloud target that gets a private prompt must not even look up its host.
"""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from providers.base import Message
from providers.registry import Registry, parse_target
from tests.tui_helpers import send, wait_until
from workbench.cli import main
from workbench.config import Settings
from workbench.engine.conversation import Conversation
from workbench.engine.fanout import fanout
from workbench.store import Store
from workbench.suites.loader import load_suite
from workbench.suites.runner import plan, skipped_private, suite_targets
from workbench.suites.runs import case_results, resolve_run
from workbench.tui.app import make_app
from workbench.tui.widgets.prompt import PromptBox

SECRET = "my salary is 91234 and my PIN is 4711"
FAKE_KEYS = {"OPENAI_API_KEY": "sk-test-private", "OLLAMA_HOST": "127.0.0.1:9"}


@pytest.fixture
def off_machine(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every attempt to reach a non-loopback host, recorded and refused."""
    attempts: list[str] = []
    real_connect, real_lookup = socket.socket.connect, socket.getaddrinfo

    def connect(self: socket.socket, address: object) -> None:
        host = str(address[0]) if isinstance(address, tuple) else str(address)
        if self.family in (socket.AF_INET, socket.AF_INET6) and host not in ("127.0.0.1", "::1"):
            attempts.append(host)
            raise OSError("network unreachable (test)")
        real_connect(self, address)  # type: ignore[arg-type]

    def lookup(host: object, *args: object, **kwargs: object) -> object:
        if str(host) not in ("127.0.0.1", "::1", "localhost"):
            attempts.append(str(host))
            raise socket.gaierror(socket.EAI_NONAME, "unknown host (test)")
        return real_lookup(host, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket, "getaddrinfo", lookup)
    return attempts


async def test_the_engine_refuses_a_private_prompt_to_a_cloud_target(
    off_machine: list[str],
) -> None:
    registry = Registry(env=FAKE_KEYS)
    targets = [parse_target("embedded:smollm2@max_tokens=6"), parse_target("openai:gpt-4o-mini")]
    try:
        local, cloud = await fanout(registry, targets, [Message("user", SECRET, private=True)])
    finally:
        await registry.aclose()
    assert local.status == "done" and local.text
    assert cloud.status == "failed" and cloud.error_kind == "bad_request"
    assert cloud.error is not None and "private prompt" in cloud.error
    assert "local model" in cloud.error  # says what to do instead
    assert off_machine == []  # refused before even a DNS lookup


def test_an_answer_to_a_private_prompt_is_private_too() -> None:
    chat = Conversation()
    chat.ask("public question")
    chat.answered("public answer")
    chat.ask(SECRET, private=True)
    chat.answered("an answer that repeats the secret")
    assert [m.private for m in chat.turns] == [False, False, True, True]
    assert chat.private_turns == 2
    assert [m.content for m in chat.without_private()] == ["public question", "public answer"]
    retried = chat.retract()
    assert retried is not None and retried.private and retried.content == SECRET


def _suite(tmp_path: Path, private_suite: bool = False) -> Path:
    path = tmp_path / "private.yaml"
    path.write_text(
        f"""
name: private-check
private: {str(private_suite).lower()}
params: {{max_tokens: 4, temperature: 0}}
cases:
  - id: public
    prompt: Say hello.
  - id: secret
    private: true
    prompt: "Remember this: {SECRET}"
""",
        encoding="utf-8",
    )
    return path


def test_a_private_case_is_planned_for_local_targets_only(tmp_path: Path) -> None:
    registry = Registry(env=FAKE_KEYS)
    suite = load_suite(_suite(tmp_path))
    targets = suite_targets(suite, ["embedded:smollm2", "openai:gpt-4o-mini"])
    jobs = plan(suite, targets, None, is_local=registry.is_local)
    assert sorted((j.case.id, j.target.provider) for j in jobs) == [
        ("public", "embedded"),
        ("public", "openai"),
        ("secret", "embedded"),
    ]
    line = skipped_private(suite, targets, registry.is_local)
    assert line == "1 private case run on local targets only; skipped for openai:gpt-4o-mini"
    whole = load_suite(_suite(tmp_path, private_suite=True))
    assert {j.target.provider for j in plan(whole, targets, None, is_local=registry.is_local)} == {
        "embedded"
    }


def test_workbench_run_sends_a_private_case_to_local_targets_only(
    tmp_path: Path,
    off_machine: list[str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for name, value in FAKE_KEYS.items():
        monkeypatch.setenv(name, value)
    args = ["run", str(_suite(tmp_path)), "-t", "embedded:smollm2", "-t", "openai:gpt-4o-mini"]
    code = main(args)
    assert code == 1  # the public case failed on the unreachable cloud target
    assert "1 private case run on local targets only" in capsys.readouterr().err
    store = Store(Path(_database()))
    try:
        run = resolve_run(store, "latest")
        ran = {(r.case_id, r.target.split("@")[0]) for r in case_results(store, run.id)}
    finally:
        store.close()
    assert ran == {
        ("public", "embedded:smollm2"),
        ("public", "openai:gpt-4o-mini"),
        ("secret", "embedded:smollm2"),
    }
    assert off_machine  # the public case did try the cloud; the secret one never did


def _database() -> str:
    from workbench import locations

    return str(locations.database_path())


async def test_f5_marks_one_prompt_private_and_cloud_panes_never_see_it(
    off_machine: list[str],
) -> None:
    app = make_app(Settings(), ["embedded:smollm2@max_tokens=6", "openai:gpt-4o-mini"],
                   env=FAKE_KEYS)  # fmt: skip
    async with app.run_test(size=(160, 48)) as pilot:
        local, cloud = app.panes
        box = app.query_one(PromptBox)
        box.focus()
        await pilot.press("f5")
        assert box.private and box.has_class("private") and "private" in str(box.border_title)
        await send(pilot, SECRET)
        await wait_until(pilot, lambda: local.result is not None and local.result.finished)
        await pilot.pause(0.1)
        assert not box.private  # one prompt at a time
        assert cloud.result is None and cloud.conversation.turns == []
        assert "private prompt was not sent" in cloud.transcript
        assert [m.private for m in local.conversation.turns] == [True, True]
        assert off_machine == []

        # A cloud pane added with this chat's history does not inherit the private turns,
        # and an ordinary prompt after it carries none of them.
        added = await app.add_pane(parse_target("openai:gpt-4o-mini"), history_from=local)
        assert added.conversation.turns == []
        assert "2 private turns kept from this cloud model" in added.transcript
        await send(pilot, "What is 2 + 2?")
        await wait_until(pilot, lambda: all(p.result and p.result.finished for p in app.panes))
        for pane in (cloud, added):
            assert all(SECRET not in m.content for m in pane.sent)
        assert any(SECRET in m.content for m in local.sent)  # the local model keeps context


async def test_copy_and_export_keys_work_from_the_prompt_box() -> None:
    """The prompt box would otherwise take Ctrl+A / Ctrl+E as line start / line end."""
    from workbench import locations

    app = make_app(Settings(), ["embedded:smollm2@max_tokens=6"], env=FAKE_KEYS)
    async with app.run_test(size=(120, 32)) as pilot:
        (pane,) = app.panes
        await send(pilot, "Say hi.")
        await wait_until(pilot, lambda: pane.result is not None and pane.result.finished)
        box = app.query_one(PromptBox)
        box.focus()
        await pilot.press(*"draft")
        before = set((locations.data_dir() / "exports").glob("*.md"))
        await pilot.press("ctrl+a", "ctrl+e")
        await pilot.pause(0.1)
        assert pane.result is not None and app.clipboard == pane.result.text
        assert set((locations.data_dir() / "exports").glob("*.md")) - before
        assert box.text == "draft"  # nothing typed was lost or moved
