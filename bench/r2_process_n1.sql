-- bench/r2_process_n1.sql: R2, lease 1 job in one transaction, DELETE it in a second
-- (reference of W2 n1).
UPDATE r2_jobs SET status = 'running', attempts = attempts + 1,
		lease_expires_at = clock_timestamp() + interval '30 seconds'
	WHERE id IN (SELECT id FROM r2_jobs WHERE queue = 'r2' AND status = 'pending'
		ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED)
	RETURNING id, payload \gset
DELETE FROM r2_jobs WHERE id = :id;
