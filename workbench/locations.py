"""Every file location the workbench uses, in one place.

Functions, not constants: the environment is read when a path is needed, never at import.
"""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

APP_NAME = "llm-workbench"


def config_path() -> Path:
    """`$WORKBENCH_CONFIG`, else `config.toml` in the platform config dir."""
    explicit = os.environ.get("WORKBENCH_CONFIG")
    if explicit:
        return Path(explicit).expanduser()
    return Path(platformdirs.user_config_dir(APP_NAME)) / "config.toml"


def data_dir() -> Path:
    """`$WORKBENCH_HOME`, else the platform data dir."""
    explicit = os.environ.get("WORKBENCH_HOME")
    if explicit:
        return Path(explicit).expanduser()
    return Path(platformdirs.user_data_dir(APP_NAME))


def named(directory: Path) -> str:
    """A data directory as messages name it: by the variable that chose it, when one did,
    since that is what the user will change."""
    explicit = os.environ.get("WORKBENCH_HOME")
    if explicit and Path(explicit).expanduser() == directory:
        return f"WORKBENCH_HOME={explicit}"
    return str(directory)


def claims_dir() -> Path:
    """The lock files of suite runs being made, one process to a run (`suites/claim.py`)."""
    return data_dir() / "claims"


def models_dir() -> Path:
    """GGUF files dropped here become `embedded:<name>` targets."""
    return data_dir() / "models"


def database_path() -> Path:
    return data_dir() / "workbench.db"


def prices_path() -> Path:
    """Price data fetched by `workbench prices --update`; used instead of the bundled data."""
    return data_dir() / "prices.json"


def screenshots_dir() -> Path:
    """`screenshots/` of the source checkout when running from one, else the data dir.

    An explicit `$WORKBENCH_HOME` wins: a workbench isolated there (a test, a demo) keeps
    its screens with its history, out of the checkout.
    """
    checkout = Path(__file__).resolve().parent.parent
    if os.environ.get("WORKBENCH_HOME"):
        return data_dir() / "screenshots"
    if (checkout / "pyproject.toml").is_file() and (checkout / "screenshots").is_dir():
        return checkout / "screenshots"
    return data_dir() / "screenshots"
