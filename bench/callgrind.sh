#!/usr/bin/env bash
# bench/callgrind.sh: instructions per job of W2 n = 100, jobq against R2, for `make bench`
# (run by bench/run.sh in the synchronous_commit = off pass only; sources bench/lib.sh).
#
# One job's cost on a busy server is mostly CPU; callgrind counts it exactly, noise free.
# The transaction pair measured, as bench/w2_process_n100.sql and bench/r2_process_n100.sql
# do it with pgbench:
#   jobq  lease 100 jobs in one transaction (jobq.lease(queue, worker, 100)), complete them
#         with one jobq.complete_batch in a second (while complete_batch is not installed:
#         jobq.complete of each of the 100 in the second; the script says which on stderr);
#   R2    UPDATE ... WHERE id IN (SELECT id ... ORDER BY id LIMIT 100 FOR UPDATE SKIP LOCKED)
#         RETURNING id, payload; then DELETE ... WHERE id = ANY(ids) (table: bench/r2.sql).
# How: a fresh cluster of its own (scripts/cluster.sh in a scratch directory, jobq
# preloaded; the cluster of run.sh is not touched), with synchronous_commit = $BENCH_SYNC and
# jit = off, gets 100 000 pending jobs in each queue, VACUUM ANALYZE, and is stopped. Then
# PostgreSQL in single-user mode (postgres --single, one statement per input line, each its
# own transaction; the ids and lease tokens go from the first to the second transaction in
# a session variable, set_config; both statements are PREPAREd first and run by EXECUTE,
# as pgbench -M prepared runs W2) runs under valgrind --tool=callgrind on a fresh copy of
# that data directory, twice per system: K and 2K pairs of transactions. Start-up, shutdown
# and the first (cold: catalog caches, plans) batches cancel in the difference:
#   instr/job = (Ir(2K) - Ir(K)) / (K * n)
# which is the steady-state cost of a job, leasing and completing included, plus its share
# of the shutdown checkpoint's writing of the extra dirty pages. No reaper, autovacuum or
# client runs in single-user mode; the protocol and the client's own work are not counted.
#
# Metrics (workload cg, one value each): jobq n100, r2 n100 (instr/job).
# Environment (besides lib.sh's): BENCH_CG_BATCHES (K, default 20), BENCH_CG_PREFILL
# (100000), BENCH_CG_N (jobs per lease, default 100; with 1, jobq completes with
# jobq.complete as W2 n = 1 does, K defaults to 400 and the metrics are "... n1"),
# BENCH_CG_WORK (process, the default; enqueue: W1 b100 instead, one transaction a
# batch of 100 jobs, jobq.enqueue_batch against R2's INSERT ... SELECT from a JSON array
# parameter, metrics "jobq enqueue b100" and "r2 insert_select b100"; with BENCH_CG_N=1,
# W1 b1: one job a transaction, jobq.enqueue against R2's INSERT ... VALUES, metrics
# "jobq enqueue b1" and "r2 insert b1").
# About 2 minutes. Needs valgrind (apt-get install -y valgrind).
# Standalone: BENCH_SYNC=off bash bench/callgrind.sh (no PG* variables needed).
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

work=${BENCH_CG_WORK:-process}
n=${BENCH_CG_N:-100}
[ "$work" = process ] || [ "$n" = 1 ] || n=100
k=${BENCH_CG_BATCHES:-$((n == 1 ? 400 : 20))}
prefill=${BENCH_CG_PREFILL:-100000}
command -v valgrind >/dev/null || { echo "callgrind: valgrind is not installed" >&2; exit 1; }
as_pg() {
	if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

dir=$(mktemp -d "$BENCH_TMP/cg.XXXXXX")
chmod 755 "$dir"
[ "$(id -u)" -ne 0 ] || chown postgres: "$dir"
if ! as_pg test -w "$dir"; then # BENCH_TMP is closed to the postgres OS user
	rm -rf "$dir"
	dir=$(mktemp -d /tmp/jobq-cg.XXXXXX)
	chmod 755 "$dir"
fi
cleanup() {
	bash "$bench_top/scripts/cluster.sh" stop "$dir" immediate || true
	[ -n "${BENCH_CG_KEEP:-}" ] && echo "callgrind: kept $dir" >&2 || rm -rf "$dir"
}
trap cleanup EXIT

# The reference cluster: filled once, then only copied.
read -r port sock < <(bash "$bench_top/scripts/cluster.sh" start "$dir")
cat >>"$dir/data/postgresql.conf" <<CONF
# added by bench/callgrind.sh
synchronous_commit = $BENCH_SYNC
jit = off
CONF
export PGHOST=$sock PGPORT=$port PGUSER=postgres PGDATABASE=postgres PGOPTIONS=
sql -c "CREATE EXTENSION jobq" -c "SELECT jobq.create_queue('w2', timeout => '5 minutes')" >/dev/null
for ((i = 0; i < prefill; i += 10000)); do
	sql -c "SELECT count(*) FROM jobq.enqueue_batch('w2', (SELECT jsonb_agg(jsonb_build_object('payload', jsonb_build_object('n', i))) FROM generate_series(1, least(10000, $prefill - $i)) i))" >/dev/null
done
if [ -f "$bench_top/bench/r2.sql" ]; then
	sql -f "$bench_top/bench/r2.sql" 2>&1 | grep -v -E 'NOTICE|does not exist, skipping' || true
else # the same table, should bench/r2.sql be missing
	sql -c "CREATE TABLE r2_jobs (id bigserial PRIMARY KEY, queue text NOT NULL,
		payload jsonb NOT NULL DEFAULT '{}', status text NOT NULL DEFAULT 'pending'
		CHECK (status IN ('pending', 'running')), attempts integer NOT NULL DEFAULT 0,
		lease_expires_at timestamptz, created_at timestamptz NOT NULL DEFAULT now())" \
		-c "CREATE INDEX r2_jobs_pending_idx ON r2_jobs (queue, id) WHERE status = 'pending'"
fi
sql -c "INSERT INTO r2_jobs (queue, payload) SELECT 'r2', jsonb_build_object('n', i) FROM generate_series(1, $prefill) i"
sql -c "VACUUM ANALYZE" -c "CHECKPOINT"
have_batch=$(sql -c "SELECT to_regprocedure('jobq.complete_batch(text,text[],uuid[],jsonb[])') IS NOT NULL")
bash "$bench_top/scripts/cluster.sh" stop "$dir"

# The statements, one a line: each system's are prepared once (its .prep file), as pgbench
# -M prepared does in W2, then each pair is two EXECUTEs.
jobq_complete="SELECT pg_catalog.count(*) FROM jobq.complete_batch('w2', pg_catalog.current_setting('cg.ids')::text[], pg_catalog.current_setting('cg.leases')::uuid[])"
if [ "$n" = 1 ]; then
	jobq_complete="SELECT jobq.complete('w2', (pg_catalog.current_setting('cg.ids')::text[])[1], NULL, (pg_catalog.current_setting('cg.leases')::uuid[])[1])"
	echo "callgrind: jobq = lease 1 + jobq.complete" >&2
elif [ "$have_batch" = t ]; then
	echo "callgrind: jobq = lease $n + one complete_batch" >&2
else
	jobq_complete="SELECT pg_catalog.count(jobq.complete('w2', i, NULL, l)) FROM pg_catalog.unnest(pg_catalog.current_setting('cg.ids')::text[], pg_catalog.current_setting('cg.leases')::uuid[]) AS u(i, l)"
	echo "callgrind: jobq = lease $n + complete x $n (complete_batch not installed)" >&2
fi
cat >"$dir/jobq.prep" <<SQL
PREPARE cg_lease AS SELECT pg_catalog.set_config('cg.ids', pg_catalog.array_agg(id)::text, false), pg_catalog.set_config('cg.leases', pg_catalog.array_agg(lease)::text, false), pg_catalog.count(payload) FROM jobq.lease('w2', 'bench', $n)
PREPARE cg_complete AS $jobq_complete
SQL
cat >"$dir/r2.prep" <<SQL
PREPARE cg_lease AS WITH l AS (UPDATE r2_jobs SET status = 'running', attempts = attempts + 1, lease_expires_at = clock_timestamp() + interval '30 seconds' WHERE id IN (SELECT id FROM r2_jobs WHERE queue = 'r2' AND status = 'pending' ORDER BY id LIMIT $n FOR UPDATE SKIP LOCKED) RETURNING id, payload) SELECT set_config('cg.ids', array_agg(id)::text, false), count(payload) FROM l
PREPARE cg_complete AS DELETE FROM r2_jobs WHERE id = ANY(current_setting('cg.ids')::bigint[])
SQL
printf 'EXECUTE cg_lease\nEXECUTE cg_complete\n' >"$dir/jobq.pair"
cp "$dir/jobq.pair" "$dir/r2.pair"
if [ "$work" = enqueue ] && [ "$n" = 1 ]; then # W1 b1: the payload a parameter
	echo "PREPARE cg_enqueue(jsonb) AS SELECT pg_catalog.count(*) FROM jobq.enqueue('w2', \$1)" >"$dir/jobq.prep"
	echo "PREPARE cg_enqueue(jsonb) AS WITH i AS (INSERT INTO r2_jobs (queue, payload) VALUES ('r2', \$1) RETURNING id) SELECT count(*) FROM i" >"$dir/r2.prep"
	echo "EXECUTE cg_enqueue('{\"to\": \"ada@example.com\", \"template\": \"welcome\", \"n\": 1}')" >"$dir/jobq.pair"
	cp "$dir/jobq.pair" "$dir/r2.pair"
	echo "callgrind: jobq = enqueue of 1, R2 = INSERT of 1" >&2
elif [ "$work" = enqueue ]; then # W1 b100: the batch is a parameter, sent as text, as pgbench does
	echo "PREPARE cg_enqueue(jsonb) AS SELECT pg_catalog.count(*) FROM jobq.enqueue_batch('w2', \$1)" >"$dir/jobq.prep"
	echo "PREPARE cg_enqueue(jsonb) AS WITH i AS (INSERT INTO r2_jobs (queue, payload) SELECT 'r2', p FROM jsonb_array_elements(\$1) p RETURNING id) SELECT count(*) FROM i" >"$dir/r2.prep"
	batch=$(for ((i = 1; i <= n; i++)); do printf '{"to": "ada@example.com", "template": "welcome", "n": %d}\n' "$i"; done)
	echo "EXECUTE cg_enqueue('[$(echo "$batch" | sed 's/^/{"payload": /; s/$/}/' | paste -sd,)]')" >"$dir/jobq.pair"
	echo "EXECUTE cg_enqueue('[$(echo "$batch" | paste -sd,)]')" >"$dir/r2.pair"
	echo "callgrind: jobq = enqueue_batch of $n, R2 = INSERT ... SELECT of $n" >&2
fi

# instr SYSTEM PAIRS: instructions of a single-user session running PAIRS pairs.
instr() {
	local sys=$1 pairs=$2 run=$dir/run out want
	as_pg rm -rf "$run"
	as_pg cp -a "$dir/data" "$run"
	{
		cat "$dir/$sys.prep"
		for ((i = 0; i < pairs; i++)); do cat "$dir/$sys.pair"; done
	} >"$dir/script.sql"
	out=$dir/callgrind.$sys.$pairs
	as_pg valgrind --tool=callgrind --callgrind-out-file="$out" \
		"$(pg_config --bindir)/postgres" --single -D "$run" postgres <"$dir/script.sql" >"$dir/single.log" 2>&1 ||
		{ tail -30 "$dir/single.log" >&2; return 1; }
	if grep -q -E '(ERROR|FATAL|PANIC):' "$dir/single.log"; then
		grep -m 5 -E '(ERROR|FATAL|PANIC|QUERY|STATEMENT):' "$dir/single.log" | cut -c1-400 >&2
		return 1
	fi
	# Every lease got n jobs (its count(payload) is n), and with jobq every completion
	# completed n (R2's DELETE prints no row; a jobq.complete that fails raises an error,
	# and one that succeeds prints its void result); every batch enqueued n.
	want=$pairs
	if [ "$sys" = jobq ] && [ "$work" = process ] && [ "$n" != 1 ]; then want=$((2 * pairs)); fi
	if [ "$(grep -c -E "^[[:space:]]*[0-9]+: count = \"$n\"" "$dir/single.log")" -lt "$want" ] ||
		{ [ "$sys" = jobq ] && [ "$work" = process ] && [ "$n" = 1 ] &&
			[ "$(grep -c -E '^[[:space:]]*1: complete = ""' "$dir/single.log")" -lt "$pairs" ]; }; then
		echo "callgrind: $sys did not $work $n jobs per transaction (pair)" >&2
		tail -30 "$dir/single.log" >&2
		return 1
	fi
	awk '/^(summary|totals):/ {print $2; exit}' "$out"
}

for sys in ${BENCH_CG_SYSTEMS:-jobq r2}; do
	a=$(instr "$sys" "$k")
	b=$(instr "$sys" $((2 * k)))
	per=$(awk -v a="$a" -v b="$b" -v k="$k" -v n="$n" 'BEGIN {printf "%.0f", (b - a) / (k * n)}')
	echo "callgrind: $sys: $k pairs $a instr, $((2 * k)) pairs $b instr: $per instr/job" >&2
	case $work/$sys in
	enqueue/jobq) emit cg "jobq enqueue b$n" instr/job "$per" ;;
	enqueue/*) emit cg "r2 insert$([ "$n" = 1 ] || echo _select) b$n" instr/job "$per" ;;
	*) emit cg "$sys n$n" instr/job "$per" ;;
	esac
done
