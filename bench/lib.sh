# bench/lib.sh: helpers shared by the workload scripts of `make bench` (sourced, not run).
#
# bench/run.sh starts one throwaway cluster and calls every workload script bench/[rw]*.sh
# once per synchronous_commit mode, with PGHOST, PGPORT, PGUSER, PGDATABASE set, PGOPTIONS
# carrying "-c synchronous_commit=$BENCH_SYNC", and:
#   BENCH_SYNC     on | off (the mode of this pass)
#   BENCH_RUNS     runs per figure (default 3; each figure is their median, min and max)
#   BENCH_SECONDS  seconds per timed run (default 10)
#   BENCH_TMP      a scratch directory for this pass
#   BENCH_OUT      the file collecting RESULT lines
# A script reports each figure with `emit`; run.sh turns the RESULT lines into the table and
# bench/RESULTS.md.

BENCH_RUNS=${BENCH_RUNS:-3}
BENCH_SECONDS=${BENCH_SECONDS:-10}
BENCH_SYNC=${BENCH_SYNC:-off}
BENCH_TMP=${BENCH_TMP:-$(mktemp -d /tmp/jobq-bench.XXXXXX)}
BENCH_OUT=${BENCH_OUT:-$BENCH_TMP/results}
bench_top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export PATH=$(pg_config --bindir):$PATH

# sql ARGS...: psql, quiet, unaligned, tuples only, stop on error.
sql() { psql -X -q -At -v ON_ERROR_STOP=1 "$@"; }

# median_min_max V1 V2 ...: prints "MEDIAN MIN MAX" (numeric sort; the lower middle for even counts).
median_min_max() {
	printf '%s\n' "$@" | sort -g | awk '{v[NR] = $1} END {printf "%s %s %s\n", v[int((NR + 1) / 2)], v[1], v[NR]}'
}

# warn TEXT: a doubt about a figure of this run, on stderr and in $BENCH_OUT (RESULTS.md
# lists it under the machine and cluster).
warn() {
	echo "$1" >&2
	echo "INFO|warning|$BENCH_SYNC: $1" >>"$BENCH_OUT"
}

# emit WORKLOAD METRIC UNIT V1 V2 ...: one figure from its runs, as the line
#   RESULT|WORKLOAD|METRIC|SYNC|MEDIAN|MIN|MAX|UNIT
# on stdout and in $BENCH_OUT.
emit() {
	local w=$1 m=$2 unit=$3
	shift 3
	local med min max
	read -r med min max < <(median_min_max "$@")
	echo "RESULT|$w|$m|$BENCH_SYNC|$med|$min|$max|$unit" | tee -a "$BENCH_OUT"
}

# pgb SCRIPT CLIENTS SECONDS [PGBENCH ARGS...]: runs a pgbench custom script (prepared
# protocol, one thread per client) and prints its transactions per second; fails when a
# client aborted or a transaction failed.
pgb() {
	local r
	r=$(pgb_count "$@") || return 1
	echo "${r%% *}"
}

# jobq_reset: drop and create the extension, so each workload starts from empty tables.
jobq_reset() {
	sql -c "DROP EXTENSION IF EXISTS jobq CASCADE" -c "CREATE EXTENSION jobq" 2>&1 | grep -v NOTICE || true
}

# pgb_count SCRIPT CLIENTS SECONDS [PGBENCH ARGS...]: like pgb, but prints "TPS TRANSACTIONS"
# (the transactions pgbench counted, so a caller can turn work counted in the database into a
# rate over the same duration: DONE * TPS / TRANSACTIONS). SECONDS 0: no -T (the caller
# gives -t TRANSACTIONS per client).
pgb_count() {
	local script=$1 clients=$2 secs=$3 log
	local limit=(-T "$secs")
	shift 3
	[ "$secs" != 0 ] || limit=()
	log=$(mktemp "$BENCH_TMP/pgbench.XXXXXX")
	if ! pgbench -n -M prepared -c "$clients" -j "$clients" "${limit[@]}" -f "$script" "$@" >"$log" 2>&1 ||
		grep -q -E 'aborted|error' "$log"; then
		echo "pgbench $script failed:" >&2
		cat "$log" >&2
		return 1
	fi
	awk '/^number of transactions actually processed: / {n = $6}
		/^tps = / {t = $3}
		END {printf "%.1f %d\n", t, n}' "$log"
}

# per_second DONE TPS TRANSACTIONS: DONE over the duration of a pgb_count run.
per_second() {
	awk -v d="$1" -v t="$2" -v n="$3" 'BEGIN {printf "%.1f\n", (n > 0) ? d * t / n : 0}'
}

# settle: VACUUM ANALYZE then CHECKPOINT, so every timed run starts from the same state
# (no dead rows, no checkpoint due in the middle of it).
settle() {
	sql -c "VACUUM ANALYZE" -c "CHECKPOINT"
}
