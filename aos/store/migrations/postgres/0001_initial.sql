-- AgentOS schema v1 (PostgreSQL). Times are Unix epoch seconds (double precision).
CREATE TABLE agents (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    parent      TEXT REFERENCES agents (id),
    status      TEXT NOT NULL,
    config      JSONB NOT NULL,
    scopes      JSONB NOT NULL,
    created_at  DOUBLE PRECISION NOT NULL,
    updated_at  DOUBLE PRECISION NOT NULL,
    revision    BIGINT NOT NULL
);
CREATE UNIQUE INDEX agents_active_name ON agents (name) WHERE status = 'active';
CREATE INDEX agents_parent ON agents (parent);

CREATE TABLE sessions (
    id            TEXT PRIMARY KEY,
    agent_id      TEXT NOT NULL REFERENCES agents (id),
    title         TEXT NOT NULL,
    status        TEXT NOT NULL,
    phase         TEXT NOT NULL,
    created_at    DOUBLE PRECISION NOT NULL,
    updated_at    DOUBLE PRECISION NOT NULL,
    revision      BIGINT NOT NULL,
    lease_owner   TEXT,
    lease_expires DOUBLE PRECISION,
    last_seq      BIGINT NOT NULL DEFAULT 0   -- seq of the newest fact: the append counter
);
CREATE INDEX sessions_agent ON sessions (agent_id, created_at);
CREATE INDEX sessions_lease ON sessions (lease_expires) WHERE lease_owner IS NOT NULL;

CREATE TABLE history (
    session_id  TEXT NOT NULL REFERENCES sessions (id),
    seq         BIGINT NOT NULL,
    ts          DOUBLE PRECISION NOT NULL,
    kind        TEXT NOT NULL,
    body        JSONB NOT NULL,
    PRIMARY KEY (session_id, seq)
);
CREATE INDEX history_kind ON history (kind, ts);

-- SessionHistory is append-only: facts are never changed or removed.
CREATE FUNCTION aos_history_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'SessionHistory is append-only: facts cannot be %', lower(TG_OP) || 'd';
END $$;
CREATE TRIGGER history_append_only BEFORE UPDATE OR DELETE ON history
    FOR EACH ROW EXECUTE FUNCTION aos_history_append_only();

CREATE TABLE runtime_log (
    id          BIGSERIAL PRIMARY KEY,
    ts          DOUBLE PRECISION NOT NULL,
    kind        TEXT NOT NULL,
    level       TEXT NOT NULL,
    session_id  TEXT,
    agent_id    TEXT,
    message     TEXT NOT NULL,
    data        JSONB NOT NULL
);
CREATE INDEX runtime_log_session ON runtime_log (session_id, id);
CREATE INDEX runtime_log_kind ON runtime_log (kind, id);
CREATE INDEX runtime_log_ts ON runtime_log (ts);
