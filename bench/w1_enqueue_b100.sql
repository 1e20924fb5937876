-- bench/w1_enqueue_b100.sql: W1, one jobq.enqueue_batch of 100 jobs per transaction (:jobs,
-- a JSON array of {"payload": ...} objects, sent as one parameter).
SELECT count(*) FROM jobq.enqueue_batch('w1', :jobs);
