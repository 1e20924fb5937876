#!/usr/bin/env bash
# reaper_retention: the reaper purges ended runs older than their queue's retention, and
# nothing else; a changed jobq.reaper_interval takes effect on SIGHUP, without a restart.
source "$(dirname "$0")/../lib.sh"
export PGDATABASE=postgres
reset_conf() {
	q "ALTER SYSTEM RESET jobq.reaper_interval" && q "SELECT pg_reload_conf()" >/dev/null
}
trap reset_conf EXIT

q "CREATE EXTENSION IF NOT EXISTS jobq"
q "SELECT jobq.drop_queue(queue, force => true) FROM jobq.queues WHERE queue LIKE 'rt%'"
wait_for "SELECT jobq.stats() -> 'reaper' ->> 'status' = 'running'" 10

# Queue rt keeps ended runs 1 hour; rt_short 1 second.
q "SELECT jobq.create_queue('rt', retention => '1 hour')" >/dev/null
q "SELECT jobq.create_queue('rt_short', retention => '1 second')" >/dev/null
for queue in rt rt_short; do
	q "SELECT count(*) FROM jobq.enqueue_batch('$queue', (SELECT jsonb_agg(jsonb_build_object('id', 'j' || i))
		FROM generate_series(1, 12) i))" >/dev/null
	# j1..j4 finished, j5..j7 failed, j8 running, j9..j12 pending
	q "SELECT count(jobq.complete('$queue', id, lease => lease)) FROM jobq.lease('$queue', 'w', n => 4)" >/dev/null
	q "SELECT count(jobq.fail('$queue', id, 'boom', retry => false, lease => lease)) FROM jobq.lease('$queue', 'w', n => 3)" >/dev/null
	q "SELECT count(*) FROM jobq.lease('$queue', 'w', n => 1, timeout => '1 hour')" >/dev/null
	q "SELECT jobq.log('$queue', id, 'info', 'note') FROM jobq.jobs WHERE queue = '$queue'" >/dev/null
done
expect_eq "$(q "SELECT count(*) FROM jobq.history WHERE queue = 'rt'")" 7 "7 ended runs in rt"
# Age half of rt's ended runs past its retention.
q "UPDATE jobq.history SET finished_at = finished_at - interval '2 hours' WHERE queue = 'rt' AND id IN ('j1', 'j2', 'j5')"

# rt_short's ended runs go after 1 s, rt's aged ones at the next tick; nothing else.
wait_for "SELECT count(*) = 0 FROM jobq.history WHERE queue = 'rt_short'" 5
wait_for "SELECT count(*) = 4 FROM jobq.history WHERE queue = 'rt'" 3
expect_eq "$(q "SELECT string_agg(id || ':' || status, ',' ORDER BY id) FROM jobq.history WHERE queue = 'rt'")" \
	"j3:finished,j4:finished,j6:failed,j7:failed" "rt keeps its young ended runs"
expect_eq "$(q "SELECT count(*) FROM jobq.job_events WHERE queue = 'rt' AND id IN ('j1', 'j2', 'j5')")" 0 \
	"purged runs' events are gone"
expect_eq "$(q "SELECT count(*) FROM jobq.job_events WHERE queue = 'rt' AND id = 'j6' AND message = 'boom'")" 1 \
	"kept runs keep their events"
for queue in rt rt_short; do
	expect_eq "$(q "SELECT string_agg(status, ',' ORDER BY status) FROM (SELECT status, id FROM jobq.jobs WHERE queue = '$queue') x")" "pending,pending,pending,pending,running" "$queue's live jobs are untouched"
	expect_eq "$(q "SELECT count(*) FROM jobq.job_events WHERE queue = '$queue' AND message = 'note'")" 5 \
		"$queue's live jobs keep their events"
done
expect_eq "$(q "SELECT (jobq.stats() -> 'reaper' -> 'totals' ->> 'purged')::int >= 10")" t "stats() counts purged runs"
expect_eq "$(q "SELECT jobq.stats() -> 'reaper' -> 'last_run' ?& ARRAY['at', 'reaped', 'purged', 'errors']")" t \
	"stats() shows the last run"

# SIGHUP: a new interval applies without a restart.
reaper=$(q "SELECT jobq.stats() -> 'reaper' ->> 'pid'")
expect_eq "$(q "SELECT jobq.stats() -> 'reaper' ->> 'interval_ms'")" 1000 "interval 1000 ms"
q "ALTER SYSTEM SET jobq.reaper_interval = '100ms'"
q "SELECT pg_reload_conf()" >/dev/null
wait_for "SELECT jobq.stats() -> 'reaper' ->> 'interval_ms' = '100'" 3
ticks=$(q "SELECT jobq.stats() -> 'reaper' -> 'totals' ->> 'ticks'")
sleep 2
ticks2=$(q "SELECT jobq.stats() -> 'reaper' -> 'totals' ->> 'ticks'")
[ $((ticks2 - ticks)) -ge 6 ] || die "expected >= 6 ticks in 2 s at 100 ms, got $((ticks2 - ticks))"
ok "ticks every 100 ms now ($((ticks2 - ticks)) in 2 s)"
# A SIGHUP sent to the reaper itself also rereads the configuration.
q "ALTER SYSTEM SET jobq.reaper_interval = '1min'"
pg_as kill -HUP "$reaper"
wait_for "SELECT jobq.stats() -> 'reaper' ->> 'interval_ms' = '60000'" 3
ok "kill -HUP of the reaper applied 1 min"
reset_conf
wait_for "SELECT jobq.stats() -> 'reaper' ->> 'interval_ms' = '1000'" 3
ok "reset to 1000 ms"
expect_eq "$(q "SELECT jobq.stats() -> 'reaper' ->> 'pid'")" "$reaper" "same reaper process throughout"

q "SELECT jobq.drop_queue(queue, force => true) FROM jobq.queues WHERE queue LIKE 'rt%'" >/dev/null
