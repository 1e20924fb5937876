-- bench/r2.sql: R2, the reference queue a competent user writes in plain SQL (make bench).
--
-- One table; a partial index on the pending rows, in lease order. A worker leases with
--   UPDATE r2_jobs SET status = 'running', ... WHERE id IN (SELECT id ... ORDER BY id
--     LIMIT n FOR UPDATE SKIP LOCKED) RETURNING id, payload
-- and completes with DELETE FROM r2_jobs WHERE id = ANY(ids) (bench/r2_*.sql).
-- Loaded by bench/w1_enqueue.sh and bench/w2_process.sh, which recreate the table per run.
DROP TABLE IF EXISTS r2_jobs;
CREATE TABLE r2_jobs (
	id					bigserial PRIMARY KEY,
	queue				text NOT NULL,
	payload				jsonb NOT NULL DEFAULT '{}',
	status				text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'running')),
	attempts			integer NOT NULL DEFAULT 0,
	lease_expires_at	timestamptz,
	created_at			timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX r2_jobs_pending_idx ON r2_jobs (queue, id) WHERE status = 'pending';
