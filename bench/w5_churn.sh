#!/usr/bin/env bash
# bench/w5_churn.sh: W5 churn, for `make bench` (run by bench/run.sh, sources bench/lib.sh).
#
# Does the live table stay compact when many jobs flow through it? Per run:
#   1. baseline: jobq_reset, a queue w5 with retention '1 s' (the reaper purges the history
#      behind the workers) and BACKLOG (100 000) jobs freshly enqueued: the size of
#      jobq.jobs_persistent (pg_total_relation_size: heap, TOAST, maps and its indexes);
#   2. churn: JOBS (1 000 000) jobs in all, counting the BACKLOG, go through the queue: 4
#      pgbench workers (lease n = 10, then one jobq.complete_batch, in one statement; while
#      complete_batch is not installed, jobq.complete per job), and this script as the
#      enqueuer, adding chunks of 10 000 with jobq.enqueue_batch whenever the backlog is at
#      most BACKLOG - 10 000 (so about BACKLOG jobs wait all along), until JOBS were enqueued
#      and the queue is empty. Autovacuum is on (the cluster's defaults,
#      autovacuum_naptime 1 min); the reaper runs (jobq.database).
#   3. right after the churn: size and dead tuples (pg_stat_user_tables.n_dead_tup);
#   4. after one vacuum cycle: waits (at most AV_WAIT, 180 s) until
#      pg_stat_user_tables.autovacuum_count + vacuum_count of jobq.jobs_persistent goes up
#      (by 2 when a vacuum of it was running as the churn ended: a cycle that started after
#      the churn; not at all when no dead row is left and none is running: the vacuums
#      during the churn were the cycle), then size and dead tuples again. The vacuum is autovacuum's or the
#      reaper's (jobq.vacuum_interval, 10 s: it vacuums a live table with more than 1000 +
#      10% of its live rows dead), whichever comes first. The reaper's jobq.compact (every minute)
#      may or may not have rebuilt the indexes by then; per-index sizes are on stderr.
#   5. after the reaper's jobq.compact: waits (at most jobq.compact_interval + 15 s) until
#      an index of the table was rebuilt since the churn (a new relfilenode), then the size
#      (metric size compacted; not reported by a build without jobq.compact_interval).
# Metrics (workload w5): size baseline, size churned, dead churned, size after, dead after
# (after the vacuum; bytes, rows), size compacted, jobs/s of the churn. Target: size after <= 2x size
# baseline. The history (jobq.history) is printed on stderr, not emitted.
#
# One run per mode by default (BENCH_W5_RUNS, default 1, not BENCH_RUNS): a full-size run is
# 1 000 000 jobs at about 4 000 jobs/s (3-5 minutes on 2 cores) plus up to 3 minutes of
# waiting for autovacuum and one for compact (5-6 minutes seen); 3 runs would take over a
# quarter of an hour per mode.
#
# Environment (besides lib.sh's): BENCH_W5_JOBS (1000000), BENCH_W5_BACKLOG (100000, a
# multiple of 10 000), BENCH_W5_RUNS (1), BENCH_W5_AV_WAIT (180 s), BENCH_W5_RELOPTIONS
# (storage parameters to try, e.g. "autovacuum_vacuum_scale_factor = 0.01": applied with
# ALTER TABLE jobq.jobs_persistent SET (...) after the reset; default none).
# Seen on 2 shared cores, 1m jobs, sync off: size after 2.29x baseline with the defaults (the
# heap is truncated to 0 by the autovacuum; the three indexes stay at their peak, 7.5x), 1.62x
# with BENCH_W5_RELOPTIONS="autovacuum_vacuum_cost_delay = 0, autovacuum_vacuum_scale_factor
# = 0.01" (autovacuum_naptime, 1 min, still bounds how often it runs), now the tables' own
# settings; 1.80x, 2.08x or 0.00x in three full runs after that, depending on whether the
# reaper's jobq.compact came before the autovacuum. With the reaper's VACUUM every 10 s
# (jobq.vacuum_interval): 1.27x, and the churn went from 8 504 to 14 621 jobs/s.
# Standalone: PGHOST=... PGPORT=... PGUSER=postgres PGDATABASE=postgres bash bench/w5_churn.sh
# (PGDATABASE must be the reaper's database, jobq.database; else a reaper is started.)
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

jobs=${BENCH_W5_JOBS:-1000000}
backlog=${BENCH_W5_BACKLOG:-100000}
runs=${BENCH_W5_RUNS:-1}
av_wait=${BENCH_W5_AV_WAIT:-180}
reloptions=${BENCH_W5_RELOPTIONS:-}
n=10
workers=4
chunk=10000
rel=jobq.jobs_persistent

pgb_pid=
cleanup() { if [ -n "$pgb_pid" ]; then kill -TERM "$pgb_pid" 2>/dev/null || true; fi; }
trap cleanup EXIT

enqueue() {
	sql -c "SELECT count(*) FROM jobq.enqueue_batch('w5', (SELECT jsonb_agg(jsonb_build_object('payload', jsonb_build_object('i', i, 'pad', 'w5 churn benchmark job'))) FROM generate_series(1, $1) i))" >/dev/null
}

# stat COLUMN: a column of pg_stat_user_tables for the live table (a new session: fresh).
stat() { sql -c "SELECT $1 FROM pg_stat_user_tables WHERE relid = '$rel'::regclass"; }
size() { sql -c "SELECT pg_total_relation_size('$rel')"; }
show() {
	sql -F ' ' -c "SELECT '$1:', 'jobs_persistent', pg_relation_size('$rel'), '+ indexes', pg_indexes_size('$rel'),
			'total', pg_total_relation_size('$rel'), 'dead', (SELECT n_dead_tup FROM pg_stat_user_tables WHERE relid = '$rel'::regclass),
			'autovacuums', (SELECT autovacuum_count FROM pg_stat_user_tables WHERE relid = '$rel'::regclass),
			'vacuums', (SELECT vacuum_count FROM pg_stat_user_tables WHERE relid = '$rel'::regclass),
			'| history', pg_relation_size('jobq.history'), '+ indexes', pg_indexes_size('jobq.history'),
			'rows', (SELECT count(*) FROM jobq.history),
			'| indexes:', (SELECT string_agg(indexrelid::regclass || ' ' || pg_relation_size(indexrelid), ', ' ORDER BY 1)
				FROM pg_index WHERE indrelid = '$rel'::regclass)" >&2
}

# worker_script: the workers' pgbench script (after CREATE EXTENSION: complete_batch or not).
worker_script() {
	if [ "$(sql -c "SELECT to_regprocedure('jobq.complete_batch(text,text[],uuid[],jsonb[])') IS NOT NULL")" = t ]; then
		mode="lease n=$n + one complete_batch"
		cat >"$script" <<SQL
SELECT count(*) FROM (SELECT array_agg(id) AS ids, array_agg(lease) AS leases
	FROM jobq.lease('w5', 'w5', $n)) l, jobq.complete_batch('w5', l.ids, l.leases)
	WHERE l.ids IS NOT NULL;
SQL
	else
		mode="lease n=$n + complete per job (complete_batch not installed)"
		echo "SELECT count(jobq.complete(queue, id, NULL, lease)) FROM jobq.lease('w5', 'w5', $n);" >"$script"
	fi
	echo "w5: $mode; $workers workers; $jobs jobs, backlog $backlog; reloptions: ${reloptions:-none}" >&2
}
script=$BENCH_TMP/w5_worker.sql

[ "$(sql -c "SHOW autovacuum")" = on ] || echo "w5: autovacuum is off in this cluster" >&2

declare -a s_base s_end d_end s_after d_after rate s_comp
for ((r = 0; r < runs; r++)); do
	t0=$SECONDS
	jobq_reset
	sql -c "SELECT jobq.create_queue('w5', timeout => '5 minutes', retention => '1 second')" >/dev/null
	[ -z "$reloptions" ] || sql -c "ALTER TABLE $rel SET ($reloptions)"
	worker_script
	if [ "$(sql -c "SELECT jobq.stats() -> 'reaper' ->> 'present'")" != true ]; then
		sql -c "SELECT jobq.start_reaper()" >/dev/null
		echo "w5: started a reaper in $(sql -c 'SELECT current_database()')" >&2
	fi
	for ((e = 0; e < backlog; e += chunk)); do enqueue "$chunk"; done
	s_base+=("$(size)")
	show baseline

	log=$BENCH_TMP/w5_pgbench.log
	start=$(date +%s.%N)
	pgbench -n -M prepared -c "$workers" -j "$workers" -T 36000 -f "$script" >"$log" 2>&1 &
	pgb_pid=$!
	enqueued=$backlog
	last_run=$(sql -c "SELECT last_value FROM jobq.run_seq")
	while [ "$enqueued" -lt "$jobs" ]; do
		# The backlog, cheaply: runs are handed out in enqueue order and leased oldest first.
		oldest=$(sql -c "SELECT run FROM jobq.jobs WHERE queue = 'w5' AND status = 'pending'
			ORDER BY priority, run_at, run LIMIT 1")
		if [ -z "$oldest" ] || [ $((last_run - oldest)) -lt $((backlog - chunk)) ]; then
			k=$((jobs - enqueued < chunk ? jobs - enqueued : chunk))
			enqueue "$k"
			enqueued=$((enqueued + k))
			last_run=$(sql -c "SELECT last_value FROM jobq.run_seq")
		else
			sleep 0.1
		fi
		kill -0 "$pgb_pid" 2>/dev/null || { cat "$log" >&2; exit 1; }
	done
	until [ "$(sql -c "SELECT NOT EXISTS (SELECT FROM jobq.jobs WHERE queue = 'w5')")" = t ]; do
		sleep 0.1
		kill -0 "$pgb_pid" 2>/dev/null || { cat "$log" >&2; exit 1; }
	done
	end=$(date +%s.%N)
	kill -TERM "$pgb_pid"
	wait "$pgb_pid" || true
	pgb_pid=
	if grep -q -E 'aborted|error' "$log"; then cat "$log" >&2; exit 1; fi
	rate+=("$(awk -v a="$start" -v b="$end" -v n="$jobs" 'BEGIN {printf "%.0f", n / (b - a)}')")
	echo "w5: run $((r + 1)): $jobs jobs in $(awk -v a="$start" -v b="$end" 'BEGIN {printf "%.1f", b - a}') s" >&2

	sleep 1.5 # the backends' statistics reach pg_stat within a second
	s_end+=("$(size)")
	d_end+=("$(stat n_dead_tup)")
	show churned
	nodes="SELECT string_agg(pg_relation_filenode(indexrelid)::text, ',' ORDER BY indexrelid) FROM pg_index WHERE indrelid = '$rel'::regclass"
	f0=$(sql -c "$nodes")
	# One whole cycle started after the churn: a vacuum of the table already running (it
	# started during the churn) does not count, the next one does.
	# With no dead row left and no vacuum running, the vacuums during the churn were that
	# cycle: no vacuum would come (the reaper's compaction would, and be measured instead).
	av0=$(stat "autovacuum_count + vacuum_count")
	running=$(sql -c "SELECT count(*) FROM pg_stat_progress_vacuum WHERE relid = '$rel'::regclass")
	if [ "$running" -gt 0 ]; then
		av0=$((av0 + 1))
		echo "w5: a vacuum of $rel was running at the end of the churn; waiting for the next one" >&2
	elif [ "${d_end[-1]}" -eq 0 ]; then
		av0=-1
		echo "w5: no dead rows at the end of the churn: its vacuums were the cycle" >&2
	fi
	w=0
	while [ "$(stat "autovacuum_count + vacuum_count")" -le "$av0" ] && [ "$w" -lt "$av_wait" ]; do
		sleep 1
		w=$((w + 1))
	done
	[ "$w" -lt "$av_wait" ] || warn "w5: no vacuum of $rel within $av_wait s after the churn: size after may include the reaper's jobq.compact"
	s_after+=("$(size)")
	d_after+=("$(stat n_dead_tup)")
	show "after a vacuum (waited $w s)"
	# The reaper's jobq.compact (every jobq.compact_interval) rebuilds indexes left bloated:
	# wait for it (an index with a new relfilenode since the end of the churn), at most one
	# interval and 15 s more.
	ci=$(sql -c "SELECT extract(epoch FROM current_setting('jobq.compact_interval', true)::interval)::int")
	if [ -n "$ci" ]; then
		w=0
		while [ "$(sql -c "$nodes")" = "$f0" ] && [ "$w" -lt $((ci + 15)) ]; do
			sleep 1
			w=$((w + 1))
		done
		s_comp+=("$(size)")
		show "after jobq.compact (waited $w s)"
	fi
	echo "w5: run $((r + 1)) took $((SECONDS - t0)) s" >&2
done
emit w5 "size baseline" bytes "${s_base[@]}"
emit w5 "size churned" bytes "${s_end[@]}"
emit w5 "dead churned" rows "${d_end[@]}"
emit w5 "size after" bytes "${s_after[@]}"
emit w5 "dead after" rows "${d_after[@]}"
[ "${#s_comp[@]}" -eq 0 ] || emit w5 "size compacted" bytes "${s_comp[@]}"
emit w5 "jobs/s" jobs/s "${rate[@]}"
