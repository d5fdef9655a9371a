-- The format of each model version's files, which picks the loader and the runtime
-- that serve it (aiaas-classifier, and the formats later issues add). Every version
-- stored before this migration is a classifier aiaas trained.

ALTER TABLE model_versions ADD COLUMN format TEXT NOT NULL DEFAULT 'aiaas-classifier';
