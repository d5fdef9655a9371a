-- Replicas over one database.
-- jobs.lease_until: epoch ms until which the claiming replica owns a running job; it
-- renews the lease while it trains, and a job whose lease ran out (its replica died) is
-- claimed again by another.
-- rate_limits: shared request and token limits, one row per bucket ("key:ID:requests",
-- "tenant:ID:tokens", ...), as a generic cell rate algorithm: tat is the theoretical
-- arrival time in epoch microseconds, moved forward by each admitted unit.

ALTER TABLE jobs ADD COLUMN lease_until BIGINT;

CREATE TABLE rate_limits (
    name TEXT PRIMARY KEY,
    tat BIGINT NOT NULL
);
