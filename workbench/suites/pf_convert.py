"""promptfoo providers and assertions, one at a time, as workbench targets and assertions.

`openai:chat:gpt-4o-mini` -> `openai:gpt-4o-mini`, `anthropic:messages:claude-…` ->
`anthropic:claude-…`, `ollama:chat:llama3.2` -> `ollama:llama3.2`; an `openai:` provider with
`config.apiBaseUrl` becomes a target on a generated OpenAI-compatible endpoint.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import yaml

from providers.registry import BUILTIN, is_loopback_url
from workbench.suites import json_schema
from workbench.suites.template import TemplateError, render
from workbench.suites.validation import Loc

_SAME = {"contains": "contains", "icontains": "icontains", "equals": "equals",
         "starts-with": "starts_with", "regex": "regex"}  # fmt: skip
_LISTS = {"contains-any": "contains_any", "icontains-any": "icontains_any",
          "contains-all": "contains_all", "icontains-all": "icontains_all"}  # fmt: skip
_LIMITS = ("latency", "cost")
_PROVIDERS = ("openai", "anthropic", "ollama")
_CHAT_APIS = {"chat", "messages", "responses"}
_OTHER_APIS = {"completion", "embedding", "embeddings", "assistant", "image", "realtime",
               "moderation", "transcription", "tts", "generate"}  # fmt: skip
_SETTINGS = {
    "temperature": "temperature",
    "top_p": "top_p",
    "max_tokens": "max_tokens",
    "num_predict": "max_tokens",  # ollama's name
    "seed": "seed",
}


class ConvertError(ValueError):
    """Something promptfoo allows that cannot run here; `at` is where, below the item."""

    def __init__(self, message: str, at: Loc = ()) -> None:
        super().__init__(message)
        self.at = at


class EndpointNames:
    """Names for the OpenAI-compatible servers a config points at, one per base URL."""

    def __init__(self) -> None:
        self.urls: dict[str, str] = {}

    def name_for(self, base_url: str) -> str:
        for name, url in self.urls.items():
            if url == base_url:
                return name
        parts = urlsplit(base_url if "://" in base_url else f"http://{base_url}")
        stem = "local" if is_loopback_url(base_url) else (parts.hostname or "endpoint")
        if parts.port:
            stem += f"-{parts.port}"
        stem = re.sub(r"[^A-Za-z0-9_.-]", "-", stem)
        if not stem[0].isalpha():
            stem = f"endpoint-{stem}"
        name, n = stem, 1
        while name in self.urls or name in BUILTIN:
            n += 1
            name = f"{stem}-{n}"
        self.urls[name] = base_url
        return name


def convert_provider(item: Any, endpoints: EndpointNames) -> tuple[str, list[str]]:
    """The target spec for one `providers` entry, and the config keys it ignored.

    Raises ConvertError (with a message for the user) for providers it cannot run.
    """
    config: Any = {}
    label: Any = None
    if isinstance(item, Mapping) and "id" in item:
        provider_id, config, label = item["id"], item.get("config") or {}, item.get("label")
    elif isinstance(item, Mapping) and len(item) == 1:  # {"openai:gpt-4o-mini": {config: …}}
        ((provider_id, options),) = item.items()
        options = options if isinstance(options, Mapping) else {}
        config, label = options.get("config") or {}, options.get("label")
    else:
        provider_id = item
    if not isinstance(provider_id, str):
        raise ConvertError("expected a provider id such as openai:gpt-4o-mini, or {id, config}")
    if not isinstance(config, Mapping):
        raise ConvertError("provider config must be a mapping")
    provider, model = _provider_and_model(provider_id)
    base_url = config.get("apiBaseUrl")
    if base_url is not None:
        if provider != "openai" or not isinstance(base_url, str):
            raise ConvertError(
                f"{provider_id!r}: apiBaseUrl is read for OpenAI-compatible (openai:) providers "
                "only; name other servers in the workbench config's [endpoints] instead"
            )
        provider = endpoints.name_for(base_url)
    overrides = [f"{_SETTINGS[k]}={v}" for k, v in config.items() if k in _SETTINGS]
    if label is not None:
        overrides.append(f"label={label}")
    ignored = [str(k) for k in config if k not in _SETTINGS and k != "apiBaseUrl"]
    spec = f"{provider}:{model}"
    return (f"{spec}@{','.join(overrides)}" if overrides else spec), ignored


def _provider_and_model(provider_id: str) -> tuple[str, str]:
    provider, _, rest = provider_id.partition(":")
    if provider not in _PROVIDERS:
        raise ConvertError(
            f"provider {provider_id!r} is not supported; use openai:, anthropic:, ollama:, or "
            "an openai: provider with config.apiBaseUrl for any OpenAI-compatible server"
        )
    api, sep, model = rest.partition(":")
    if sep and api in _OTHER_APIS:
        raise ConvertError(f"provider {provider_id!r}: only chat models are supported")
    if sep and api in _CHAT_APIS:
        rest = model
    if not rest:
        raise ConvertError(f"provider {provider_id!r} names no model")
    return provider, rest


class Unsupported(Exception):
    """A promptfoo check that cannot run here; `str()` says which and why."""


def convert_assertion(item: Any, variables: Mapping[str, Any]) -> dict[str, Any]:
    """Our assertion for one promptfoo assertion, checked as promptfoo checks it.

    Raises Unsupported for a check that cannot run here, ConvertError for one that is wrong.
    A `not-` prefix negates any text or JSON check, as in promptfoo.
    """
    if not isinstance(item, Mapping) or not isinstance(item.get("type"), str):
        raise ConvertError("an assertion needs a `type`")
    kind, value = item["type"], item.get("value")
    if "transform" in item:  # the check would see other text than promptfoo's does
        raise Unsupported(f"assertion {kind!r} with a transform")
    if kind == "not-contains":
        return {"type": "not_contains", "value": _rendered(value, variables)}
    if kind.startswith("not-") and kind not in _LIMITS:
        base = dict(item, type=kind.removeprefix("not-"))
        if base["type"] in _LIMITS:
            raise Unsupported(f"assertion {kind!r}")
        try:
            return {"type": "not", "value": convert_assertion(base, variables)}
        except Unsupported:
            raise Unsupported(f"assertion {kind!r}") from None
    if kind in _SAME:
        if isinstance(value, Mapping | list):
            raise Unsupported(f"assertion {kind!r} with a JSON value")
        exact = {"exact": True} if kind in ("equals", "starts-with") else {}
        return {"type": _SAME[kind], "value": _rendered(value, variables), **exact}
    if kind in _LISTS:
        return {"type": _LISTS[kind], "value": _values(kind, value, variables)}
    if kind in ("is-json", "contains-json"):
        return _json(kind, value)
    if kind in _LIMITS:
        threshold = item.get("threshold")
        if not isinstance(threshold, int | float) or isinstance(threshold, bool):
            raise ConvertError(f"{kind} needs a numeric threshold")
        if kind == "latency":
            return {"type": "max_latency_s", "value": threshold / 1000}
        return {"type": "max_cost_usd", "value": threshold}
    raise Unsupported(f"assertion {kind!r}")


def _values(kind: str, value: Any, variables: Mapping[str, Any]) -> list[Any]:
    """A list, or promptfoo's comma-separated string (`"a, b", "c, d"`) as one."""
    if isinstance(value, str):
        value = _comma_separated(_rendered(value, variables))
    if not isinstance(value, list) or not value:
        raise ConvertError(f"{kind} needs a list of values", at=("value",))
    return [_rendered(v, variables) for v in value]


def _comma_separated(text: str) -> list[str]:
    """promptfoo's parseCommaSeparatedValues: fields split on commas, trimmed; a field in
    double quotes may hold commas, with `\\"` or `""` for a quote."""
    fields: list[str] = []
    i, n = 0, len(text)
    while True:
        while i < n and (text[i].isspace() or text[i] == ","):
            i += 1
        if i >= n:
            return fields
        if text[i] != '"':
            end = text.find(",", i)
            end = n if end < 0 else end
            fields.append(text[i:end].strip())
            i = end
            continue
        i, field = i + 1, ""
        while True:
            if i >= n:
                raise ConvertError("unterminated quoted value", at=("value",))
            if text[i] == "\\" and i + 1 < n and text[i + 1] in '"\\':
                field, i = field + text[i + 1], i + 2
            elif text[i] == '"' and i + 1 < n and text[i + 1] == '"':
                field, i = field + '"', i + 2
            elif text[i] == '"':
                i += 1
                break
            else:
                field, i = field + text[i], i + 1
        fields.append(field)
        while i < n and text[i].isspace():
            i += 1
        if i < n and text[i] != ",":
            raise ConvertError("expected a comma after a quoted value", at=("value",))


def _json(kind: str, value: Any) -> dict[str, Any]:
    """is-json: the whole answer is JSON; contains-json: some JSON in it. A schema given as
    the value is checked when it uses only what `json_schema` knows."""
    schema = value
    if isinstance(value, str) and value.startswith("file://"):
        raise Unsupported(f"{kind} with a schema file")
    if isinstance(value, str):
        try:
            schema = yaml.safe_load(value) if value.strip() else None
        except yaml.YAMLError:
            raise ConvertError(f"{kind}: the schema is not YAML or JSON", at=("value",)) from None
    if schema is not None and (unknown := json_schema.unsupported(schema)):
        raise Unsupported(f"{kind} schema with {', '.join(unknown)}")
    where = {"anywhere": True} if kind == "contains-json" else {"exact": True}
    return {"type": "json", **where, "json_schema": schema}


def _rendered(value: Any, variables: Mapping[str, Any]) -> Any:
    """promptfoo renders `{{vars}}` in assertion values too."""
    if not isinstance(value, str):
        return value
    try:
        return render(value, variables)
    except TemplateError as exc:
        raise ConvertError(exc.message, at=("value",)) from None
