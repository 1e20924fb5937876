# lib.sh: helpers for the scripted tests under test/t and test/http. Source it.
# The runner exports PGHOST, PGPORT, PGUSER, PGDATABASE and JOBQ_TEST_DIR (the cluster's
# directory: data in $JOBQ_TEST_DIR/data, log in $JOBQ_TEST_DIR/server.log).
set -euo pipefail
top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

# q SQL: run SQL, print unaligned tuples only; fails the test on an SQL error.
q() { psql -X -qAt -v ON_ERROR_STOP=1 -c "$1"; }
die() { echo "FAIL: $*" >&2; exit 1; }
ok() { echo "ok: $*"; }
# expect_eq ACTUAL EXPECTED WHAT
expect_eq() { [ "$1" = "$2" ] || die "$3: expected '$2', got '$1'"; ok "$3"; }
# wait_for SQL SECONDS: poll (10 Hz) until SQL prints t; fails after SECONDS.
wait_for() {
	local i n=$(( $2 * 10 ))
	for ((i = 0; i < n; i++)); do
		[ "$(q "$1" 2>/dev/null || true)" = t ] && return 0
		sleep 0.1
	done
	die "timed out after $2 s waiting for: $1"
}
pg_as() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
pg_ctl_() { pg_as "$(pg_config --bindir)/pg_ctl" -D "$JOBQ_TEST_DIR/data" "$@"; }
# restart_cluster [MODE]: stop (fast, or immediate for a crash) and start again.
restart_cluster() {
	bash "$top/scripts/cluster.sh" stop "$JOBQ_TEST_DIR" "${1:-fast}"
	bash "$top/scripts/cluster.sh" start "$JOBQ_TEST_DIR" "$PGPORT" >/dev/null
}
# fresh_db NAME: a new database with jobq created; exports PGDATABASE.
fresh_db() {
	psql -X -q -d postgres -c "DROP DATABASE IF EXISTS $1 WITH (FORCE)" -c "CREATE DATABASE $1"
	export PGDATABASE=$1
	q "CREATE EXTENSION jobq"
}
