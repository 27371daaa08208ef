"""Target parsing (DESIGN §2) and provider availability from the environment."""

from __future__ import annotations

import pytest

from providers.base import GenParams
from providers.ollama import normalize_host
from providers.registry import (
    EndpointSpec,
    Registry,
    Target,
    TargetError,
    is_loopback_url,
    parse_target,
    split_targets,
)


def test_splits_on_the_first_colon_only() -> None:
    t = parse_target("ollama:llama3.2:1b")
    assert (t.provider, t.model) == ("ollama", "llama3.2:1b")


def test_overrides_and_label() -> None:
    t = parse_target("embedded:smollm2@temperature=1.2,seed=7,max_tokens=64,label=hot")
    assert t.params == GenParams(temperature=1.2, seed=7, max_tokens=64)
    assert t.label == "hot"
    assert t.name == "hot"
    assert parse_target(t.spec) == t


def test_system_prompt_may_contain_commas() -> None:
    t = parse_target("openai:gpt-4o-mini@system=Be brief, be kind,temperature=0")
    assert t.system == "Be brief, be kind"
    assert t.params.temperature == 0


def test_model_path_with_at_sign_is_kept() -> None:
    t = parse_target("embedded:/models/me@work/model.gguf")
    assert t.model == "/models/me@work/model.gguf"


def test_settings_at_the_edges_of_their_ranges_are_kept() -> None:
    t = parse_target("embedded:smollm2@temperature=0,top_p=1,max_tokens=1,seed=0")
    assert (t.params.temperature, t.params.top_p, t.params.max_tokens, t.params.seed) == (
        0.0, 1.0, 1, 0,
    )  # fmt: skip
    assert parse_target("embedded:smollm2@seed=4294967294").params.seed == 2**32 - 2


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("smollm2", "not provider:model"),
        (":smollm2", "not provider:model"),
        ("embedded:", "not provider:model"),
        ("embedded:smollm2@temperature=hot", "temperature must be a number"),
        ("embedded:smollm2@temperature=1,colour=red", "colour"),
        # Out of range, each provider did something else: ran without a limit, clamped…
        ("embedded:smollm2@max_tokens=0", "max_tokens must be at least 1"),
        ("embedded:smollm2@max_tokens=-1", "max_tokens must be at least 1"),
        ("embedded:smollm2@temperature=-0.5", "temperature must be at least 0"),
        ("embedded:smollm2@top_p=0", "top_p must be above 0 and at most 1"),
        ("embedded:smollm2@top_p=5", "top_p must be above 0 and at most 1"),
        ("embedded:smollm2@temperature=1,temperature=2", "temperature is set twice"),
        # llama.cpp reads 0xFFFFFFFF (-1 too) as "random", and wraps what is past 32 bits.
        ("embedded:smollm2@seed=-1", "seed must be from 0 to 4294967294, not '-1'"),
        ("embedded:smollm2@seed=4294967295", "seed must be from 0 to 4294967294"),
        # Not a model named "smollm2@tempreature=1", which the provider could not find.
        ("embedded:smollm2@tempreature=1", "unknown setting 'tempreature=1'"),
        ("embedded:smollm2@tempreature=1@max_tokens=3", "unknown setting 'tempreature=1'"),
        # Not a model named "smollm2@" or "smollm2@temperature": a setting left unfinished.
        ("embedded:smollm2@", "'smollm2@' ends with '@'; write @key=value"),
        ("embedded:m@@seed=1", "'m@' ends with '@'; write @key=value"),
        ("embedded:smollm2@temperature", "temperature has no value; write temperature=VALUE"),
        ("embedded:smollm2@temperature,max_tokens=8", "temperature has no value"),
        ("embedded:smollm2@max_tokens=8,seed", "seed has no value"),
    ],
)
def test_malformed_targets_say_what_is_wrong(text: str, fragment: str) -> None:
    with pytest.raises(TargetError, match=fragment):
        parse_target(text)


def test_unknown_provider_lists_the_known_ones() -> None:
    registry = Registry(env={})
    with pytest.raises(TargetError, match=r"unknown provider 'nope'.*embedded"):
        registry.kind("nope")


def test_named_endpoint_is_local_when_on_loopback() -> None:
    registry = Registry(
        endpoints=[
            EndpointSpec("lmstudio", "openai", "http://127.0.0.1:1234/v1"),
            EndpointSpec("router", "openai", "https://openrouter.ai/api/v1", "OPENROUTER_KEY"),
        ],
        env={},
    )
    assert registry.kind("lmstudio") == "openai"
    assert registry.is_local("lmstudio")
    assert not registry.is_local("router")
    assert registry.is_local("embedded")
    assert not registry.is_local("openai")


def test_endpoint_cannot_shadow_a_builtin() -> None:
    with pytest.raises(TargetError, match="taken"):
        Registry(endpoints=[EndpointSpec("openai", "openai", "http://127.0.0.1:1/v1")], env={})


async def test_missing_key_makes_cloud_unavailable_and_names_the_variable() -> None:
    registry = Registry(env={"OLLAMA_HOST": "127.0.0.1:9"})
    by_name = {a.provider: a for a in await registry.available()}
    assert by_name["embedded"].available
    assert not by_name["openai"].available
    assert "OPENAI_API_KEY" in by_name["openai"].reason
    assert "ANTHROPIC_API_KEY" in by_name["anthropic"].reason
    assert not by_name["ollama"].available
    assert "ollama serve" in by_name["ollama"].reason


async def test_key_set_makes_cloud_available() -> None:
    registry = Registry(env={"OPENAI_API_KEY": "sk-x", "ANTHROPIC_API_KEY": "sk-y"})
    assert (await registry.availability("openai")).available
    assert (await registry.availability("anthropic")).available


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, "http://127.0.0.1:11434"),
        ("", "http://127.0.0.1:11434"),
        ("0.0.0.0", "http://127.0.0.1:11434"),
        ("example.com:8080", "http://example.com:8080"),
        ("https://ollama.example.com", "https://ollama.example.com:443"),
        ("http://[::1]:5000", "http://[::1]:5000"),
    ],
)
def test_ollama_host_is_read_as_ollama_reads_it(value: str | None, expected: str) -> None:
    assert normalize_host(value) == expected


@pytest.mark.parametrize(
    ("url", "local"),
    [
        ("http://127.0.0.1:8080/v1", True),
        ("http://127.5.5.5", True),
        ("http://localhost:1234", True),
        ("http://[::1]:11434", True),
        ("https://api.openai.com/v1", False),
        ("http://10.0.0.5:8000", False),
        (None, False),
    ],
)
def test_loopback_detection(url: str | None, local: bool) -> None:
    assert is_loopback_url(url) is local


def test_target_spec_round_trips_without_overrides() -> None:
    assert Target("openai", "gpt-4o-mini").spec == "openai:gpt-4o-mini"


def test_a_list_of_targets_splits_where_the_next_target_starts() -> None:
    # A form field of targets: a comma inside one target's settings is not between targets.
    written = (
        "embedded:smollm2@temperature=0,max_tokens=8, ollama:llama3.2:1b,,"
        "openai:gpt-4o@system=Hi, you,"
    )
    assert split_targets(written) == [
        "embedded:smollm2@temperature=0,max_tokens=8",
        "ollama:llama3.2:1b",
        "openai:gpt-4o@system=Hi, you",
    ]
    assert split_targets(" , ") == [] and split_targets("") == []
