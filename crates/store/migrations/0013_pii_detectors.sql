-- Which detectors find personal data in what a tenant's keys send to models: NULL (the
-- rules) or a comma-separated list of `rules`, `ner`.
ALTER TABLE tenants ADD COLUMN pii_detectors TEXT;
