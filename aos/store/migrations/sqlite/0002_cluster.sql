-- AgentOS schema v2 (SQLite): the node table. SQLite serves one node (the
-- daemon holds a lock on the database), so there is no dispatch queue here.
CREATE TABLE nodes (
    id            TEXT PRIMARY KEY,
    host          TEXT NOT NULL,
    pid           INTEGER NOT NULL,
    version       TEXT NOT NULL,
    labels        TEXT NOT NULL,
    services      TEXT NOT NULL,
    state         TEXT NOT NULL,
    started_at    REAL NOT NULL,
    heartbeat_at  REAL NOT NULL
);
