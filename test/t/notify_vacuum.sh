#!/usr/bin/env bash
# notify_vacuum: while the reaper is busy in a VACUUM of the live tables (which can take
# minutes on a big table), it does not take notifications it could not send: transactions
# send their own NOTIFY jobq again until the VACUUM ends (bgworker/reaper.c,
# reaper_pause_pumping), and after it the reaper sends them again.
#
# How the VACUUM is made to last: a cursor's index-only scan of jobq.jobs_persistent's
# primary key keeps its current leaf page pinned, and VACUUM needs a cleanup lock on every
# leaf page of an index it vacuums, so the reaper's VACUUM waits (wait event BufferPin)
# until the cursor closes.
# 1. with 6 000 dead rows and the cursor open, jobq.vacuum_interval = 200ms: the reaper
#    waits in its VACUUM;
# 2. an enqueue meanwhile: its notification comes from the enqueuing session itself, at
#    once (not when the VACUUM ends);
# 3. the cursor closes, the VACUUM ends: an enqueue's notification comes from the reaper.
source "$(dirname "$0")/../lib.sh"
db=jobq_notify_vacuum
work=$(mktemp -d)
cleanup() {
	exec 7>&- 2>/dev/null || true
	psql -X -q -d postgres -c "ALTER SYSTEM RESET jobq.vacuum_interval" -c "SELECT pg_reload_conf()" \
		>/dev/null 2>&1 || true
	wait 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT

fresh_db $db
q "ALTER SYSTEM SET jobq.vacuum_interval = 0"
q "SELECT pg_reload_conf()" >/dev/null
wait_for "SELECT current_setting('jobq.vacuum_interval') = '0'" 10
q "ALTER TABLE jobq.jobs_persistent SET (autovacuum_enabled = false)"
reaper=$(q "SELECT jobq.start_reaper()")
wait_for "SELECT jobq.stats() -> 'reaper' ->> 'status' = 'running'" 10
ok "a reaper serves the database (PID $reaper), jobq.vacuum_interval = 0"

# listen SQL: a session that LISTENs on jobq, prints its PID, runs SQL, then waits a second
# for the notifications; from OUT PAYLOAD: the PIDs they came from; own OUT: the session's
listen() {
	psql -X -qAt -v ON_ERROR_STOP=1 -c "LISTEN jobq" -c "SELECT 'pid ' || pg_backend_pid()" \
		-c "$1" -c "SELECT pg_sleep(1)" 2>&1
}
from() { sed -nE "s/^Asynchronous notification \"jobq\" with payload \"$2\" received from server process with PID ([0-9]+)\.$/\1/p" <<<"$1" | sort -u | paste -sd' '; }
own() { sed -nE 's/^pid ([0-9]+)$/\1/p' <<<"$1"; }

# 4 000 jobs, 3 000 of them through: 6 000 dead row versions
q "SELECT count(*) FROM jobq.enqueue_batch('nv', (SELECT jsonb_agg('{}'::jsonb) FROM generate_series(1, 4000)))" >/dev/null
q "WITH l AS (SELECT id, lease FROM jobq.lease('nv', 'w', 3000))
	SELECT count(*) FROM jobq.complete_batch('nv', (SELECT array_agg(id) FROM l), (SELECT array_agg(lease) FROM l))" >/dev/null
wait_for "SELECT n_dead_tup >= 6000 FROM pg_stat_user_tables WHERE relid = 'jobq.jobs_persistent'::regclass" 5
vacuums=$(q "SELECT vacuum_count FROM pg_stat_user_tables WHERE relid = 'jobq.jobs_persistent'::regclass")

out=$(listen "SELECT count(*) FROM jobq.enqueue('nv')")
expect_eq "$(from "$out" nv)" "$reaper" "before: an enqueue is notified by the reaper"

# the cursor that pins the primary key's first leaf page
scan="SELECT id FROM jobq.jobs_persistent ORDER BY id"
noscan="SET enable_seqscan = off; SET enable_bitmapscan = off; SET enable_indexscan = off;"
psql -X -qAt -c "$noscan EXPLAIN (COSTS OFF) $scan" | grep -q "Index Only Scan using jobs_persistent_pkey" ||
	die "the cursor's query is not an index-only scan of the primary key"
mkfifo "$work/pin"
PGAPPNAME=notify_pinner psql -X -qAt <"$work/pin" >"$work/pin.log" 2>&1 &
exec 7>"$work/pin"
echo "$noscan BEGIN; DECLARE c CURSOR FOR $scan; FETCH 1 FROM c;" >&7
wait_for "SELECT state = 'idle in transaction' FROM pg_stat_activity WHERE application_name = 'notify_pinner'" 10

q "ALTER SYSTEM SET jobq.vacuum_interval = '200ms'"
q "SELECT pg_reload_conf()" >/dev/null
wait_for "SELECT wait_event = 'BufferPin' FROM pg_stat_activity WHERE pid = $reaper" 15
ok "the reaper's VACUUM waits for the cursor's pin"

out=$(listen "SELECT count(*) FROM jobq.enqueue('nv')")
expect_eq "$(from "$out" nv)" "$(own "$out")" "during the VACUUM, an enqueue notifies from its own session, at once"
expect_eq "$(q "SELECT wait_event FROM pg_stat_activity WHERE pid = $reaper")" BufferPin \
	"while the reaper still waits"

echo "CLOSE c; COMMIT;" >&7
exec 7>&-
wait_for "SELECT vacuum_count > $vacuums FROM pg_stat_user_tables WHERE relid = 'jobq.jobs_persistent'::regclass" 10
ok "the cursor closed: the VACUUM ended"
out=$(listen "SELECT count(*) FROM jobq.enqueue('nv')")
expect_eq "$(from "$out" nv)" "$reaper" "after: an enqueue is notified by the reaper again"
expect_eq "$(q "SELECT count(*) FROM jobq.jobs WHERE queue = 'nv' AND status = 'pending'")" 1003 \
	"every pending job is there"

q "SELECT jobq.stop_reaper()" >/dev/null
export PGDATABASE=postgres
q "DROP DATABASE $db WITH (FORCE)"
