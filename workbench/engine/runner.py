"""The engine's own event loop, in its own thread.

Streams are read and timestamped here, so a busy UI can never slow them down and make a
model look slower than it is (DESIGN §4). The UI submits coroutines and reads the results
they fill in, once per frame.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

_T = TypeVar("_T")


class EngineThread:
    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="workbench-engine", daemon=True)
        self._started = False

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_forever()
        # Stopped: end whatever is still running so nothing is left half-open.
        pending = asyncio.all_tasks(self._loop)
        for task in pending:
            task.cancel()
        if pending:
            self._loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        self._loop.run_until_complete(self._loop.shutdown_asyncgens())
        self._loop.close()

    def start(self) -> None:
        if not self._started:
            self._started = True
            self._thread.start()

    def submit(self, coro: Coroutine[Any, Any, _T]) -> concurrent.futures.Future[_T]:
        """Run `coro` on the engine loop; cancelling the future cancels it there."""
        self.start()
        return asyncio.run_coroutine_threadsafe(coro, self._loop)

    async def run(self, coro: Coroutine[Any, Any, _T]) -> _T:
        """Await `coro` from another event loop; cancelling the caller cancels it too."""
        return await asyncio.wrap_future(self.submit(coro))

    def stop(self, timeout_s: float = 5.0) -> None:
        if self._started and self._loop.is_running():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout_s)
