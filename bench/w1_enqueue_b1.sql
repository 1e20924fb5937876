-- bench/w1_enqueue_b1.sql: W1, one jobq.enqueue per transaction (payload in :payload).
SELECT id FROM jobq.enqueue('w1', :payload);
