-- Canary releases: a deployment may split its traffic between its stable version and a
-- canary (`canary_percent` of the requests that name no version), optionally rolled
-- back by the platform when the canary's error rate exceeds the stable version's
-- (`auto_rollback`, JSON). `canary_started_at` (epoch ms) bounds the canary's window.
ALTER TABLE deployments ADD COLUMN canary_version BIGINT;
ALTER TABLE deployments ADD COLUMN canary_percent BIGINT NOT NULL DEFAULT 0;
ALTER TABLE deployments ADD COLUMN auto_rollback TEXT;
ALTER TABLE deployments ADD COLUMN canary_started_at BIGINT;

-- What happened to a model, for its owners: deployments, canaries, promotions and
-- rollbacks (by a person or by the platform, with the reason).
CREATE TABLE model_events (
    model_id TEXT NOT NULL,
    seq BIGINT NOT NULL,
    at BIGINT NOT NULL,
    kind TEXT NOT NULL,
    detail TEXT NOT NULL,
    PRIMARY KEY (model_id, seq)
);
