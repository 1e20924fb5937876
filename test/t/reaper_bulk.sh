#!/usr/bin/env bash
# reaper_bulk: 10 000 expired leases are reaped in bounded batches (jobq.reaper_batch, one
# transaction each) while a concurrent worker keeps leasing and completing jobs of the same
# queue: it is never held up for long, and completes jobs between the reaper's batches.
source "$(dirname "$0")/../lib.sh"
export PGDATABASE=postgres
work=$(mktemp -d)
cleanup() {
	touch "$work/stop"
	wait 2>/dev/null || true
	q "ALTER SYSTEM RESET jobq.reaper_batch" && q "SELECT pg_reload_conf()" >/dev/null
	rm -rf "$work"
}
trap cleanup EXIT

q "CREATE EXTENSION IF NOT EXISTS jobq"
q "SELECT jobq.drop_queue(queue, force => true) FROM jobq.queues WHERE queue = 'rb'"
q "ALTER SYSTEM SET jobq.reaper_batch = 500"
q "SELECT pg_reload_conf()" >/dev/null
wait_for "SELECT jobq.stats() -> 'reaper' ->> 'batch' = '500'" 5
ok "reaper batch 500"

q "SELECT jobq.create_queue('rb', retry_base => '10 ms')" >/dev/null
q "SELECT count(*) FROM jobq.enqueue_batch('rb', (SELECT jsonb_agg(jsonb_build_object('id', 'x' || i))
	FROM generate_series(1, 10000) i))" >/dev/null
# 10 000 leases that expire in 1 s, by a worker that then disappears.
expect_eq "$(q "SELECT count(*) FROM jobq.lease('rb', 'dead', n => 10000, timeout => '1 s')")" 10000 "10000 leased"
# Fresh work for the live worker, queued behind the leased jobs.
q "SELECT count(*) FROM jobq.enqueue_batch('rb', (SELECT jsonb_agg(jsonb_build_object('id', 'y' || i))
	FROM generate_series(1, 3000) i))" >/dev/null

# The live worker: lease 10 and complete them, one transaction per round, until told to stop;
# logs each round's duration (ms) and count.
(
	while [ ! -e "$work/stop" ]; do
		s=$(date +%s%N)
		n=$(q "SELECT count(jobq.complete('rb', l.id, lease => l.lease)) FROM jobq.lease('rb', 'live', n => 10) l") || n=err
		echo "$(( ($(date +%s%N) - s) / 1000000 )) $n" >>"$work/rounds"
	done
) &

wait_for "SELECT count(*) = 0 FROM jobq.jobs WHERE queue = 'rb' AND worker = 'dead'" 60
ok "every expired lease reaped"
touch "$work/stop"
wait
grep -q err "$work/rounds" && die "the live worker got an error"
expect_eq "$(q "SELECT count(*) FROM jobq.job_events WHERE queue = 'rb' AND message = 'lease expired'")" 10000 \
	"10000 'lease expired' events"
# One transaction per batch: events were written by >= 20 transactions of <= 500 jobs each.
read -r xacts biggest < <(q "SELECT count(*), max(n) FROM (SELECT xmin::text, count(*) n FROM jobq.job_events
	WHERE queue = 'rb' AND message = 'lease expired' GROUP BY 1) x" | tr '|' ' ')
[ "$xacts" -ge 20 ] && [ "$biggest" -le 500 ] || die "batches: $xacts transactions, biggest $biggest"
ok "reaped in $xacts transactions of at most $biggest jobs"
# The live worker completed jobs while the reaper was at work.
expect_eq "$(q "SELECT count(*) > 0 FROM jobq.history h WHERE h.queue = 'rb' AND h.worker = 'live'
	AND h.finished_at > (SELECT min(at) FROM jobq.job_events WHERE queue = 'rb' AND message = 'lease expired')
	AND h.finished_at < (SELECT max(at) FROM jobq.job_events WHERE queue = 'rb' AND message = 'lease expired')")" t \
	"the live worker completed jobs during the reap"
rounds=$(wc -l <"$work/rounds")
slowest=$(sort -n "$work/rounds" | tail -1 | cut -d' ' -f1)
done_live=$(awk '{s += $2} END {print s}' "$work/rounds")
ok "live worker: $rounds rounds, $done_live jobs completed, slowest round $slowest ms"
expect_eq "$(q "SELECT count(*) FROM jobq.jobs WHERE queue = 'rb' AND status = 'running'")" 0 "nothing left running"

q "SELECT jobq.drop_queue('rb', force => true)" >/dev/null
