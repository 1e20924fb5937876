#!/usr/bin/env bash
# wait_wake: CALL jobq.wait sleeps until the job ends instead of polling.
# - a waiting CALL sleeps on jobq's condition variable (wait_event_type Extension) and looks
#   at the job at most once a second: over 3 s its transaction starts at most 5 times (the
#   old 100 ms polling started about 30);
# - complete, complete_batch and the SQL endings (cancel, through jobq._end) move the
#   wake-up counter of the job's slot when they commit;
# - the waiter returns the job's end: finished after complete, cancelled after cancel.
# No timing is asserted: a slow machine only samples fewer transaction starts.
source "$(dirname "$0")/../lib.sh"
fresh_db jobq_wait_wake
tmpd=$(mktemp -d)
trap 'rm -rf "$tmpd"; kill $(jobs -p) 2>/dev/null || true' EXIT

count() { q "SELECT jobq._wake_count('ww', '$1')"; }

q "SELECT count(*) FROM jobq.enqueue_batch('ww', '[{\"id\": \"a\"}, {\"id\": \"c\"}, {\"id\": \"d\"}, {\"id\": \"e\"}]')" >/dev/null
[ -n "$(count a)" ] || die "no wake-up slots: is jobq preloaded?"

# A waiter on job a, asleep.
PGAPPNAME=ww_waiter psql -X -qAt -c "CALL jobq.wait('ww', 'a', '30 s')" >"$tmpd/a" 2>&1 &
waiter=$!
wait_for "SELECT EXISTS (SELECT FROM pg_stat_activity WHERE application_name = 'ww_waiter'
	AND wait_event_type = 'Extension')" 10
ok "the waiter sleeps on jobq's condition variable, not in pg_sleep"
starts=$(for _ in $(seq 60); do
	q "SELECT xact_start FROM pg_stat_activity WHERE application_name = 'ww_waiter'"
	sleep 0.05
done | sort -u | wc -l)
[ "$starts" -le 5 ] || die "the waiter looked $starts times in 3 s: it polls"
ok "the waiter looked at the job $starts times in 3 s"

# Ending job a wakes it, with the job's end.
before=$(count a)
q "SELECT jobq.complete('ww', id, '{\"x\": 1}', lease) FROM jobq.lease('ww', 'w', 1)" >/dev/null
[ "$(count a)" -gt "$before" ] || die "complete did not move the counter of a's slot"
wait "$waiter" || die "CALL jobq.wait failed: $(cat "$tmpd/a")"
expect_eq "$(cat "$tmpd/a")" 'finished|{"x": 1}' "the waiter returns the finished job"

# complete_batch and cancel (jobq._end) move the counters too.
before=$(count c)
q "SELECT count(*) FROM (SELECT array_agg(id) AS ids, array_agg(lease) AS leases
	FROM jobq.lease('ww', 'w', 1)) l, jobq.complete_batch('ww', l.ids, l.leases)" >/dev/null
expect_eq "$(q "SELECT status FROM jobq.get('ww', 'c')")" finished "complete_batch finished c"
[ "$(count c)" -gt "$before" ] || die "complete_batch did not move the counter of c's slot"
ok "complete_batch wakes"

PGAPPNAME=ww_waiter2 psql -X -qAt -c "CALL jobq.wait('ww', 'e', '30 s')" >"$tmpd/e" 2>&1 &
waiter=$!
wait_for "SELECT EXISTS (SELECT FROM pg_stat_activity WHERE application_name = 'ww_waiter2'
	AND wait_event_type = 'Extension')" 10
before=$(count e)
q "SELECT (jobq.cancel('ww', 'e')).status" >/dev/null
[ "$(count e)" -gt "$before" ] || die "cancel did not move the counter of e's slot"
wait "$waiter" || die "CALL jobq.wait failed: $(cat "$tmpd/e")"
expect_eq "$(cat "$tmpd/e")" 'cancelled|' "the waiter returns the cancelled job"

# A complete that rolls back ends nothing.
q "BEGIN; SELECT jobq.complete('ww', id, NULL, lease) FROM jobq.lease('ww', 'w', 1); ROLLBACK" >/dev/null
expect_eq "$(q "SELECT status FROM jobq.get('ww', 'd')")" pending "a rolled-back complete changes nothing"
