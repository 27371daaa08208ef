"""Typed settings, loaded once by the app factory or the CLI and passed in."""

from __future__ import annotations

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
    embedded_context: int = 8192
    """Context window for embedded models (capped at what the model was trained with)."""
    auto_summarize: bool = False
    """When a conversation outgrows a model's window, summarize earlier turns without asking."""
    private: bool = False
    """Only targets on this machine (embedded, servers on loopback) may be used."""
    local_concurrency: int = 1
    """Suite requests at once to each local provider: one runtime answers one at a time."""
    embedded_threads: int | None = None
    """CPU threads for embedded models; default all cores. Lower it when a local server
    (llama-server, Ollama) shares the machine, or both slow to a crawl."""
    endpoints: dict[str, Endpoint] = Field(default_factory=dict)
    """Named servers, `[endpoints.<name>]` tables in the file."""


def load_settings(path: Path | None = None) -> Settings:
    """Read the config file; a missing file means defaults."""
    path = path or locations.config_path()
    if not path.is_file():
        return Settings()
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from None
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        raise ConfigError(f"{path}: {problems}") from None
