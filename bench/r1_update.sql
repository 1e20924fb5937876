-- bench/r1_update.sql: R1, one 1-row UPDATE by key per transaction (table r1_update of 100 000 rows).
\set id random(1, 100000)
UPDATE r1_update SET v = v + 1 WHERE id = :id;
