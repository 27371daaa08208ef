"""A run is made by one process at a time: a second `--resume` of it is refused, not raced.

Two processes finishing one run would each make the requests left and store the same case
results twice (the store refuses the second: `UNIQUE constraint failed`). Each process
holds an OS file lock for its run while it runs; the OS drops it when the process ends,
however it ends, so a crashed run never stays claimed.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path

from workbench import locations
from workbench.store import StoreUnavailableError


class RunBusy(Exception):
    """Another process is making this run."""


if sys.platform == "win32":
    import msvcrt

    def _lock(fd: int) -> None:
        msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)

else:
    import fcntl

    def _lock(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)


def _path(run_id: str) -> Path:
    return locations.claims_dir() / f"{run_id}.lock"


@contextlib.contextmanager
def claimed(run_id: str) -> Iterator[None]:
    """Holds the run for this process; RunBusy at once if another process holds it."""
    path = _path(run_id)
    while True:
        try:
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:  # a data directory this user may not write
            raise StoreUnavailableError(
                f"cannot use {locations.named(locations.data_dir())}: {exc.strerror or exc}"
                f" ({path.parent}); make it writable, or point WORKBENCH_HOME at another"
            ) from None
        try:
            _lock(fd)
        except OSError:
            os.close(fd)
            raise RunBusy(
                f"another process is finishing run {run_id}; wait for it to end, then resume "
                "it again if `workbench history` still shows it unfinished"
            ) from None
        # The holder before us removes the file as it lets go: a lock on a removed file
        # would not keep out the next process, which opens a new one. Take it again.
        with contextlib.suppress(OSError):
            if os.path.samestat(os.fstat(fd), os.stat(path)):
                break
        os.close(fd)
    try:
        yield
    finally:
        # Removed while still held, so no one locks a file that is about to go. (Windows
        # cannot remove an open file: there it stays, empty, and is reused.)
        with contextlib.suppress(OSError):
            path.unlink()
        os.close(fd)
