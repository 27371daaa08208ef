"""tiktoken's encodings without the network.

tiktoken downloads its BPE files at first use. We rebuild them from files that ship in
packages (quicktok-v1 carries cl100k and o200k ranks in its own binary format), check each
against the sha256 tiktoken itself pins, and put them in tiktoken's cache under the key it
looks for, so `tiktoken.get_encoding` finds them and never reaches for the internet.
"""

from __future__ import annotations

import base64
import hashlib
import os
import struct
import threading
from importlib import resources
from pathlib import Path

import tiktoken

_BLOB_URL = "https://openaipublic.blob.core.windows.net/encodings/{name}.tiktoken"

# The hashes tiktoken pins in tiktoken_ext/openai_public.py for these files.
_PINNED_SHA256 = {
    "cl100k_base": "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
    "o200k_base": "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
}
_QUICKTOK_FILES = {"cl100k_base": "cl100k.vocab", "o200k_base": "o200k.vocab"}

_lock = threading.Lock()
_loaded: dict[str, tiktoken.Encoding] = {}


class EncodingUnavailable(RuntimeError):
    """The shipped ranks are missing or do not match what tiktoken pins."""


def get_encoding(name: str, cache_dir: Path) -> tiktoken.Encoding:
    """The named tiktoken encoding, materialised offline into `cache_dir` on first use."""
    with _lock:
        if name not in _loaded:
            _install(name, cache_dir)
            encoding = tiktoken.get_encoding(name)
            # The Rust tokenizer holds its own copy of the ranks; tiktoken keeps the Python
            # dict only to pickle an encoding it cannot name, and these are named. 100k
            # entries of bytes: ~14 MB of the TUI's memory (bench/tui_memory.py).
            encoding._mergeable_ranks = {}
            _loaded[name] = encoding
        return _loaded[name]


def _install(name: str, cache_dir: Path) -> None:
    # tiktoken honours TIKTOKEN_CACHE_DIR; a user's own setting is kept and filled.
    cache = Path(os.environ.setdefault("TIKTOKEN_CACHE_DIR", str(cache_dir)))
    target = cache / hashlib.sha1(_BLOB_URL.format(name=name).encode()).hexdigest()
    if target.is_file() and _sha256(target.read_bytes()) == _PINNED_SHA256[name]:
        return
    data = tiktoken_file(name)
    cache.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(f".{os.getpid()}.tmp")
    partial.write_bytes(data)
    partial.replace(target)


def tiktoken_file(name: str) -> bytes:
    """The `.tiktoken` file for `name`, rebuilt from quicktok's data and verified."""
    if name not in _PINNED_SHA256:
        raise EncodingUnavailable(f"no offline source for the {name} encoding")
    try:
        raw = resources.files("quicktok").joinpath("data", _QUICKTOK_FILES[name]).read_bytes()
    except (ModuleNotFoundError, FileNotFoundError) as exc:
        raise EncodingUnavailable(f"quicktok-v1 is not installed ({exc})") from None
    data = b"".join(
        base64.b64encode(token) + b" " + str(rank).encode() + b"\n"
        for token, rank in _quicktok_ranks(raw)
    )
    if _sha256(data) != _PINNED_SHA256[name]:
        raise EncodingUnavailable(f"{name} rebuilt from quicktok does not match tiktoken's hash")
    return data


def _quicktok_ranks(raw: bytes) -> list[tuple[bytes, int]]:
    """quicktok's .vocab: u32 count, then per token u16 length, the bytes, u32 rank."""
    try:
        (count,) = struct.unpack_from("<I", raw, 0)
        offset = 4
        ranks = []
        for _ in range(count):
            (length,) = struct.unpack_from("<H", raw, offset)
            offset += 2
            token = raw[offset : offset + length]
            offset += length
            (rank,) = struct.unpack_from("<I", raw, offset)
            offset += 4
            ranks.append((token, rank))
    except struct.error as exc:
        raise EncodingUnavailable(f"quicktok vocabulary is truncated: {exc}") from None
    ranks.sort(key=lambda pair: pair[1])
    return ranks


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
