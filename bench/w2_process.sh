#!/usr/bin/env bash
# bench/w2_process.sh: W2, processing throughput, against R2 (a workload of make bench).
#
# Run by bench/run.sh once per synchronous_commit mode (see bench/lib.sh for the environment);
# standalone, with PGHOST, PGPORT, PGUSER, PGDATABASE pointing at a throwaway database with
# jobq installed (the extension is dropped and created again):
#
#   BENCH_SYNC=off PGOPTIONS="-c synchronous_commit=off" BENCH_SECONDS=3 bash bench/w2_process.sh
#
# 4 workers, each job leased in one transaction and completed in a second: n = 1
# (jobq.lease + jobq.complete, bench/w2_process_n1.sql) and n = 100 (jobq.lease +
# jobq.complete_batch, w2_process_n100.sql); the reference R2 (bench/r2.sql) with the same n
# (UPDATE ... FOR UPDATE SKIP LOCKED ... RETURNING, then DELETE: r2_process_n1.sql,
# r2_process_n100.sql). Every run starts from a queue of 100 000 pending jobs (refilled,
# then VACUUM and CHECKPOINT) and must not run dry, so a run is a number of transactions
# per client (pgbench -t), not of seconds: as many as the highest rate of the script's
# earlier runs gets through in BENCH_SECONDS, but never more than 70 % of the queue (the
# first run, a warm-up of 10 % of the queue, is not reported). At 100 000 jobs/s, as R2
# n = 100 reaches on a quiet machine, 70 % of the queue takes 0.7 s: a -T run, whole
# seconds, ran it dry. jobq and R2 runs alternate. Jobs per second count the jobs the
# database shows completed after the run, over pgbench's duration. Figures: w2 `process n1`,
# `process n100`; r2 `process n1`, `process n100` (jobs/s).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$bench_top/bench"
clients=4
depth=100000

fill_jobq() {
	jobq_reset
	sql -c "SELECT jobq.create_queue('w2')" >/dev/null
	sql -c "SELECT count(*) FROM jobq.enqueue_batch('w2', (SELECT jsonb_agg(jsonb_build_object('payload',
		jsonb_build_object('to', 'ada@example.com', 'template', 'welcome', 'n', g)))
		FROM generate_series(1, $depth) g))" >/dev/null
}
done_jobq() { sql -c "SELECT count(*) FROM jobq.history WHERE queue = 'w2' AND status = 'finished'"; }
left_jobq() { sql -c "SELECT count(*) FROM jobq.jobs WHERE queue = 'w2' AND status = 'pending'"; }

fill_r2() {
	sql -c "SET client_min_messages = warning" -f r2.sql
	sql -c "INSERT INTO r2_jobs (queue, payload) SELECT 'r2',
		jsonb_build_object('to', 'ada@example.com', 'template', 'welcome', 'n', g)
		FROM generate_series(1, $depth) g"
}
done_r2() { sql -c "SELECT $depth - count(*) FROM r2_jobs"; }
left_r2() { sql -c "SELECT count(*) FROM r2_jobs WHERE status = 'pending'"; }

# run KIND SCRIPT N TRANSACTIONS: one run of SCRIPT (KIND jobq or r2, N jobs per lease) on a
# refilled queue, TRANSACTIONS per client; prints jobs/s. Fails when pgbench does; warns when
# the queue ran dry.
run() {
	local kind=$1 script=$2 n=$3 tx=$4 out
	"fill_$kind" >&2
	settle >&2
	out=$(pgb_count "$script" "$clients" 0 -t "$tx") || exit 1
	[ "$("left_$kind")" -gt 0 ] ||
		warn "w2 $script ran the queue dry in $((tx * clients)) transactions of $n jobs: its figure is too low"
	per_second "$("done_$kind")" $out
}

# length N RATE...: transactions per client of a run of N jobs a lease: what the highest RATE
# (jobs/s) seen gets through in BENCH_SECONDS, at most 70 % of the queue, at least 1.
length() {
	local n=$1
	shift
	printf '%s\n' "$@" | sort -g | tail -1 |
		awk -v s="$BENCH_SECONDS" -v d="$depth" -v n="$n" -v c="$clients" \
			'{j = $1 * s; if (j > 0.7 * d) j = 0.7 * d; t = int(j / (n * c)); if (t < 1) t = 1; print t}'
}

have_batch=$(sql -c "SELECT count(*) FROM pg_catalog.pg_proc WHERE proname = 'complete_batch'
	AND pronamespace = 'jobq'::pg_catalog.regnamespace")
[ "$have_batch" -gt 0 ] || echo "w2_process.sh: jobq.complete_batch is missing: w2 process n100 not measured" >&2

variants=("jobq n1 w2_process_n1.sql" "r2 n1 r2_process_n1.sql")
[ "$have_batch" -gt 0 ] && variants+=("jobq n100 w2_process_n100.sql")
variants+=("r2 n100 r2_process_n100.sql")

declare -A rates
for v in "${variants[@]}"; do
	read -r kind n script <<<"$v"
	rates["$kind $n"]=$(run "$kind" "$script" "${n#n}" $((depth / 10 / (${n#n} * clients))))
done
declare -A runs
for _ in $(seq 1 "$BENCH_RUNS"); do
	for v in "${variants[@]}"; do
		read -r kind n script <<<"$v"
		# shellcheck disable=SC2086
		r=$(run "$kind" "$script" "${n#n}" "$(length "${n#n}" ${rates["$kind $n"]})")
		rates["$kind $n"]+=" $r"
		runs["$kind $n"]+=" $r"
	done
done
for v in "${variants[@]}"; do
	read -r kind n script <<<"$v"
	w=$kind
	[ "$kind" = jobq ] && w=w2
	# shellcheck disable=SC2086
	emit "$w" "process $n" jobs/s ${runs["$kind $n"]}
done
sql -c "DROP TABLE r2_jobs"
jobq_reset
