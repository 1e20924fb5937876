#!/usr/bin/env bash
# bench/r1_limit.sh: R1, the physical limit of this machine and cluster (a workload of make bench).
#
# Run by bench/run.sh once per synchronous_commit mode (see bench/lib.sh for the environment);
# standalone, with PGHOST, PGPORT, PGUSER, PGDATABASE pointing at a throwaway database with
# jobq installed:
#
#   BENCH_SYNC=off PGOPTIONS="-c synchronous_commit=off" BENCH_SECONDS=3 bash bench/r1_limit.sh
#
# pgbench, one statement per transaction, at 1, 4 and 8 clients: a 1-row INSERT
# (bench/r1_insert.sql), a 1-row UPDATE by key (r1_update.sql, 100 000 rows), SELECT 1
# (r1_select1.sql). Runs alternate between the three. Figures: r1 `insert cN`, `update cN`,
# `select1 cN` (transactions per second).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$bench_top/bench"

sql <<'SQL'
SET client_min_messages = warning;
DROP TABLE IF EXISTS r1_insert, r1_update;
CREATE TABLE r1_insert (id bigserial PRIMARY KEY, v integer NOT NULL);
CREATE TABLE r1_update (id integer PRIMARY KEY, v integer NOT NULL);
INSERT INTO r1_update SELECT g, 0 FROM generate_series(1, 100000) g;
SQL

for c in 1 4 8; do
	ins=() upd=() sel=()
	for _ in $(seq 1 "$BENCH_RUNS"); do
		sql -c "TRUNCATE r1_insert"
		settle
		ins+=("$(pgb r1_insert.sql "$c" "$BENCH_SECONDS")")
		settle
		upd+=("$(pgb r1_update.sql "$c" "$BENCH_SECONDS")")
		sel+=("$(pgb r1_select1.sql "$c" "$BENCH_SECONDS")")
	done
	emit r1 "insert c$c" tps "${ins[@]}"
	emit r1 "update c$c" tps "${upd[@]}"
	emit r1 "select1 c$c" tps "${sel[@]}"
done
sql -c "DROP TABLE r1_insert, r1_update"
