#!/usr/bin/env bash
# reaper_crash: nothing committed is lost when processes die.
# - kill -9 of a backend holding committed leases: after the crash recovery its jobs come
#   back when their lease times out and finish on another worker;
# - kill -9 of the reaper: the postmaster restarts it (after crash recovery), reaping resumes;
# - pg_ctl stop -m immediate, then start: every committed job of persistent queues is there
#   with its state, unlogged jobs are gone, the reaper resumes.
source "$(dirname "$0")/../lib.sh"
export PGDATABASE=postgres

# wait_reaper SECONDS [NOT_PID]: a reaper is running (and is not NOT_PID); prints its pid.
wait_reaper() {
	wait_for "SELECT jobq.stats() -> 'reaper' ->> 'status' = 'running'
		AND jobq.stats() -> 'reaper' ->> 'pid' <> '${2:-0}'" "$1" >&2
	q "SELECT jobq.stats() -> 'reaper' ->> 'pid'"
}

q "CREATE EXTENSION IF NOT EXISTS jobq"
q "SELECT jobq.drop_queue(queue, force => true) FROM jobq.queues WHERE queue LIKE 'rc%'"
q "SELECT jobq.create_queue('rc', retry_base => '10 ms')" >/dev/null
reaper=$(wait_reaper 10)

# 1. A worker backend leases 5 jobs (committed), then dies with kill -9.
q "SELECT count(*) FROM jobq.enqueue_batch('rc', '[{\"id\": \"k1\"}, {\"id\": \"k2\"}, {\"id\": \"k3\"}, {\"id\": \"k4\"}, {\"id\": \"k5\"}]')" >/dev/null
PGAPPNAME=doomed psql -X -qAt -c "SELECT count(*) FROM jobq.lease('rc', 'doomed', n => 5, timeout => '2 s')" \
	-c "SELECT pg_sleep(600)" >/dev/null 2>&1 &
wait_for "SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE application_name = 'doomed' AND query LIKE '%pg_sleep%')" 10
doomed=$(q "SELECT pid FROM pg_stat_activity WHERE application_name = 'doomed'")
expect_eq "$(q "SELECT count(*) FROM jobq.jobs WHERE queue = 'rc' AND status = 'running' AND worker = 'doomed'")" 5 \
	"5 committed leases held by backend $doomed"
kill -9 "$doomed"
ok "killed backend $doomed"
# The postmaster resets every backend and recovers; the jobs come back after their timeout.
wait_for "SELECT count(*) = 5 FROM jobq.jobs WHERE queue = 'rc' AND status = 'pending'" 30
ok "the 5 jobs are pending again"
wait_for "SELECT count(*) = 5 FROM jobq.jobs WHERE queue = 'rc' AND run_at <= clock_timestamp()" 3
expect_eq "$(q "SELECT count(*) FROM (SELECT jobq.complete('rc', l.id, '{\"by\": \"w2\"}', l.lease)
	FROM jobq.lease('rc', 'w2', n => 5) l WHERE l.attempt = 2) x")" 5 "another worker finishes them (attempt 2)"
expect_eq "$(q "SELECT count(*) FROM jobq.history WHERE queue = 'rc' AND status = 'finished' AND worker = 'w2'")" 5 \
	"5 finished runs"
expect_eq "$(q "SELECT count(*) FROM jobq.job_events WHERE queue = 'rc' AND message = 'lease expired'")" 5 \
	"each has a 'lease expired' event"
wait "$!" 2>/dev/null || true

# 2. kill -9 of the reaper: crash recovery, then the postmaster starts it again.
reaper=$(wait_reaper 30)
kill -9 "$reaper"
ok "killed reaper $reaper"
reaper2=$(wait_reaper 30 "$reaper")
ok "reaper restarted as $reaper2"
q "SELECT jobq.enqueue('rc', id => 'after-kill')" >/dev/null
expect_eq "$(q "SELECT count(*) FROM jobq.lease('rc', 'w3', timeout => '1 s')")" 1 "leased for 1 s"
wait_for "SELECT status = 'pending' AND attempt = 1 FROM jobq.get('rc', 'after-kill')" 3
ok "reaping resumed"

# 3. Immediate shutdown (a crash): persistent jobs survive with their state, unlogged ones go.
q "SELECT jobq.create_queue('rc_mixed', timeout => '1 hour')" >/dev/null
q "SELECT count(*) FROM jobq.enqueue_batch('rc_mixed', (SELECT jsonb_agg(jsonb_build_object('id', 'p' || i,
	'state', jsonb_build_object('n', i), 'persist', true)) FROM generate_series(1, 20) i))" >/dev/null
q "SELECT count(*) FROM jobq.enqueue_batch('rc_mixed', (SELECT jsonb_agg(jsonb_build_object('id', 'u' || i,
	'persist', false)) FROM generate_series(1, 20) i))" >/dev/null
# some persistent ones running with a checkpoint, some ended
q "SELECT count(jobq.heartbeat('rc_mixed', id, state => jsonb_build_object('n', 100), lease => lease))
	FROM jobq.lease('rc_mixed', 'w4', n => 5)" >/dev/null
q "SELECT count(jobq.complete('rc_mixed', id, result => '{\"ok\": true}', lease => lease))
	FROM jobq.lease('rc_mixed', 'w4', n => 5)" >/dev/null
snapshot="SELECT md5(string_agg(concat_ws('|', queue, id, run, status, attempt, state, result, lease), ',' ORDER BY run))
	FROM (SELECT queue, id, run, status, attempt, state, result, lease FROM jobq.jobs WHERE queue = 'rc_mixed' AND persist
	      UNION ALL
	      SELECT queue, id, run, status, attempt, state, result, lease FROM jobq.history WHERE queue = 'rc_mixed') x"
before=$(q "$snapshot")
expect_eq "$(q "SELECT count(*) FROM jobq.jobs WHERE queue = 'rc_mixed' AND NOT persist")" 20 "20 unlogged jobs before"
restart_cluster immediate
ok "immediate stop and start"
expect_eq "$(q "$snapshot")" "$before" "persistent jobs, running leases, states and ended runs survive"
expect_eq "$(q "SELECT count(*) FROM jobq.jobs WHERE queue = 'rc_mixed' AND persist")" 15 "15 live persistent jobs"
expect_eq "$(q "SELECT count(*) FROM jobq.jobs WHERE queue = 'rc_mixed' AND status = 'running' AND state = '{\"n\": 100}'")" 5 \
	"running jobs keep their checkpoint"
expect_eq "$(q "SELECT count(*) FROM jobq.jobs WHERE queue = 'rc_mixed' AND NOT persist")" 0 "unlogged jobs are gone"
reaper3=$(wait_reaper 30)
ok "reaper running again as $reaper3"
q "SELECT jobq.enqueue('rc_after', id => 'after-restart')" >/dev/null
expect_eq "$(q "SELECT count(*) FROM jobq.lease('rc_after', 'w5', timeout => '1 s')")" 1 "leased for 1 s"
wait_for "SELECT status = 'pending' AND attempt = 1 FROM jobq.get('rc_after', 'after-restart')" 3
ok "reaping resumed after the restart"

q "SELECT jobq.drop_queue(queue, force => true) FROM jobq.queues WHERE queue LIKE 'rc%'" >/dev/null
