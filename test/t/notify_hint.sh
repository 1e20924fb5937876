#!/usr/bin/env bash
# notify_hint: NOTIFY is only a hint.
# 1. With a listener idle in a transaction (LISTEN jobq, then BEGIN and stay idle: the
#    notification queue cannot be freed past it), enqueues still commit, the queue usage
#    grows, and workers still find and finish every job by leasing.
# 2. jobq._notify itself: its definition is run as a probe with the queue usage replaced by
#    a stub; below half full it notifies, at or above half full it does not (so COMMIT can
#    never fail with "too many notifications in the NOTIFY queue"). The 8 GB queue cannot
#    be filled in a test, hence the stub; the probe is built from the installed function, so
#    dropping or inverting the guard fails this test.
source "$(dirname "$0")/../lib.sh"
fresh_db jobq_notify_hint

# 1. A listener idle in a transaction.
fifo=$JOBQ_TEST_DIR/notify_hint.fifo
rm -f "$fifo"
mkfifo "$fifo"
PGAPPNAME=idle_listener psql -X -q -v ON_ERROR_STOP=1 <"$fifo" >/dev/null 2>&1 &
listener=$!
exec 7>"$fifo"
echo "LISTEN jobq; BEGIN; SELECT txid_current();" >&7
trap 'exec 7>&-; kill $listener 2>/dev/null || true; rm -f "$fifo"' EXIT
wait_for "SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE application_name = 'idle_listener'
	AND state = 'idle in transaction')" 10
ok "a listener is idle in a transaction"
before=$(q "SELECT pg_notification_queue_usage()")
for i in $(seq 1 1000); do
	echo "SELECT id FROM jobq.enqueue('nh', id => 'j$i');"
done | psql -X -qAt -v ON_ERROR_STOP=1 >/dev/null || die "an enqueue failed"
q "SELECT count(*) FROM jobq.enqueue_batch('nh', (SELECT jsonb_agg(jsonb_build_object('id', 'b' || i))
	FROM generate_series(1, 100) i))" >/dev/null
expect_eq "$(q "SELECT count(*) FROM jobq.jobs WHERE queue = 'nh'")" 1100 "1001 enqueue transactions committed"
after=$(q "SELECT pg_notification_queue_usage()")
[ "$(q "SELECT $after > $before")" = t ] || die "queue usage did not grow ($before -> $after): the listener does not hold the queue"
ok "notification queue usage grew from $before to $after (held by the idle listener)"
expect_eq "$(q "SELECT state FROM pg_stat_activity WHERE application_name = 'idle_listener'")" \
	"idle in transaction" "the listener is still idle in its transaction"
# workers find every job by leasing, without any notification
wpids=()
for w in 1 2 3; do
	psql -X -qAt -v ON_ERROR_STOP=1 -c "SELECT count(jobq.complete('nh', id, NULL, lease))
		FROM jobq.lease('nh', 'w$w', 500)" >/dev/null &
	wpids+=($!)
done
for p in "${wpids[@]}"; do wait "$p" || die "a worker failed"; done
wait_for "SELECT count(*) = 0 FROM jobq.jobs WHERE queue = 'nh'" 10
expect_eq "$(q "SELECT count(*) FROM jobq.history WHERE queue = 'nh' AND status = 'finished'")" 1100 \
	"workers leased and finished all 1100 jobs"
echo "ROLLBACK;" >&7
exec 7>&-
wait $listener || true
trap - EXIT
rm -f "$fifo"

# 2. The guard in jobq._notify, run with a stub for the queue usage.
def=$(q "SELECT pg_get_functiondef('jobq._notify(text)'::regprocedure)")
echo "$def" | grep -Eq 'pg_notification_queue_usage\(\)' || die "jobq._notify does not look at the queue usage"
q "CREATE SCHEMA notify_probe"
q "CREATE TABLE notify_probe.usage (v float8)"
q "INSERT INTO notify_probe.usage VALUES (0)"
q "CREATE FUNCTION notify_probe.usage() RETURNS float8 LANGUAGE sql AS 'SELECT v FROM notify_probe.usage'"
probe=$(echo "$def" | sed -E 's/(pg_catalog\.)?pg_notification_queue_usage\(\)/notify_probe.usage()/g;
	s/FUNCTION jobq\._notify\(/FUNCTION notify_probe._notify(/')
echo "$probe" | grep -q 'notify_probe.usage()' || die "could not build the probe"
psql -X -q -v ON_ERROR_STOP=1 -c "$probe" || die "could not create the probe"
# notify_at USAGE: the notifications a session listening on jobq receives from the probe
notify_at() {
	q "UPDATE notify_probe.usage SET v = $1"
	psql -X -qAt -v ON_ERROR_STOP=1 -c "LISTEN jobq" -c "SELECT notify_probe._notify('nh')" 2>&1 |
		grep -c 'Asynchronous notification "jobq" with payload "nh"' || true
}
expect_eq "$(notify_at 0)" 1 "empty queue: notifies"
expect_eq "$(notify_at 0.49)" 1 "queue 49% full: notifies"
expect_eq "$(notify_at 0.5)" 0 "queue half full: no notification"
expect_eq "$(notify_at 0.99)" 0 "queue 99% full: no notification"
# and the real function notifies when the queue is empty
expect_eq "$(psql -X -qAt -c "LISTEN jobq" -c "SELECT jobq._notify('nh')" 2>&1 |
	grep -c 'Asynchronous notification "jobq" with payload "nh"')" 1 "jobq._notify notifies on an empty queue"
q "DROP SCHEMA notify_probe CASCADE"
export PGDATABASE=postgres
q "DROP DATABASE jobq_notify_hint WITH (FORCE)"
