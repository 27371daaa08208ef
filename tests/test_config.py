"""The config file: what it may set, and how a mistake in it is pointed out."""

from __future__ import annotations

import os
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


@pytest.mark.parametrize(
    ("base_url", "fragment"),
    [
        (
            "127.0.0.1:18931/v1",
            "'127.0.0.1:18931/v1' needs its scheme: write base_url = \"http://127.0.0.1:18931/v1\"",
        ),
        ("ftp://h/v1", "the scheme must be http:// or https://, not ftp://"),
        ("http:///v1", "names no host"),
        ("http://h:99999/v1", "the port must be a number from 0 to 65535"),
        ("http://[::1/v1", "is not a URL (Invalid IPv6 URL): write it like http://[::1]:8080/v1"),
    ],
)
def test_a_base_url_that_cannot_work_is_refused_up_front(
    tmp_path: Path, base_url: str, fragment: str
) -> None:
    """Not at the first request, with an HTTP library's words: here, naming file, line,
    endpoint and the fix."""
    path = _config(
        tmp_path, f'[endpoints.x]\nkind = "openai"\nbase_url = "{base_url}"\nmodels = ["m"]\n'
    )
    with pytest.raises(ConfigError) as raised:
        load_settings(path)
    message = str(raised.value)
    assert message.startswith(f"{path}:3: endpoints.x.base_url: ") and fragment in message


def test_an_ollama_base_url_may_leave_out_the_scheme_as_ollama_host_does(tmp_path: Path) -> None:
    path = _config(tmp_path, '[endpoints.box]\nkind = "ollama"\nbase_url = "127.0.0.1:11434"\n')
    assert load_settings(path).endpoints["box"].base_url == "127.0.0.1:11434"


@pytest.mark.parametrize(
    ("text", "said"),
    [
        (
            'target = ["embedded:smollm2"]\n',
            "1: target: unknown key 'target' (did you mean 'targets'?); known keys: targets, ",
        ),
        (
            '[endpoints.x]\nkind = "openai"\nbase_url = "http://h/v1"\nmodel = ["m"]\n',
            "4: endpoints.x.model: unknown key 'model' (did you mean 'models'?); known keys: "
            "kind, base_url, api_key_env, models",
        ),
    ],
)
def test_a_mistyped_key_is_pointed_at_with_the_key_meant(
    tmp_path: Path, text: str, said: str
) -> None:
    path = _config(tmp_path, text)
    with pytest.raises(ConfigError) as raised:
        load_settings(path)
    assert str(raised.value).startswith(f"{path}:{said}")


@pytest.mark.parametrize(
    ("setting", "fragment"),
    [
        ('private = "yes"', "private: must be true or false, without quotes"),
        ("auto_summarize = 1", "auto_summarize: must be true or false, without quotes"),
        ("connect_timeout_s = true", "connect_timeout_s: must be a number"),
        ('read_timeout_s = "60"', "read_timeout_s: must be a number, like 3 or 2.5"),
        ("read_timeout_s = inf", "read_timeout_s: must be a finite number"),
        ("max_time_s = nan", "max_time_s: must be a finite number"),
        ("embedded_context = 8192.5", "embedded_context: must be a whole number"),
        ("local_concurrency = true", "local_concurrency: must be a whole number"),
        ('targets = "embedded:smollm2"', "targets: must be a list"),
    ],
)
def test_a_value_of_the_wrong_type_is_refused_not_converted(
    tmp_path: Path, setting: str, fragment: str
) -> None:
    """TOML has booleans and numbers of its own: `"yes"` or `true` in place of one is a
    mistake to point at, never a value to guess at."""
    path = _config(tmp_path, f"# mine\n{setting}\n")
    with pytest.raises(ConfigError) as raised:
        load_settings(path)
    assert str(raised.value).startswith(f"{path}:2: {fragment}")


def test_whole_numbers_are_still_numbers_of_seconds(tmp_path: Path) -> None:
    settings = load_settings(_config(tmp_path, "read_timeout_s = 90\nmax_time_s = 1.5\n"))
    assert (settings.read_timeout_s, settings.max_time_s) == (90.0, 1.5)


def test_more_embedded_threads_than_cores_is_refused(tmp_path: Path) -> None:
    cores = len(os.sched_getaffinity(0))
    path = _config(tmp_path, f"embedded_threads = {cores + 1}\n")
    with pytest.raises(ConfigError) as raised:
        load_settings(path)
    assert str(raised.value).startswith(
        f"{path}:1: embedded_threads: at most {cores}, the cores this machine has"
    )
    assert load_settings(_config(tmp_path, f"embedded_threads = {cores}\n")).embedded_threads


@pytest.mark.parametrize(
    ("targets", "said"),
    [
        ('["smollm2"]', "targets.0: target 'smollm2' is not provider:model"),
        ('["lm:a", "embedded:smollm2@temprature=2"]',
         "targets.1: target 'embedded:smollm2@temprature=2': unknown setting 'temprature=2'"),
        ('["lmstudio:qwen"]', "targets.0: 'lmstudio:qwen': no provider or endpoint 'lmstudio'; "
         "known: embedded, ollama, openai, anthropic, lm"),
    ],
)  # fmt: skip
def test_a_target_that_cannot_run_is_pointed_at_by_every_command(
    tmp_path: Path, targets: str, said: str
) -> None:
    """Not only by the commands that use the targets, in their words, once they do."""
    endpoint = '[endpoints.lm]\nkind = "openai"\nbase_url = "http://127.0.0.1:1234/v1"\n'
    path = _config(tmp_path, f"private = false\ntargets = {targets}\n{endpoint}")
    with pytest.raises(ConfigError) as raised:
        load_settings(path)
    assert str(raised.value).startswith(f"{path}:2: {said}")
    good = _config(tmp_path, f'targets = ["lm:a", "ollama:llama3.2:1b"]\n{endpoint}')
    assert load_settings(good).targets == ["lm:a", "ollama:llama3.2:1b"]
