#!/usr/bin/env bash
# notify_reaper: while a reaper serves the database, the NOTIFY jobq, '<queue>' of a
# transaction that makes jobs leasable is sent by the reaper once the transaction has
# committed (bgworker/notify.c), so that enqueues do not commit one at a time behind
# PostgreSQL's NOTIFY lock:
# 1. an enqueue's (directly inserted, or through the statements) and an enqueue_batch's
#    notifications come from the reaper's PID, with the queue as payload, and none from the
#    enqueuing session;
# 2. an enqueue that rolls back notifies nobody;
# 3. with jobq.notify_via_reaper = off the session notifies itself;
# 4. one transaction that enqueues into 40 queues (more than the reaper's slot holds, 32)
#    still gets a notification for each of them;
# 5. once the reaper has stopped, the session notifies itself.
source "$(dirname "$0")/../lib.sh"
db=jobq_notify_reaper
fresh_db $db

# listen SQL...: a session that LISTENs on jobq, prints its PID, runs the statements, then
# waits a second for the notifications (psql prints them after each statement).
listen() {
	local args=(-c "LISTEN jobq" -c "SELECT 'pid ' || pg_backend_pid()")
	for s in "$@"; do args+=(-c "$s"); done
	psql -X -qAt -v ON_ERROR_STOP=1 "${args[@]}" -c "SELECT pg_sleep(1)" 2>&1
}
# from OUT PAYLOAD: the PIDs the notifications with PAYLOAD came from, sorted, unique
from() { sed -nE "s/^Asynchronous notification \"jobq\" with payload \"$2\" received from server process with PID ([0-9]+)\.$/\1/p" <<<"$1" | sort -u | paste -sd' '; }
own() { sed -nE 's/^pid ([0-9]+)$/\1/p' <<<"$1"; }

reaper=$(q "SELECT jobq.start_reaper()")
wait_for "SELECT jobq.stats() -> 'reaper' ->> 'status' = 'running'" 10
ok "a reaper serves the database (PID $reaper)"

# queues a, b and off exist: jobq.enqueue and enqueue_batch insert their jobs directly
# (extension/enqueue.c); into s, with an id given, and into the new queues b2 and off2,
# they run the statements
q "SELECT jobq.create_queue('a'), jobq.create_queue('b'), jobq.create_queue('off')" >/dev/null
out=$(listen "SELECT count(*) FROM jobq.enqueue('a')" "SELECT count(*) FROM jobq.enqueue('a')" \
	"SELECT count(*) FROM jobq.enqueue('s', id => 'x')" \
	"SELECT count(*) FROM jobq.enqueue_batch('b', '[{}, {}, {}]')" \
	"SELECT count(*) FROM jobq.enqueue_batch('b2', '[{}, {}, {}]')")
expect_eq "$(from "$out" a)" "$reaper" "enqueue: notified by the reaper"
expect_eq "$(from "$out" s)" "$reaper" "enqueue with an id (the statements): notified by the reaper"
expect_eq "$(from "$out" b)" "$reaper" "enqueue_batch: notified by the reaper"
expect_eq "$(from "$out" b2)" "$reaper" "enqueue_batch into a new queue (the statements): notified by the reaper"
grep -q "PID $(own "$out")\.$" <<<"$out" && die "the enqueuing session notified too: $out"
ok "and not by the enqueuing session"

out=$(listen "BEGIN" "SELECT count(*) FROM jobq.enqueue('rb')" "ROLLBACK")
expect_eq "$(from "$out" rb)" "" "an enqueue that rolls back notifies nobody"
expect_eq "$(q "SELECT count(*) FROM jobq.jobs WHERE queue = 'rb'")" 0 "and left no job"

out=$(listen "SET jobq.notify_via_reaper = off" "SELECT count(*) FROM jobq.enqueue('off')" \
	"SELECT count(*) FROM jobq.enqueue('off2')")
expect_eq "$(from "$out" off)" "$(own "$out")" "jobq.notify_via_reaper = off: the session notifies itself"
expect_eq "$(from "$out" off2)" "$(own "$out")" "and so it does through the statements"

out=$(listen "SELECT count(*) FROM generate_series(1, 40) i, LATERAL jobq.enqueue('m' || i)")
expect_eq "$(grep -oE 'payload "m[0-9]+"' <<<"$out" | sort -u | wc -l)" 40 \
	"40 queues in one transaction (the slot holds 32): each is notified"
expect_eq "$(from "$out" 'm[0-9]+')" "$reaper" "by the reaper"

q "SELECT jobq.stop_reaper()" >/dev/null
wait_for "SELECT count(*) = 0 FROM pg_stat_activity WHERE backend_type = 'jobq reaper' AND datname = '$db'" 10
out=$(listen "SELECT count(*) FROM jobq.enqueue('a')")
expect_eq "$(from "$out" a)" "$(own "$out")" "without a reaper, the session notifies itself"
export PGDATABASE=postgres
q "DROP DATABASE $db WITH (FORCE)"
