-- PII policies on model outputs, and per deployment.
-- tenants.pii_outputs: NULL (off), or the masking mode applied to every text a model
-- returns to the tenant's keys (mask, label, pseudonymise).
-- deployments.pii_inputs: the mode applied to every text sent to this deployed model,
-- whoever calls it (it takes precedence over the tenant's input policy).

ALTER TABLE tenants ADD COLUMN pii_outputs TEXT;
ALTER TABLE deployments ADD COLUMN pii_inputs TEXT;
