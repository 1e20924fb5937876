#!/usr/bin/env bash
# reaper_vacuum: every jobq.vacuum_interval the reaper vacuums a live table with more than
# 1000 + 10% of its live rows dead, without waiting for autovacuum (here switched off for
# the table); with jobq.vacuum_interval = 0 it leaves the table alone.
source "$(dirname "$0")/../lib.sh"
export PGDATABASE=postgres
cleanup() {
	q "ALTER SYSTEM RESET jobq.vacuum_interval" >/dev/null 2>&1
	q "SELECT pg_reload_conf()" >/dev/null 2>&1
	q "ALTER TABLE jobq.jobs_persistent RESET (autovacuum_enabled)" >/dev/null 2>&1
}
trap cleanup EXIT

q "CREATE EXTENSION IF NOT EXISTS jobq"
q "SELECT jobq.drop_queue(queue, force => true) FROM jobq.queues WHERE queue = 'vq'" >/dev/null
wait_for "SELECT jobq.stats() -> 'reaper' ->> 'status' = 'running'" 10
q "ALTER TABLE jobq.jobs_persistent SET (autovacuum_enabled = false)"
errors=$(q "SELECT jobq.stats() -> 'reaper' -> 'totals' ->> 'errors'")
q "ALTER SYSTEM SET jobq.vacuum_interval = 0"
q "SELECT pg_reload_conf()" >/dev/null

stat="SELECT n_dead_tup || ' ' || vacuum_count FROM pg_stat_user_tables WHERE relid = 'jobq.jobs_persistent'::regclass"
# 3 000 jobs through queue vq, 1 000 left pending: 6 000 dead row versions, 1 000 live rows
q "SELECT count(*) FROM jobq.enqueue_batch('vq', (SELECT jsonb_agg('{}'::jsonb) FROM generate_series(1, 4000)))" >/dev/null
q "WITH l AS (SELECT id, lease FROM jobq.lease('vq', 'w', 3000))
	SELECT count(*) FROM jobq.complete_batch('vq', (SELECT array_agg(id) FROM l), (SELECT array_agg(lease) FROM l))" >/dev/null
wait_for "SELECT n_dead_tup >= 6000 FROM pg_stat_user_tables WHERE relid = 'jobq.jobs_persistent'::regclass" 5
read -r dead vacuums <<<"$(q "$stat")"
sleep 3
read -r dead2 vacuums2 <<<"$(q "$stat")"
expect_eq "$vacuums2" "$vacuums" "jobq.vacuum_interval = 0: no VACUUM in 3 s ($dead dead rows)"

q "ALTER SYSTEM SET jobq.vacuum_interval = '500ms'"
q "SELECT pg_reload_conf()" >/dev/null
wait_for "SELECT vacuum_count > $vacuums FROM pg_stat_user_tables WHERE relid = 'jobq.jobs_persistent'::regclass" 10
ok "jobq.vacuum_interval = 500ms: the reaper vacuumed the table"
wait_for "SELECT n_dead_tup < 1000 FROM pg_stat_user_tables WHERE relid = 'jobq.jobs_persistent'::regclass" 5
ok "its dead rows are gone"
expect_eq "$(q "SELECT count(*) FROM jobq.jobs WHERE queue = 'vq' AND status = 'pending'")" 1000 "the pending jobs are untouched"
expect_eq "$(q "SELECT count(*) FROM jobq.lease('vq', 'w', 2000)")" 1000 "and leasable"

# Below the threshold (1000 + 10% of the live rows) it does not vacuum again.
read -r dead vacuums <<<"$(q "$stat")"
sleep 2
read -r dead2 vacuums2 <<<"$(q "$stat")"
expect_eq "$vacuums2" "$vacuums" "few dead rows ($dead2): no further VACUUM"
expect_eq "$(q "SELECT jobq.stats() -> 'reaper' -> 'totals' ->> 'errors'")" "$errors" "no reaper errors"
q "SELECT jobq.drop_queue('vq', force => true)" >/dev/null
