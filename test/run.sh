#!/usr/bin/env bash
# run.sh: `make test`. Installs what is missing, builds and installs jobq, starts a throwaway
# cluster, runs every test (pg_regress, isolation specs, scripted tests under test/t and
# test/http), stops the cluster, and ends with the line "N passed, N failed".
#
# TESTS=regex runs only the tests whose name matches (for development).
set -uo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"

bash scripts/deps.sh || exit 1
make -s >/tmp/jobq-build.log 2>&1 && make -s install >>/tmp/jobq-build.log 2>&1 || {
	cat /tmp/jobq-build.log
	echo "0 passed, 1 failed"
	exit 1
}
if grep -q 'warning:' /tmp/jobq-build.log; then
	grep 'warning:' /tmp/jobq-build.log
	echo "build has warnings"
fi

pgxsdir=$(dirname "$(dirname "$(dirname "$(pg_config --pgxs)")")")
pg_regress=$pgxsdir/src/test/regress/pg_regress
pg_isolation_regress=$pgxsdir/src/test/isolation/pg_isolation_regress
export PATH=$(pg_config --bindir):$PATH

tmp=$(mktemp -d /tmp/jobq-test.XXXXXX)
chmod 755 "$tmp"
export JOBQ_TEST_DIR=$tmp
cleanup() {
	bash "$top/scripts/cluster.sh" stop "$tmp" immediate
	pkill -f "jobq-http.*$tmp" 2>/dev/null || true
	[ -n "${KEEP:-}" ] || rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

read -r port sock < <(bash scripts/cluster.sh start "$tmp") || { echo "0 passed, 1 failed"; exit 1; }
export PGHOST=$sock PGPORT=$port PGUSER=postgres PGDATABASE=postgres
echo "cluster: $tmp (port $port)"

pass=0
fail=0
failed=()
selected() { [ -z "${TESTS:-}" ] || [[ $1 =~ $TESTS ]]; }
record() {
	if [ "$2" = ok ]; then pass=$((pass + 1)); else fail=$((fail + 1)); failed+=("$1"); fi
}
# Parse pg_regress's "test NAME ... ok|FAILED" lines into the tally.
tally() {
	local kind=$1 line name res
	while IFS= read -r line; do
		echo "$line"
		if [[ $line =~ ^(test[[:space:]]+)?[[:space:]]*([A-Za-z0-9_.-]+)[[:space:]]+\.\.\.[[:space:]]+(ok|FAILED|failed) ]]; then
			name=${BASH_REMATCH[2]}
			res=${BASH_REMATCH[3]}
			[ "$res" = ok ] && record "$kind/$name" ok || record "$kind/$name" failed
		fi
	done
}

# 1. pg_regress: test/sql/*.sql against expected/*.out (test/expected links to it).
regress=()
for f in test/sql/*.sql; do
	n=$(basename "$f" .sql)
	selected "regress/$n" && regress+=("$n")
done
if [ ${#regress[@]} -gt 0 ]; then
	echo "== pg_regress"
	tally regress < <("$pg_regress" --inputdir=test --outputdir="$tmp/regress" --host="$sock" \
		--port="$port" --user=postgres --dbname=jobq_regress "${regress[@]}" 2>&1)
	[ -f "$tmp/regress/regression.diffs" ] && head -200 "$tmp/regress/regression.diffs"
fi

# 2. isolation specs: test/isolation/specs/*.spec.
iso=()
for f in test/isolation/specs/*.spec; do
	[ -e "$f" ] || continue
	n=$(basename "$f" .spec)
	selected "isolation/$n" && iso+=("$n")
done
if [ ${#iso[@]} -gt 0 ]; then
	echo "== isolation"
	tally isolation < <("$pg_isolation_regress" --inputdir=test/isolation \
		--outputdir="$tmp/isolation" --host="$sock" --port="$port" --user=postgres \
		--dbname=jobq_iso "${iso[@]}" 2>&1)
	[ -f "$tmp/isolation/regression.diffs" ] && head -200 "$tmp/isolation/regression.diffs"
fi

# 3. scripted tests: each test/t/*.sh and test/http/*.sh is one test; exit 0 passes.
mkdir -p "$tmp/logs"
for f in test/t/*.sh test/http/*.sh; do
	[ -e "$f" ] || continue
	n=${f#test/}
	n=${n%.sh}
	selected "$n" || continue
	# A previous script may have stopped or crashed the cluster: bring it back.
	pg_isready -q -h "$sock" -p "$port" || bash scripts/cluster.sh start "$tmp" "$port" >/dev/null
	start=$(date +%s)
	log="$tmp/logs/${n//\//_}.log"
	if timeout 600 bash "$f" >"$log" 2>&1; then
		echo "script $n ... ok ($(($(date +%s) - start)) s)"
		record "$n" ok
	else
		echo "script $n ... FAILED ($(($(date +%s) - start)) s)"
		tail -40 "$log" | sed 's/^/    /'
		record "$n" failed
	fi
done

[ $fail -gt 0 ] && echo "failed: ${failed[*]}"
echo "$pass passed, $fail failed"
[ $fail -eq 0 ] && [ $pass -gt 0 ]
