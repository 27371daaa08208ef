"""Targets (`provider:model@key=value`), the providers behind them, and which are available."""

from __future__ import annotations

import asyncio
import ipaddress
import math
import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, TypeVar
from urllib.parse import urlsplit

from providers.base import GenParams, ModelInfo, Provider, ProviderError
from providers.errors import shown_url

BUILTIN = ("embedded", "ollama", "openai", "anthropic")
_OVERRIDE_KEYS = ("temperature", "top_p", "max_tokens", "seed", "system", "label")
_N = TypeVar("_N", int, float)
SETTING_RANGES: dict[str, tuple[Callable[[float], bool], str]] = {
    "temperature": (lambda n: n >= 0, "at least 0"),
    "top_p": (lambda n: 0 < n <= 1, "above 0 and at most 1"),
    "max_tokens": (lambda n: n >= 1, "at least 1"),
    # llama.cpp (embedded, llama-server, Ollama) takes 32 bits and reads 0xFFFFFFFF, -1
    # included, as "random": one seed sent to every target must mean the same to each.
    "seed": (lambda n: 0 <= n < 2**32 - 1, "from 0 to 4294967294"),
}
"""What a sampling setting may be, and how to say so. Beyond these, providers disagree:
one clamps, one runs without a limit, one refuses."""
# At the end of the model, as the known settings are split off first: `m@tempreature=1`.
_UNKNOWN_SETTING = re.compile(r"@[A-Za-z_]+=[^\s@\[\]]*$")
_KEYS = "|".join(_OVERRIDE_KEYS)
# A known setting with no "=value", where settings stand: `m@temperature`, `m@seed,top_p=1`.
_BARE_SETTING = re.compile(rf"@({_KEYS})(?=,|$)")
_NAME_TEXT = r"[A-Za-z][A-Za-z0-9_.-]*"
_NAME = re.compile(rf"^{_NAME_TEXT}$")


class TargetError(ValueError):
    """A target that cannot be parsed or names no known provider."""


@dataclass(frozen=True, slots=True)
class Target:
    """One model under one set of settings: what a pane or a `-t` names."""

    provider: str
    model: str
    params: GenParams = field(default_factory=GenParams)
    system: str | None = None
    label: str | None = None

    @property
    def spec(self) -> str:
        """The target written back in the form it was parsed from."""
        overrides = [
            f"{key}={_number_text(value)}" if isinstance(value, float) else f"{key}={value}"
            for key, value in (
                ("temperature", self.params.temperature),
                ("top_p", self.params.top_p),
                ("max_tokens", self.params.max_tokens),
                ("seed", self.params.seed),
                ("system", self.system),
                ("label", self.label),
            )
            if value is not None
        ]
        base = f"{self.provider}:{self.model}"
        return f"{base}@{','.join(overrides)}" if overrides else base

    @property
    def name(self) -> str:
        """What to call it on screen: the label, else the spec."""
        return self.label or self.spec


def is_provider_name(name: str) -> bool:
    """Whether `name` can start a target (`name:model`)."""
    return bool(_NAME.fullmatch(name))


def split_targets(text: str) -> list[str]:
    """Targets written one after another, comma-separated (a form field): a comma starts
    the next target only where `provider:` follows it, so one target's settings
    (`@temperature=0,max_tokens=8`) stay with it."""
    parts = re.split(rf",[\s,]*(?={_NAME_TEXT}:|$)", text)
    return [part.strip() for part in parts if part.strip()]


def parse_target(text: str) -> Target:
    """`provider:model[@key=value,...]`, split on the first colon only.

    `ollama:llama3.2:1b` is provider `ollama`, model `llama3.2:1b`.
    """
    text = text.strip()
    base, overrides = split_settings(text)
    provider, sep, model = base.partition(":")
    if not sep or not provider or not model:
        raise TargetError(
            f"target {text!r} is not provider:model (e.g. embedded:smollm2, openai:gpt-4o-mini)"
        )
    if not is_provider_name(provider):
        raise TargetError(f"target {text!r}: {provider!r} is not a provider name")
    # Model names may hold "@", but not a setting: `smollm2@tempreature=1` is a typo, and
    # `smollm2@` or `smollm2@temperature` a setting left unfinished, which the provider
    # would otherwise report as a model it does not have.
    if model.endswith("@"):
        raise TargetError(
            f"target {text!r}: {model!r} ends with '@'; write @key=value"
            f" ({', '.join(_OVERRIDE_KEYS)}) or drop the '@'"
        )
    if bare := _BARE_SETTING.search(model):
        key = bare.group(1)
        raise TargetError(f"target {text!r}: {key} has no value; write {key}=VALUE")
    if unknown := _UNKNOWN_SETTING.search(model):
        overrides = [model[unknown.start() + 1 :], *overrides]
    values: dict[str, str] = {}
    for item in overrides:
        key, eq, value = item.partition("=")
        key = key.strip()
        if not eq and key in _OVERRIDE_KEYS:
            raise TargetError(f"target {text!r}: {key} has no value; write {key}=VALUE")
        if not eq or key not in _OVERRIDE_KEYS:
            raise TargetError(
                f"target {text!r}: unknown setting {item!r}; use {', '.join(_OVERRIDE_KEYS)}"
            )
        if key in values:
            raise TargetError(f"target {text!r}: {key} is set twice")
        values[key] = value.strip()
    try:
        params = GenParams(
            temperature=_number(values, "temperature", float),
            top_p=_number(values, "top_p", float),
            max_tokens=_number(values, "max_tokens", int),
            seed=_number(values, "seed", int),
        )
    except ValueError as exc:
        raise TargetError(f"target {text!r}: {exc}") from None
    return Target(provider, model, params, values.get("system"), values.get("label"))


def split_settings(text: str) -> tuple[str, list[str]]:
    """A target spec's `provider:model` and its `key=value` settings, in order."""
    # The last "@" followed by key=value starts the settings; model names may contain "@".
    match = re.search(rf"@(?=(?:{_KEYS})=)", text)
    if not match:
        return text, []
    base, rest = text[: match.start()], text[match.end() :]
    # Split on commas that start another setting, so a system prompt may contain commas; a
    # key with no "=" (`,seed` at the end) splits too, to be refused rather than taken in.
    return base, [part for part in re.split(rf",(?=(?:{_KEYS})(?:=|,|$))", rest) if part]


def _number(values: Mapping[str, str], key: str, kind: type[_N]) -> _N | None:
    if key not in values:
        return None
    try:
        number = kind(values[key])
    except ValueError:
        raise ValueError(f"{key} must be a number, not {values[key]!r}") from None
    if not math.isfinite(number):
        raise ValueError(f"{key} must be a finite number, not {values[key]!r}")
    if key in SETTING_RANGES and not SETTING_RANGES[key][0](number):
        raise ValueError(f"{key} must be {SETTING_RANGES[key][1]}, not {values[key]!r}")
    return number


def _number_text(value: float) -> str:
    """`0.7`, `1`: short, yet parsing it back gives the same float."""
    short = f"{value:g}"
    return short if float(short) == value else repr(value)


def is_loopback_url(url: str | None) -> bool:
    """True for a URL on this machine (127.0.0.0/8, ::1, localhost)."""
    if not url:
        return False
    host = urlsplit(url if "://" in url else f"http://{url}").hostname or ""
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True, slots=True)
class EndpointSpec:
    """A named server from the config file; its targets are `<name>:<model>`."""

    name: str
    kind: Literal["openai", "anthropic", "ollama"]
    base_url: str
    api_key_env: str | None = None
    models: tuple[str, ...] = ()
    local: bool | None = None
    """Set in the config; None: local when `base_url` is loopback."""


@dataclass(frozen=True, slots=True)
class Availability:
    provider: str
    kind: str
    available: bool
    is_local: bool
    reason: str = ""
    """Why it is unavailable, or where it is."""


class Registry:
    """Creates each provider once, on first use, so start-up pays only for what is used."""

    def __init__(
        self,
        *,
        endpoints: Iterable[EndpointSpec] = (),
        env: Mapping[str, str] | None = None,
        connect_timeout_s: float = 3.0,
        read_timeout_s: float = 60.0,
        embedded_context: int = 8192,
        embedded_threads: int | None = None,
        ollama_num_ctx: int | None = None,
        models_dir: Path | None = None,
        private: bool = False,
    ) -> None:
        self._env = dict(os.environ if env is None else env)
        self._endpoints = {e.name: e for e in endpoints}
        clash = set(self._endpoints) & set(BUILTIN)
        if clash:
            raise TargetError(f"endpoint names {sorted(clash)} are taken by built-in providers")
        self._connect = connect_timeout_s
        self._read = read_timeout_s
        self._embedded_context = embedded_context
        self._embedded_threads = embedded_threads
        self._ollama_num_ctx = ollama_num_ctx
        self._models_dir = models_dir
        self._providers: dict[str, Provider] = {}
        self.private = private
        """Only loopback targets may be used: nothing leaves this machine."""

    @property
    def names(self) -> list[str]:
        return [*BUILTIN, *self._endpoints]

    def kind(self, name: str) -> str:
        if name in BUILTIN:
            return name
        if name in self._endpoints:
            return self._endpoints[name].kind
        raise TargetError(f"unknown provider {name!r}; known: {', '.join(self.names)}")

    def is_local(self, name: str) -> bool:
        kind = self.kind(name)
        if kind == "embedded":
            return True
        endpoint = self._endpoints.get(name)
        if endpoint is not None and endpoint.local is not None:
            return endpoint.local
        return is_loopback_url(self.base_url(name))

    def base_url(self, name: str) -> str | None:
        """Where the provider's server is; None for the in-process embedded runtime."""
        if name in self._endpoints:
            return self._endpoints[name].base_url
        if name == "ollama":
            from providers.ollama import normalize_host

            return normalize_host(self._env.get("OLLAMA_HOST"))
        if name == "openai":
            return self._env.get("OPENAI_BASE_URL") or "https://api.openai.com/v1"
        if name == "anthropic":
            return self._env.get("ANTHROPIC_BASE_URL") or "https://api.anthropic.com"
        return None

    def configured_models(self, name: str) -> tuple[str, ...]:
        """The models the config file lists for an endpoint; () where it lists none."""
        endpoint = self._endpoints.get(name)
        return endpoint.models if endpoint else ()

    def shown_url(self, name: str) -> str | None:
        """`base_url` as it may be shown or stored: a password in it masked."""
        url = self.base_url(name)
        return shown_url(url) if url else None

    def resolve(self, target: str | Target) -> tuple[Target, Provider]:
        parsed = parse_target(target) if isinstance(target, str) else target
        return parsed, self.get(parsed.provider)

    def get(self, name: str) -> Provider:
        """The provider; in private mode, refused unless it runs on this machine."""
        if self.private and not self.is_local(name):
            raise ProviderError(
                "auth",
                f"private mode: {name} sends prompts off this machine "
                f"({self.shown_url(name)}); only local targets may be used",
            )
        if name not in self._providers:
            self._providers[name] = self._create(name)
        return self._providers[name]

    def _create(self, name: str) -> Provider:
        kind = self.kind(name)
        timeouts = {"connect_timeout_s": self._connect, "read_timeout_s": self._read}
        local = self.is_local(name)
        endpoint = self._endpoints.get(name)
        key_env = self._key_env(name)
        models = endpoint.models if endpoint else ()
        key = self._env.get(key_env) if key_env else None
        if kind == "embedded":
            from providers.embedded import EmbeddedProvider

            return EmbeddedProvider(
                models_dir=self._models_dir,
                context_length=self._embedded_context,
                n_threads=self._embedded_threads,
            )
        if kind == "ollama":
            from providers.ollama import OllamaProvider

            return OllamaProvider(
                name, host=self.base_url(name), is_local=local, num_ctx=self._ollama_num_ctx,
                **timeouts,
            )  # fmt: skip
        if kind == "openai":
            from providers.openai import OpenAIProvider

            base_url = endpoint.base_url if endpoint else self._env.get("OPENAI_BASE_URL")
            return OpenAIProvider(
                name, base_url=base_url, api_key=key, api_key_env=key_env,
                is_local=local, models=models, **timeouts,
            )  # fmt: skip
        from providers.anthropic import AnthropicProvider

        base_url = endpoint.base_url if endpoint else self._env.get("ANTHROPIC_BASE_URL")
        return AnthropicProvider(
            name, base_url=base_url, api_key=key, api_key_env=key_env,
            is_local=local, models=models, **timeouts,
        )  # fmt: skip

    async def availability(self, name: str) -> Availability:
        """Whether targets of this provider can be used now, without sending a prompt."""
        kind = self.kind(name)
        local = self.is_local(name)
        where = self.shown_url(name) or "in this process"
        if kind == "embedded":
            return Availability(name, kind, True, True, "in this process")
        if self.private and not local:
            return Availability(name, kind, False, local, "private mode: cloud targets are off")
        if kind == "ollama":
            from providers.ollama import OllamaProvider

            provider = self.get(name)
            assert isinstance(provider, OllamaProvider)
            try:
                await provider.version()
            except ProviderError as exc:
                return Availability(name, kind, False, local, exc.message)
            return Availability(name, kind, True, local, where)
        if missing := self.missing_key(name):
            return Availability(name, kind, False, local, f"{missing} is not set")
        return Availability(name, kind, True, local, where)

    def missing_key(self, name: str) -> str | None:
        """The variable that should hold this OpenAI- or Anthropic-protocol provider's API
        key when it is not set (a local endpoint may need none), else None."""
        if self.kind(name) not in ("openai", "anthropic"):
            return None
        key_env = self._key_env(name)
        return key_env if key_env and not self._env.get(key_env) else None

    def _key_env(self, name: str) -> str | None:
        """The variable a provider's API key is read from: an endpoint's own (None if it
        needs none), else `<NAME>_API_KEY`."""
        endpoint = self._endpoints.get(name)
        return endpoint.api_key_env if endpoint else f"{name.upper()}_API_KEY"

    async def available(self) -> list[Availability]:
        return list(await asyncio.gather(*(self.availability(n) for n in self.names)))

    async def list_models(self, name: str) -> list[ModelInfo]:
        return await self.get(name).list_models()

    async def aclose(self) -> None:
        providers, self._providers = list(self._providers.values()), {}
        for provider in providers:
            await provider.aclose()
