"""The store interface and the SQL both backends share.

Queries are written once, in PostgreSQL's ``$n`` parameter style with a
``{now}`` placeholder for the database clock; each backend supplies the
primitives (:meth:`SQLStore._fetch`, :meth:`SQLStore._execute`) and the
operations whose best form differs (group-committed appends, migrations).
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any, ClassVar, Literal

import msgspec

from aos import jsontext
from aos.agent import ACB, AgentStatus
from aos.facts import Fact, HistoryEntry, decode_fact
from aos.nodes import NodeRecord, NodeState
from aos.runtimelog import LOG_LEVELS, LogEntry, LogQuery, decode_data, encode_data
from aos.session import SCB, SessionStatus
from aos.usage import UsageGroup

Backend = Literal["sqlite", "postgres"]
_any_json = msgspec.json.Decoder()


class StoreError(Exception):
    """A store operation failed; the message says what and why."""

    code: ClassVar[str] = "unavailable"


class NotFound(StoreError):
    code = "not_found"


class Conflict(StoreError):
    code = "conflict"


class StoreUnavailable(StoreError):
    """The database cannot be reached or used (names the URL and the cause)."""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


def load_migrations(backend: Backend) -> list[Migration]:
    """The versioned schema migrations of a backend, oldest first."""
    folder = resources.files("aos.store") / "migrations" / backend
    found: list[Migration] = []
    for entry in folder.iterdir():
        if entry.name.endswith(".sql"):
            version, _, name = entry.name.removesuffix(".sql").partition("_")
            found.append(Migration(int(version), name, entry.read_text(encoding="utf-8")))
    found.sort(key=lambda m: m.version)
    return found


_ANY: Any = object()
"""Filter sentinel: "do not filter on this column" (``None`` means IS NULL)."""


def _contains(text: str) -> str:
    """A LIKE pattern (``ESCAPE '\\'``) for lower-cased text containing ``text``."""
    escaped = text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _level_condition(where: str, level: str) -> str:
    """The condition for records at ``level`` or more severe, added to ``where``.

    Levels are literals of :data:`LOG_LEVELS` (never the caller's text). Warnings
    and errors are written as the ``runtime_log_problems`` partial index's own
    predicate, so both backends walk that index (newest first, no sort) instead
    of every record; ``debug`` is every record: no condition.
    """
    levels = LOG_LEVELS[LOG_LEVELS.index(level) :]  # ValueError for an unknown level
    if len(levels) == len(LOG_LEVELS):
        return ""
    joiner = " AND " if where else " WHERE "
    if level == "info":
        return f"{joiner}level <> 'debug'"
    condition = "level IN ('warning', 'error')"  # runtime_log_problems' predicate, verbatim
    if level != "warning":
        condition += f" AND level = '{level}'"
    return joiner + condition


def _where(conditions: Sequence[tuple[str, str, Any]]) -> tuple[str, list[Any]]:
    """A WHERE clause from ``(column, operator, value)`` conditions.

    A value of ``_ANY`` drops its condition; ``None`` with ``=`` means IS NULL.
    """
    clauses: list[str] = []
    args: list[Any] = []
    for column, op, value in conditions:
        if value is _ANY:
            continue
        if value is None and op == "=":
            clauses.append(f"{column} IS NULL")
            continue
        args.append(value)
        clauses.append(f"{column} {op} ${len(args)}")
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", args


class Store(ABC):
    """One async interface over SessionHistory, control blocks, RuntimeLog and leases."""

    backend: ClassVar[Backend]
    url: str
    """The database URL, password masked."""

    @abstractmethod
    async def close(self) -> None:
        """Flush pending writes and release the connection(s)."""

    @abstractmethod
    async def flush(self) -> None:
        """Commit every write submitted so far now, lazy RuntimeLog records included."""

    @abstractmethod
    async def schema_version(self) -> int:
        """The newest applied migration."""

    # -- control blocks -------------------------------------------------
    @abstractmethod
    async def create_agent(self, acb: ACB) -> ACB: ...
    @abstractmethod
    async def get_agent(self, agent_id: str) -> ACB: ...
    @abstractmethod
    async def list_agents(
        self, *, parent: str | None = _ANY, status: AgentStatus | None = None
    ) -> list[ACB]: ...
    @abstractmethod
    async def update_agent(self, acb: ACB) -> ACB:
        """Write ``acb`` if the stored revision still equals ``acb.revision``;
        return it with the next revision, else raise :class:`Conflict`."""

    @abstractmethod
    async def create_session(self, scb: SCB) -> SCB: ...
    @abstractmethod
    async def get_session(self, session_id: str) -> SCB: ...
    @abstractmethod
    async def list_sessions(
        self,
        *,
        agent_id: str | None = None,
        status: SessionStatus | None = None,
        outcome: str | None = None,
        search: str | None = None,
        limit: int | None = None,
    ) -> list[SCB]:
        """Sessions by creation time; ``outcome``: whose last dispatch ended with
        this status; ``search``: a title or a user or assistant message containing
        it (any case); ``limit``: the most recently active."""

    @abstractmethod
    async def update_session(self, scb: SCB) -> SCB:
        """Optimistic like :meth:`update_agent`; lease fields are not written here."""

    # -- SessionHistory -------------------------------------------------
    async def append(self, session_id: str, fact: Fact) -> int:
        """Durably append a fact; return its seq (the session's previous seq + 1).

        Concurrent appends are group-committed: one transaction serves every
        append that arrived while the previous commit was in flight."""
        [seq] = await self.append_all(session_id, [fact])
        return seq

    @abstractmethod
    async def append_all(self, session_id: str, facts: Sequence[Fact]) -> list[int]:
        """Durably append facts in order, in one commit; return their seqs
        (consecutive, unless another writer's fact landed between them)."""

    @abstractmethod
    async def read_history(
        self,
        session_id: str,
        *,
        after: int = 0,
        until: int | None = None,
        limit: int | None = None,
        kinds: Sequence[str] | None = None,
        newest: bool = False,
    ) -> list[HistoryEntry]:
        """Facts with ``after < seq <= until`` (of ``kinds``), oldest first: the
        oldest ``limit`` of them, or the newest with ``newest``."""

    # -- RuntimeLog -----------------------------------------------------
    @abstractmethod
    async def log(self, entry: LogEntry) -> int:
        """Append a RuntimeLog record (group-committed); return its id."""

    @abstractmethod
    async def read_log(self, query: LogQuery) -> list[LogEntry]: ...

    # -- leases ---------------------------------------------------------
    @abstractmethod
    async def acquire_lease(self, session_id: str, owner: str, ttl: float) -> bool:
        """Take the session's lease for ``ttl`` seconds if it is free, expired or
        already ours; False if another owner holds it."""

    @abstractmethod
    async def renew_lease(self, session_id: str, owner: str, ttl: float) -> bool:
        """Extend our lease; False if it is no longer ours."""

    @abstractmethod
    async def release_lease(self, session_id: str, owner: str) -> bool:
        """Give the lease up; False if it was not ours."""

    @abstractmethod
    async def take_lease(self, session_id: str, owner: str, ttl: float, dead: str) -> bool:
        """Take the session's lease from the ``dead`` node that holds it; False if
        that node does not hold it (any more)."""

    # -- usage ----------------------------------------------------------
    @abstractmethod
    async def usage_rows(
        self, group: UsageGroup, keys: Sequence[str] | None = None, *, since: float | None = None
    ) -> list[Mapping[str, Any]]:
        """The model calls (``message.assistant`` facts) of sessions, or of each
        agent's sessions, summed by key and model: ``{key, model, calls,
        input_tokens, output_tokens, cost}``; ``keys`` limits it to those sessions
        (or agents), ``since`` to facts recorded at or after that Unix time."""

    # -- nodes ----------------------------------------------------------
    @abstractmethod
    async def register_node(self, node: NodeRecord) -> None:
        """Record the node as running, its heartbeat now (a node restarting
        under its old id replaces its old record)."""

    @abstractmethod
    async def heartbeat_node(self, node_id: str, services: str) -> NodeState | None:
        """Stamp the node's heartbeat with the database's clock and its services
        (JSON); return the state it had (``dead``: others recovered its sessions),
        None if it is not registered."""

    @abstractmethod
    async def set_node_state(self, node_id: str, state: NodeState) -> None: ...

    @abstractmethod
    async def list_nodes(self) -> list[NodeRecord]:
        """Every node ever registered, with ``age`` (seconds since its heartbeat)."""


_AGENT_COLUMNS = (
    "id",
    "name",
    "parent",
    "status",
    "config",
    "scopes",
    "created_at",
    "updated_at",
    "revision",
)
_AGENT_JSON = ("config", "scopes")
_SESSION_COLUMNS = (
    "id",
    "agent_id",
    "title",
    "status",
    "phase",
    "created_at",
    "updated_at",
    "revision",
    "outcome",
    "lease_owner",
    "lease_expires",
)
_NODE_COLUMNS = (
    "id",
    "host",
    "pid",
    "version",
    "labels",
    "services",
    "state",
    "started_at",
    "heartbeat_at",
)
_NODE_JSON = ("labels", "services")
_LOG_COLUMNS = ("id", "ts", "kind", "level", "session_id", "agent_id", "message", "data")


def _row_values(
    struct: msgspec.Struct, columns: Sequence[str], json_columns: Sequence[str]
) -> list[Any]:
    """Column values of a control block; every string is stored by the rule of
    :mod:`aos.jsontext` (NUL and lone surrogates escaped)."""
    values = []
    for column in columns:
        value = getattr(struct, column)
        if column in json_columns:
            value = jsontext.encode(value)
        elif isinstance(value, str):
            value = jsontext.escape(value)
        values.append(value)
    return values


def _from_row(row: Mapping[str, Any], cls: type[Any], json_columns: Sequence[str] = ()) -> Any:
    data = {k: jsontext.unescape(v) if isinstance(v, str) else v for k, v in dict(row).items()}
    for column in json_columns:
        data[column] = jsontext.decode(row[column], _any_json)
    return msgspec.convert(data, cls)


class SQLStore(Store):
    """Everything both SQL backends do the same way."""

    NOW: ClassVar[str]
    """SQL expression for the database's current Unix time in seconds."""

    @abstractmethod
    async def _fetch(self, sql: str, *args: Any) -> list[Mapping[str, Any]]: ...
    @abstractmethod
    async def _execute(self, sql: str, *args: Any) -> int:
        """Run a statement; return the number of rows it changed."""

    async def _fetchrow(self, sql: str, *args: Any) -> Mapping[str, Any] | None:
        rows = await self._fetch(sql, *args)
        return rows[0] if rows else None

    def _sql(self, sql: str) -> str:
        return sql.replace("{now}", self.NOW)

    @abstractmethod
    def _json_field(self, column: str, path: str, kind: Literal["text", "int", "float"]) -> str:
        """SQL for a field (``usage.cost``) of a JSON column, as text or a number."""

    def _lower(self, expr: str, text: str) -> str:
        """SQL for ``expr`` in lower case, to compare with ``text`` lowered."""
        return f"lower({expr})"

    async def schema_version(self) -> int:
        row = await self._fetchrow("SELECT max(version) AS v FROM schema_migrations")
        return int(row["v"]) if row and row["v"] is not None else 0

    # -- generic control-block helpers -----------------------------------
    async def _insert(self, table: str, columns: Sequence[str], values: Sequence[Any]) -> None:
        marks = ", ".join(f"${i}" for i in range(1, len(columns) + 1))
        await self._execute(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})", *values)

    async def _get(
        self,
        table: str,
        what: str,
        key: str,
        cls: type[Any],
        json_columns: Sequence[str],
        columns: Sequence[str],
    ) -> Any:
        row = await self._fetchrow(f"SELECT {', '.join(columns)} FROM {table} WHERE id = $1", key)
        if row is None:
            raise NotFound(f"{what} {key} not found")
        return _from_row(row, cls, json_columns)

    async def _update(
        self,
        table: str,
        what: str,
        struct: Any,
        columns: Sequence[str],
        json_columns: Sequence[str],
    ) -> Any:
        now = time.time()
        writable = [c for c in columns if c not in ("id", "created_at", "updated_at", "revision")]
        sets = ", ".join(f"{c} = ${i}" for i, c in enumerate(writable, start=3))
        n = len(writable) + 3
        values = _row_values(struct, writable, json_columns)
        changed = await self._execute(
            f"UPDATE {table} SET {sets}, revision = revision + 1, updated_at = ${n} "
            f"WHERE id = $1 AND revision = $2",
            struct.id,
            struct.revision,
            *values,
            now,
        )
        if changed == 0:
            current = await self._get(table, what, struct.id, type(struct), json_columns, columns)
            raise Conflict(
                f"{what} {struct.id} changed meanwhile (revision {current.revision}, "
                f"update was based on {struct.revision}): read it again and retry"
            )
        return msgspec.structs.replace(struct, revision=struct.revision + 1, updated_at=now)

    # -- agents ---------------------------------------------------------
    async def create_agent(self, acb: ACB) -> ACB:
        now = time.time()
        acb = msgspec.structs.replace(acb, created_at=now, updated_at=now, revision=1)
        await self._insert_checked("agents", "agent", acb, _AGENT_COLUMNS, _AGENT_JSON)
        return acb

    async def get_agent(self, agent_id: str) -> ACB:
        return await self._get("agents", "agent", agent_id, ACB, _AGENT_JSON, _AGENT_COLUMNS)

    async def list_agents(
        self, *, parent: str | None = _ANY, status: AgentStatus | None = None
    ) -> list[ACB]:
        where, args = _where([("parent", "=", parent), ("status", "=", status or _ANY)])
        rows = await self._fetch(
            f"SELECT {', '.join(_AGENT_COLUMNS)} FROM agents{where} ORDER BY created_at, id", *args
        )
        return [_from_row(r, ACB, _AGENT_JSON) for r in rows]

    async def update_agent(self, acb: ACB) -> ACB:
        return await self._update("agents", "agent", acb, _AGENT_COLUMNS, _AGENT_JSON)

    # -- sessions -------------------------------------------------------
    async def create_session(self, scb: SCB) -> SCB:
        now = time.time()
        scb = msgspec.structs.replace(
            scb, created_at=now, updated_at=now, revision=1, lease_owner=None, lease_expires=None
        )
        await self._insert_checked("sessions", "session", scb, _SESSION_COLUMNS, ())
        return scb

    async def get_session(self, session_id: str) -> SCB:
        return await self._get("sessions", "session", session_id, SCB, (), _SESSION_COLUMNS)

    async def list_sessions(
        self,
        *,
        agent_id: str | None = None,
        status: SessionStatus | None = None,
        outcome: str | None = None,
        search: str | None = None,
        limit: int | None = None,
    ) -> list[SCB]:
        where, args = _where([("agent_id", "=", agent_id or _ANY), ("status", "=", status or _ANY)])
        if outcome:  # the status alone, or the status and its error after ": "
            args.extend((outcome, f"{outcome}: %"))
            where += (" AND " if where else " WHERE ") + (
                f"(outcome = ${len(args) - 1} OR outcome LIKE ${len(args)})"
            )
        if search:
            args.append(_contains(search))
            mark = f"${len(args)}"
            text = self._lower(self._json_field("h.body", "text", "text"), search)
            title = self._lower("title", search)
            where += (" AND " if where else " WHERE ") + (
                f"({title} LIKE {mark} ESCAPE '\\' OR EXISTS (SELECT 1 FROM history h "
                "WHERE h.session_id = sessions.id AND h.kind IN ('message.user', "
                f"'message.assistant') AND {text} LIKE {mark} ESCAPE '\\'))"
            )
        columns = ", ".join(_SESSION_COLUMNS)
        sql = f"SELECT {columns} FROM sessions{where}"
        if limit is not None:  # the most recently active, in the usual order
            sql = f"SELECT * FROM ({sql} ORDER BY updated_at DESC, id LIMIT {int(limit)}) AS s"
        rows = await self._fetch(f"{sql} ORDER BY created_at, id", *args)
        return [_from_row(r, SCB) for r in rows]

    async def update_session(self, scb: SCB) -> SCB:
        columns = _SESSION_COLUMNS[:-2]  # the lease has its own operations
        return await self._update("sessions", "session", scb, columns, ())

    @abstractmethod
    def _is_integrity_error(self, exc: BaseException) -> bool: ...

    async def _insert_checked(
        self,
        table: str,
        what: str,
        struct: Any,
        columns: Sequence[str],
        json_columns: Sequence[str],
    ) -> None:
        try:
            await self._insert(table, columns, _row_values(struct, columns, json_columns))
        except Exception as exc:
            if not self._is_integrity_error(exc):
                raise
            raise Conflict(self._explain_integrity(what, struct)) from None

    def _explain_integrity(self, what: str, struct: Any) -> str:
        if what == "agent":
            return (
                f"agent {struct.id} not created: an active agent named {struct.name!r} or "
                f"that id already exists, or parent {struct.parent} does not exist"
            )
        return (
            f"session {struct.id} not created: that id already exists or "
            f"agent {struct.agent_id} does not exist"
        )

    # -- history reads ----------------------------------------------------
    async def read_history(
        self,
        session_id: str,
        *,
        after: int = 0,
        until: int | None = None,
        limit: int | None = None,
        kinds: Sequence[str] | None = None,
        newest: bool = False,
    ) -> list[HistoryEntry]:
        where, args = _where(
            [
                ("session_id", "=", session_id),
                ("seq", ">", after),
                ("seq", "<=", _ANY if until is None else until),
            ]
        )
        if kinds is not None:
            args.extend(kinds)
            marks = ", ".join(f"${i}" for i in range(len(args) - len(kinds) + 1, len(args) + 1))
            where += f" AND kind IN ({marks})" if kinds else " AND FALSE"
        tail = f" LIMIT {int(limit)}" if limit is not None else ""
        order = "DESC" if newest else "ASC"
        rows = await self._fetch(
            f"SELECT seq, ts, body FROM history{where} ORDER BY seq {order}{tail}", *args
        )
        if not rows:
            await self.get_session(session_id)  # NotFound for an unknown session
        entries = [
            HistoryEntry(
                session_id=session_id, seq=r["seq"], ts=r["ts"], fact=decode_fact(r["body"])
            )
            for r in rows
        ]
        return entries[::-1] if newest else entries

    # -- runtime log reads ------------------------------------------------
    async def read_log(self, query: LogQuery) -> list[LogEntry]:
        where, args = _where(
            [
                ("session_id", "=", query.session_id or _ANY),
                ("agent_id", "=", query.agent_id or _ANY),
                ("kind", "=", query.kind or _ANY),
                ("ts", ">=", _ANY if query.since is None else query.since),
                ("ts", "<", _ANY if query.until is None else query.until),
                ("id", ">", query.after_id),
                ("id", "<", _ANY if query.before_id is None else query.before_id),
            ]
        )
        if query.level:
            where += _level_condition(where, query.level)
        if query.skill:
            args.extend((query.skill, f"service:{query.skill}"))
            name, service = f"${len(args) - 1}", f"${len(args)}"
            fields = [self._json_field("data", f, "text") for f in ("skill", "implementation")]
            principal = self._json_field("data", "principal", "text")
            where += (" AND " if where else " WHERE ") + (
                f"({fields[0]} = {name} OR {fields[1]} = {name} OR {principal} = {service})"
            )
        if query.search:
            args.append(_contains(query.search))
            mark = f"${len(args)}"
            where += (" AND " if where else " WHERE ") + (
                f"({self._lower('message', query.search)} LIKE {mark} ESCAPE '\\' "
                f"OR {self._lower('kind', query.search)} LIKE {mark} ESCAPE '\\')"
            )
        order = "DESC" if query.newest_first else "ASC"
        rows = await self._fetch(
            f"SELECT {', '.join(_LOG_COLUMNS)} FROM runtime_log{where} "
            f"ORDER BY id {order} LIMIT {int(query.limit)}",
            *args,
        )
        return [
            LogEntry(
                id=r["id"],
                ts=r["ts"],
                kind=r["kind"],
                level=r["level"],
                session_id=r["session_id"],
                agent_id=r["agent_id"],
                message=jsontext.unescape(r["message"]),
                data=decode_data(r["data"]),
            )
            for r in rows
        ]

    # -- leases -----------------------------------------------------------
    async def acquire_lease(self, session_id: str, owner: str, ttl: float) -> bool:
        changed = await self._execute(
            self._sql(
                "UPDATE sessions SET lease_owner = $2, lease_expires = {now} + $3 "
                "WHERE id = $1 AND (lease_owner IS NULL OR lease_owner = $2 "
                "OR lease_expires < {now})"
            ),
            session_id,
            owner,
            float(ttl),
        )
        return await self._lease_result(session_id, changed)

    async def renew_lease(self, session_id: str, owner: str, ttl: float) -> bool:
        changed = await self._execute(
            self._sql(
                "UPDATE sessions SET lease_expires = {now} + $3 WHERE id = $1 AND lease_owner = $2"
            ),
            session_id,
            owner,
            float(ttl),
        )
        return await self._lease_result(session_id, changed)

    async def release_lease(self, session_id: str, owner: str) -> bool:
        changed = await self._execute(
            "UPDATE sessions SET lease_owner = NULL, lease_expires = NULL "
            "WHERE id = $1 AND lease_owner = $2",
            session_id,
            owner,
        )
        return await self._lease_result(session_id, changed)

    async def take_lease(self, session_id: str, owner: str, ttl: float, dead: str) -> bool:
        changed = await self._execute(
            self._sql(
                "UPDATE sessions SET lease_owner = $2, lease_expires = {now} + $3 "
                "WHERE id = $1 AND lease_owner = $4"
            ),
            session_id,
            owner,
            float(ttl),
            dead,
        )
        return await self._lease_result(session_id, changed)

    async def _lease_result(self, session_id: str, changed: int) -> bool:
        if changed:
            return True
        await self.get_session(session_id)  # NotFound for an unknown session
        return False

    # -- usage ----------------------------------------------------------------
    async def usage_rows(
        self, group: UsageGroup, keys: Sequence[str] | None = None, *, since: float | None = None
    ) -> list[Mapping[str, Any]]:
        key = "h.session_id" if group == "session" else "s.agent_id"
        where, args = "", list[Any](keys or ())
        if keys is not None:
            if not keys:
                return []
            marks = ", ".join(f"${i}" for i in range(1, len(args) + 1))
            where = f" AND {key} IN ({marks})"
        if since is not None:
            args.append(float(since))
            where += f" AND h.ts >= ${len(args)}"
        model = self._json_field("h.body", "model", "text")
        tokens_in = self._json_field("h.body", "usage.prompt_tokens", "int")
        tokens_out = self._json_field("h.body", "usage.completion_tokens", "int")
        cost = self._json_field("h.body", "usage.cost", "float")
        return await self._fetch(
            f"SELECT {key} AS key, {model} AS model, count(*) AS calls, "
            f"sum({tokens_in}) AS input_tokens, sum({tokens_out}) AS output_tokens, "
            f"sum({cost}) AS cost FROM history h JOIN sessions s ON s.id = h.session_id "
            f"WHERE h.kind = 'message.assistant'{where} GROUP BY {key}, {model}",
            *args,
        )

    # -- nodes ----------------------------------------------------------------
    async def register_node(self, node: NodeRecord) -> None:
        values = _row_values(node, _NODE_COLUMNS[:-2], _NODE_JSON)
        updates = ", ".join(f"{c} = excluded.{c}" for c in _NODE_COLUMNS[1:])
        await self._execute(
            self._sql(
                f"INSERT INTO nodes ({', '.join(_NODE_COLUMNS)}) "
                "VALUES ($1, $2, $3, $4, $5, $6, $7, {now}, {now}) "
                f"ON CONFLICT (id) DO UPDATE SET {updates}"
            ),
            *values,
        )

    async def heartbeat_node(self, node_id: str, services: str) -> NodeState | None:
        row = await self._fetchrow("SELECT state FROM nodes WHERE id = $1", node_id)
        if row is None:
            return None
        await self._execute(
            self._sql(
                "UPDATE nodes SET heartbeat_at = {now}, services = $2, "
                "state = CASE WHEN state = 'dead' THEN 'running' ELSE state END WHERE id = $1"
            ),
            node_id,
            services,
        )
        return row["state"]

    async def set_node_state(self, node_id: str, state: NodeState) -> None:
        await self._execute("UPDATE nodes SET state = $2 WHERE id = $1", node_id, state)

    async def list_nodes(self) -> list[NodeRecord]:
        rows = await self._fetch(
            self._sql(
                f"SELECT {', '.join(_NODE_COLUMNS)}, {{now}} - heartbeat_at AS age "
                "FROM nodes ORDER BY started_at, id"
            )
        )
        return [_from_row(r, NodeRecord, _NODE_JSON) for r in rows]


def log_row(entry: LogEntry, ts: float) -> tuple[Any, ...]:
    """Column values of a new RuntimeLog record (without id)."""
    return (
        ts,
        entry.kind,
        entry.level,
        entry.session_id,
        entry.agent_id,
        jsontext.escape(entry.message),
        encode_data(entry.data),
    )
