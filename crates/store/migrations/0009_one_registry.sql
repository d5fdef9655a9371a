-- One model registry. Library models (pulled LLMs and encoders, installation-wide) move
-- from their own table into models / model_versions / deployments, under the reserved
-- owner 'installation' (a tenants row no key belongs to, never listed): a pulled model
-- is a model, its pull is version 1, and how it is served is its deployment. Each
-- model version now records where its files came from (source, licence, size); a
-- deployment keeps the settings of runtimes other than the classifier's batcher
-- (slots, context, keep-alive, output masking) as a JSON object in `serving`.
-- The library's file lists (objects with a name, size and digest) move unchanged: a
-- version's `files` is a JSON array of names, or of objects with a `name`.
-- A library model's folder in the model cache is named after it, so `dir` is not kept.

INSERT INTO tenants (id, name, created_at) VALUES ('installation', '*installation', 0);

ALTER TABLE model_versions ADD COLUMN source TEXT NOT NULL DEFAULT '';
ALTER TABLE model_versions ADD COLUMN license TEXT NOT NULL DEFAULT '';
ALTER TABLE model_versions ADD COLUMN size_bytes BIGINT NOT NULL DEFAULT 0;
ALTER TABLE deployments ADD COLUMN serving TEXT NOT NULL DEFAULT '{}';

INSERT INTO models (id, tenant_id, name, task, created_at)
    SELECT id, 'installation', name, task, created_at FROM library_models;

INSERT INTO model_versions (model_id, version, architecture, labels, artifact_prefix, files,
        report, config, job_id, dataset_id, created_at, format, source, license, size_bytes)
    SELECT id, 1, format, '[]', 'library/' || id, files, '{}', defaults, NULL, NULL,
        created_at, format, source, license, size_bytes FROM library_models;

INSERT INTO deployments (model_id, version, max_batch, max_delay_ms, queue_capacity,
        pii_inputs, created_at, updated_at, serving)
    SELECT id, 1, 0, 0, 0, NULL, created_at, created_at, settings FROM library_models;

DROP TABLE library_models;
