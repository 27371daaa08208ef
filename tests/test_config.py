"""The config file: what it may set, and how a mistake in it is pointed out."""

from __future__ import annotations

from pathlib import Path

import pytest

from workbench.config import ConfigError, load_settings


def _config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text)
    return path


def test_a_missing_file_means_defaults_unless_it_was_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("WORKBENCH_CONFIG", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    assert load_settings().targets == ["embedded:smollm2"]
    # Named and missing, it is a typo to point out: the user thinks the file is in use.
    monkeypatch.setenv("WORKBENCH_CONFIG", str(tmp_path / "confg.toml"))
    with pytest.raises(ConfigError, match=r"confg\.toml: does not exist \(WORKBENCH_CONFIG"):
        load_settings()
    monkeypatch.setenv("WORKBENCH_CONFIG", str(tmp_path))
    with pytest.raises(ConfigError, match="is a directory"):
        load_settings()
    monkeypatch.setenv("WORKBENCH_CONFIG", "/dev/null")  # the usual way to say "none"
    assert load_settings().targets == ["embedded:smollm2"]


def test_a_key_in_place_of_its_variable_name_is_refused_and_never_repeated(
    tmp_path: Path,
) -> None:
    secret = "sk-abc123secret"
    path = _config(
        tmp_path,
        f'[endpoints.corp]\nkind = "openai"\nbase_url = "http://h/v1"\napi_key_env = "{secret}"\n',
    )
    with pytest.raises(ConfigError) as raised:
        load_settings(path)
    message = str(raised.value)
    assert message.startswith(f"{path}:4: endpoints.corp.api_key_env: must be the NAME")
    assert secret not in message
    ok = _config(
        tmp_path,
        '[endpoints.corp]\nkind = "openai"\nbase_url = "http://h/v1"\napi_key_env = "CORP_KEY"\n',
    )
    assert load_settings(ok).endpoints["corp"].api_key_env == "CORP_KEY"


@pytest.mark.parametrize(
    ("name", "fragment"),
    [
        ("embedded", "'embedded' is a built-in provider"),
        ('"a b"', "'a b' cannot start a target"),
        ('"2x"', "'2x' cannot start a target"),
    ],
)
def test_an_endpoint_needs_a_name_a_target_can_use(
    tmp_path: Path, name: str, fragment: str
) -> None:
    endpoint = f'[endpoints.{name}]\nkind = "openai"\nbase_url = "http://h"\n'
    path = _config(tmp_path, f"private = false\n{endpoint}")
    with pytest.raises(ConfigError, match=f"{path}:2: endpoints: {fragment}"):
        load_settings(path)


@pytest.mark.parametrize(
    ("setting", "fragment"),
    [
        ("read_timeout_s = -1", "read_timeout_s: Input should be greater than 0"),
        ("connect_timeout_s = 0", "connect_timeout_s: Input should be greater than 0"),
        ("embedded_context = -5", "embedded_context: Input should be greater than or equal"),
        ("local_concurrency = 0", "local_concurrency: Input should be greater than or equal"),
        ("embedded_threads = 0", "embedded_threads: Input should be greater than or equal"),
    ],
)
def test_settings_out_of_range_are_pointed_at(tmp_path: Path, setting: str, fragment: str) -> None:
    path = _config(tmp_path, f"private = false\n{setting}\n")
    with pytest.raises(ConfigError, match=f"{path}:2: {fragment}"):
        load_settings(path)
