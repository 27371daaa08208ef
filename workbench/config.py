"""Typed settings, loaded once by the app factory or the CLI and passed in."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from workbench import locations


class ConfigError(Exception):
    """The config file cannot be used; the message gives file, line or field."""


class Endpoint(BaseModel):
    """A named server: its targets are written `<name>:<model>`."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["openai", "anthropic", "ollama"]
    """Which wire protocol the server speaks."""
    base_url: str
    """Where it listens, e.g. `http://127.0.0.1:1234/v1`."""
    api_key_env: str | None = None
    """The NAME of the environment variable holding the key; never the key itself."""
    models: list[str] = Field(default_factory=list)
    """Models to list when the server cannot say which it has."""


class Settings(BaseModel):
    """Everything the config file can set; every field has a safe default."""

    model_config = ConfigDict(extra="forbid")

    targets: list[str] = Field(default_factory=lambda: ["embedded:smollm2"])
    """Targets used when none are given on the command line."""
    connect_timeout_s: float = 3.0
    """How long to wait for a connection before calling a server unreachable."""
    read_timeout_s: float = 60.0
    """How long a stream may stay silent before it is called stalled."""
    max_time_s: float = Field(default=600.0, gt=0)
    """How long one answer may stream in all; a server that never stops is stopped here."""
    embedded_context: int = 8192
    """Context window for embedded models (capped at what the model was trained with)."""
    auto_summarize: bool = False
    """When a conversation outgrows a model's window, summarize earlier turns without asking."""
    private: bool = False
    """Only targets on this machine (embedded, servers on loopback) may be used."""
    local_concurrency: int = 1
    """Suite requests at once to each local provider: one runtime answers one at a time."""
    embedded_threads: int | None = None
    """CPU threads for embedded models; default half the cores for generating, all for
    reading the prompt. Lower it when a local server (llama-server, Ollama) shares the
    machine, or both slow to a crawl."""
    endpoints: dict[str, Endpoint] = Field(default_factory=dict)
    """Named servers, `[endpoints.<name>]` tables in the file."""


def load_settings(path: Path | None = None) -> Settings:
    """Read the config file; a missing file means defaults."""
    path = path or locations.config_path()
    if not path.is_file():
        return Settings()
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ConfigError(
            f"{path}:{line}: not UTF-8: byte 0x{raw[exc.start]:02x} at offset {exc.start}"
        ) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(_toml_problem(path, str(exc))) from None
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = tuple(str(p) for p in err["loc"])
        at = _key_line(text, loc)
        where = f"{path}:{at}" if at else str(path)
        more = f" (and {len(exc.errors()) - 1} more)" if len(exc.errors()) > 1 else ""
        raise ConfigError(f"{where}: {'.'.join(loc)}: {err['msg']}{more}") from None


_TOML_AT = re.compile(r"^(?P<message>.*?) \(at line (?P<line>\d+), column (?P<col>\d+)\)$")


def _toml_problem(path: Path, message: str) -> str:
    """`file:LINE:COL: message`, the way compilers point at a problem."""
    match = _TOML_AT.match(message)
    if match is None:
        return f"{path}: {message}"
    return f"{path}:{match['line']}:{match['col']}: {match['message']}"


def _key_line(text: str, loc: tuple[str, ...]) -> int | None:
    """The line that sets `loc` (or the nearest table above it), found by reading the text."""
    table: tuple[str, ...] = ()
    best: tuple[int, int] | None = None  # (how much of loc it covers, line)
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if stripped.startswith("["):
            name = stripped.strip("[]").split("#")[0].strip()
            table = tuple(part.strip().strip("\"'") for part in name.split("."))
            here = table
        elif "=" in stripped and not stripped.startswith("#"):
            key = stripped.split("=", 1)[0].strip()
            here = (*table, *(part.strip().strip("\"'") for part in key.split(".")))
        else:
            continue
        if here == loc[: len(here)] and (best is None or len(here) > best[0]):
            best = (len(here), number)
    return best[1] if best else None
