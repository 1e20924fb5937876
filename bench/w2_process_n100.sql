-- bench/w2_process_n100.sql: W2, lease 100 jobs in one transaction, jobq.complete_batch them
-- in a second.
SELECT array_agg(id) AS ids, array_agg(lease) AS leases, array_agg(payload) AS payloads
	FROM jobq.lease('w2', 'bench', 100) \gset
SELECT count(*) FROM jobq.complete_batch('w2', :ids, :leases);
