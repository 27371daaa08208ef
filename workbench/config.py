"""Typed settings, loaded once by the app factory or the CLI and passed in."""

from __future__ import annotations

import json
import os
import re
import tomllib
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_core import ErrorDetails

from providers.registry import BUILTIN, TargetError, is_provider_name, parse_target
from workbench import locations
from workbench.suites.validation import StrictModel, problem

MIN_EMBEDDED_CONTEXT = 256
"""Below this, a system prompt, a question and the room kept for an answer (a quarter of
the window, see `context.reply_room`) hardly fit."""


class ConfigError(Exception):
    """The config file cannot be used; the message gives file, line or field."""


_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class Endpoint(StrictModel):
    """A named server: its targets are written `<name>:<model>`."""

    # TOML has real booleans and numbers: "yes" or `true` where another type belongs is a
    # mistake to point at, not a value to convert; infinity and NaN bound nothing.
    model_config = ConfigDict(strict=True, allow_inf_nan=False)

    kind: Literal["openai", "anthropic", "ollama"]
    """Which wire protocol the server speaks."""
    base_url: str
    """Where it listens, e.g. `http://127.0.0.1:1234/v1`."""
    api_key_env: str | None = None
    """The NAME of the environment variable holding the key; never the key itself."""

    @field_validator("api_key_env")
    @classmethod
    def _a_name_not_a_key(cls, value: str | None) -> str | None:
        # A key pasted here would be echoed in "… is not set" errors and stored with them
        # in the history; the message must not repeat it either.
        if value is not None and not _ENV_NAME.fullmatch(value):
            raise ValueError(
                "must be the NAME of an environment variable (like OPENAI_API_KEY) that "
                "holds the key, never the key itself"
            )
        return value

    models: list[str] = Field(default_factory=list)
    """Models to list when the server cannot say which it has."""
    local: bool | None = None
    """Whether its answers are made on this machine: by default, when `base_url` is loopback.
    `false` for a loopback proxy to a cloud (LiteLLM, an SSH tunnel): then private mode keeps
    prompts from it, and its answers are priced, not `local` ($0)."""


class Settings(StrictModel):
    """Everything the config file can set; every field has a safe default.

    An unknown key is refused with the closest known one (a typo), as in suite files."""

    model_config = ConfigDict(strict=True, allow_inf_nan=False)  # as Endpoint's

    targets: list[str] = Field(default_factory=lambda: ["embedded:smollm2"])
    """Targets used when none are given on the command line."""
    connect_timeout_s: float = Field(default=3.0, gt=0)
    """How long to wait for a connection before calling a server unreachable."""
    read_timeout_s: float = Field(default=60.0, gt=0)
    """How long a stream may stay silent before it is called stalled."""
    max_time_s: float = Field(default=600.0, gt=0)
    """How long one answer may stream in all; a server that never stops is stopped here."""
    embedded_context: int = Field(default=8192, ge=MIN_EMBEDDED_CONTEXT)
    """Context window for embedded models (capped at what the model was trained with)."""
    ollama_num_ctx: int | None = Field(default=None, ge=MIN_EMBEDDED_CONTEXT)
    """Context window to run Ollama models with, sent as `num_ctx` with every request (Ollama
    caps it at the model's trained length, and reloads a model loaded with another). Unset,
    Ollama chooses: the model's `num_ctx` parameter, else its server default (4096 tokens below
    24 GiB of VRAM), which the workbench reads from `/api/ps` once the model is loaded."""
    auto_summarize: bool = False
    """When a conversation outgrows a model's window, summarize earlier turns without asking."""
    private: bool = False
    """Only targets on this machine (embedded, servers on loopback) may be used."""
    local_concurrency: int = Field(default=1, ge=1)
    """Suite requests at once to each local provider: one runtime answers one at a time."""
    embedded_threads: int | None = Field(default=None, ge=1)
    """CPU threads for embedded models; default half the cores for generating, all for
    reading the prompt. Lower it when a local server (llama-server, Ollama) shares the
    machine, or both slow to a crawl."""
    endpoints: dict[str, Endpoint] = Field(default_factory=dict)
    """Named servers, `[endpoints.<name>]` tables in the file."""

    @field_validator("embedded_threads")
    @classmethod
    def _no_more_threads_than_cores(cls, threads: int | None) -> int | None:
        # llama.cpp's threads spin while they wait for each other: with more of them than
        # cores, they wait on the ones the system has put aside, and decoding crawls.
        cores = usable_cores()
        if threads is not None and threads > cores:
            raise ValueError(
                f"at most {cores}, the cores this machine has (more threads than cores slow "
                "embedded models down); leave it out for half of them"
            )
        return threads

    @field_validator("endpoints")
    @classmethod
    def _names_targets_can_use(cls, endpoints: dict[str, Endpoint]) -> dict[str, Endpoint]:
        for name in endpoints:
            if name in BUILTIN:
                raise ValueError(f"{name!r} is a built-in provider; give the endpoint another name")
            if not is_provider_name(name):
                raise ValueError(
                    f"{name!r} cannot start a target: use letters, digits, '.', '-' and '_', "
                    "starting with a letter"
                )
        for name, endpoint in endpoints.items():
            if fix := _url_problem(endpoint):
                raise problem("base_url", fix, at=(name, "base_url"))
        return endpoints

    @model_validator(mode="after")
    def _targets_that_can_run(self) -> Settings:
        """Found here, with the line, not by whichever command first uses the targets."""
        known = [*BUILTIN, *self.endpoints]
        for index, spec in enumerate(self.targets):
            try:
                provider = parse_target(spec).provider
            except TargetError as exc:
                raise problem("target", str(exc), at=("targets", index)) from None
            if provider not in known:
                raise problem("target", f"{spec!r}: no provider or endpoint {provider!r}; known: "
                              f"{', '.join(known)}", at=("targets", index))  # fmt: skip
        return self


def usable_cores() -> int:
    """The cores this process may run on (a container or `taskset` may allow fewer than
    the machine has)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _url_problem(endpoint: Endpoint) -> str | None:
    """What is wrong with a base URL that would fail only when a request is sent.

    Checked here rather than on `Endpoint` itself: `run` builds endpoints from promptfoo
    configs, whose URLs are that file's to check. Ollama's own rules leave the scheme out
    (`127.0.0.1:11434`, as `OLLAMA_HOST`); the other kinds' SDKs need it."""
    url = endpoint.base_url.strip()
    if "://" not in url:
        if endpoint.kind == "ollama" and url:
            return None
        example = f"http://{url or '127.0.0.1:8080/v1'}"
        return f"{url!r} needs its scheme: write base_url = {json.dumps(example)}"
    try:
        parts = urlsplit(url)
    except ValueError as exc:  # `http://[::1/v1`: an IPv6 address left open
        return f"{url!r} is not a URL ({exc}): write it like http://[::1]:8080/v1"
    if parts.scheme not in ("http", "https"):
        return f"{url!r}: the scheme must be http:// or https://, not {parts.scheme}://"
    if not parts.hostname:
        return f"{url!r} names no host: write it like http://127.0.0.1:8080/v1"
    try:
        parts.port  # noqa: B018 - reading it is the check
    except ValueError:
        return f"{url!r}: the port must be a number from 0 to 65535"
    return None


def load_settings(path: Path | None = None) -> Settings:
    """Read the config file; a missing file means defaults, unless it was named
    (`path`, or `$WORKBENCH_CONFIG`): then it is a mistake to point out, not to ignore."""
    by_env = path is None and bool(os.environ.get("WORKBENCH_CONFIG"))
    named = path is not None or by_env
    path = path or locations.config_path()
    try:
        exists, is_dir = path.exists(), path.is_dir()
    except OSError as exc:  # a folder on the way this user may not enter
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from None
    if not exists or is_dir:  # /dev/null is read: an empty config
        if named:
            what = "is a directory" if exists else "does not exist"
            raise ConfigError(f"{path}: {what}{' (WORKBENCH_CONFIG names it)' if by_env else ''}")
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
        raise ConfigError(_validation_problem(path, text, exc)) from None


def _validation_problem(path: Path, text: str, exc: ValidationError) -> str:
    """`file:LINE: key.path: message`, for the first problem; the line is the key's."""
    err: ErrorDetails = exc.errors()[0]
    # A problem raised above the key it is about says where below it (`problem(at=...)`).
    loc = tuple(str(p) for p in (*err["loc"], *(err.get("ctx") or {}).get("at", ())))
    at = _key_line(text, loc)
    where = f"{path}:{at}" if at else str(path)
    more = f" (and {len(exc.errors()) - 1} more)" if len(exc.errors()) > 1 else ""
    message = _TYPE_PROBLEMS.get(err["type"]) or err["msg"].removeprefix("Value error, ")
    return f"{where}: {'.'.join(loc)}: {message}{more}"


_TYPE_PROBLEMS = {
    "bool_type": "must be true or false, without quotes",
    "float_type": "must be a number, like 3 or 2.5",
    "int_type": "must be a whole number, like 4",
    "int_from_float": "must be a whole number",
    "finite_number": "must be a finite number, not inf or nan",
    "string_type": "must be text, in quotes",
    "list_type": 'must be a list, like ["embedded:smollm2"]',
    "dict_type": "must be a table",
}
"""Pydantic's words for a value of the wrong type, as a TOML file's writer would fix it."""


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
        elif best is None and here[: len(loc)] == loc:  # a table within it: `[endpoints.x]`
            best = (0, number)
    return best[1] if best else None
