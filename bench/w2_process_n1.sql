-- bench/w2_process_n1.sql: W2, lease 1 job in one transaction, jobq.complete it in a second.
SELECT id, lease, payload FROM jobq.lease('w2', 'bench', 1) \gset
SELECT jobq.complete('w2', :id, NULL, :lease);
