-- A tenant's PII policy for model inputs: NULL (off), or the masking mode applied to
-- every text its keys send to a model (mask, label, pseudonymise).

ALTER TABLE tenants ADD COLUMN pii_inputs TEXT;
