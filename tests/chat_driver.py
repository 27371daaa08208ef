"""The real TUI in its own process, for the crash test: sends one prompt, then waits to die.

Run as `python -m tests.chat_driver PROMPT TARGET...`. It builds the app with `make_app`
from `$WORKBENCH_CONFIG` and `$WORKBENCH_HOME`, exactly as `workbench` does, but drives it
headless with Pilot, so the test needs no terminal and types nothing against the clock.
"""

from __future__ import annotations

import asyncio
import sys

from tests.tui_helpers import send
from workbench.config import load_settings
from workbench.tui.app import make_app


async def main(prompt: str, targets: list[str]) -> None:
    app = make_app(load_settings(), targets)
    async with app.run_test(size=(120, 30)) as pilot:
        await send(pilot, prompt)
        while True:  # until the test kills us
            await pilot.pause(0.1)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2:]))
