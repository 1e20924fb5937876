#!/usr/bin/env bash
# reaper_role: the reaper connects as jobq.reaper_role. A LOGIN role that is only a member
# of jobq_admin reaps; a role without jobq_admin is refused (42501, logged) and reaps
# nothing; back to the default (the bootstrap superuser) after RESET.
source "$(dirname "$0")/../lib.sh"
log=$JOBQ_TEST_DIR/server.log
db=jobq_reaper_role
good=jobq_reaper_t
bad=jobq_reaper_t_bad
cleanup() {
	psql -X -q -d postgres -c "ALTER SYSTEM RESET jobq.reaper_role" -c "SELECT pg_reload_conf()" >/dev/null 2>&1 || true
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
