-- AgentOS schema v4: the warnings and errors of the RuntimeLog, newest first, without
-- walking every record (log.read with level warning or error). Partial: the many
-- debug and info records cost it nothing.
CREATE INDEX runtime_log_problems ON runtime_log (id) WHERE level IN ('warning', 'error');
