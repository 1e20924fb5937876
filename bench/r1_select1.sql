-- bench/r1_select1.sql: R1, SELECT 1 per transaction (round trip and commit, nothing written).
SELECT 1;
