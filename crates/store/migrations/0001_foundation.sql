-- Portable SQL: runs unchanged on SQLite and PostgreSQL.
-- Ids are application-generated text (UUIDv7), times are BIGINT epoch milliseconds,
-- booleans are INTEGER 0/1, JSON documents are TEXT.

CREATE TABLE tenants (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL
);

CREATE TABLE api_keys (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants (id),
    name TEXT NOT NULL,
    role TEXT NOT NULL,
    secret_hash TEXT NOT NULL UNIQUE,
    allowed_models TEXT,
    expires_at BIGINT,
    revoked_at BIGINT,
    created_at BIGINT NOT NULL
);

CREATE TABLE datasets (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants (id),
    name TEXT NOT NULL,
    format TEXT NOT NULL,
    text_column TEXT NOT NULL,
    label_column TEXT NOT NULL,
    row_count BIGINT NOT NULL,
    byte_count BIGINT NOT NULL,
    artifact_key TEXT NOT NULL,
    stats TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    UNIQUE (tenant_id, name)
);

CREATE TABLE models (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants (id),
    name TEXT NOT NULL,
    task TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    UNIQUE (tenant_id, name)
);

CREATE TABLE model_versions (
    model_id TEXT NOT NULL REFERENCES models (id),
    version BIGINT NOT NULL,
    architecture TEXT NOT NULL,
    labels TEXT NOT NULL,
    artifact_prefix TEXT NOT NULL,
    files TEXT NOT NULL,
    report TEXT NOT NULL,
    config TEXT NOT NULL,
    job_id TEXT,
    dataset_id TEXT,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (model_id, version)
);

CREATE TABLE model_aliases (
    model_id TEXT NOT NULL REFERENCES models (id),
    alias TEXT NOT NULL,
    version BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (model_id, alias)
);

CREATE TABLE deployments (
    model_id TEXT PRIMARY KEY REFERENCES models (id),
    version BIGINT NOT NULL,
    max_batch BIGINT NOT NULL,
    max_delay_ms BIGINT NOT NULL,
    queue_capacity BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE jobs (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants (id),
    model_name TEXT NOT NULL,
    -- No foreign keys to datasets: a finished job keeps the ids of the data it used as
    -- history after the dataset is deleted.
    dataset_id TEXT NOT NULL,
    test_dataset_id TEXT,
    config TEXT NOT NULL,
    deploy INTEGER NOT NULL,
    status TEXT NOT NULL,
    cancel_requested INTEGER NOT NULL,
    error TEXT,
    report TEXT,
    model_version BIGINT,
    attempts BIGINT NOT NULL,
    claimed_by TEXT,
    created_at BIGINT NOT NULL,
    started_at BIGINT,
    finished_at BIGINT
);

CREATE INDEX jobs_status_created ON jobs (status, created_at);

CREATE TABLE job_events (
    job_id TEXT NOT NULL REFERENCES jobs (id),
    seq BIGINT NOT NULL,
    at BIGINT NOT NULL,
    event TEXT NOT NULL,
    PRIMARY KEY (job_id, seq)
);
