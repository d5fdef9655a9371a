-- Rate limits and quotas (JSON objects, NULL = unlimited) on keys and tenants, and the
-- IP ranges a key may be used from (JSON array of CIDR strings, NULL = anywhere).

ALTER TABLE api_keys ADD COLUMN limits TEXT;
ALTER TABLE api_keys ADD COLUMN allowed_ips TEXT;
ALTER TABLE tenants ADD COLUMN limits TEXT;
