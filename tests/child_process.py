"""The environment of a `workbench` run as its own process, for tests that need one (a
signal, a crash): a data dir and config of the test's own, one OpenAI-compatible endpoint
called `loop`, no API keys and no Ollama."""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def workbench_env(tmp_path: Path, url: str) -> dict[str, str]:
    config = tmp_path / "config.toml"
    config.write_text(f'[endpoints.loop]\nkind = "openai"\nbase_url = "{url}"\n')
    keep = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    return keep | {
        "WORKBENCH_HOME": str(tmp_path / "home"),
        "WORKBENCH_CONFIG": str(config),
        "PYTHONPATH": str(ROOT),
        "OLLAMA_HOST": "127.0.0.1:9",
    }
