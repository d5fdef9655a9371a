-- Which detectors find personal data in what is sent to a deployed model (its own input
-- policy): NULL (the callers' tenants' detectors) or a comma-separated list of `rules`,
-- `ner`.
ALTER TABLE deployments ADD COLUMN pii_detectors TEXT;
