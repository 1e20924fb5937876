#!/usr/bin/env bash
# reaper_role: the reaper connects as jobq.reaper_role. A LOGIN role that is only a member
# of jobq_admin reaps, and leaves the VACUUM of live tables it does not own to autovacuum
# (no WARNING); a role without jobq_admin is refused (42501, logged) and reaps nothing; back
# to the default (the bootstrap superuser) after RESET.
source "$(dirname "$0")/../lib.sh"
log=$JOBQ_TEST_DIR/server.log
db=jobq_reaper_role
good=jobq_reaper_t
bad=jobq_reaper_t_bad
cleanup() {
	psql -X -q -d postgres -c "ALTER SYSTEM RESET jobq.reaper_role" -c "ALTER SYSTEM RESET jobq.vacuum_interval" \
		-c "SELECT pg_reload_conf()" >/dev/null 2>&1 || true
	psql -X -q -d postgres -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" \
		-c "DROP ROLE IF EXISTS $good" -c "DROP ROLE IF EXISTS $bad" >/dev/null 2>&1 || true
}
trap cleanup EXIT
cleanup
psql -X -q -v ON_ERROR_STOP=1 -d postgres -c "CREATE ROLE $good LOGIN IN ROLE jobq_admin" \
	-c "CREATE ROLE $bad LOGIN"
reaper_user() { psql -X -qAt -d postgres -c "SELECT usename FROM pg_stat_activity WHERE backend_type = 'jobq reaper' AND datname = '$db'"; }
set_role() {
	psql -X -q -d postgres -c "ALTER SYSTEM SET jobq.reaper_role = '$1'" -c "SELECT pg_reload_conf()" >/dev/null
	wait_for "SELECT current_setting('jobq.reaper_role') = '$1'" 5
}
expire() {
	q "SELECT jobq.enqueue('r', id => '$1')" >/dev/null
	q "SELECT count(*) FROM jobq.lease('r', 'w', 100, timeout => '10 ms')" >/dev/null
}

fresh_db $db
q "SELECT jobq.create_queue('r', retry_base => '10 ms')" >/dev/null

set_role $good
pid=$(q "SELECT jobq.start_reaper()")
wait_for "SELECT jobq.stats() -> 'reaper' ->> 'status' = 'running'" 5
expect_eq "$(reaper_user)" $good "the reaper runs as jobq.reaper_role"
expire a
wait_for "SELECT status = 'pending' AND attempt = 1 FROM jobq.get('r', 'a')" 5
ok "and reaps with jobq_admin's rights only"
expect_eq "$(q "SELECT rolsuper FROM pg_roles WHERE rolname = '$good'")" f "a role that is no superuser"

# A reaper that does not own the live tables leaves their VACUUM to autovacuum (here off for
# the table), rather than asking for it and logging VACUUM's WARNING every interval.
q "ALTER TABLE jobq.jobs_persistent SET (autovacuum_enabled = false)"
psql -X -q -d postgres -c "ALTER SYSTEM SET jobq.vacuum_interval = '100ms'" -c "SELECT pg_reload_conf()" >/dev/null
q "SELECT count(*) FROM jobq.enqueue_batch('v', (SELECT jsonb_agg('{}'::jsonb) FROM generate_series(1, 3000)))" >/dev/null
q "WITH l AS (SELECT id, lease FROM jobq.lease('v', 'w', 3000))
	SELECT count(*) FROM jobq.complete_batch('v', (SELECT array_agg(id) FROM l), (SELECT array_agg(lease) FROM l))" >/dev/null
wait_for "SELECT n_dead_tup >= 6000 FROM pg_stat_user_tables WHERE relid = 'jobq.jobs_persistent'::regclass" 5
mark=$(stat -c %s "$log")
vacuums=$(q "SELECT vacuum_count FROM pg_stat_user_tables WHERE relid = 'jobq.jobs_persistent'::regclass")
sleep 2
tail -c +$((mark + 1)) "$log" | grep -q "only table or database owner can vacuum" &&
	die "the reaper asked for a VACUUM of a table its role does not own"
ok "a reaper that does not own the live tables does not VACUUM them (no WARNING in 20 intervals)"
expect_eq "$(q "SELECT vacuum_count FROM pg_stat_user_tables WHERE relid = 'jobq.jobs_persistent'::regclass")" \
	"$vacuums" "and the dead rows stay for autovacuum"
psql -X -q -d postgres -c "ALTER SYSTEM RESET jobq.vacuum_interval" -c "SELECT pg_reload_conf()" >/dev/null
q "SELECT jobq.stop_reaper()" >/dev/null
wait_for "SELECT count(*) = 0 FROM pg_stat_activity WHERE backend_type = 'jobq reaper' AND datname = '$db'" 10

set_role $bad
q "SELECT jobq.start_reaper()" >/dev/null
wait_for "SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'jobq reaper' AND datname = '$db'" 5
expect_eq "$(reaper_user)" $bad "the reaper runs as the role without jobq_admin"
expire b
sleep 2
expect_eq "$(q "SELECT status FROM jobq.get('r', 'b')")" running "which cannot reap"
wait_for "SELECT (jobq.stats() -> 'reaper' -> 'totals' ->> 'errors')::bigint > 0" 5
expect_eq "$(q "SELECT jobq.stats() -> 'reaper' -> 'last_error' ->> 'message'")" \
	"permission denied for schema jobq" "the refusal is counted, with its message"
grep -q "permission denied for schema jobq" "$log" || die "the refusal is logged"
ok "and logged"
q "SELECT jobq.stop_reaper()" >/dev/null
wait_for "SELECT count(*) = 0 FROM pg_stat_activity WHERE backend_type = 'jobq reaper' AND datname = '$db'" 10

psql -X -q -d postgres -c "ALTER SYSTEM RESET jobq.reaper_role" -c "SELECT pg_reload_conf()" >/dev/null
wait_for "SELECT current_setting('jobq.reaper_role') = ''" 5
q "SELECT jobq.start_reaper()" >/dev/null
wait_for "SELECT jobq.stats() -> 'reaper' ->> 'status' = 'running'" 5
expect_eq "$(reaper_user)" postgres "by default the bootstrap superuser"
wait_for "SELECT status = 'pending' FROM jobq.get('r', 'b')" 5
ok "which reaps what was left"
q "SELECT jobq.stop_reaper()" >/dev/null
