#!/usr/bin/env bash
# standby: jobq on a hot standby, and after its promotion.
# - a streaming standby (pg_basebackup -R of the test cluster) serves the reads: get, jobs,
#   stats; every write refuses with 25006 (read-only), the direct paths (enqueue,
#   enqueue_batch, lease, complete) as the statements (heartbeat, fail) do, and changes
#   nothing;
# - no reaper runs during recovery, and jobq.start_reaper() refuses with 55000;
# - what the primary commits shows on the standby;
# - promoted, it starts its reaper (jobq.database), which gives back a lease that expired
#   while it was a standby, and it enqueues, leases and completes.
# The primary (the runner's cluster) keeps running throughout.
source "$(dirname "$0")/../lib.sh"
export PGDATABASE=postgres
bindir=$(pg_config --bindir)
sb=$JOBQ_TEST_DIR/standby # scripts/cluster.sh's directory layout: data, sock, port
rm -rf "$sb"
cleanup() {
	bash "$top/scripts/cluster.sh" stop "$sb" immediate
	rm -rf "$sb"
}
trap cleanup EXIT

# sq SQL: q on the standby
sq() { PGHOST=$sb/sock PGPORT=$sport q "$1"; }
# refused SQLSTATE SQL WHAT: SQL fails on the standby with SQLSTATE
refused() {
	local out
	out=$(PGHOST=$sb/sock PGPORT=$sport psql -X -qAt -v VERBOSITY=verbose -c "$2" 2>&1) &&
		die "$3: it succeeded: $out"
	grep -q "ERROR:  $1:" <<<"$out" || die "$3: expected SQLSTATE $1, got: $out"
	ok "$3 ($1)"
}
# caught_up: the standby has replayed what the primary has written so far
caught_up() {
	local lsn
	lsn=$(q "SELECT pg_current_wal_lsn()")
	for _ in $(seq 1 100); do
		[ "$(sq "SELECT pg_last_wal_replay_lsn() >= '$lsn'")" = t ] && return 0
		sleep 0.1
	done
	die "the standby did not replay up to $lsn in 10 s"
}

q "CREATE EXTENSION IF NOT EXISTS jobq"
q "SELECT jobq.drop_queue(queue, force => true) FROM jobq.queues WHERE queue LIKE 'sb%'" >/dev/null
q "SELECT jobq.create_queue('sb', retry_base => '10 ms')" >/dev/null
q "SELECT jobq.enqueue('sb', '{\"n\": 1}', id => 'a')" >/dev/null
q "SELECT count(*) FROM jobq.enqueue_batch('sb', '[{\"id\": \"b\"}, {\"id\": \"c\"}]')" >/dev/null

# the standby: a base backup streaming from the primary, started by scripts/cluster.sh
# (which keeps an existing data directory) on a port and a socket directory of its own
mkdir -p "$sb"
chmod 755 "$sb"
[ "$(id -u)" -ne 0 ] || chown postgres: "$sb"
pg_as mkdir -p "$sb/sock"
pg_as "$bindir/pg_basebackup" -h "$PGHOST" -p "$PGPORT" -U postgres -D "$sb/data" -R -X stream \
	-c fast >/dev/null 2>"$sb/basebackup.log" || { cat "$sb/basebackup.log" >&2; die "pg_basebackup"; }
echo "unix_socket_directories = '$sb/sock'" | pg_as tee -a "$sb/data/postgresql.auto.conf" >/dev/null
read -r sport _ < <(bash "$top/scripts/cluster.sh" start "$sb") || die "the standby did not start"
expect_eq "$(sq "SELECT pg_is_in_recovery()")" t "a hot standby on port $sport"
caught_up

# reads
expect_eq "$(sq "SELECT status || ':' || (payload ->> 'n') FROM jobq.get('sb', 'a')")" "pending:1" \
	"get reads a job on the standby"
expect_eq "$(sq "SELECT count(*) FROM jobq.jobs WHERE queue = 'sb'")" 3 "and the live jobs"
expect_eq "$(sq "SELECT (jobq.stats() -> 'reaper' ->> 'status') IS DISTINCT FROM 'running'")" t \
	"stats: no reaper running"
sleep 1
expect_eq "$(sq "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'jobq reaper'")" 0 \
	"no reaper process during recovery"
refused 55000 "SELECT jobq.start_reaper()" "start_reaper refuses during recovery"

# writes
refused 25006 "SELECT jobq.enqueue('sb')" "enqueue"
refused 25006 "SELECT jobq.enqueue('sb', id => 'x')" "enqueue with an id (the statements)"
refused 25006 "SELECT jobq.enqueue_batch('sb', '[{}]')" "enqueue_batch"
refused 25006 "SELECT jobq.enqueue_batch('sb', '[{\"id\": \"y\"}]')" "enqueue_batch with ids (the statements)"
refused 25006 "SELECT count(*) FROM jobq.lease('sb', 'w')" "lease"

# a lease the primary commits, and its expiry while only the standby could see it
lease=$(q "SELECT lease FROM jobq.lease('sb', 'wp', n => 1, timeout => '1 s') WHERE id = 'a'")
[ -n "$lease" ] || die "the primary did not lease a"
q "SELECT jobq.enqueue('sb', id => 'd')" >/dev/null
caught_up
expect_eq "$(sq "SELECT string_agg(id || ':' || status, ',' ORDER BY id) FROM jobq.jobs WHERE queue = 'sb'")" \
	"a:running,b:pending,c:pending,d:pending" "the primary's lease and enqueue show on the standby"
refused 25006 "SELECT jobq.complete('sb', 'a', NULL, '$lease')" "complete"
refused 25006 "SELECT jobq.heartbeat('sb', 'a', lease => '$lease')" "heartbeat (the statements)"
refused 25006 "SELECT jobq.fail('sb', 'a', 'no', lease => '$lease')" "fail"
expect_eq "$(sq "SELECT status FROM jobq.get('sb', 'a')")" running "nothing changed"
sleep 1.5 # a's lease has expired; no reaper can give it back here

# promotion: the reaper starts and reaps; writes work
pg_as "$bindir/pg_ctl" -D "$sb/data" -w -t 60 promote >/dev/null
expect_eq "$(sq "SELECT pg_is_in_recovery()")" f "promoted"
for _ in $(seq 1 100); do
	[ "$(sq "SELECT jobq.stats() -> 'reaper' ->> 'status' = 'running'")" = t ] && break
	sleep 0.1
done
expect_eq "$(sq "SELECT jobq.stats() -> 'reaper' ->> 'status'")" running "a reaper starts after the promotion"
for _ in $(seq 1 50); do
	[ "$(sq "SELECT status FROM jobq.get('sb', 'a')")" = pending ] && break
	sleep 0.1
done
expect_eq "$(sq "SELECT status FROM jobq.get('sb', 'a')")" pending \
	"it gives back the lease that expired during recovery"
expect_eq "$(sq "SELECT count(*) FROM jobq.events('sb', 'a') WHERE message = 'lease expired'")" 1 \
	"with its 'lease expired' event"
expect_eq "$(sq "SELECT (jobq.enqueue('sb', id => 'e')).status")" pending "enqueue after the promotion"
expect_eq "$(sq "SELECT count(*) FROM (SELECT jobq.complete('sb', l.id, NULL, l.lease)
	FROM jobq.lease('sb', 'ws', n => 10) l) x")" 5 "lease and complete the 5 jobs"
expect_eq "$(sq "SELECT count(*) FROM jobq.history WHERE queue = 'sb' AND status = 'finished'")" 5 \
	"5 finished runs"

q "SELECT jobq.drop_queue('sb', force => true)" >/dev/null
