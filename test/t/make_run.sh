#!/usr/bin/env bash
# make_run: `make run` alone gives a psql-reachable PostgreSQL with jobq created, prints
# how to connect, and Ctrl-C (SIGINT) stops the cluster it started.
source "$(dirname "$0")/../lib.sh"

dir=$(mktemp -d /tmp/jobq-run.XXXXXX)
chmod 755 "$dir"
out=$dir/out.txt
port=$((20000 + RANDOM % 30000))
# Job control gives make its own process group and keeps SIGINT deliverable (a background
# job of a non-interactive shell would ignore it), as in a terminal.
set -m
JOBQ_RUN_DIR=$dir/run JOBQ_HTTP_LISTEN=127.0.0.1:$port make -s -C "$top" run >"$out" 2>&1 &
pid=$!
set +m
cleanup() {
	kill -INT -- -"$pid" 2>/dev/null || true
	sleep 1
	bash "$top/scripts/cluster.sh" stop "$dir/run" immediate
	rm -rf "$dir"
}
trap cleanup EXIT

for _ in $(seq 1 600); do
	grep -q "Ctrl-C stops it" "$out" && break
	kill -0 "$pid" 2>/dev/null || { cat "$out"; die "make run exited early"; }
	sleep 0.1
done
grep -q "Ctrl-C stops it" "$out" || { cat "$out"; die "make run did not come up in 60 s"; }
cat "$out"

conn=$(grep -m1 -o 'psql -h /[^ ]* -p [0-9]* -U postgres postgres' "$out") || die "no psql line printed"
expect_eq "$($conn -X -qAt -c "SELECT extversion FROM pg_extension WHERE extname = 'jobq'")" 0.1.0 \
	"jobq is created in the database make run prints"
expect_eq "$($conn -X -qAt -c "SELECT (jobq.enqueue('tour', '{}')).status")" pending "the tour works"
tcp=$(grep -m1 -o 'psql -h 127.0.0.1 -p [0-9]* -U postgres postgres' "$out") || die "no TCP psql line"
expect_eq "$($tcp -X -qAt -c "SELECT count(*) FROM jobq.jobs")" 1 "reachable over TCP too"

kill -INT -- -"$pid"
for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
kill -0 "$pid" 2>/dev/null && die "make run did not stop on Ctrl-C"
[ ! -f "$dir/run/data/postmaster.pid" ] || die "the cluster is still running after Ctrl-C"
ok "Ctrl-C stopped make run and its cluster"
