-- AgentOS schema v1 (SQLite). Times are Unix epoch seconds (REAL).
CREATE TABLE agents (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    parent      TEXT REFERENCES agents (id),
    status      TEXT NOT NULL,
    config      TEXT NOT NULL,          -- JSON AgentConfig
    scopes      TEXT NOT NULL,          -- JSON list of scope names
    created_at  REAL NOT NULL,
    updated_at  REAL NOT NULL,
    revision    INTEGER NOT NULL
);
CREATE UNIQUE INDEX agents_active_name ON agents (name) WHERE status = 'active';
CREATE INDEX agents_parent ON agents (parent);

CREATE TABLE sessions (
    id            TEXT PRIMARY KEY,
    agent_id      TEXT NOT NULL REFERENCES agents (id),
    title         TEXT NOT NULL,
    status        TEXT NOT NULL,
    phase         TEXT NOT NULL,
    created_at    REAL NOT NULL,
    updated_at    REAL NOT NULL,
    revision      INTEGER NOT NULL,
    lease_owner   TEXT,
    lease_expires REAL,
    last_seq      INTEGER NOT NULL DEFAULT 0   -- seq of the newest fact: the append counter
);
CREATE INDEX sessions_agent ON sessions (agent_id, created_at);
CREATE INDEX sessions_lease ON sessions (lease_expires) WHERE lease_owner IS NOT NULL;

CREATE TABLE history (
    session_id  TEXT NOT NULL REFERENCES sessions (id),
    seq         INTEGER NOT NULL,
    ts          REAL NOT NULL,
    kind        TEXT NOT NULL,
    body        TEXT NOT NULL,          -- JSON fact, kind included
    PRIMARY KEY (session_id, seq)
) WITHOUT ROWID;
CREATE INDEX history_kind ON history (kind, ts);

-- SessionHistory is append-only: facts are never changed or removed.
CREATE TRIGGER history_no_update BEFORE UPDATE ON history
BEGIN SELECT RAISE(ABORT, 'SessionHistory is append-only: facts cannot be updated'); END;
CREATE TRIGGER history_no_delete BEFORE DELETE ON history
BEGIN SELECT RAISE(ABORT, 'SessionHistory is append-only: facts cannot be deleted'); END;

CREATE TABLE runtime_log (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    ts          REAL NOT NULL,
    kind        TEXT NOT NULL,
    level       TEXT NOT NULL,
    session_id  TEXT,
    agent_id    TEXT,
    message     TEXT NOT NULL,
    data        TEXT NOT NULL           -- JSON object
);
CREATE INDEX runtime_log_session ON runtime_log (session_id, id);
CREATE INDEX runtime_log_kind ON runtime_log (kind, id);
CREATE INDEX runtime_log_ts ON runtime_log (ts);
