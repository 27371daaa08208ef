"""A process that writes N responses through `Store.add_response`, for the concurrency test.

Run as `python -m tests.store_writer NAME N START_FILE`: it opens the store under
`$WORKBENCH_HOME` (creating it if it does not exist yet, so two writers race for the
first open too), says it is ready (NAME.ready beside START_FILE), waits until START_FILE
exists so both write at the same moment, then
stores N responses whose text says who wrote which.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from providers.base import Message
from workbench import locations
from workbench.engine.result import TargetResult
from workbench.store import Store


def answer_text(writer: str, index: int) -> str:
    """Long enough to span pages, unique per record, with non-ASCII in it."""
    return f"{writer}-{index} — réponse {'✓' * 50} " + "x" * (index % 7 * 1000)


def main(writer: str, count: int, start_file: Path) -> None:
    store = Store(locations.database_path())
    (start_file.parent / f"{writer}.ready").touch()  # the test releases both once both are here
    deadline = time.monotonic() + 60
    while not start_file.exists() and time.monotonic() < deadline:
        time.sleep(0.005)
    began = time.time()  # wall clock: comparable across the two processes
    for index in range(count):
        result = TargetResult(f"{writer}:m", writer, "openai", "m", False, status="done")
        result.text = answer_text(writer, index)
        result.output_tokens = index
        store.add_response(result, [Message("user", f"q{index}")], origin="ask", batch=writer)
    store.close()
    print(f"{began} {time.time()}")  # when this writer was writing, for the test


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), Path(sys.argv[3]))
