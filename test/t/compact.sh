#!/usr/bin/env bash
# compact: jobq.compact() rebuilds the indexes a long-held snapshot left bloated, by hand
# and from the reaper (jobq.compact_interval), and loses nothing.
# - a REPEATABLE READ snapshot is held while 12 000 jobs go through queue cq (enqueue,
#   lease, complete_batch); once it ends and VACUUM ran, the B-tree indexes of
#   jobq.jobs_persistent are still at their peak (VACUUM never shrinks a B-tree);
# - jobq.compact(min_size => 0) rebuilds them: each back under half its size, the 50 jobs
#   that waited meanwhile all still pending and leasable;
# - again with jobq.compact_interval = 200ms: the reaper rebuilds the primary key (over
#   its default min_size, 1 MB) by itself, and logs it;
# - with min_size 64 MB nothing is rebuilt; bad arguments are 22023;
# - a table being loaded that was never vacuumed nor analysed (reltuples -1) is not taken
#   for bloated: 20 000 pending jobs, a primary key over 1 MB, nothing rebuilt.
source "$(dirname "$0")/../lib.sh"
export PGDATABASE=postgres
work=$(mktemp -d)
cleanup() {
	exec 3>&- 2>/dev/null || true
	q "ALTER SYSTEM RESET jobq.compact_interval" >/dev/null 2>&1 && q "SELECT pg_reload_conf()" >/dev/null 2>&1
	rm -rf "$work"
}
trap cleanup EXIT

q "CREATE EXTENSION IF NOT EXISTS jobq"
q "SELECT jobq.drop_queue(queue, force => true) FROM jobq.queues WHERE queue IN ('cq', 'cw')" >/dev/null
q "SELECT jobq.create_queue('cq'), jobq.create_queue('cw')" >/dev/null
q "SELECT count(*) FROM jobq.enqueue_batch('cw', (SELECT jsonb_agg(jsonb_build_object('id', 'w' || i)) FROM generate_series(1, 50) i))" >/dev/null

index_sizes="SELECT string_agg(pg_relation_size(indexrelid)::text, ' ' ORDER BY indexrelid)
	FROM pg_index WHERE indrelid = 'jobq.jobs_persistent'::regclass"
idx_total="SELECT sum(pg_relation_size(indexrelid)) FROM pg_index WHERE indrelid = 'jobq.jobs_persistent'::regclass"

# bloat: hold a snapshot while 12 000 jobs flow, release it, vacuum
bloat() {
	mkfifo "$work/hold"
	psql -X -q <"$work/hold" >"$work/hold.log" 2>&1 &
	exec 3>"$work/hold"
	echo "BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT count(*) FROM jobq.jobs;" >&3
	wait_for "SELECT count(*) = 1 FROM pg_stat_activity WHERE state = 'idle in transaction' AND backend_xmin IS NOT NULL" 10
	for i in $(seq 1 60); do
		q "SELECT count(*) FROM jobq.enqueue_batch('cq', (SELECT jsonb_agg('{}'::jsonb) FROM generate_series(1, 200)))" >/dev/null
		q "WITH l AS MATERIALIZED (SELECT id, lease FROM jobq.lease('cq', 'w', 200))
			SELECT count(*) FROM jobq.complete_batch('cq', (SELECT array_agg(id) FROM l), (SELECT array_agg(lease) FROM l))" >/dev/null
	done
	held_pkey=$(q "SELECT pg_relation_size('jobq.jobs_persistent_pkey')")
	echo "COMMIT;" >&3
	exec 3>&-
	wait
	rm -f "$work/hold"
	q "VACUUM jobq.jobs_persistent"
}

q "VACUUM jobq.jobs_persistent"
steady=$(q "$idx_total")
bloat
peak=$(q "$idx_total")
[ "$peak" -gt $((4 * steady)) ] || die "no bloat to compact: indexes $steady bytes before, $peak after (want > 4x)"
ok "after the snapshot and VACUUM the indexes stay bloated: $steady -> $peak bytes"

expect_eq "$(q "SELECT count(*) FROM jobq.compact(min_size => 64 * 1024 * 1024)")" 0 "min_size 64 MB: nothing rebuilt"
before=$(q "$index_sizes")
rebuilt=$(q "SELECT count(*) FILTER (WHERE size_after * 2 < size_before) || '/' || count(*)
	FROM jobq.compact(min_size => 0) WHERE index_name::text LIKE 'jobq.jobs_persistent%'")
case $rebuilt in 3/3) ;; *) die "jobq.compact rebuilt (halved/all) $rebuilt indexes of jobs_persistent, want 3/3" ;; esac
ok "jobq.compact rebuilt $rebuilt indexes of jobs_persistent, each under half its size"
after=$(q "$idx_total")
ok "indexes of jobs_persistent: $peak -> $after bytes (steady $steady; before, each: $before)"
[ "$after" -le $((2 * steady)) ] || die "compacted indexes $after bytes, more than 2x the steady $steady"
ok "back within 2x of the steady state"
expect_eq "$(q "SELECT count(*) FROM jobq.jobs WHERE queue = 'cw' AND status = 'pending'")" 50 "the 50 waiting jobs are intact"
expect_eq "$(q "SELECT count(*) FROM jobq.lease('cw', 'w', 100)")" 50 "and leasable through the rebuilt indexes"

# the reaper does it by itself, with its defaults (indexes over 1 MB and 4x their need)
q "ALTER SYSTEM SET jobq.compact_interval = '200ms'" && q "SELECT pg_reload_conf()" >/dev/null
pkey="pg_relation_size('jobq.jobs_persistent_pkey')"
bloat
[ "$held_pkey" -gt $((1024 * 1024)) ] || die "primary key not over 1 MB the second time: $held_pkey bytes"
wait_for "SELECT $pkey * 4 < $held_pkey" 15
ok "the reaper compacted the primary key within 15 s: $held_pkey -> $(q "SELECT $pkey") bytes"
grep -q "jobq reaper: rebuilt [0-9]* bloated index(es) in database \"postgres\"" "$JOBQ_TEST_DIR/server.log" ||
	die "the reaper did not log its rebuild"
ok "and logged it"

for bad in "min_size => -1" "max_rows => -1" "min_size => NULL"; do
	psql -X -qAt -c "SELECT jobq.compact($bad)" >/dev/null 2>"$work/err" && die "compact($bad) succeeded"
	grep -q "must be non-negative" "$work/err" || die "compact($bad): $(cat "$work/err")"
done
expect_eq "$(psql -X -qAt -v VERBOSITY=verbose -c "SELECT jobq.compact(max_rows => -1)" 2>&1 | grep -o 22023 | head -1)" 22023 "bad arguments: 22023"

q "SELECT jobq.drop_queue(queue, force => true) FROM jobq.queues WHERE queue IN ('cq', 'cw')" >/dev/null

fresh_db jobq_compact_fresh
q "ALTER TABLE jobq.jobs_persistent SET (autovacuum_enabled = false)"
q "SELECT count(*) FROM jobq.enqueue_batch('f', (SELECT jsonb_agg('{}'::jsonb) FROM generate_series(1, 20000)))" >/dev/null
wait_for "SELECT n_live_tup >= 20000 FROM pg_stat_user_tables WHERE relid = 'jobq.jobs_persistent'::regclass" 10
expect_eq "$(q "SELECT reltuples < 0 AND pg_relation_size('jobq.jobs_persistent_pkey') > 1024 * 1024
	FROM pg_class WHERE oid = 'jobq.jobs_persistent'::regclass")" t "a never analysed table of 20 000 jobs, primary key over 1 MB"
expect_eq "$(q "SELECT count(*) FROM jobq.compact()")" 0 "is not taken for bloated: nothing rebuilt"
export PGDATABASE=postgres
q "DROP DATABASE jobq_compact_fresh WITH (FORCE)"
