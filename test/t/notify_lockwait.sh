#!/usr/bin/env bash
# notify_lockwait: a commit's notifications reach the reaper even while the reaper waits for
# PostgreSQL's NOTIFY lock. A round of the reaper (bgworker/reaper.c, reaper_notify_round)
# commits a transaction that notified, which takes that cluster-wide lock; a lock wait resets
# the reaper's latch, so the wake-up of a commit that arrives meanwhile is used up by the
# wait. The reaper must look at its slot before it sleeps, else that commit's notification
# waits for the next tick (W3 of bench/ with synchronous_commit = on once had p99 of 750 ms).
#
# How the wait is made to last: synchronous_standby_names names a standby that does not
# exist, and a holder session with synchronous_commit = on NOTIFYs and commits: its commit
# holds the NOTIFY lock while it waits for that standby (every other session and the reaper
# use synchronous_commit = local, which does not wait). jobq.reaper_interval is an hour, so
# no tick comes to the rescue.
# 1. an enqueue into lw1 commits; the reaper's round for it waits on the lock;
# 2. an enqueue into lw2 commits during that wait (its wake-up is used up by the lock wait);
# 3. the holder's wait is cancelled (its commit completes and releases the lock);
# 4. within 10 s a listener has the notifications of lw1 and lw2, both from the reaper.
source "$(dirname "$0")/../lib.sh"
db=jobq_notify_lockwait
work=$(mktemp -d)
chmod 755 "$work"
holder=
cleanup() {
	exec 7>&- 2>/dev/null || true
	psql -X -q -d postgres -c "SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE wait_event = 'SyncRep'" \
		-c "ALTER SYSTEM RESET synchronous_standby_names" -c "ALTER SYSTEM RESET synchronous_commit" \
		-c "ALTER SYSTEM RESET jobq.reaper_interval" -c "SELECT pg_reload_conf()" >/dev/null 2>&1 || true
	[ -z "$holder" ] || kill "$holder" 2>/dev/null || true
	wait 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT

fresh_db $db
q "ALTER SYSTEM SET synchronous_standby_names = 'jobq_test_no_such_standby'"
q "ALTER SYSTEM SET synchronous_commit = 'local'"
q "ALTER SYSTEM SET jobq.reaper_interval = '1h'"
q "SELECT pg_reload_conf()" >/dev/null
wait_for "SELECT current_setting('jobq.reaper_interval') = '1h'" 10
reaper=$(q "SELECT jobq.start_reaper()")
wait_for "SELECT jobq.stats() -> 'reaper' ->> 'status' = 'running'" 10
ok "a reaper serves the database (PID $reaper), ticking once an hour"

# the listener: a psql fed through a fifo; it prints notifications after each statement
mkfifo "$work/listen"
psql -X -qAt <"$work/listen" >"$work/listen.out" 2>&1 &
exec 7>"$work/listen"
echo "LISTEN jobq;" >&7
# got PAYLOAD: the PIDs the notifications with PAYLOAD came from so far
got() {
	sed -nE "s/^Asynchronous notification \"jobq\" with payload \"$1\" received from server process with PID ([0-9]+)\.$/\1/p" \
		"$work/listen.out" | sort -u | paste -sd' '
}
# wait_note PAYLOAD SECONDS: until the listener has a notification with PAYLOAD
wait_note() {
	local i
	for ((i = 0; i < $2 * 10; i++)); do
		echo "SELECT 1;" >&7
		sleep 0.1
		[ -z "$(got "$1")" ] || return 0
	done
	return 1
}

# the holder: its commit (which wrote WAL: a commit without it does not wait for a standby)
# waits for the standby with the NOTIFY lock held
q "CREATE TABLE lw_hold (a int)"
for attempt in 1 2 3 4 5; do
	PGAPPNAME=notify_holder psql -X -q -c "SET synchronous_commit = on" -c "BEGIN" \
		-c "INSERT INTO lw_hold VALUES ($attempt)" -c "NOTIFY jobq_lockwait_holder" -c "COMMIT" \
		>"$work/holder.log" 2>&1 &
	holder=$!
	for ((i = 0; i < 50; i++)); do
		[ "$(q "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'notify_holder'
			AND wait_event = 'SyncRep'")" = 1 ] && break 2
		kill -0 "$holder" 2>/dev/null || break # committed before the setting took effect
		sleep 0.1
	done
	wait "$holder" 2>/dev/null || true
	holder=
done
[ -n "$holder" ] || die "the holder's commit never waited for the standby"
ok "a commit that notified waits for a standby that does not exist, holding the NOTIFY lock"

q "SELECT count(*) FROM jobq.enqueue('lw1')" >/dev/null
wait_for "SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = $reaper" 10
ok "enqueue into lw1: the reaper's round waits for the NOTIFY lock"
q "SELECT count(*) FROM jobq.enqueue('lw2')" >/dev/null
# past deadlock_timeout (1 s): its timer, armed by the lock wait, fires during the wait and
# not after it, where its signal would set the latch again and hide the lost wake-up
sleep 1.5
expect_eq "$(q "SELECT wait_event_type FROM pg_stat_activity WHERE pid = $reaper")" Lock \
	"enqueue into lw2 committed while the reaper still waits"
expect_eq "$(got 'lw[12]')" "" "no notification yet"

q "SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE application_name = 'notify_holder'" >/dev/null
wait "$holder" 2>/dev/null || true
holder=
grep -q "canceling wait for synchronous replication" "$work/holder.log" ||
	die "the holder's wait was not cancelled: $(cat "$work/holder.log")"
ok "the holder's wait is cancelled; its commit releases the lock"

wait_note lw1 10 || die "no notification for lw1 within 10 s: $(cat "$work/listen.out")"
expect_eq "$(got lw1)" "$reaper" "lw1 is notified by the reaper"
wait_note lw2 10 || die "no notification for lw2 within 10 s (the next tick is an hour away): the wake-up its commit gave was lost in the lock wait"
expect_eq "$(got lw2)" "$reaper" "lw2 is notified by the reaper, without waiting for a tick"

echo "\\q" >&7
exec 7>&-
q "SELECT jobq.stop_reaper()" >/dev/null
export PGDATABASE=postgres
q "DROP DATABASE $db WITH (FORCE)"
