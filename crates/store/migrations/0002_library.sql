-- The model library: models pulled into this installation's model cache (LLMs,
-- embedding encoders), shared by every tenant; and per-key usage for quotas.

CREATE TABLE library_models (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    task TEXT NOT NULL,
    format TEXT NOT NULL,
    source TEXT NOT NULL,
    license TEXT NOT NULL,
    dir TEXT NOT NULL,
    files TEXT NOT NULL,
    size_bytes BIGINT NOT NULL,
    defaults TEXT NOT NULL,
    settings TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE usage_daily (
    tenant_id TEXT NOT NULL,
    key_id TEXT NOT NULL,
    model TEXT NOT NULL,
    day TEXT NOT NULL,
    requests BIGINT NOT NULL,
    prompt_tokens BIGINT NOT NULL,
    completion_tokens BIGINT NOT NULL,
    PRIMARY KEY (key_id, model, day)
);
