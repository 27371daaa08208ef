"""A `WORKBENCH_HOME` the workbench cannot use says so in one line, and a history the
user may only read can still be read."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.child_process import ROOT
from workbench.store import Store

COMMANDS = [["ask", "hi", "-t", "embedded:smollm2@max_tokens=2"], ["history"], ["costs"]]

_NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]


def _someone_else() -> list[str]:
    """Root may write anywhere: the read-only cases run the command as `nobody` instead,
    where `nobody` can run this checkout's Python (a clone in a folder of root's alone,
    as `mktemp -d` makes, it cannot)."""
    if os.geteuid() != 0 or not shutil.which("setpriv"):
        return []
    probe = subprocess.run(
        [*_NOBODY, sys.executable, "-c", "import workbench"], cwd="/",
        env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, timeout=60,
    )  # fmt: skip
    return _NOBODY if probe.returncode == 0 else []


_SOMEONE_ELSE = _someone_else()
# Run as root with no one else to be, a folder's mode keeps nothing out.
_as_someone_else = pytest.mark.skipif(
    os.geteuid() == 0 and not _SOMEONE_ELSE,
    reason="as root, needs `nobody` (setpriv) able to run this checkout's Python",
)


@pytest.fixture
def place() -> Iterator[Path]:
    """A directory everyone may enter (pytest's own is its user's only), for `nobody`."""
    path = Path(tempfile.mkdtemp(prefix="wb-home-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        for inside in path.rglob("*"):
            if inside.is_dir():
                inside.chmod(0o755)
        shutil.rmtree(path)


def _workbench(home: Path, args: list[str], *, as_other: bool = False) -> tuple[int, str, str]:
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    env |= {"WORKBENCH_HOME": str(home), "WORKBENCH_CONFIG": os.devnull,
            "PYTHONPATH": str(ROOT), "OLLAMA_HOST": "127.0.0.1:9"}  # fmt: skip
    prefix = _SOMEONE_ELSE if as_other else []
    done = subprocess.run(
        [*prefix, sys.executable, "-m", "workbench.cli", *args],
        env=env, cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    return done.returncode, done.stdout, done.stderr


@pytest.mark.parametrize("args", COMMANDS, ids=lambda a: a[0])
@pytest.mark.parametrize(
    ("where", "said"),
    [
        ("file", "it is a file, not a directory"),
        ("file/sub", "is a file, not a directory"),
    ],
)
def test_a_home_that_is_a_file_is_named_in_one_line(
    place: Path, args: list[str], where: str, said: str
) -> None:
    (place / "file").write_text("")
    home = place / where
    code, out, err = _workbench(home, args)
    assert (code, out) == (2, ""), err
    (line,) = err.splitlines()
    assert line.startswith(f"workbench: cannot use WORKBENCH_HOME={home}: ") and said in line


@pytest.mark.parametrize("args", COMMANDS, ids=lambda a: a[0])
@pytest.mark.parametrize(
    "content", [b"not a database\n", b"SQLite format 3\x00" + b"\xff" * 200], ids=["text", "cut"]
)
def test_a_history_that_is_no_database_is_named_in_one_line_and_left_as_it_is(
    place: Path, args: list[str], content: bytes
) -> None:
    history = place / "workbench.db"
    history.write_bytes(content)
    code, out, err = _workbench(place, args)
    assert (code, out) == (2, ""), err
    (line,) = err.splitlines()
    assert line.startswith(f"workbench: {history} is not a history workbench can read (")
    assert "move it aside" in line
    assert history.read_bytes() == content


@_as_someone_else
@pytest.mark.parametrize("args", COMMANDS, ids=lambda a: a[0])
def test_a_home_nobody_may_write_to_is_named_in_one_line(place: Path, args: list[str]) -> None:
    home = place / "home"
    home.mkdir(mode=0o555)
    code, out, err = _workbench(home, args, as_other=True)
    assert (code, out) == (2, ""), err
    (line,) = err.splitlines()
    assert line.startswith(f"workbench: cannot use WORKBENCH_HOME={home}: ")
    assert "permission" in line


@_as_someone_else
def test_a_history_that_may_only_be_read_can_still_be_read(place: Path) -> None:
    home = place / "home"
    code, _, err = _workbench(home, ["ask", "hi", "-t", "embedded:smollm2@max_tokens=2"])
    assert code == 0, err
    (home / "workbench.db").chmod(0o644)
    home.chmod(0o555)  # not even the WAL's index file can be made beside it
    code, out, err = _workbench(home, ["history", "--chats"], as_other=True)
    assert (code, err) == (0, "")
    assert "embedded:smollm2@max_tokens=2" in out
    code, out, err = _workbench(home, ["costs"], as_other=True)
    assert (code, err) == (0, "")
    assert "embedded:smollm2@max_tokens=2" in out
    # Asking, which must store, says so up front instead of answering into the void.
    code, out, err = _workbench(home, COMMANDS[0], as_other=True)
    assert (code, out) == (2, ""), err
    assert err.startswith(f"workbench: cannot use WORKBENCH_HOME={home}: ")
    assert "read-only" in err
    assert Store(home / "workbench.db").version > 0  # left as it was
    # A suite run is kept there: refused in one line, before anything runs.
    code, out, err = _workbench(home, ["run", "prompts/offline-basics.yaml"], as_other=True)
    assert (code, out) == (2, ""), err
    (line,) = err.splitlines()
    assert line.startswith(f"workbench: cannot use WORKBENCH_HOME={home}: ") and "read-only" in line


@pytest.mark.skipif(not _SOMEONE_ELSE, reason="needs root, and `nobody` able to run Python")
def test_a_config_in_a_folder_the_user_may_not_enter_is_named_in_one_line(place: Path) -> None:
    """`Path.exists` raised PermissionError, and the command ended in a traceback."""
    shut = place / "config"
    (shut / "llm-workbench").mkdir(parents=True)
    (shut / "llm-workbench" / "config.toml").write_text("")
    shut.chmod(0o700)  # root's alone
    env = {k: v for k, v in os.environ.items() if k != "WORKBENCH_CONFIG"}
    env |= {"XDG_CONFIG_HOME": str(shut), "WORKBENCH_HOME": str(place / "home"),
            "PYTHONPATH": str(ROOT)}  # fmt: skip
    done = subprocess.run(
        [*_SOMEONE_ELSE, sys.executable, "-m", "workbench.cli", "history"],
        env=env, cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    config = shut / "llm-workbench" / "config.toml"
    assert done.stderr.strip() == f"workbench: {config}: cannot read: Permission denied"
