#!/usr/bin/env bash
# bench/w4_depth.sh: W4 depth, for `make bench` (run by bench/run.sh, sources bench/lib.sh).
#
# Does a deep queue, or a long history, slow the hot path down? Time (seconds, wall clock,
# including the 4 pgbench connections) for 4 workers to lease and complete JOBS (10 000)
# jobs of one queue when
#   pending10k  JOBS jobs are pending (nothing else in the tables);
#   pending1m   DEPTH (1 000 000) jobs are pending; JOBS of them are processed;
#   history1m   JOBS jobs are pending and DEPTH finished runs are in jobq.history (retention
#               7 days, so the reaper keeps them).
# Each worker runs the same transaction, one pgbench client each (prepared protocol):
# lease n = 10 jobs, then complete those 10 with one jobq.complete_batch, in one statement;
# while complete_batch is not installed, the 10 with jobq.complete one by one (same n). A lease
# rarely gets fewer than 10 (SKIP LOCKED near the end of the queue): what is missing is
# then worked by a single psql client, inside the timed span. What is missing is counted
# from the runs finished since the span began (jobq.history's (queue, finished_at) index: 10 000
# entries in every case), not from the pending jobs: a count(*) of 990 000 pending jobs
# takes 100-150 ms here, which was most of the difference between pending1m and pending10k
# while the script counted that way.
#
# The three cases live in three databases of the cluster (w4_pending10k, w4_pending1m,
# w4_history1m, each with CREATE EXTENSION jobq and a reaper from jobq.start_reaper()), filled
# once per pass: the 1m pending with jobq.enqueue_batch in chunks of 10 000, the history
# with one INSERT ... SELECT into jobq.history (as superuser). After every fill and every
# timed case the database is put back to its state (JOBS more pending; the runs just ended
# deleted from the history) and VACUUM ANALYZEd, then CHECKPOINTed: each case measures the
# steady state of a vacuumed table with fresh statistics, not the bloat of the previous
# case. The CHECKPOINT means every case starts where full-page writes are the most
# frequent (the first change of each page after a checkpoint logs the whole page): the
# WAL written per job is reported too (metrics wal/job pending10k, ... in bytes): with
# random ids the lease's new primary key entries would land on random leaves of a 1m-row
# index, each a full-page write the first time; generated ids are time-ordered (jobq._new_id),
# so the three cases write the same WAL per job. The cases alternate within each
# run (a b c, b c a, c a b, ...) so noise spreads.
# Target: pending1m and history1m at most 1.2x pending10k.
#
# Each timed span is about 0.3 s, and one span of a case varies by +-20% from the next (7
# runs at 89f4c2a: 0.27-0.39 s with 10 000 pending): 3 runs let the medians of two cases that
# cost the same differ by more than the target's 1.2x (1.35x in one full run, 1.07x in the
# next). So W4 takes BENCH_W4_RUNS runs of each case, by default 3x BENCH_RUNS (9): about
# 10 s per run, the filling aside.
# Environment (besides lib.sh's): BENCH_W4_DEPTH (default 1000000), BENCH_W4_JOBS (10000,
# a multiple of 40), BENCH_W4_RUNS. Full size: about 3-4 minutes per pass, most of it the 1m
# enqueue.
# Standalone: PGHOST=... PGPORT=... PGUSER=postgres PGDATABASE=postgres bash bench/w4_depth.sh
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

depth=${BENCH_W4_DEPTH:-1000000}
jobs=${BENCH_W4_JOBS:-10000}
runs=${BENCH_W4_RUNS:-$((3 * BENCH_RUNS))}
n=10
workers=4
chunk=10000
cases=(pending10k pending1m history1m)

# q DB ARGS...: sql in database DB.
q() {
	local db=$1
	shift
	PGDATABASE=$db sql "$@"
}

cleanup() {
	local c
	for c in "${cases[@]}"; do
		sql -c "SELECT 1 FROM pg_database WHERE datname = 'w4_$c'" | grep -q 1 || continue
		q "w4_$c" -c "SELECT jobq.stop_reaper()" >/dev/null 2>&1 || true
		sql -c "DROP DATABASE IF EXISTS w4_$c WITH (FORCE)" || true
	done
}
trap cleanup EXIT
cleanup

# enqueue DB COUNT: COUNT pending jobs in queue w4, in chunks.
enqueue() {
	local db=$1 left=$2 k
	while [ "$left" -gt 0 ]; do
		k=$((left < chunk ? left : chunk))
		q "$db" -c "SELECT count(*) FROM jobq.enqueue_batch('w4', (SELECT jsonb_agg(jsonb_build_object('payload', jsonb_build_object('i', i, 'pad', 'w4 depth benchmark job'))) FROM generate_series(1, $k) i))" >/dev/null
		left=$((left - k))
	done
}

# settle DB: back to the case's state (the runs ended by the last timed span deleted, so the
# history holds only what the case says), VACUUM ANALYZE, CHECKPOINT.
settle() {
	local db=$1
	q "$db" -c "DELETE FROM jobq.history WHERE queue = 'w4' AND finished_at > (SELECT filled_at FROM w4_state)" \
		-c "VACUUM ANALYZE jobq.jobs_persistent" -c "VACUUM ANALYZE jobq.history" \
		-c "VACUUM ANALYZE jobq.job_events" -c "VACUUM ANALYZE jobq.queues" -c "CHECKPOINT"
}

t0=$SECONDS
for c in "${cases[@]}"; do
	sql -c "CREATE DATABASE w4_$c"
	q "w4_$c" -c "CREATE EXTENSION jobq" -c "SELECT jobq.create_queue('w4', timeout => '5 minutes')" >/dev/null
	q "w4_$c" -c "SELECT jobq.start_reaper()" >/dev/null ||
		echo "w4: no reaper in w4_$c (jobq.start_reaper failed)" >&2
done
have_batch=$(q w4_pending10k -c "SELECT to_regprocedure('jobq.complete_batch(text,text[],uuid[],jsonb[])') IS NOT NULL")
script=$BENCH_TMP/w4_worker.sql
if [ "$have_batch" = t ]; then
	mode="lease n=$n + one complete_batch"
	cat >"$script" <<SQL
SELECT count(*) FROM (SELECT array_agg(id) AS ids, array_agg(lease) AS leases
	FROM jobq.lease('w4', 'w4', $n)) l, jobq.complete_batch('w4', l.ids, l.leases)
	WHERE l.ids IS NOT NULL;
SQL
else
	mode="lease n=$n + complete per job (complete_batch not installed)"
	echo "SELECT count(jobq.complete(queue, id, NULL, lease)) FROM jobq.lease('w4', 'w4', $n);" >"$script"
fi
echo "w4: $mode; $workers workers; $jobs jobs per case; depth $depth; $runs runs" >&2
[ -z "${BENCH_OUT:-}" ] || echo "INFO|w4_runs|$runs" >>"$BENCH_OUT"
enqueue w4_pending10k "$jobs"
enqueue w4_pending1m "$depth"
enqueue w4_history1m "$jobs"
# depth finished runs, as jobq._end writes them: created a day ago, run for a second.
q w4_history1m -c "
INSERT INTO jobq.history (queue, id, run, status, desired_status, payload, result, timeout,
	max_retries, attempt, worker, persist, created_by, created_at, run_at, started_at,
	updated_at, finished_at)
SELECT 'w4', gen_random_uuid()::text, nextval('jobq.run_seq'), 'finished', 'running',
	jsonb_build_object('i', i, 'pad', 'w4 depth benchmark job'), '{\"ok\": true}', '5 minutes',
	3, 1, 'w4', true, 'postgres', t, t, t, t + interval '1 second', t + interval '1 second'
FROM generate_series(1, $depth) i,
	LATERAL (SELECT now() - interval '1 day' + i * interval '1 ms') x(t)"
for c in "${cases[@]}"; do
	q "w4_$c" -c "CREATE TABLE w4_state AS SELECT clock_timestamp() AS filled_at"
	settle "w4_$c"
done
echo "w4: filled in $((SECONDS - t0)) s" >&2

declare -A times wals
for ((r = 0; r < runs; r++)); do
	for ((i = 0; i < ${#cases[@]}; i++)); do
		c=${cases[$(((r + i) % ${#cases[@]}))]}
		db=w4_$c
		since=$(q "$db" -c "SELECT clock_timestamp()")
		lsn=$(sql -c "SELECT pg_current_wal_lsn()")
		start=$(date +%s.%N)
		PGDATABASE=$db pgbench -n -M prepared -c "$workers" -j "$workers" -t $((jobs / n / workers)) \
			-f "$script" >"$BENCH_TMP/w4_pgbench.log" 2>&1 || { cat "$BENCH_TMP/w4_pgbench.log" >&2; exit 1; }
		left=$((jobs - $(q "$db" -c "SELECT count(*) FROM jobq.history WHERE queue = 'w4' AND finished_at >= '$since'")))
		while [ "$left" -gt 0 ]; do
			k=$(q "$db" -c "SELECT count(jobq.complete(queue, id, NULL, lease)) FROM jobq.lease('w4', 'w4', least($n, $left))")
			[ "$k" -gt 0 ] || { echo "w4: $db ran out of jobs" >&2; exit 1; }
			left=$((left - k))
		done
		end=$(date +%s.%N)
		grep -q -E 'aborted|error' "$BENCH_TMP/w4_pgbench.log" && { cat "$BENCH_TMP/w4_pgbench.log" >&2; exit 1; }
		t=$(awk -v a="$start" -v b="$end" 'BEGIN {printf "%.3f", b - a}')
		times[$c]="${times[$c]:-} $t"
		wal=$(sql -c "SELECT round(pg_wal_lsn_diff(pg_current_wal_lsn(), '$lsn') / $jobs)")
		echo "w4: run $((r + 1)) $c ${t} s, $wal bytes of WAL per job" >&2
		wals[$c]="${wals[$c]:-} $wal"
		enqueue "$db" "$jobs"
		settle "$db"
	done
done
for c in "${cases[@]}"; do
	# shellcheck disable=SC2086
	emit w4 "time $c" s ${times[$c]}
done
for c in "${cases[@]}"; do
	# shellcheck disable=SC2086
	emit w4 "wal/job $c" bytes ${wals[$c]}
done
echo "w4: pass took $((SECONDS - t0)) s" >&2
