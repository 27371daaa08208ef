"""SQLite history: every response when it ends, and arena votes.

WAL mode, one transaction per record, so a crash never leaves half a record. The schema is
versioned with `PRAGMA user_version` and upgraded by the migrations below, in order; each
says which older code can still use the database after it (`Migration.readable_from`), so
an upgrade that only adds to the schema does not lock out an older install sharing the data
dir. API keys never reach it: nothing here stores a request's headers or the environment.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from providers.base import Message
from workbench import locations
from workbench.engine.result import TargetResult
from workbench.sanitize import encodable


@dataclass(frozen=True, slots=True)
class Migration:
    """One step of the schema, and which older code can still use a database it has reached.

    `readable_from` is the oldest schema version whose code can still read and write a
    database at this migration's version. It is the migration's own number when older code
    would go wrong on the result: a table or column it relies on changed or gone, a NOT NULL
    column without a default (its INSERTs would fail), something it would have to keep up to
    date that it has never heard of. It may be lower when the migration only adds what older
    code can ignore: nullable columns or columns with a default (every INSERT here names its
    columns, so older code leaves them out), new tables, indexes. Newer code must then read
    NULL in a new column as "written by code that did not know it", not only "written before".
    It is never lower than the migration before's: what locked out older code stays in.
    """

    sql: str
    readable_from: int


MIGRATIONS: tuple[Migration, ...] = (
    # 1: responses and votes
    Migration(
        readable_from=1,
        sql="""
    CREATE TABLE responses (
        id INTEGER PRIMARY KEY,
        created_at REAL NOT NULL,
        origin TEXT NOT NULL,            -- ask | chat | suite
        batch TEXT NOT NULL,             -- the fan-out this response belongs to
        target TEXT NOT NULL,
        provider TEXT NOT NULL,
        model TEXT NOT NULL,
        is_local INTEGER NOT NULL,
        status TEXT NOT NULL,
        messages TEXT NOT NULL,          -- JSON: what was sent
        text TEXT NOT NULL,
        reasoning TEXT NOT NULL DEFAULT '',
        input_tokens INTEGER NOT NULL,
        output_tokens INTEGER NOT NULL,
        cached_input_tokens INTEGER NOT NULL DEFAULT 0,
        tokens_exact INTEGER NOT NULL,
        ttft_s REAL,
        e2e_s REAL,
        load_s REAL,
        cost_usd REAL,
        cost_kind TEXT,
        stop_reason TEXT,
        error_kind TEXT,
        error TEXT
    );
    CREATE INDEX responses_batch ON responses(batch);
    CREATE INDEX responses_target ON responses(target);
    CREATE TABLE votes (
        id INTEGER PRIMARY KEY,
        created_at REAL NOT NULL,
        batch TEXT NOT NULL,
        targets TEXT NOT NULL,           -- JSON list: who took part
        winner TEXT                      -- NULL for a tie
    );
    """,
    ),
    # 2: suite runs, their case results, and a request key for --cache
    Migration(
        readable_from=2,
        sql="""
    ALTER TABLE responses ADD COLUMN request_key TEXT;
    CREATE INDEX responses_request_key ON responses(request_key);
    CREATE TABLE runs (
        id TEXT PRIMARY KEY,
        created_at REAL NOT NULL,
        finished_at REAL,
        suite TEXT NOT NULL,
        suite_path TEXT NOT NULL,
        targets TEXT NOT NULL,           -- JSON list of target specs
        options TEXT NOT NULL            -- JSON: repeat, concurrency, cache
    );
    CREATE TABLE case_results (
        id INTEGER PRIMARY KEY,
        run_id TEXT NOT NULL REFERENCES runs(id),
        case_id TEXT NOT NULL,
        target TEXT NOT NULL,
        attempt INTEGER NOT NULL,        -- 0-based index among the case's repeats
        response_id INTEGER NOT NULL REFERENCES responses(id),
        passed INTEGER NOT NULL,
        outcomes TEXT NOT NULL,          -- JSON list of {assertion, passed, reason}
        cached INTEGER NOT NULL DEFAULT 0,
        UNIQUE (run_id, case_id, target, attempt)
    );
    """,
    ),
    # 3: each token count exact or estimated on its own (a server may send one and not the
    # other). NULL in rows written before, where `tokens_exact` says it for both; it is
    # still written (both counts exact), so it keeps meaning what it meant. Nullable columns
    # only: schema-2 code could use the result (had it known to look; see COMPAT_TABLE).
    Migration(
        readable_from=2,
        sql="""
    ALTER TABLE responses ADD COLUMN input_tokens_exact INTEGER;
    ALTER TABLE responses ADD COLUMN output_tokens_exact INTEGER;
    """,
    ),
    # 4: the conversation (a pane's chat, from its first prompt or its last New chat) a
    # response is a turn of. Its messages cannot say it: a turn that failed is taken back
    # out of the conversation, so the turns after it never sent it, and the same messages
    # can open many chats. NULL where nobody knew (ask, suites, older code): such a row
    # stands alone. A nullable column and an index: schema-2 code can use the result.
    Migration(
        readable_from=2,
        sql="""
    ALTER TABLE responses ADD COLUMN conversation TEXT;
    CREATE INDEX responses_conversation ON responses(conversation);
    """,
    ),
    # 5: when the first token of any kind came: a thinking model's reasoning comes before
    # its answer (TTFT), and its decode rate is timed from its first token. NULL where it
    # was the answer's (older rows): then TTFT is the first token. Nullable: as 3.
    Migration(
        readable_from=2,
        sql="""
    ALTER TABLE responses ADD COLUMN first_token_s REAL;
    """,
    ),
)

# Where a database records the `readable_from` of the last migration it has had, written in
# the same transaction as that migration (and added on open to databases migrated before the
# record existed). A contract with every later and earlier release, so never altered: code
# that opens a database newer than itself reads it to decide whether it may use it. Releases
# from before the record (the first ones to know schema 3 included) refuse every newer
# database whatever it says; nothing can be done for them.
COMPAT_TABLE = "schema_compat"
_CREATE_COMPAT = f"""
    CREATE TABLE IF NOT EXISTS {COMPAT_TABLE} (
        id INTEGER PRIMARY KEY CHECK (id = 1),  -- one row
        readable_from INTEGER NOT NULL
    )
"""

# How long a write waits for another process's write to end before it gives up.
BUSY_TIMEOUT_S = 30.0
# How long opening an up-to-date database waits for the write lock, to see a migration
# another process may have under way; schema changes take far less.
MIGRATION_WAIT_S = 2.0


@dataclass(frozen=True, slots=True)
class Standing:
    target: str
    battles: int
    wins: int
    ties: int

    @property
    def win_rate(self) -> float:
        return self.wins / self.battles if self.battles else 0.0


DAMAGED = frozenset({sqlite3.SQLITE_NOTADB, sqlite3.SQLITE_CORRUPT})
"""SQLite's answers for a file that is not a database, or one damaged past reading."""


class SchemaTooNewError(Exception):
    """The database was written by a newer workbench: its tables are not ours to touch."""


class StoreUnavailableError(Exception):
    """The history cannot be opened (or written, where the command must write): the message
    names the data directory and what to do about it."""


class Store:
    def __init__(self, path: Path, *, opening_wait_s: float = MIGRATION_WAIT_S) -> None:
        """`opening_wait_s`: how long opening an up-to-date database waits for another
        process's write (see `_migrate`); less for a caller that must not wait (the TUI)."""
        self.path = path
        self._opening_wait_s = opening_wait_s
        self.read_only = False
        """Opened for reading only: the user may not write the database (or its directory)."""
        self._make(path)
        # `check_same_thread` off: `ask` writes from a thread of its own, so that a write
        # waiting for a busy database does not hold up the streams (one thread at a time).
        self._db = sqlite3.connect(
            path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
        )
        _add_functions(self._db)
        try:
            try:
                # Before anything writes (switching to WAL rewrites the header), so that a
                # database refused is left as it was; again in `_migrate`, under the lock.
                self._refuse_if_too_new()
            except sqlite3.OperationalError as error:
                # On a read-only file system SQLite cannot open it at all (CANTOPEN).
                if not (is_read_only(error) or not os.access(path, os.W_OK)):
                    raise
                self._open_read_only()
            self.read_only = self.read_only or not os.access(path, os.W_OK)
            if self.read_only and not self._up_to_date():
                raise StoreUnavailableError(self._unusable(
                    "the history there is read-only to you, and from an older workbench: it "
                    "must be upgraded, which needs writing; make it writable"
                ))  # fmt: skip
            if not self.read_only:
                self._enter_wal(deadline=time.monotonic() + BUSY_TIMEOUT_S)
                self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA foreign_keys=ON")
            if not self.read_only:
                self._migrate()
        except BaseException as error:
            self._db.close()
            # Not every sqlite3 error carries SQLite's code: one Python raises itself has none.
            if getattr(error, "sqlite_errorcode", None) in DAMAGED:
                raise StoreUnavailableError(
                    f"{path} is not a history workbench can read ({error}): move it aside, "
                    "where it is kept for recovery, and workbench starts a new one; or set "
                    "WORKBENCH_HOME to another directory"
                ) from None
            raise

    def _make(self, path: Path) -> None:
        """The directory and an empty database file, or a StoreUnavailableError saying why not."""
        try:
            # History can hold private prompts: user-only from the first byte. SQLite gives
            # the -wal and -shm files the database file's mode, so they follow.
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            # Only a file that is not there yet: closing a descriptor of a file drops every
            # POSIX lock this process holds on it, those of a Store still open (the app's,
            # while a screen opens its own) included, and then another process's reader
            # deleted the WAL from under it and the database was lost
            # (tests/test_concurrent_writers.py).
            with contextlib.suppress(FileExistsError):
                os.close(os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600))
        except (FileExistsError, NotADirectoryError):
            blocking = next(p for p in (path.parent, *path.parent.parents) if p.exists())
            where = "it is" if blocking == path.parent else f"{blocking} is"
            raise StoreUnavailableError(
                self._unusable(f"{where} a file, not a directory; point it at a directory")
            ) from None
        except PermissionError:
            raise StoreUnavailableError(self._unusable(
                "permission denied: the history cannot be created there; make the directory "
                "writable, or point it at another"
            )) from None  # fmt: skip

    def _open_read_only(self) -> None:
        """Reopen a database this user may not write, for reading.

        With the directory read-only too, SQLite cannot make the WAL's index beside it and
        refuses even to read; `immutable` reads the file as it stands, without one. Only a
        writer the user is not (the owner) can change it meanwhile, and then a read may see
        a wrong page or fail, never harm the file: nothing is written through this."""
        self._db.close()
        uri = f"{self.path.resolve().as_uri()}?immutable=1"
        self._db = sqlite3.connect(
            uri, uri=True, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
        )
        _add_functions(self._db)
        self.read_only = True
        self._refuse_if_too_new()

    def _unusable(self, why: str) -> str:
        return f"cannot use {locations.named(self.path.parent)}: {why}"

    def require_writable(self) -> None:
        """For commands that store what they do: refuse before doing it, not after."""
        if self.read_only:
            raise StoreUnavailableError(self._unusable(
                f"the history there ({self.path.name}) is read-only to you, and this command "
                "stores what it does; make it writable, or point it at another directory"
            ))  # fmt: skip

    @property
    def busy_timeout_s(self) -> float:
        """How long a write waits for another process's write to end."""
        return int(self._db.execute("PRAGMA busy_timeout").fetchone()[0]) / 1000

    @contextmanager
    def waiting_at_most(self, seconds: float) -> Iterator[None]:
        """Writes in the block wait this long, not `BUSY_TIMEOUT_S`, for another process's
        write to end: for a caller that has better to do than wait (the TUI's loop)."""
        before = self.busy_timeout_s
        self._db.execute(f"PRAGMA busy_timeout = {round(seconds * 1000)}")
        try:
            yield
        finally:
            self._db.execute(f"PRAGMA busy_timeout = {round(before * 1000)}")

    def _refuse_if_too_new(self) -> None:
        """A database newer than this code is used only if its record says this code can."""
        found = self.version
        if found <= len(MIGRATIONS):
            return
        # Read after the version: a process migrating it meanwhile writes both at once and
        # never lowers the version, so the record read is that of a version past ours too.
        readable_from = self._recorded_readable_from()
        if readable_from is None or readable_from > len(MIGRATIONS):
            raise SchemaTooNewError(
                f"{self.path} was written by a newer llm-workbench (schema version {found}; "
                f"this one knows up to {len(MIGRATIONS)}). Upgrade llm-workbench, or set "
                "WORKBENCH_HOME to another directory."
            )

    def _recorded_readable_from(self) -> int | None:
        """The database's compatibility record; None when it has none (or none we can read)."""
        exists = self._db.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (COMPAT_TABLE,)
        ).fetchone()
        if exists is None:
            return None
        row = self._db.execute(f"SELECT readable_from FROM {COMPAT_TABLE}").fetchone()
        return row[0] if row is not None and isinstance(row[0], int) else None

    def _enter_wal(self, deadline: float) -> None:
        # Two processes opening a new database at once both read it, then both need it
        # exclusively to switch it to WAL: SQLite answers one of them "database is locked"
        # at once instead of waiting, since waiting could deadlock. Once the winner has
        # switched, the switch is a no-op, so asking again is all the loser has to do.
        while True:
            try:
                self._db.execute("PRAGMA journal_mode=WAL")
                return
            except sqlite3.OperationalError as error:
                if "locked" not in str(error) or time.monotonic() > deadline:
                    raise
            time.sleep(0.01)

    @property
    def db(self) -> sqlite3.Connection:
        """The connection, for modules that keep their own tables here (suite runs)."""
        return self._db

    @property
    def version(self) -> int:
        """The database's schema version: above `len(MIGRATIONS)` when a newer workbench
        upgraded it and recorded that this one can still use it."""
        return int(self._db.execute("PRAGMA user_version").fetchone()[0])

    def _migrate(self) -> None:
        # Under the write lock, so that a migration another process has in flight is seen
        # once done. When the database reads as up to date, only briefly: a lock held longer
        # is someone's long write, which opening must not wait out, and every write checks
        # the version again under the lock (`transaction`).
        up_to_date = self._up_to_date()
        try:
            with self.waiting_at_most(self._opening_wait_s if up_to_date else BUSY_TIMEOUT_S):
                self._migrate_locked()
        except sqlite3.OperationalError as error:
            if not (up_to_date and is_busy(error)):
                raise

    def _migrate_locked(self) -> None:
        with self.transaction():
            # Another process may have taken it past us since the check on open (a newer
            # workbench opening the same new database at the same moment).
            self._refuse_if_too_new()
            if self.version > len(MIGRATIONS):
                # Newer, and usable by us: its schema, its version and its record belong to
                # the code that wrote them. Lowering either would let older code in still.
                return
            for number in range(self.version, len(MIGRATIONS)):
                for statement in MIGRATIONS[number].sql.split(";"):
                    if statement.strip():
                        self._db.execute(statement)
                self._db.execute(f"PRAGMA user_version = {number + 1}")
            # Also for a database at our version without the record (migrated before it
            # existed), so that later older code can use it too.
            readable_from = MIGRATIONS[-1].readable_from
            if self._recorded_readable_from() != readable_from:
                self._db.execute(_CREATE_COMPAT)
                self._db.execute(
                    f"INSERT OR REPLACE INTO {COMPAT_TABLE} (id, readable_from) VALUES (1, ?)",
                    (readable_from,),
                )

    def _up_to_date(self) -> bool:
        """Nothing for `_migrate` to do: at our version with our record, or newer and
        (as `_refuse_if_too_new` has checked) usable."""
        if self.version > len(MIGRATIONS):
            return True
        return (
            self.version == len(MIGRATIONS)
            and self._recorded_readable_from() == MIGRATIONS[-1].readable_from
        )

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """One write that lands whole or not at all."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            # A newer workbench may have migrated it past us since we opened it.
            self._refuse_if_too_new()
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def add_response(
        self,
        result: TargetResult,
        messages: Sequence[Message],
        *,
        origin: str,
        batch: str,
        request_key: str | None = None,
        conversation: str | None = None,
    ) -> int:
        """Record a finished (done, failed or cancelled) response, partial text included."""
        with self.transaction():
            return self.insert_response(
                result, messages, origin, batch, request_key, conversation=conversation
            )

    def insert_response(
        self,
        result: TargetResult,
        messages: Sequence[Message],
        origin: str,
        batch: str,
        request_key: str | None,
        *,
        conversation: str | None = None,
    ) -> int:
        cost = result.cost
        cursor = self._db.execute(
            """INSERT INTO responses (created_at, origin, batch, target, provider, model,
               is_local, status, messages, text, reasoning, input_tokens, output_tokens,
               cached_input_tokens, tokens_exact, ttft_s, e2e_s, load_s, cost_usd,
               cost_kind, stop_reason, error_kind, error, request_key, input_tokens_exact,
               output_tokens_exact, conversation, first_token_s)
               VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)""",
            (
                time.time(), origin, batch, result.target, result.provider, result.model,
                int(result.is_local), result.status,
                json.dumps([_message_json(m) for m in messages]),
                result.text, result.reasoning, result.input_tokens, result.output_tokens,
                result.cached_input_tokens, int(result.tokens_exact), result.ttft_s,
                result.e2e_s, result.load_s, cost.usd if cost else None,
                cost.kind if cost else None, result.stop_reason, result.error_kind,
                encodable(result.error) if result.error else None, request_key,
                int(result.input_exact), int(result.output_exact), conversation,
                result.first_token_s,
            ),
        )  # fmt: skip
        return int(cursor.lastrowid or 0)

    def add_vote(self, batch: str, targets: Sequence[str], winner: str | None) -> None:
        with self.transaction():
            self._db.execute(
                "INSERT INTO votes (created_at, batch, targets, winner) VALUES (?,?,?,?)",
                (time.time(), batch, json.dumps(list(targets)), winner),
            )

    def leaderboard(self) -> list[Standing]:
        """Win rates per target over every stored vote, best first."""
        tally: dict[str, list[int]] = {}
        for targets_json, winner in self._db.execute("SELECT targets, winner FROM votes"):
            # One target in two panes is one side of the battle, not two: with nothing else
            # beside it, there was no battle between targets at all.
            sides = dict.fromkeys(json.loads(targets_json))
            if len(sides) < 2:
                continue
            for target in sides:
                battles_wins_ties = tally.setdefault(target, [0, 0, 0])
                battles_wins_ties[0] += 1
                if winner is None:
                    battles_wins_ties[2] += 1
                elif winner == target:
                    battles_wins_ties[1] += 1
        standings = [Standing(t, b, w, ti) for t, (b, w, ti) in tally.items()]
        return sorted(standings, key=lambda s: (-s.win_rate, -s.battles, s.target))

    def responses(self, batch: str) -> list[dict[str, object]]:
        return self._rows("SELECT * FROM responses WHERE batch = ? ORDER BY id", (batch,))

    def conversation(self, conversation: str, up_to: int) -> list[dict[str, object]]:
        """The responses of one conversation, oldest first, up to the one with id `up_to`."""
        return self._rows(
            "SELECT * FROM responses WHERE conversation = ? AND id <= ? ORDER BY id",
            (conversation, up_to),
        )

    def _rows(self, query: str, bindings: Sequence[object]) -> list[dict[str, object]]:
        self._db.row_factory = sqlite3.Row
        try:
            rows = self._db.execute(query, bindings).fetchall()
        finally:
            self._db.row_factory = None
        return [dict(row) for row in rows]

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def _add_functions(db: sqlite3.Connection) -> None:
    # SQLite's LIKE ignores the case of ASCII letters only: `été` did not find `Été`.
    db.create_function("contains_folded", 2, _contains_folded, deterministic=True)


def _contains_folded(text: object, folded: object) -> bool:
    """Whether `text` contains `folded` (itself casefolded), whatever the case."""
    return isinstance(text, str) and isinstance(folded, str) and folded in text.casefold()


def why_not_written(
    error: sqlite3.Error | SchemaTooNewError,
    path: Path,
    waited_s: float = BUSY_TIMEOUT_S,
    *,
    retried: bool = False,
) -> str:
    """A failed write to the history at `path`, in words that say what to do; `retried`,
    for a caller that tries it again itself (the person need not)."""
    if isinstance(error, SchemaTooNewError):
        return str(error)
    if is_busy(error):
        again = "" if retried else "; try again once it is done"
        return (
            f"the history database {path} is busy: another process (another workbench?) "
            f"has been writing to it for over {waited_s:g} s{again}"
        )
    if is_read_only(error):
        return f"the history database {path} is read-only to you"
    if getattr(error, "sqlite_errorname", "") == "SQLITE_FULL":
        return f"the disk holding the history database {path} is full"
    return f"the history database {path} could not be used: {error}"


def is_busy(error: sqlite3.Error) -> bool:
    return getattr(error, "sqlite_errorname", "").startswith(("SQLITE_BUSY", "SQLITE_LOCKED"))


def is_read_only(error: sqlite3.Error) -> bool:
    return getattr(error, "sqlite_errorname", "").startswith("SQLITE_READONLY")


def exactness(both: object, input_exact: object, output_exact: object) -> tuple[bool, bool]:
    """Whether a stored row's input and output counts are exact. Rows written before each
    count had its own flag (schema 2 and older) have NULL there, and `tokens_exact` for both."""
    return (
        bool(both if input_exact is None else input_exact),
        bool(both if output_exact is None else output_exact),
    )


def _message_json(message: Message) -> dict[str, object]:
    # The private mark is kept, so a re-run from history still sends it to local models only.
    record: dict[str, object] = {"role": message.role, "content": message.content}
    if message.private:
        record["private"] = True
    return record


@dataclass(frozen=True, slots=True)
class TargetUsage:
    target: str
    provider: str
    model: str
    is_local: bool
    requests: int
    input_tokens: int
    output_tokens: int
    cost_usd: float | None
    """None when some of its responses had no known price."""
    input_exact: bool = True
    """False when some of its input counts are estimates (the server sent none)."""
    output_exact: bool = True
    """False when some of its output counts are estimates."""
    sizes: tuple[tuple[int, int, int], ...] = ()
    """(input tokens, output tokens, requests) for each size of request it made: a price
    is per request (tiers bill a long prompt at a higher rate), so it is priced from these
    rather than from the sums. Empty when not known: then `requests` of the average size."""

    @property
    def tokens_exact(self) -> bool:
        return self.input_exact and self.output_exact

    @property
    def request_sizes(self) -> tuple[tuple[int, int, int], ...]:
        if self.sizes or not self.requests:
            return self.sizes
        n = self.requests
        return ((round(self.input_tokens / n), round(self.output_tokens / n), n),)


_ANSWERED = "created_at >= ? AND origin != 'cached' AND (status = 'done' OR output_tokens > 0)"
# A row written before each count had its own flag has NULL there and `tokens_exact` for both
# (see `exactness`).
_INPUT_ESTIMATED = "COALESCE(input_tokens_exact, tokens_exact) = 0"
_OUTPUT_ESTIMATED = "COALESCE(output_tokens_exact, tokens_exact) = 0"


def usage_by_target(
    store: Store, since: float = 0.0, *, by_model: bool = False
) -> list[TargetUsage]:
    """Requests, tokens and dollars per target for responses stored since `since`; with
    `by_model`, per `provider:model`, whatever its settings (a bill is per model).

    Only requests a model answered, whole or in part: one refused before a token came
    (no key, a server down, a bad request) is billed nothing, and counted it would be
    given a shadow price and pull the average request, and every projection, down."""
    name, group = ("provider || ':' || model", "provider, model") if by_model else ("target",) * 2
    rows = store.db.execute(
        f"""SELECT {name}, provider, model, MAX(is_local), COUNT(*), SUM(input_tokens),
                  SUM(output_tokens), SUM(cost_usd), SUM(cost_kind = 'unknown'),
                  SUM({_INPUT_ESTIMATED}), SUM({_OUTPUT_ESTIMATED})
           FROM responses WHERE {_ANSWERED}
           GROUP BY {group} ORDER BY SUM(cost_usd) DESC""",
        (since,),
    ).fetchall()
    sizes: dict[str, list[tuple[int, int, int]]] = {}
    for target, tin, tout, n in store.db.execute(
        f"""SELECT {name}, input_tokens, output_tokens, COUNT(*) FROM responses
           WHERE {_ANSWERED} GROUP BY {group}, input_tokens, output_tokens""",
        (since,),
    ):
        sizes.setdefault(target, []).append((tin, tout, n))
    used = []
    for target, provider, model, local, n, tin, tout, usd, unknown, *estimated in rows:
        used.append(
            TargetUsage(
                target,
                provider,
                model,
                bool(local),
                n,
                tin or 0,
                tout or 0,
                None if unknown else float(usd or 0.0),
                input_exact=not estimated[0],
                output_exact=not estimated[1],
                sizes=tuple(sizes.get(target, ())),
            )
        )
    return used
