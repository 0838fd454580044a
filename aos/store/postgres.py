"""The PostgreSQL backend (asyncpg), for production and for scale-out.

A connection pool serves reads and control-block writes. History appends and
RuntimeLog records are group-committed: each flush is one statement (one round
trip, one commit) however many writers it serves. Per-session ``seq`` comes
from the session row's ``last_seq`` counter, bumped under its row lock in the
same statement, so it has no gaps even with many nodes appending to one session.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar, Literal
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import asyncpg
import msgspec

from aos import jsontext
from aos.config import mask_url
from aos.dispatches import DispatchRequest, DispatchRequestState, Placement
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

MIGRATION_LOCK = "aos.schema_migrations"
_RETRYABLE = (asyncpg.DeadlockDetectedError, asyncpg.SerializationError)

_APPEND_SQL = """
WITH input AS (
    SELECT * FROM unnest($1::text[], $2::text[], $3::text[])
        WITH ORDINALITY AS t(session_id, kind, body, ord)
), counts AS (
    SELECT session_id, count(*) AS n FROM input GROUP BY session_id
), locked AS (
    SELECT s.id FROM sessions s JOIN counts c ON c.session_id = s.id
    ORDER BY s.id FOR UPDATE OF s
), bumped AS (
    UPDATE sessions s SET last_seq = s.last_seq + c.n
    FROM counts c, locked l WHERE s.id = c.session_id AND l.id = s.id
    RETURNING s.id AS session_id, s.last_seq AS last_seq, c.n AS n
), numbered AS (
    SELECT i.ord, i.session_id, i.kind, i.body,
           b.last_seq - b.n + row_number() OVER (PARTITION BY i.session_id ORDER BY i.ord) AS seq
    FROM input i JOIN bumped b USING (session_id)
), inserted AS (
    INSERT INTO history (session_id, seq, ts, kind, body)
    SELECT session_id, seq, $4, kind, body::jsonb FROM numbered
)
SELECT ord, seq FROM numbered
"""

_APPEND_ONE_SQL = """
WITH bumped AS (
    UPDATE sessions SET last_seq = last_seq + 1 WHERE id = $1 RETURNING id, last_seq
)
INSERT INTO history (session_id, seq, ts, kind, body)
SELECT id, last_seq, $2, $3, $4::jsonb FROM bumped
RETURNING seq
"""

_LOG_SQL = """
INSERT INTO runtime_log (ts, kind, level, session_id, agent_id, message, data)
SELECT * FROM unnest($1::float8[], $2::text[], $3::text[], $4::text[], $5::text[],
                     $6::text[], $7::jsonb[])
RETURNING id
"""


_DISPATCH_COLUMNS = (
    "id",
    "session_id",
    "dispatch_id",
    "origin",
    "principal",
    "message",
    "cwd",
    "model",
    "placement",
    "state",
    "node",
    "created_at",
    "claimed_at",
    "outcome",
)
_CLAIM_SQL = f"""
UPDATE dispatch_requests r SET state = 'claimed', node = $1, claimed_at = {{now}}
WHERE r.id = (
    SELECT id FROM dispatch_requests WHERE state = 'queued' AND placement = ANY($2::text[])
    ORDER BY created_at LIMIT 1 FOR UPDATE SKIP LOCKED
)
RETURNING {", ".join(f"r.{c}" for c in _DISPATCH_COLUMNS)}
"""
NOTIFY_LIMIT = 7900
"""Bytes of one NOTIFY payload (PostgreSQL's limit is 8000)."""


class PostgresStore(SQLStore):
    backend = "postgres"
    NOW: ClassVar[str] = "extract(epoch from clock_timestamp())::float8"

    def __init__(
        self, pool: asyncpg.Pool, writer: asyncpg.Connection, dsn: str, settings: dict[str, str]
    ) -> None:
        self._pool = pool
        self._writer = writer
        self._dsn = dsn
        self._settings = settings
        self.url = mask_url(dsn)
        self._appends: GroupCommit[tuple[str, Fact], int] = GroupCommit(self._flush_appends)
        self._logs: GroupCommit[LogEntry, int] = GroupCommit(self._flush_logs)
        self._listener: asyncpg.Connection | None = None
        schema = settings.get("search_path")
        self.channel = f"aos_{schema}"[:63] if schema else "aos"
        """The LISTEN/NOTIFY channel of this database (and schema) for the cluster."""

    @classmethod
    async def open(
        cls, url: str, *, schema: str | None = None, pool_size: int = 10
    ) -> PostgresStore:
        dsn, schema = _split_schema(url, schema)
        settings = {"search_path": schema} if schema else {}
        try:
            if schema:
                conn = await asyncpg.connect(dsn)
                try:
                    await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
                except asyncpg.UniqueViolationError:
                    pass  # created concurrently by another opener
                finally:
                    await conn.close()
            pool = await asyncpg.create_pool(
                dsn, min_size=1, max_size=pool_size, server_settings=settings, reset=_keep
            )
            writer = await asyncpg.connect(dsn, server_settings=settings)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise StoreUnavailable(
                f"cannot connect to {mask_url(url)}: {_cause(exc)}{_fix(url, exc)}"
            ) from None
        store = cls(pool, writer, dsn, settings)
        try:
            await store._migrate()
        except (OSError, asyncpg.PostgresError) as exc:
            await store.close()
            raise StoreUnavailable(f"cannot migrate {mask_url(url)}: {_cause(exc)}") from None
        return store

    async def _migrate(self) -> None:
        async with self._pool.acquire() as conn, conn.transaction():
            # Serialises concurrent openers (several daemons starting at once).
            await conn.execute(
                "SELECT pg_advisory_xact_lock(hashtext($1 || current_schema()))", MIGRATION_LOCK
            )
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, "
                "name TEXT NOT NULL, applied_at DOUBLE PRECISION NOT NULL)"
            )
            applied = {
                r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")
            }
            for migration in load_migrations("postgres"):
                if migration.version in applied:
                    continue
                await conn.execute(migration.sql)
                await conn.execute(
                    "INSERT INTO schema_migrations VALUES ($1, $2, $3)",
                    migration.version,
                    migration.name,
                    time.time(),
                )

    async def close(self) -> None:
        await self.flush()
        await self.unlisten()
        await self._writer.close()
        await self._pool.close()

    async def flush(self) -> None:
        await self._appends.drain()
        await self._logs.drain()

    def _json_field(self, column: str, path: str, kind: Literal["text", "int", "float"]) -> str:
        *parents, last = path.split(".")
        reach = "".join(f"->'{p}'" for p in parents)
        text = f"({column}{reach}->>'{last}')"
        return {"text": text, "int": f"{text}::bigint", "float": f"{text}::float8"}[kind]

    # -- primitives -------------------------------------------------------
    async def _fetch(self, sql: str, *args: Any) -> list[Mapping[str, Any]]:
        try:
            return await self._pool.fetch(sql, *args)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise self._wrap(exc) from exc

    async def _execute(self, sql: str, *args: Any) -> int:
        try:
            status = await self._pool.execute(sql, *args)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise self._wrap(exc) from exc
        return int(status.rsplit(" ", 1)[-1]) if status[-1:].isdigit() else 0

    def _is_integrity_error(self, exc: BaseException) -> bool:
        return isinstance(exc.__cause__, asyncpg.IntegrityConstraintViolationError)

    def _wrap(self, exc: BaseException) -> StoreError:
        if isinstance(exc, asyncpg.IntegrityConstraintViolationError):
            return Conflict(f"PostgreSQL refused the write: {exc}")
        return StoreUnavailable(f"database {self.url} failed: {_cause(exc)}")

    # -- group-committed writes ------------------------------------------
    async def append_all(self, session_id: str, facts: Sequence[Fact]) -> list[int]:
        return await self._appends.submit_all([(session_id, fact) for fact in facts])

    async def log(self, entry: LogEntry) -> int:
        return await self._logs.submit(entry, lazy=True)  # a statement per batch, not per record

    async def _writer_connection(self) -> asyncpg.Connection:
        if self._writer.is_closed():  # the server dropped it: reconnect on the next flush
            self._writer = await asyncpg.connect(self._dsn, server_settings=self._settings)
        return self._writer

    async def _flush_appends(self, batch: Sequence[tuple[str, Fact]]) -> list[int | BaseException]:
        if len(batch) == 1:  # a lone writer: the plain statement, planned once and cheaper
            [(session_id, fact)] = batch
            rows = await self._run_writer(
                _APPEND_ONE_SQL, session_id, time.time(), fact_kind(fact), encode_fact(fact)
            )
            return [rows[0]["seq"] if rows else NotFound(f"session {session_id} not found")]
        sessions = [session_id for session_id, _ in batch]
        kinds = [fact_kind(fact) for _, fact in batch]
        bodies = [encode_fact(fact) for _, fact in batch]
        rows = await self._run_writer(_APPEND_SQL, sessions, kinds, bodies, time.time())
        seqs = {row["ord"]: row["seq"] for row in rows}
        return [
            seqs[ord_] if ord_ in seqs else NotFound(f"session {session_id} not found")
            for ord_, session_id in enumerate(sessions, start=1)
        ]

    async def _flush_logs(self, batch: Sequence[LogEntry]) -> list[int | BaseException]:
        now = time.time()
        columns = list(zip(*(log_row(entry, entry.ts or now) for entry in batch), strict=True))
        rows = await self._fetch(_LOG_SQL, *columns)  # the pool: the writer serves appends only
        return [row["id"] for row in rows]

    async def _run_writer(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        """One statement on the appenders' own connection (one flush in flight at a time)."""
        for attempt in range(5):
            try:
                conn = await self._writer_connection()
                return await conn.fetch(sql, *args)
            except _RETRYABLE:
                if attempt == 4:
                    raise
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                raise self._wrap(exc) from exc
        raise AssertionError("unreachable")

    # -- the cluster: LISTEN/NOTIFY ------------------------------------------
    @property
    def listening(self) -> bool:
        return self._listener is not None and not self._listener.is_closed()

    async def listen(self, receive: Callable[[str], None]) -> None:
        """Call ``receive(payload)`` for every notification on :attr:`channel`, on a
        connection of its own (see :attr:`listening`: it may drop)."""
        await self.unlisten()
        try:
            conn = await asyncpg.connect(self._dsn, server_settings=self._settings)
            await conn.add_listener(self.channel, lambda _c, _pid, _ch, payload: receive(payload))
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise self._wrap(exc) from exc
        self._listener = conn

    async def unlisten(self) -> None:
        conn, self._listener = self._listener, None
        if conn is not None and not conn.is_closed():
            await conn.close()

    async def notify(self, payloads: Sequence[str]) -> None:
        """Send notifications on :attr:`channel` in one round trip, outside any write
        transaction (a notifying commit takes a database-wide lock)."""
        await self._execute(
            "SELECT pg_notify($1, p) FROM unnest($2::text[]) AS p", self.channel, list(payloads)
        )

    # -- the cluster: the dispatch queue --------------------------------------
    async def enqueue_dispatch(self, request: DispatchRequest) -> None:
        """Record a queued request (Conflict: the session has one not yet done)."""
        values = [_escaped(getattr(request, c)) for c in _DISPATCH_COLUMNS]
        marks = ", ".join(f"${i}" for i in range(1, len(values) + 1))
        try:
            await self._pool.execute(
                f"INSERT INTO dispatch_requests ({', '.join(_DISPATCH_COLUMNS)}) VALUES ({marks})",
                *values,
            )
        except asyncpg.UniqueViolationError:
            raise Conflict(
                f"session {request.session_id} has a dispatch queued or running"
            ) from None
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise self._wrap(exc) from exc

    async def claim_dispatch(
        self, node_id: str, placements: Sequence[Placement]
    ) -> DispatchRequest | None:
        """The oldest queued request this node may run, now claimed by it."""
        row = await self._fetchrow(self._sql(_CLAIM_SQL), node_id, list(placements))
        return _request(row) if row is not None else None

    async def get_dispatch(self, request_id: str) -> DispatchRequest:
        row = await self._fetchrow(
            f"SELECT {', '.join(_DISPATCH_COLUMNS)} FROM dispatch_requests WHERE id = $1",
            request_id,
        )
        if row is None:
            raise NotFound(f"dispatch request {request_id} not found")
        return _request(row)

    async def pending_dispatch(self, session_id: str) -> DispatchRequest | None:
        """The session's request not yet done, if any (there is at most one)."""
        row = await self._fetchrow(
            f"SELECT {', '.join(_DISPATCH_COLUMNS)} FROM dispatch_requests "
            "WHERE session_id = $1 AND state <> 'done'",
            session_id,
        )
        return _request(row) if row is not None else None

    async def dispatches_of(
        self, node_id: str, states: Sequence[DispatchRequestState]
    ) -> list[DispatchRequest]:
        rows = await self._fetch(
            f"SELECT {', '.join(_DISPATCH_COLUMNS)} FROM dispatch_requests "
            "WHERE node = $1 AND state = ANY($2::text[]) ORDER BY created_at",
            node_id,
            list(states),
        )
        return [_request(r) for r in rows]

    async def queued_dispatches(self, before: float) -> list[DispatchRequest]:
        """Requests still queued that were made before ``before`` (Unix time)."""
        rows = await self._fetch(
            f"SELECT {', '.join(_DISPATCH_COLUMNS)} FROM dispatch_requests "
            "WHERE state = 'queued' AND created_at < $1 ORDER BY created_at",
            float(before),
        )
        return [_request(r) for r in rows]

    async def refuse_dispatch(self, request_id: str, outcome: str) -> bool:
        """End a request nobody claimed with ``outcome`` (JSON of a refusal); False
        when it was claimed meanwhile."""
        return bool(
            await self._execute(
                "UPDATE dispatch_requests SET state = 'done', outcome = $2 "
                "WHERE id = $1 AND state = 'queued'",
                request_id,
                outcome,
            )
        )

    async def set_dispatch_state(
        self, request_id: str, state: DispatchRequestState, outcome: str | None = None
    ) -> None:
        await self._execute(
            "UPDATE dispatch_requests SET state = $2, outcome = coalesce($3, outcome) "
            "WHERE id = $1",
            request_id,
            state,
            outcome,
        )

    async def release_leases_of(self, node_id: str) -> int:
        """Free the leases ``node_id`` (a dead node) holds on sessions not running."""
        return await self._execute(
            "UPDATE sessions SET lease_owner = NULL, lease_expires = NULL "
            "WHERE lease_owner = $1 AND status <> 'running'",
            node_id,
        )

    async def requeue_dispatches(self, node_id: str) -> int:
        """Queue again what ``node_id`` claimed but never started (no
        ``dispatch.started`` of it in the history: a request whose dispatch
        started is never run twice, even when its ``running`` mark was lost)."""
        return await self._execute(
            "UPDATE dispatch_requests r SET state = 'queued', node = NULL, claimed_at = NULL "
            "WHERE node = $1 AND state = 'claimed' AND NOT EXISTS (SELECT 1 FROM history h "
            "WHERE h.session_id = r.session_id AND h.kind = 'dispatch.started' "
            "AND h.body->>'dispatch_id' = r.dispatch_id)",
            node_id,
        )

    async def prune_dispatches(self, older_than: float) -> int:
        """Forget requests done more than ``older_than`` seconds after they were made
        (their dispatches are in the history)."""
        return await self._execute(
            self._sql(
                "DELETE FROM dispatch_requests WHERE state = 'done' AND created_at < {now} - $1"
            ),
            float(older_than),
        )


def _request(row: Mapping[str, Any]) -> DispatchRequest:
    values = {c: _unescaped(row[c]) for c in _DISPATCH_COLUMNS}
    return msgspec.convert(values, DispatchRequest)


def _unescaped(value: Any) -> Any:
    return jsontext.unescape(value) if isinstance(value, str) else value


def _escaped(value: Any) -> Any:
    """A text column's value by the rule of :mod:`aos.jsontext` (NUL escaped)."""
    return jsontext.escape(value) if isinstance(value, str) else value


async def _keep(connection: asyncpg.Connection) -> None:
    """Pool release without asyncpg's reset round trip: the store never leaves
    session state behind (no LISTEN, no session advisory locks, no SET)."""


def _split_schema(url: str, schema: str | None) -> tuple[str, str | None]:
    """Take an AOS-specific ``?schema=NAME`` off the URL (asyncpg does not know it)."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    from_url = next((v for k, v in query if k == "schema"), None)
    rest = urlencode([(k, v) for k, v in query if k != "schema"])
    return urlunsplit(parts._replace(query=rest)), schema or from_url


def _fix(url: str, exc: BaseException) -> str:
    """What to do about a failed connection, as the end of the sentence."""
    parts = urlsplit(url)
    where = f"-h {parts.hostname or 'localhost'} -p {parts.port or 5432}"
    if isinstance(exc, asyncpg.InvalidCatalogNameError):
        user = f" -U {parts.username}" if parts.username else ""
        return f": create it (createdb {where}{user} {parts.path.lstrip('/')})"
    if isinstance(exc, OSError):
        return f": is the server running and listening there? (pg_isready {where})"
    return ""


def _cause(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]
