#!/usr/bin/env bash
# bench/w3_latency.sh: W3, steady state: producers and 4 workers at once (issue 7).
#
# Run by bench/run.sh once per synchronous_commit mode (see bench/lib.sh for the
# environment); standalone, with PGHOST, PGPORT, PGUSER, PGDATABASE pointing at a
# throwaway database with jobq installed (it is dropped and created again):
#
#   BENCH_SYNC=off PGOPTIONS="-c synchronous_commit=off" bash bench/w3_latency.sh
#
# bench/wake.c (compiled into $BENCH_TMP) runs BENCH_W3_PRODUCERS producers (default 2),
# each enqueueing one job every BENCH_W3_INTERVAL_US microseconds (default 2000: 1000
# jobs/s in all) stamped with the client's clock, and BENCH_W3_WORKERS workers (default 4)
# that wait with LISTEN jobq (poll() on the socket, 1 s timeout: no loop faster than once a
# second), lease up to BENCH_W3_BATCH jobs (default 10) until the queue is empty and
# complete each. Each of the BENCH_RUNS runs lasts BENCH_W3_SECONDS (default 60; the issue's
# 60 s, so a pass takes about BENCH_RUNS minutes: lower it for a quick look).
#
# Figures (workload w3): throughput (jobs completed per second while the producers run;
# with a fixed offered rate it is that rate unless jobq falls behind), and the latency from
# just before the enqueue call to just after the lease returned, p50 and p99 over every job
# of the run, in ms. Targets (sync off): p50 <= 5 ms, p99 <= 50 ms.
#
# Each run starts from a new extension (jobq_reset): the same state every run. Beware
# (2026-11-23): jobq's hot-path statements are planned generically at a backend's first
# call (extension/plan.c); a backend that starts after jobq.jobs_persistent was analysed
# while (nearly) empty gets sequential-scan plans for it, about 3.5 scans per job, each
# over every page of a table bloated by the queue's dead rows. With a VACUUM ANALYZE
# between runs, p99 went from 5 ms to 19 ms and, on a loaded machine, runs fell behind
# for good (p50 8.8 s, p99 26 s).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
export PGOPTIONS=${PGOPTIONS:--c synchronous_commit=$BENCH_SYNC}

secs=${BENCH_W3_SECONDS:-60}
producers=${BENCH_W3_PRODUCERS:-2}
interval=${BENCH_W3_INTERVAL_US:-2000}
workers=${BENCH_W3_WORKERS:-4}
batch=${BENCH_W3_BATCH:-10}
bin=$BENCH_TMP/wake

cc -std=c99 -O2 -Wall -Wextra -Werror -o "$bin" "$bench_top/bench/wake.c" \
	-I"$(pg_config --includedir)" -lpq -lpthread

tput=() p50=() p99=()
for ((run = 1; run <= BENCH_RUNS; run++)); do
	# every run from the same state: new, empty tables without statistics (see above)
	jobq_reset
	sql -c "SELECT jobq.create_queue('w3', timeout => '30 s')" >/dev/null
	out=$("$bin" w3 "$secs" "$producers" "$interval" "$workers" "$batch")
	read -r t a b enq done late <<<"$out"
	echo "w3 run $run ($BENCH_SYNC): $t jobs/s, p50 $a ms, p99 $b ms ($enq enqueued, $done completed, $late ticks late)" >&2
	if ((late * 20 > enq)); then
		warn "w3: the producers fell behind their schedule ($late ticks skipped, over 5%): the offered rate was not reached"
	fi
	tput+=("$t") p50+=("$a") p99+=("$b")
done

emit w3 throughput jobs/s "${tput[@]}"
emit w3 "latency p50" ms "${p50[@]}"
emit w3 "latency p99" ms "${p99[@]}"
