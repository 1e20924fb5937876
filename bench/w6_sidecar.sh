#!/usr/bin/env bash
# bench/w6_sidecar.sh: W6, the sidecar against libpq for the same job operations (issue 7).
#
# Run by bench/run.sh once per synchronous_commit mode (see bench/lib.sh for the
# environment); standalone, with PGHOST, PGPORT, PGUSER, PGDATABASE pointing at a
# throwaway database with jobq installed (it is dropped and created again):
#
#   BENCH_SYNC=off PGOPTIONS="-c synchronous_commit=off" bash bench/w6_sidecar.sh
#
# Starts http/jobq-http (built with `make -C http` when missing) on a free loopback port
# against the cluster, with PGOPTIONS in its environment so its sessions use this pass's
# synchronous_commit, and stops it at the end. bench/httpload.c (compiled into $BENCH_TMP)
# runs BENCH_W6_CLIENTS threads (default 4) for BENCH_SECONDS per figure and run:
#   enqueue  HTTP: POST /v1/enqueue over keep-alive    libpq: SELECT jobq.enqueue(...)
#   process  HTTP: GET /v1/next?num_jobs=1, then        libpq: jobq.lease(..., n => 1), then
#            DELETE /v1/complete?job_id=&lease=                jobq.complete(..., lease)
# every statement its own transaction, alternating HTTP and libpq (A B A B); then enqueue
# again with BENCH_W6_MANY clients (default 32, the sidecar's --threads), where the sidecar
# groups the plain enqueues past its pool (README, "Grouped enqueues"). Each timed
# run starts from the same state: queue w6 dropped and created again, then (process) a
# backlog of BENCH_W6_BACKLOG jobs (default 20000 per second of BENCH_SECONDS: more than
# the clients process) enqueued, then VACUUM ANALYZE.
#
# Figures (workload w6), jobs/s: http enqueue, libpq enqueue, http process, libpq process,
# http enqueue many, libpq enqueue many; rss: the sidecar's VmRSS (MiB) after each run.
# Targets: http >= 0.7 x libpq; rss <= 30 MiB.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
export PGOPTIONS=${PGOPTIONS:--c synchronous_commit=$BENCH_SYNC}

clients=${BENCH_W6_CLIENTS:-4}
many=${BENCH_W6_MANY:-32}
backlog=${BENCH_W6_BACKLOG:-$((20000 * ${BENCH_SECONDS%.*}))}
sidecar=${SIDECAR_BIN:-$bench_top/http/jobq-http}
bin=$BENCH_TMP/httpload
side_pid=
side_log=$BENCH_TMP/w6-sidecar.log

[ -x "$sidecar" ] || make -s -C "$bench_top/http" >&2
cc -std=c99 -O2 -Wall -Wextra -Werror -o "$bin" "$bench_top/bench/httpload.c" \
	-I"$(pg_config --includedir)" -lpq -lpthread

w6_cleanup() {
	if [ -n "$side_pid" ]; then
		kill -TERM "$side_pid" 2>/dev/null || true
		wait "$side_pid" 2>/dev/null || true
	fi
}
trap w6_cleanup EXIT

# A loopback port below the ephemeral range (32768-60999) that nobody listens on now.
w6_free_port() {
	local p
	for _ in $(seq 1 200); do
		p=$((10000 + RANDOM % 22000))
		if ! (echo >"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
			echo "$p"
			return
		fi
	done
	echo "w6: no free port" >&2
	return 1
}

# Starts the sidecar; sets side_pid and port. Retries when another process took the port.
w6_start_sidecar() {
	local attempt i
	for attempt in 1 2 3 4 5; do
		port=$(w6_free_port)
		"$sidecar" --listen "127.0.0.1:$port" \
			--db "host=$PGHOST port=$PGPORT user=$PGUSER dbname=$PGDATABASE" 2>"$side_log" &
		side_pid=$!
		for ((i = 0; i < 100; i++)); do
			if curl -s -o /dev/null "http://127.0.0.1:$port/v1/openapi.yaml"; then
				return 0
			fi
			if ! kill -0 "$side_pid" 2>/dev/null; then
				wait "$side_pid" 2>/dev/null || true
				side_pid=
				grep -q 'cannot bind' "$side_log" && continue 2
				cat "$side_log" >&2
				echo "w6: the sidecar exited" >&2
				return 1
			fi
			sleep 0.1
		done
		cat "$side_log" >&2
		echo "w6: the sidecar did not start on port $port" >&2
		return 1
	done
	echo "w6: no port could be bound" >&2
	return 1
}

# fresh_queue BACKLOG: queue w6 empty again, then BACKLOG pending jobs, then VACUUM ANALYZE.
fresh_queue() {
	sql -c "SELECT jobq.drop_queue(q.queue, force => true) FROM jobq.queues q WHERE q.queue = 'w6'" \
		-c "SELECT jobq.create_queue('w6', timeout => '10 minutes')" >/dev/null
	if (($1 > 0)); then
		sql -c "SELECT count(*) FROM jobq.enqueue_batch('w6', (SELECT jsonb_agg(jsonb_build_object('payload',
			jsonb_build_object('i', i))) FROM generate_series(1, $1) i))" >/dev/null
	fi
	sql -c "VACUUM ANALYZE" >/dev/null
}

# load http|pq enqueue|process [CLIENTS]: one timed run; prints its jobs/s.
load() {
	local out rate jobs empty n=${3:-$clients}
	out=$("$bin" "$1" "$2" w6 "$n" "$BENCH_SECONDS" "$port")
	read -r rate jobs empty <<<"$out"
	echo "w6 $1 $2, $n clients ($BENCH_SYNC): $rate jobs/s ($jobs jobs)" >&2
	if ((empty > 0)); then
		warn "w6 $1 $2: the backlog ran dry ($empty clients found no job and stopped before the end): raise BENCH_W6_BACKLOG"
	fi
	echo "$rate"
}

jobq_reset
w6_start_sidecar
he=() pe=() hp=() pp=() hm=() pm=() rss=()
for ((run = 1; run <= BENCH_RUNS; run++)); do
	fresh_queue 0
	he+=("$(load http enqueue)")
	fresh_queue 0
	pe+=("$(load pq enqueue)")
	fresh_queue "$backlog"
	hp+=("$(load http process)")
	fresh_queue "$backlog"
	pp+=("$(load pq process)")
	fresh_queue 0
	hm+=("$(load http enqueue "$many")")
	fresh_queue 0
	pm+=("$(load pq enqueue "$many")")
	rss+=("$(awk '/^VmRSS:/ {printf "%.1f\n", $2 / 1024}' "/proc/$side_pid/status")")
done

emit w6 "http enqueue" jobs/s "${he[@]}"
emit w6 "libpq enqueue" jobs/s "${pe[@]}"
emit w6 "http process" jobs/s "${hp[@]}"
emit w6 "libpq process" jobs/s "${pp[@]}"
emit w6 "http enqueue many" jobs/s "${hm[@]}"
emit w6 "libpq enqueue many" jobs/s "${pm[@]}"
emit w6 rss MiB "${rss[@]}"
