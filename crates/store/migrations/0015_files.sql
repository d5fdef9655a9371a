-- Files of OpenAI's files API (`/v1/files`), per tenant: the content sealed in the
-- artifact store (`artifact_key`), what its validation found (`format`: chat or
-- completions examples for `fine-tune`; `examples`: how many), and whether personal
-- data was masked before it was stored (`masked`: the mode, or NULL).

CREATE TABLE files (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants (id),
    filename TEXT NOT NULL,
    purpose TEXT NOT NULL,
    bytes BIGINT NOT NULL,
    format TEXT NOT NULL,
    examples BIGINT NOT NULL,
    masked TEXT,
    artifact_key TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE INDEX files_by_tenant ON files (tenant_id, created_at, id);
