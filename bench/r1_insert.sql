-- bench/r1_insert.sql: R1, one 1-row INSERT per transaction (table r1_insert, bench/r1_limit.sh).
INSERT INTO r1_insert (v) VALUES (1);
