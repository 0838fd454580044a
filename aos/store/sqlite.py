"""The embedded SQLite backend (the default).

One connection in WAL mode with ``synchronous=FULL``: a commit is durable when
it returns. Every write is group-committed (a batch is flushed by a task of its
own, so the writers ready meanwhile join it), and statements run on the event
loop's own thread: a commit costs about as much as one thread hop would (see
PERFORMANCE.md). Moving the writes, or only the COMMIT, to a thread was
measured with 200 sessions on two CPUs: the hops cost more CPU than the fsync
waits they took off the loop, and the run was slower. Several processes may
open the same file; writers take turns through SQLite's lock (``busy_timeout``).
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

from aos.facts import Fact, encode_fact, fact_kind
from aos.runtimelog import LogEntry
from aos.store._groupcommit import GroupCommit
from aos.store.base import (
    Conflict,
    NotFound,
    SQLStore,
    StoreError,
    StoreUnavailable,
    load_migrations,
    log_row,
)


def _unicode_lower(value: str | None) -> str | None:
    """``aos_lower()``: lower case for any letter, as PostgreSQL's ``lower()``
    (SQLite's own knows ASCII only)."""
    return value.lower() if isinstance(value, str) else value


@dataclass(frozen=True, slots=True)
class _Statement:
    """A single write statement (a control-block update, a lease, an insert)."""

    sql: str
    args: tuple[Any, ...]


_Write = tuple[str, Fact] | LogEntry | _Statement
"""A pending write: a fact for a session, a RuntimeLog record, or a statement."""
_PARAM = re.compile(r"\$(\d+)")
BUSY_TIMEOUT_MS = 10_000


class SQLiteStore(SQLStore):
    backend = "sqlite"
    NOW: ClassVar[str] = "((julianday('now') - 2440587.5) * 86400.0)"

    def __init__(self, conn: sqlite3.Connection, path: Path) -> None:
        self._conn = conn
        self.path = path
        self.url = f"sqlite://{path}"
        self._sql_cache: dict[str, str] = {}
        self._writes: GroupCommit[_Write, int] = GroupCommit(self._flush)

    @classmethod
    async def open(cls, path: Path) -> SQLiteStore:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(
                path, isolation_level=None, check_same_thread=False, timeout=BUSY_TIMEOUT_MS / 1000
            )
            conn.row_factory = sqlite3.Row
            conn.create_function("aos_lower", 1, _unicode_lower, deterministic=True)
            await _use_wal(conn)
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("PRAGMA foreign_keys=ON")
            conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        except (OSError, sqlite3.Error) as exc:
            raise StoreUnavailable(f"cannot open SQLite database {path}: {exc}") from None
        store = cls(conn, path)
        try:
            store._migrate()
        except sqlite3.Error as exc:
            conn.close()
            raise StoreUnavailable(f"cannot migrate SQLite database {path}: {exc}") from None
        return store

    def _migrate(self) -> None:
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")  # the write lock serialises concurrent openers
        try:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations "
                "(version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at REAL NOT NULL)"
            )
            applied = {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}
            for migration in load_migrations("sqlite"):
                if migration.version in applied:
                    continue
                for statement in _statements(migration.sql):
                    conn.execute(statement)
                conn.execute(
                    "INSERT INTO schema_migrations VALUES (?, ?, ?)",
                    (migration.version, migration.name, time.time()),
                )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    async def close(self) -> None:
        await self.flush()
        self._conn.close()

    async def flush(self) -> None:
        await self._writes.drain()

    def _json_field(self, column: str, path: str, kind: Literal["text", "int", "float"]) -> str:
        return f"json_extract({column}, '$.{path}')"  # JSON numbers come back as numbers

    def _lower(self, expr: str, text: str) -> str:
        # SQLite's lower() is quicker; an ASCII text is matched by ASCII letters only
        return f"lower({expr})" if text.isascii() else f"aos_lower({expr})"

    # -- primitives -------------------------------------------------------
    def _translate(self, sql: str) -> str:
        cached = self._sql_cache.get(sql)
        if cached is None:
            cached = self._sql_cache[sql] = _PARAM.sub(r"?\1", sql)
        return cached

    async def _fetch(self, sql: str, *args: Any) -> list[Mapping[str, Any]]:
        try:
            return self._conn.execute(self._translate(sql), args).fetchall()
        except sqlite3.Error as exc:
            raise _wrap(exc) from exc

    async def _execute(self, sql: str, *args: Any) -> int:
        """Group-committed like the appends: 200 dispatches starting at once share
        a few commits instead of waiting for 400 fsyncs in a row."""
        return await self._writes.submit(_Statement(self._translate(sql), args))

    def _is_integrity_error(self, exc: BaseException) -> bool:
        return isinstance(exc.__cause__, sqlite3.IntegrityError)

    # -- group-committed writes ------------------------------------------
    async def append_all(self, session_id: str, facts: Sequence[Fact]) -> list[int]:
        return await self._writes.submit_all([(session_id, fact) for fact in facts])

    async def log(self, entry: LogEntry) -> int:
        return await self._writes.submit(entry, lazy=True)  # rides along with the next fact

    async def _flush(self, batch: Sequence[_Write]) -> list[int | BaseException]:
        """One transaction (one fsync) for every fact and log record pending."""
        conn = self._conn
        now = time.time()
        results: list[int | BaseException] = []
        last_seqs: dict[str, int] = {}  # session -> its newest seq in this batch
        facts: list[tuple[str, int, float, str, str]] = []
        conn.execute("BEGIN IMMEDIATE")
        try:
            for item in batch:
                if isinstance(item, _Statement):
                    results.append(_statement(conn, item))
                    continue
                if isinstance(item, LogEntry):
                    cursor = conn.execute(
                        "INSERT INTO runtime_log (ts, kind, level, session_id, agent_id, message,"
                        " data) VALUES (?, ?, ?, ?, ?, ?, ?)",
                        log_row(item, item.ts or now),
                    )
                    results.append(cursor.lastrowid or 0)
                    continue
                session_id, fact = item
                seq = last_seqs.get(session_id)
                if seq is None:
                    row = conn.execute(
                        "SELECT last_seq FROM sessions WHERE id = ?", (session_id,)
                    ).fetchone()
                    if row is None:  # (looked up again if a later write creates it)
                        results.append(NotFound(f"session {session_id} not found"))
                        continue
                    seq = row[0]
                seq += 1
                last_seqs[session_id] = seq
                facts.append((session_id, seq, now, fact_kind(fact), encode_fact(fact)))
                results.append(seq)
            # The facts and their counters in two statements: the write lock held since
            # BEGIN IMMEDIATE keeps every other writer out until the commit.
            conn.executemany(
                "INSERT INTO history (session_id, seq, ts, kind, body) VALUES (?, ?, ?, ?, ?)",
                facts,
            )
            conn.executemany(
                "UPDATE sessions SET last_seq = ? WHERE id = ?",
                [(seq, session_id) for session_id, seq in last_seqs.items()],
            )
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            conn.execute("ROLLBACK")
            raise _wrap(exc) from exc
        return results


async def _use_wal(conn: sqlite3.Connection) -> None:
    """Switch to WAL. Processes opening a fresh file at once can be refused the
    switch without waiting (SQLite answers "locked", or keeps the old mode, rather
    than wait where a wait could deadlock): try again until the busy timeout."""
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            mode = str(conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]).lower()
            if mode == "wal":
                return
            refused: sqlite3.Error = sqlite3.OperationalError(
                f"the journal mode stayed {mode}: another process holds the database"
            )
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) and "busy" not in str(exc):
                raise
            refused = exc
        if time.monotonic() > deadline:
            raise refused
        await asyncio.sleep(0.01)


def _statement(conn: sqlite3.Connection, statement: _Statement) -> int | BaseException:
    """One writer's statement inside the batch's transaction: its failure (a
    constraint) is its writer's alone, rolled back to a savepoint."""
    conn.execute("SAVEPOINT statement")
    try:
        count = conn.execute(statement.sql, statement.args).rowcount
    except sqlite3.Error as exc:
        conn.execute("ROLLBACK TO statement")
        conn.execute("RELEASE statement")
        error = _wrap(exc)
        error.__cause__ = exc
        return error
    conn.execute("RELEASE statement")
    return count


def _wrap(exc: sqlite3.Error) -> StoreError:
    if isinstance(exc, sqlite3.IntegrityError):
        return Conflict(f"SQLite refused the write: {exc}")
    return StoreUnavailable(f"SQLite error: {exc}")


def _statements(script: str) -> list[str]:
    """Split a migration script into statements (triggers keep their BEGIN..END)."""
    statements: list[str] = []
    current: list[str] = []
    for line in script.splitlines():
        if line.strip().startswith("--") and not current:
            continue
        current.append(line)
        candidate = "\n".join(current)
        if sqlite3.complete_statement(candidate):
            statements.append(candidate.strip())
            current = []
    if "\n".join(current).strip():
        statements.append("\n".join(current).strip())
    return statements
