-- Stored responses of the OpenAI Responses API (`store: true`), per tenant. The
-- response and the conversation it continued live encrypted in the artifact store
-- (`artifact_key`); a response is gone after `expires_at` (the retention, epoch ms).

CREATE TABLE responses (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants (id),
    artifact_key TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);

CREATE INDEX responses_expiry ON responses (expires_at);
