-- AgentOS schema v3: how each session's last dispatch ended, on the session row,
-- so a list of sessions shows a failed run as failed without reading histories.
ALTER TABLE sessions ADD COLUMN outcome TEXT NOT NULL DEFAULT '';
