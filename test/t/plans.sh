#!/usr/bin/env bash
# plans: the hot path's prepared statements keep using the indexes when their generic plan
# was made while the live table was (vacuumed) empty. A backend makes its plans at its first
# calls; with the statistics of an empty table the planner would pick sequential scans and
# keep them while the queue fills (W3 of bench/ saw lease latencies of seconds). Counted
# with pg_stat_get_xact_numscans (sequential scans of the current transaction).
source "$(dirname "$0")/../lib.sh"
fresh_db jobq_plans
q "SELECT jobq.create_queue('pq', timeout => '5 min')" >/dev/null
q "VACUUM ANALYZE jobq.jobs_persistent"
expect_eq "$(q "SELECT relpages || ' ' || reltuples FROM pg_class WHERE oid = 'jobq.jobs_persistent'::regclass")" "0 0" \
	"the live table is vacuumed empty"

# The hot-path calls in one transaction, and the scans they made of the live table
# (sequential) and of the running jobs' index (which a job's key look-up must not walk:
# every running job of every queue, O(running) per call).
hot_calls="BEGIN;
SELECT count(*) FROM (SELECT jobq.heartbeat('pq', l.id, lease => l.lease), jobq.complete('pq', l.id, NULL, l.lease)
	FROM jobq.lease('pq', 'w', 1) l) x;
SELECT count(*) FROM (SELECT jobq.fail('pq', l.id, 'x', lease => l.lease) FROM jobq.lease('pq', 'w', 1) l) x;
WITH l AS (SELECT id, lease FROM jobq.lease('pq', 'w', 5))
SELECT count(*) FROM jobq.complete_batch('pq', (SELECT array_agg(id) FROM l), (SELECT array_agg(lease) FROM l));
SELECT 'seqscans ' || pg_stat_get_xact_numscans('jobq.jobs_persistent'::regclass);
SELECT 'runscans ' || pg_stat_get_xact_numscans('jobq.jobs_persistent_lease_expires_at_idx'::regclass);
COMMIT;"
# check_hot OUT WHEN: the calls' output has no scan of either kind.
check_hot() {
	expect_eq "$(echo "$1" | grep '^seqscans')" "seqscans 0" "$2: lease, heartbeat, complete, fail, complete_batch: no sequential scan"
	expect_eq "$(echo "$1" | grep '^runscans')" "runscans 0" "$2: heartbeat, complete, fail, complete_batch: no scan of the running jobs' index"
}

out=$(psql -X -qAt -v ON_ERROR_STOP=1 <<SQL
-- first calls of this backend: every hot-path plan is made now, the table (nearly) empty
SELECT count(*) FROM jobq.enqueue_batch('pq', '[{"id": "a"}, {"id": "b"}, {"id": "c"}]');
SELECT id AS id1, lease AS tok1 FROM jobq.lease('pq', 'w', 1) \\gset
SELECT jobq.heartbeat('pq', :'id1', lease => :'tok1');
SELECT jobq.complete('pq', :'id1', NULL, :'tok1');
SELECT id AS id2, lease AS tok2 FROM jobq.lease('pq', 'w', 1) \\gset
SELECT jobq.fail('pq', :'id2', 'x', lease => :'tok2');
SELECT id AS id3, lease AS tok3 FROM jobq.lease('pq', 'w', 1) \\gset
SELECT count(*) FROM jobq.complete_batch('pq', ARRAY[:'id3'], ARRAY[:'tok3']::uuid[]);
-- the queue fills up
SELECT count(*) FROM jobq.enqueue_batch('pq', (SELECT jsonb_agg('{}'::jsonb) FROM generate_series(1, 20000)));
$hot_calls
SQL
) || die "hot-path calls failed: $out"
check_hot "$out" "plans made on a (nearly) empty table, 20 000 jobs"

# Plans made by a new backend after the filled queue was vacuumed and analysed: the running
# jobs' index is then (nearly) empty and looks cheap to walk, the key look-up in 100 000
# looks dear (bench/ W2 made such plans).
q "SELECT count(*) FROM jobq.enqueue_batch('pq', (SELECT jsonb_agg('{}'::jsonb) FROM generate_series(1, 80000)))" >/dev/null
q "VACUUM ANALYZE jobq.jobs_persistent"
out=$(psql -X -qAt -v ON_ERROR_STOP=1 <<<"$hot_calls") || die "hot-path calls after VACUUM ANALYZE failed: $out"
check_hot "$out" "plans made after VACUUM ANALYZE of 100 000 jobs"

# With no unlogged job (the partition has no pages) a lease is direct.c's, on
# jobq.jobs_persistent: it answers in lease order, and a paused or capped queue
# goes the general way.
expect_eq "$(q "SELECT pg_relation_size('jobq.jobs_unlogged')")" "0" "no unlogged job: the direct lease"
q "SELECT jobq.create_queue('ord')" >/dev/null
q "SELECT count(*) FROM jobq.enqueue_batch('ord', '[{\"priority\": 5}, {\"priority\": 1}, {\"priority\": 3}, {\"priority\": 1}]')" >/dev/null
expect_eq "$(q "SELECT string_agg(priority::text, ' ') FROM jobq.lease('ord', 'w', 10)")" \
	"1 1 3 5" "direct lease: priority order, whatever the rows' order on disk"
expect_eq "$(q "SELECT count(*) FROM jobq.jobs WHERE queue = 'ord' AND status = 'running' AND lease IS NOT NULL")" "4" \
	"direct lease: all four running, each with a token"
q "SELECT jobq.create_queue('paused')" >/dev/null
q "SELECT count(*) FROM jobq.enqueue_batch('paused', '[{}, {}]')" >/dev/null
q "SELECT jobq.pause_queue('paused')" >/dev/null
expect_eq "$(q "SELECT count(*) FROM jobq.lease('paused', 'w', 10)")" "0" "direct lease: a paused queue leases nothing"
q "SELECT jobq.create_queue('capped', max_running => 2)" >/dev/null
q "SELECT count(*) FROM jobq.enqueue_batch('capped', '[{}, {}, {}, {}, {}]')" >/dev/null
expect_eq "$(q "SELECT count(*) FROM jobq.lease('capped', 'w', 10)")" "2" "direct lease: a capped queue leases up to its cap"
expect_eq "$(q "SELECT count(*) FROM jobq.lease('capped', 'w', 10)")" "0" "direct lease: a full capped queue leases nothing"
expect_eq "$(q "SELECT pg_relation_size('jobq.jobs_unlogged')")" "0" "still no unlogged job"
# An empty uncapped queue: the direct scan found nothing, the queue's row says it is neither
# paused nor capped, and no second pick runs (one scan of the pending jobs' index, not two).
out=$(psql -X -qAt -v ON_ERROR_STOP=1 <<'SQL'
BEGIN;
SELECT 'leased ' || count(*) FROM jobq.lease('ord', 'w', 10);
SELECT 'pendscans ' || pg_stat_get_xact_numscans(i.inhrelid) FROM pg_inherits i
	WHERE i.inhparent = 'jobq.jobs_pending_idx'::regclass
	AND i.inhrelid::regclass::text LIKE 'jobq.jobs_persistent%';
COMMIT;
SQL
) || die "lease of an empty queue failed: $out"
expect_eq "$(echo "$out" | grep '^leased')" "leased 0" "direct lease: an empty queue leases nothing"
expect_eq "$(echo "$out" | grep '^pendscans')" "pendscans 1" "direct lease: an empty queue costs one pick"
