#!/usr/bin/env bash
# no_preload: jobq on a server that does not preload it (DESIGN: "Without preload the SQL
# API still works and jobq.stats() says the reaper is absent"). A cluster of its own, started
# with shared_preload_libraries = '' (the suite's cluster preloads jobq):
# - CREATE EXTENSION loads jobq on demand, without a warning about the jobq.database set in
#   postgresql.conf (which only a preloading server uses); enqueue, lease and complete work;
# - jobq.stats() says no reaper is present and jobq is not preloaded; jobq.metrics() says
#   jobq_reaper_up 0;
# - there are no wake-up slots (jobq._wake_count is NULL), so CALL jobq.wait falls back to
#   pg_sleep, a look at the job once a second (issue 7: no polling loop faster than once a
#   second): it returns at once for an ended job, sleeps in pg_sleep (not on a condition
#   variable) while the job runs, returns the job's end once it is completed, and returns the
#   job's current status when the timeout passes, having looked at most 4 times in 2.5 s
#   (jobq.get's calls in pg_stat_user_functions; the 5 ms backoff it had looked 11 times);
# - jobq.start_reaper() starts a reaper as a dynamic background worker, which reaps.
source "$(dirname "$0")/../lib.sh"
dir=$(mktemp -d)
chmod 755 "$dir"
trap 'kill $(jobs -p) 2>/dev/null || true; bash "$top/scripts/cluster.sh" stop "$dir" immediate; rm -rf "$dir"' EXIT

bash "$top/scripts/cluster.sh" start "$dir" >/dev/null
bash "$top/scripts/cluster.sh" stop "$dir" fast
echo "shared_preload_libraries = ''" | pg_as tee -a "$dir/data/postgresql.conf" >/dev/null
read -r port sock < <(bash "$top/scripts/cluster.sh" start "$dir")
export PGHOST=$sock PGPORT=$port PGDATABASE=postgres
expect_eq "$(q "SHOW shared_preload_libraries")" "" "the cluster does not preload jobq"

q "CREATE EXTENSION jobq"
# cluster.sh's postgresql.conf sets jobq.database, which does nothing here but must not make
# every backend that loads jobq warn about an invalid parameter.
out=$(psql -X -qAt -c "SELECT jobq.stats() IS NOT NULL" -c "SHOW jobq.database" 2>&1)
expect_eq "$out" "t
postgres" "loading jobq warns of nothing, and jobq.database reads back"
expect_eq "$(q "SELECT jobq.stats() -> 'reaper' ->> 'present'")" false "stats(): no reaper"
expect_eq "$(q "SELECT jobq.stats() -> 'reaper' ->> 'preloaded'")" false "stats(): jobq is not preloaded"
expect_eq "$(q "SELECT count(*) FROM regexp_matches(jobq.metrics(), '^jobq_reaper_up 0$', 'n')")" 1 \
	"metrics(): jobq_reaper_up 0"

q "SELECT count(*) FROM jobq.enqueue_batch('np', '[{\"id\": \"a\"}, {\"id\": \"b\"}, {\"id\": \"c\"}]')" >/dev/null
q "SELECT jobq.complete('np', id, '{\"n\": 1}', lease) FROM jobq.lease('np', 'w', 1)" >/dev/null
expect_eq "$(q "SELECT status || ' ' || result FROM jobq.get('np', 'a')")" 'finished {"n": 1}' \
	"enqueue, lease and complete work"
expect_eq "$(q "SELECT jobq._wake_count('np', 'b') IS NULL")" t "no wake-up slots"
expect_eq "$(q "SELECT jobq._wake_wait('np', 'b', 0, 0.2)")" f "without slots, _wake_wait sleeps out its timeout"

expect_eq "$(q "CALL jobq.wait('np', 'a', '5 s')")" 'finished|{"n": 1}' "wait returns an ended job at once"

# A waiter on b, which runs: it sleeps in pg_sleep until b is completed.
lease=$(q "SELECT lease FROM jobq.lease('np', 'w', 1)")
PGAPPNAME=np_waiter psql -X -qAt -c "CALL jobq.wait('np', 'b', '60 s')" >"$dir/b" 2>&1 &
waiter=$!
wait_for "SELECT EXISTS (SELECT FROM pg_stat_activity WHERE application_name = 'np_waiter'
	AND wait_event = 'PgSleep')" 10
ok "the waiter sleeps in pg_sleep"
sleep 1.5
q "SELECT jobq.complete('np', 'b', '{\"n\": 2}', '$lease')" >/dev/null
wait "$waiter" || die "CALL jobq.wait failed: $(cat "$dir/b")"
expect_eq "$(cat "$dir/b")" 'finished|{"n": 2}' "the waiter returns b's end once b is completed"
# A session of its own, with function statistics: they are flushed when it ends.
expect_eq "$(PGOPTIONS='-c track_functions=pl' q "CALL jobq.wait('np', 'c', '2.5 s')")" 'pending|' \
	"past its timeout, wait returns the current status"
wait_for "SELECT EXISTS (SELECT FROM pg_stat_user_functions WHERE schemaname = 'jobq' AND funcname = 'get')" 10
looks=$(q "SELECT sum(calls) FROM pg_stat_user_functions WHERE schemaname = 'jobq' AND funcname = 'get'")
[ "$looks" -ge 2 ] && [ "$looks" -le 4 ] || die "a 2.5 s wait looked at its job $looks times (want 2-4: once a second)"
ok "a 2.5 s wait looked at its job $looks times"

q "SELECT jobq.create_queue('np2', retry_base => '10 ms')" >/dev/null
q "SELECT jobq.enqueue('np2', id => 'r')" >/dev/null
pid=$(q "SELECT jobq.start_reaper()")
wait_for "SELECT jobq.stats() -> 'reaper' ->> 'status' = 'running'" 10
expect_eq "$(q "SELECT jobq.stats() -> 'reaper' ->> 'pid'")" "$pid" "start_reaper() starts a reaper without preload"
q "SELECT count(*) FROM jobq.lease('np2', 'w', timeout => '1 s')" >/dev/null
wait_for "SELECT status = 'pending' AND attempt = 1 FROM jobq.get('np2', 'r')" 10
ok "it reaps the expired lease"
expect_eq "$(q "SELECT jobq.stop_reaper()")" t "stop_reaper() stops it"
