-- bench/r2_insert_b1.sql: R2, one 1-row INSERT per transaction (reference of W1 b1).
INSERT INTO r2_jobs (queue, payload) VALUES ('r2', :payload) RETURNING id;
