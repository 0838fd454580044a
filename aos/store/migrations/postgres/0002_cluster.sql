-- AgentOS schema v2 (PostgreSQL): the cluster. Nodes register and heartbeat;
-- session.dispatch on any node queues a request that some live node claims.
CREATE TABLE nodes (
    id            TEXT PRIMARY KEY,
    host          TEXT NOT NULL,
    pid           INTEGER NOT NULL,
    version       TEXT NOT NULL,
    labels        TEXT NOT NULL,              -- JSON list of the node's labels
    services      TEXT NOT NULL,              -- JSON list of {skill, state}
    state         TEXT NOT NULL,              -- running | stopping | stopped | dead
    started_at    DOUBLE PRECISION NOT NULL,
    heartbeat_at  DOUBLE PRECISION NOT NULL   -- the database's clock, never a node's
);

CREATE TABLE dispatch_requests (
    id           TEXT PRIMARY KEY,
    session_id   TEXT NOT NULL REFERENCES sessions (id),
    dispatch_id  TEXT NOT NULL,
    origin       TEXT NOT NULL,               -- the node whose syscall recorded it
    principal    TEXT NOT NULL,               -- JSON: who dispatched (the dispatch runs as them)
    message      TEXT NOT NULL,
    cwd          TEXT,
    model        TEXT,
    placement    TEXT NOT NULL,               -- any | node:<id> | label:<label>
    state        TEXT NOT NULL,               -- queued | claimed | running | done
    node         TEXT,                        -- the node that claimed it
    created_at   DOUBLE PRECISION NOT NULL,
    claimed_at   DOUBLE PRECISION,
    outcome      TEXT                         -- JSON: the DispatchOutcome, or {"code", "message"}
);
CREATE INDEX dispatch_requests_queued ON dispatch_requests (created_at) WHERE state = 'queued';
CREATE INDEX dispatch_requests_node ON dispatch_requests (node) WHERE state IN ('claimed', 'running');
-- One dispatch at a time per session, from the moment it is asked for.
CREATE UNIQUE INDEX dispatch_requests_one_per_session ON dispatch_requests (session_id)
    WHERE state <> 'done';
