-- bench/r2_insert_select_b100.sql: R2, INSERT ... SELECT of 100 rows per transaction from one
-- parameter (:payloads, a JSON array of 100 payloads); reference of W1 b100.
INSERT INTO r2_jobs (queue, payload)
	SELECT 'r2', p FROM jsonb_array_elements(:payloads::jsonb) p RETURNING id;
