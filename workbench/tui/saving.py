"""Files the TUI writes for the user: exports and screenshots, user-only like the history,
since both show prompts (private ones too)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from textual.app import App

from workbench import locations


def write_export(markdown: str) -> Path:
    """The comparison, written to a new file in the exports folder; its path."""
    path = locations.data_dir() / "exports" / f"comparison-{_stamp()}.md"
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.touch(mode=0o600)
    path.write_text(markdown, encoding="utf-8")
    return path


def save_screenshot(app: App[None]) -> str:
    """The screen as an SVG in the screenshots folder; its path."""
    directory = locations.screenshots_dir()
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    name = f"workbench-{_stamp()}.svg"
    (directory / name).touch(mode=0o600)  # Textual keeps the mode of a file already there
    return app.save_screenshot(filename=name, path=str(directory))


def _stamp() -> str:
    return datetime.now().strftime("%Y%m%d-%H%M%S")
