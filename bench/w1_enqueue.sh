#!/usr/bin/env bash
# bench/w1_enqueue.sh: W1, enqueue throughput, against R2 (a workload of make bench).
#
# Run by bench/run.sh once per synchronous_commit mode (see bench/lib.sh for the environment);
# standalone, with PGHOST, PGPORT, PGUSER, PGDATABASE pointing at a throwaway database with
# jobq installed (the extension is dropped and created again):
#
#   BENCH_SYNC=off PGOPTIONS="-c synchronous_commit=off" BENCH_SECONDS=3 bash bench/w1_enqueue.sh
#
# 4 clients, one transaction per call: jobq.enqueue of 1 job (bench/w1_enqueue_b1.sql) and
# jobq.enqueue_batch of 100 jobs (w1_enqueue_b100.sql, the 100 jobs sent as one jsonb
# parameter); the reference R2 (bench/r2.sql): a 1-row INSERT (r2_insert_b1.sql) and an
# INSERT ... SELECT of 100 rows from one jsonb parameter (r2_insert_select_b100.sql).
# Every run starts from empty tables (the extension and the R2 table are recreated, then
# VACUUM and CHECKPOINT); jobq and R2 runs alternate. Jobs per second count the rows the
# database holds after the run. Figures: w1 `enqueue b1`, `enqueue b100`; r2 `insert b1`,
# `insert_select b100` (jobs/s).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$bench_top/bench"
clients=4
payload='{"to": "ada@example.com", "template": "welcome", "n": 1}'
jobs=$(for i in $(seq 1 100); do printf '{"payload": %s}\n' "${payload/\"n\": 1/\"n\": $i}"; done |
	paste -sd, | sed 's/^/[/; s/$/]/')
payloads=$(for i in $(seq 1 100); do printf '%s\n' "${payload/\"n\": 1/\"n\": $i}"; done |
	paste -sd, | sed 's/^/[/; s/$/]/')

# run_jobq SCRIPT: one timed run of a jobq script from empty tables; prints jobs/s.
run_jobq() {
	local tps n done
	jobq_reset >&2
	sql -c "SELECT jobq.create_queue('w1')" >/dev/null
	settle >&2
	read -r tps n < <(pgb_count "$1" "$clients" "$BENCH_SECONDS" -D payload="$payload" -D jobs="$jobs")
	done=$(sql -c "SELECT count(*) FROM jobq.jobs WHERE queue = 'w1'")
	per_second "$done" "$tps" "$n"
}

# run_r2 SCRIPT: the same for an R2 script.
run_r2() {
	local tps n done
	sql -c "SET client_min_messages = warning" -f r2.sql >&2
	settle >&2
	read -r tps n < <(pgb_count "$1" "$clients" "$BENCH_SECONDS" -D payload="$payload" -D payloads="$payloads")
	done=$(sql -c "SELECT count(*) FROM r2_jobs")
	per_second "$done" "$tps" "$n"
}

w_b1=() r_b1=() w_b100=() r_b100=()
for _ in $(seq 1 "$BENCH_RUNS"); do
	w_b1+=("$(run_jobq w1_enqueue_b1.sql)")
	r_b1+=("$(run_r2 r2_insert_b1.sql)")
	w_b100+=("$(run_jobq w1_enqueue_b100.sql)")
	r_b100+=("$(run_r2 r2_insert_select_b100.sql)")
done
emit w1 "enqueue b1" jobs/s "${w_b1[@]}"
emit r2 "insert b1" jobs/s "${r_b1[@]}"
emit w1 "enqueue b100" jobs/s "${w_b100[@]}"
emit r2 "insert_select b100" jobs/s "${r_b100[@]}"
sql -c "DROP TABLE r2_jobs"
jobq_reset
