-- The audit log: append-only. `seq` counts from 1 without gaps and each entry carries the
-- hash of the one before (`prev_hash`) and its own (`hash`, over every other column), so
-- a deleted, reordered or edited entry breaks the chain (core/src/audit.rs verifies it).
-- `seq` as the primary key also serialises writers: two appends of the same `seq` cannot
-- both succeed, the loser re-reads the head and retries.

CREATE TABLE audit_log (
    seq BIGINT PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    at BIGINT NOT NULL,
    tenant_id TEXT,
    key_id TEXT,
    role TEXT,
    action TEXT NOT NULL,
    target TEXT,
    outcome TEXT NOT NULL,
    source TEXT,
    detail TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);

CREATE INDEX audit_log_tenant ON audit_log (tenant_id, seq);
CREATE INDEX audit_log_at ON audit_log (at);
