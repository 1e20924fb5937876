#!/usr/bin/env bash
# reaper_dynamic: jobq.start_reaper() and jobq.stop_reaper() for a database that is not in
# jobq.database; the reaper waits harmlessly (logging once) while the extension is absent;
# start_reaper says clearly when no background worker slot is free.
source "$(dirname "$0")/../lib.sh"
log=$JOBQ_TEST_DIR/server.log
db=jobq_dyn
cleanup() {
	psql -X -q -d postgres -c "ALTER SYSTEM RESET max_worker_processes" 2>/dev/null || true
	if [ "$(psql -X -qAt -d postgres -c "SHOW max_worker_processes" 2>/dev/null)" != 16 ]; then
		restart_cluster
	fi
	psql -X -q -d postgres -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" 2>/dev/null || true
}
trap cleanup EXIT
reapers() { psql -X -qAt -d postgres -c "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'jobq reaper' AND datname = '$db'"; }

fresh_db $db
expect_eq "$(q "SELECT jobq.stats() -> 'reaper' ->> 'present'")" false "no reaper in $db"
expect_eq "$(q "SELECT jobq._reaper_info() ->> 'databases'")" postgres "stats() names the configured databases"
expect_eq "$(q "SELECT jobq.stop_reaper()")" f "stop_reaper() without a reaper"
expect_eq "$(psql -X -qAt -c "SET ROLE pg_monitor" -c "SELECT jobq.start_reaper()" 2>&1 | grep -c 'permission denied')" 1 \
	"start_reaper() is for superusers"

pid=$(q "SELECT jobq.start_reaper()")
ok "start_reaper() started pid $pid"
wait_for "SELECT jobq.stats() -> 'reaper' ->> 'status' = 'running'" 5
expect_eq "$(q "SELECT jobq.stats() -> 'reaper' ->> 'pid'")" "$pid" "stats() shows it"
expect_eq "$(q "SELECT jobq.stats() -> 'reaper' ->> 'dynamic'")" true "as a dynamic worker"
expect_eq "$(reapers)" 1 "one jobq reaper in pg_stat_activity for $db"
out=$(psql -X -qAt -c "SELECT jobq.start_reaper()" 2>&1)
echo "$out" | grep -q "NOTICE:  a jobq reaper already serves database \"$db\"" && [ "$(echo "$out" | tail -1)" = "$pid" ] ||
	die "a second start_reaper(): $out"
ok "a second start_reaper() returns the running one, with a notice"

q "SELECT jobq.create_queue('d', retry_base => '10 ms')" >/dev/null
q "SELECT jobq.enqueue('d', id => 'j')" >/dev/null
q "SELECT count(*) FROM jobq.lease('d', 'w', timeout => '1 s')" >/dev/null
wait_for "SELECT status = 'pending' AND attempt = 1 FROM jobq.get('d', 'j')" 3
ok "it reaps $db"

# Terminated (SIGTERM), it comes back after bgw_restart_time.
q "SELECT pg_terminate_backend($pid)" >/dev/null
wait_for "SELECT jobq.stats() -> 'reaper' ->> 'status' = 'running' AND jobq.stats() -> 'reaper' ->> 'pid' <> '$pid'" 15
pid=$(q "SELECT jobq.stats() -> 'reaper' ->> 'pid'")
ok "restarted as $pid after pg_terminate_backend"

# Without the extension it waits, logging that once, and picks up again after CREATE.
q "DROP EXTENSION jobq CASCADE"
sleep 3
expect_eq "$(grep -c "\[$pid\] .*extension \"jobq\" is not installed in database \"$db\"" "$log")" 1 \
	"the reaper logged once that the extension is missing"
expect_eq "$(grep "\[$pid\] " "$log" | grep -c 'ERROR')" 0 "and logged no error"
expect_eq "$(reapers)" 1 "and still runs"
q "CREATE EXTENSION jobq"
q "SELECT jobq.create_queue('d', retry_base => '10 ms')" >/dev/null
q "SELECT jobq.enqueue('d', id => 'j2')" >/dev/null
q "SELECT count(*) FROM jobq.lease('d', 'w', timeout => '1 s')" >/dev/null
wait_for "SELECT status = 'pending' AND attempt = 1 FROM jobq.get('d', 'j2')" 4
ok "reaps again after CREATE EXTENSION"

# stop_reaper(): it exits for good.
expect_eq "$(q "SELECT jobq.stop_reaper()")" t "stop_reaper()"
wait_for "SELECT jobq.stats() -> 'reaper' ->> 'present' = 'false'" 5
sleep 6
expect_eq "$(reapers)" 0 "not restarted after bgw_restart_time"

# No free background worker slot: a clear error. Two slots: the logical replication
# launcher and the reaper of database postgres.
q "ALTER SYSTEM SET max_worker_processes = 2"
restart_cluster
out=$(psql -X -qAt -v VERBOSITY=verbose -c "SELECT jobq.start_reaper()" 2>&1 || true)
echo "$out"
echo "$out" | grep -q '53400' && echo "$out" | grep -q 'no background worker slot is free' ||
	die "expected 53400 no background worker slot is free, got: $out"
ok "start_reaper() without a free slot: 53400"
expect_eq "$(q "SELECT jobq.stats() -> 'reaper' ->> 'present'")" false "still no reaper in $db"
