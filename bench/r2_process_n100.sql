-- bench/r2_process_n100.sql: R2, lease 100 jobs in one transaction, DELETE them in a second
-- (reference of W2 n100).
WITH l AS (
	UPDATE r2_jobs SET status = 'running', attempts = attempts + 1,
			lease_expires_at = clock_timestamp() + interval '30 seconds'
		WHERE id IN (SELECT id FROM r2_jobs WHERE queue = 'r2' AND status = 'pending'
			ORDER BY id LIMIT 100 FOR UPDATE SKIP LOCKED)
		RETURNING id, payload)
SELECT array_agg(id) AS ids, array_agg(payload) AS payloads FROM l \gset
DELETE FROM r2_jobs WHERE id = ANY(:ids::bigint[]);
