#!/usr/bin/env bash
# bench/run.sh: `make bench` (never part of make test). Installs what is missing (the
# packages of scripts/deps.sh, plus valgrind for bench/callgrind.sh), builds and installs
# jobq, starts a throwaway cluster with the default settings and what README documents
# (scripts/cluster.sh), creates the extension, and runs every workload bench/[rw]N_*.sh once
# per synchronous_commit mode (off first, then on), then bench/callgrind.sh (sync off
# only) when it exists, four times: W2 n = 100, W2 n = 1, W1 b100 and W1 b1. The RESULT lines the workloads emit (see bench/lib.sh) become the
# table bench/report.py prints: it is written to bench/RESULTS.md and shown.
#
#   BENCH_RUNS=3 BENCH_SECONDS=10   runs per figure, seconds per timed run (bench/lib.sh)
#   BENCH_SYNC_MODES="off on"       the synchronous_commit modes to run
#   BENCH_ONLY=regex                only the workloads whose file name matches, e.g. 'r1|w2'
#   BENCH_NO_BUILD=1                skip the build and install (measure the installed jobq)
#   KEEP=1                          keep the cluster's directory (logs, raw pgbench output)
#
# Exits 1 when a workload failed (the others still run, and the report says what is missing).
set -uo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"

bash scripts/deps.sh || exit 1
if ! command -v valgrind >/dev/null; then
	if [ "$(id -u)" -eq 0 ]; then
		echo "bench: installing valgrind" >&2
		DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends valgrind >/dev/null 2>&1 || {
			apt-get update >/dev/null 2>&1
			DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends valgrind >/dev/null
		} || echo "bench: valgrind could not be installed: bench/callgrind.sh will fail" >&2
	else
		echo "bench: valgrind is missing (run as root, or install it): bench/callgrind.sh will fail" >&2
	fi
fi
export PATH=$(pg_config --bindir):$PATH
unset PGOPTIONS

dir=$(mktemp -d /tmp/jobq-bench-run.XXXXXX)
chmod 755 "$dir"
if [ -z "${BENCH_NO_BUILD:-}" ]; then
	make -s >"$dir/build.log" 2>&1 && make -s install >>"$dir/build.log" 2>&1 || {
		cat "$dir/build.log" >&2
		rm -rf "$dir"
		exit 1
	}
fi

cleanup() {
	bash "$top/scripts/cluster.sh" stop "$dir" immediate
	if [ -n "${KEEP:-}" ]; then echo "bench: kept $dir" >&2; else rm -rf "$dir"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

read -r port sock < <(bash scripts/cluster.sh start "$dir") || exit 1
export PGHOST=$sock PGPORT=$port PGUSER=postgres PGDATABASE=postgres
psql -X -q -v ON_ERROR_STOP=1 -c "CREATE EXTENSION jobq" || exit 1
echo "bench: cluster $dir (port $port)"

export BENCH_RUNS=${BENCH_RUNS:-3} BENCH_SECONDS=${BENCH_SECONDS:-10}
export BENCH_OUT=$dir/results
modes=${BENCH_SYNC_MODES:-off on}

# What the report says about the machine and the cluster.
info() { echo "INFO|$1|$2" >>"$BENCH_OUT"; }
info date "$(date -u '+%Y-%m-%d %H:%M UTC')"
info nproc "$(nproc)"
info memory "$(awk '/^MemTotal:/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo)"
info cpu "$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)"
info postgresql "$(psql -X -At -c 'SELECT pg_catalog.version()')"
info commit "$(git rev-parse --short HEAD 2>/dev/null)$(git diff --quiet HEAD 2>/dev/null || echo ' (uncommitted changes)')"
info runs "$BENCH_RUNS"
info seconds "$BENCH_SECONDS"
info modes "$modes"
psql -X -At -F ' = ' -c "SELECT name, setting || COALESCE(' ' || unit, '') FROM pg_catalog.pg_settings
	WHERE source NOT IN ('default', 'override', 'client', 'session')
		AND name NOT IN ('port', 'unix_socket_directories', 'DateStyle', 'TimeZone', 'log_timezone',
			'default_text_search_config') AND name NOT LIKE 'lc\_%'
	ORDER BY name" | while IFS= read -r s; do info setting "$s"; done

failed=()
# workload FILE: runs one workload script with this pass's environment.
workload() {
	local name
	name=$(basename "$1" .sh)
	echo "== $name (synchronous_commit = $BENCH_SYNC)"
	if ! bash "$1"; then
		echo "bench: $name failed (synchronous_commit = $BENCH_SYNC)" >&2
		failed+=("$name/$BENCH_SYNC")
		info failed "$name, synchronous_commit = $BENCH_SYNC"
	fi
}

for sync in $modes; do
	export BENCH_SYNC=$sync PGOPTIONS="-c synchronous_commit=$sync"
	export BENCH_TMP=$dir/$sync
	mkdir -p "$BENCH_TMP"
	# Also for the sessions that do not get PGOPTIONS (the reaper, a sidecar's pool).
	psql -X -q -c "ALTER SYSTEM SET synchronous_commit = $sync" -c "SELECT pg_catalog.pg_reload_conf()" >/dev/null
	for w in bench/[rw][0-9]*_*.sh; do  # r1_limit.sh ... w6_sidecar.sh, not run.sh
		[ -f "$w" ] || continue
		[ -z "${BENCH_ONLY:-}" ] || [[ $(basename "$w") =~ $BENCH_ONLY ]] || continue
		workload "$w"
	done
	if [ "$sync" = off ] && [ -f bench/callgrind.sh ] &&
		{ [ -z "${BENCH_ONLY:-}" ] || [[ callgrind.sh =~ $BENCH_ONLY ]]; }; then
		workload bench/callgrind.sh
		BENCH_CG_N=1 workload bench/callgrind.sh
		BENCH_CG_WORK=enqueue workload bench/callgrind.sh
		BENCH_CG_WORK=enqueue BENCH_CG_N=1 workload bench/callgrind.sh
	fi
done
psql -X -q -c "ALTER SYSTEM RESET synchronous_commit" -c "SELECT pg_catalog.pg_reload_conf()" >/dev/null

python3 bench/report.py "$BENCH_OUT" >bench/RESULTS.md || exit 1
echo
cat bench/RESULTS.md
if [ ${#failed[@]} -gt 0 ]; then
	echo "bench: failed: ${failed[*]}" >&2
	exit 1
fi
