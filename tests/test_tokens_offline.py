"""Token estimates work with the network off: the encodings ship, verified by hash."""

from __future__ import annotations

import hashlib
import importlib
from pathlib import Path

import pytest

from providers.base import Message
from workbench.engine import encodings, tokens


@pytest.fixture
def fresh_encodings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No encoding loaded in this process and an empty tiktoken cache."""
    import tiktoken.registry

    monkeypatch.setattr(encodings, "_loaded", {})
    monkeypatch.setattr(tiktoken.registry, "ENCODINGS", {})
    cache = tmp_path / "tiktoken-cache"
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(cache))
    return cache


@pytest.mark.usefixtures("no_internet")
@pytest.mark.parametrize(
    ("model", "encoding", "text", "count"),
    [
        # Reference counts from OpenAI's tokenizer for these exact strings.
        ("gpt-4o-mini", "o200k_base", "Hello, world!", 4),
        ("claude-3-5-haiku-latest", "cl100k_base", "Hello, world!", 4),
        ("gpt-4o", "o200k_base", "tiktoken is great!", 6),
        ("llama3.2:1b", "cl100k_base", "tiktoken is great!", 6),
    ],
)
def test_counts_with_sockets_blocked(
    fresh_encodings: Path, model: str, encoding: str, text: str, count: int
) -> None:
    estimator = tokens.estimator_for("any", model)
    assert estimator.name == encoding
    assert estimator.count(text) == count
    assert any(fresh_encodings.iterdir())


@pytest.mark.parametrize("name", ["cl100k_base", "o200k_base"])
def test_rebuilt_files_match_the_hash_tiktoken_pins(name: str) -> None:
    source = importlib.import_module("tiktoken_ext.openai_public")
    pinned = Path(source.__file__ or "").read_text()
    digest = hashlib.sha256(encodings.tiktoken_file(name)).hexdigest()
    assert f'expected_hash="{digest}"' in pinned


def test_corrupt_cache_file_is_replaced(fresh_encodings: Path) -> None:
    tokens.estimator_for("openai", "gpt-4o")
    (cached,) = list(fresh_encodings.iterdir())
    cached.write_bytes(b"garbage")
    encodings._loaded.clear()
    import tiktoken.registry

    tiktoken.registry.ENCODINGS.clear()
    assert tokens.estimator_for("openai", "gpt-4o").count("Hello, world!") == 4


def test_message_estimate_counts_framing() -> None:
    estimator = tokens.estimator_for("openai", "gpt-4o-mini")
    messages = [Message("system", "Be brief."), Message("user", "Hello, world!")]
    content = sum(estimator.count(m.content) + estimator.count(m.role) for m in messages)
    assert estimator.count_messages(messages) == content + 3 * len(messages) + 3
