#!/usr/bin/env bash
# reaper_expire: the preloaded reaper of database postgres gives expired leases back.
# - it shows in pg_stat_activity and in jobq.stats();
# - a job leased for 1 s and never heartbeated is pending again within 3 s, with a
#   "lease expired" error event, and its next lease is attempt 2; the reaper NOTIFYs;
# - max_retries => 0 ends failed; max_retries => 3 ends failed after attempt 4;
#   max_retries => -1 keeps coming back;
# - a job heartbeated every 0.5 s with a 1 s timeout stays running for 5 s with its saved
#   state, and the next attempt after it expires receives that state;
# - jobq.metrics() shows the reaper up and counts the leases it reaped.
source "$(dirname "$0")/../lib.sh"
export PGDATABASE=postgres
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

q "CREATE EXTENSION IF NOT EXISTS jobq"
wait_for "SELECT jobq.stats() -> 'reaper' ->> 'status' = 'running'" 10
ok "reaper present in stats()"
reaper=$(q "SELECT jobq.stats() -> 'reaper' ->> 'pid'")
expect_eq "$(q "SELECT count(*) FROM pg_stat_activity WHERE pid = $reaper
	AND backend_type = 'jobq reaper' AND application_name = 'jobq reaper' AND datname = 'postgres'")" 1 \
	"reaper in pg_stat_activity"

q "SELECT jobq.drop_queue(queue, force => true) FROM jobq.queues WHERE queue IN ('rx', 'rh')"
q "SELECT jobq.create_queue('rx', retry_base => '10 ms')" >/dev/null
q "SELECT jobq.enqueue('rx', id => 'j1'), jobq.enqueue('rx', id => 'j0', max_retries => 0),
	jobq.enqueue('rx', id => 'jinf', max_retries => -1)" >/dev/null

# Lease all three for 1 s and never heartbeat; listen for the reaper's NOTIFY meanwhile.
expect_eq "$(q "SELECT string_agg(id || ':' || attempt, ',' ORDER BY id) FROM jobq.lease('rx', 'w1', n => 3, timeout => '1 s')")" \
	"j0:1,j1:1,jinf:1" "first lease is attempt 1"
psql -X -qAt -c "LISTEN jobq" -c "SELECT pg_sleep(2.8)" >"$work/notify" 2>&1 &
listener=$!
wait_for "SELECT (SELECT status FROM jobq.get('rx', 'j1')) = 'pending'
	AND (SELECT status FROM jobq.get('rx', 'jinf')) = 'pending'
	AND (SELECT status FROM jobq.get('rx', 'j0')) = 'failed'" 3
ok "expired within 3 s: j1 and jinf pending, j0 (max_retries 0) failed"
for id in j1 j0 jinf; do
	expect_eq "$(q "SELECT count(*) FROM jobq.events('rx', '$id') WHERE level = 'error' AND message = 'lease expired' AND attempt = 1")" 1 \
		"$id has one 'lease expired' error event"
done
wait "$listener" || true
grep -q "notification \"jobq\" with payload \"rx\" received from server process with PID $reaper" "$work/notify" ||
	die "no NOTIFY from the reaper: $(cat "$work/notify")"
ok "the reaper notified queue rx"

# Next leases: attempt 2, 3, 4 for j1 (max_retries 3) and jinf; then j1 fails, jinf comes back.
for attempt in 2 3 4 5; do
	wait_for "SELECT count(*) = 2 FROM jobq.jobs WHERE queue = 'rx' AND status = 'pending' AND run_at <= clock_timestamp()" 3
	expect_eq "$(q "SELECT string_agg(id || ':' || attempt, ',' ORDER BY id) FROM jobq.lease('rx', 'w1', n => 3, timeout => '1 s')")" \
		"j1:$attempt,jinf:$attempt" "lease is attempt $attempt"
	if [ $attempt -lt 4 ]; then
		wait_for "SELECT count(*) = 2 FROM jobq.jobs WHERE queue = 'rx' AND status = 'pending'" 3
	else
		wait_for "SELECT (SELECT status FROM jobq.get('rx', 'j1')) = 'failed'
			AND (SELECT status FROM jobq.get('rx', 'jinf')) = 'pending'" 3
		break
	fi
done
ok "max_retries 3: failed after attempt 4; max_retries -1: pending again"
expect_eq "$(q "SELECT count(*) FROM jobq.events('rx', 'j1') WHERE message = 'lease expired'")" 4 "j1 has 4 'lease expired' events"
# jobq.metrics() counts what the reaper did: up, and reaped_total at least the 4 + 1 + 4
# expiries above; OpenMetrics names the family without _total.
# (the reaper adds to its counters after its tick commits: wait for them)
wait_for "SELECT (regexp_match(jobq.metrics(), '^jobq_reaper_reaped_total (\d+)$', 'n'))[1]::int >= 9" 3
metrics=$(q "SELECT jobq.metrics()")
grep -qx 'jobq_reaper_up 1' <<<"$metrics" || die "metrics: reaper not up: $metrics"
reaped=$(sed -n 's/^jobq_reaper_reaped_total \([0-9]*\)$/\1/p' <<<"$metrics")
[ -n "$reaped" ] && [ "$reaped" -ge 9 ] || die "metrics: jobq_reaper_reaped_total '$reaped', expected >= 9"
grep -qx '# TYPE jobq_reaper_reaped_total counter' <<<"$metrics" || die "metrics: counter TYPE line"
expect_eq "$(q "SELECT jobq.metrics(true) ~ E'\\n# TYPE jobq_reaper_reaped counter\\n' AND jobq.metrics(true) LIKE E'%\\n# EOF\\n'")" t \
	"OpenMetrics: the counter family without _total, # EOF last"
ok "metrics: reaper up, reaped_total $reaped"

# Heartbeats every 0.5 s with a 1 s timeout keep the job running, with its state.
q "SELECT jobq.create_queue('rh', retry_base => '10 ms')" >/dev/null
q "SELECT jobq.enqueue('rh', id => 'h')" >/dev/null
lease=$(q "SELECT lease FROM jobq.lease('rh', 'w2', timeout => '1 s')")
for i in $(seq 1 10); do
	sleep 0.5
	expect_eq "$(q "SELECT jobq.heartbeat('rh', 'h', state => '{\"step\": $i}', lease => '$lease')")" running "heartbeat $i"
done
expect_eq "$(q "SELECT status || ' ' || attempt || ' ' || state::text FROM jobq.get('rh', 'h')")" \
	'running 1 {"step": 10}' "running after 5 s of heartbeats, state saved"
expect_eq "$(q "SELECT count(*) FROM jobq.events('rh', 'h')")" 0 "no event while heartbeating"
# Stop heartbeating: reaped within 3 s, and the next attempt gets the state.
wait_for "SELECT status = 'pending' FROM jobq.get('rh', 'h')" 3
wait_for "SELECT run_at <= clock_timestamp() FROM jobq.get('rh', 'h')" 3
expect_eq "$(q "SELECT attempt || ' ' || state::text FROM jobq.lease('rh', 'w3')")" '2 {"step": 10}' \
	"next attempt receives the saved state"

q "SELECT jobq.drop_queue(queue, force => true) FROM jobq.queues WHERE queue IN ('rx', 'rh')" >/dev/null
