-- Fine-tuning jobs share the jobs table (and with it the claim, the lease and the
-- takeover of classifier training): `kind` tells them apart ('classifier' or
-- 'fine-tune'). A fine-tuning job keeps its training file in dataset_id, its
-- validation file in test_dataset_id and its base model in model_name.
-- job_checkpoints: the sealed trainer state a job saved after a step (`artifact_key`:
-- adapter and optimiser, to resume from; `adapter_key`: the adapter alone, llama.cpp's
-- GGUF), with the metrics at that step.

ALTER TABLE jobs ADD COLUMN kind TEXT NOT NULL DEFAULT 'classifier';

CREATE INDEX jobs_kind_tenant_created ON jobs (kind, tenant_id, created_at);

CREATE TABLE job_checkpoints (
    id TEXT PRIMARY KEY,
    job_id TEXT NOT NULL REFERENCES jobs (id),
    step BIGINT NOT NULL,
    metrics TEXT NOT NULL,
    artifact_key TEXT NOT NULL,
    adapter_key TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE INDEX job_checkpoints_by_job ON job_checkpoints (job_id, step);
