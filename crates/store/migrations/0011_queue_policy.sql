-- The queue policy of a deployment (Triton's is the anchor): a request expected to wait
-- longer than this in the model's queue is refused at once (429 + Retry-After); 0: no
-- limit.
ALTER TABLE deployments ADD COLUMN max_queue_time_ms BIGINT NOT NULL DEFAULT 0;
