#!/usr/bin/env bash
# soak: a history-checked soak (test/soak.py): 8 workers doing random lease / heartbeat /
# complete / fail / release / abandon with 1-2 s lease timeouts, an enqueuer, random
# pg_terminate_backend of their backends, and one crash (pg_ctl stop -m immediate) and
# restart half-way; every call and answer is logged to a file outside the database, then
# checked: acknowledged enqueues all present, attempts <= max_retries + 1, no job completed
# by two leases, no overlapping leases, leases were reaped.
#   test/t/soak.sh [SECONDS]    (60 in make test; longer runs for benchmarking)
source "$(dirname "$0")/../lib.sh"
export PGDATABASE=postgres   # the reaper serves jobq.database = 'postgres'
seconds=${1:-${SOAK_SECONDS:-60}}
/usr/bin/python3 -c 'import psycopg2' || die "python3-psycopg2 is missing (scripts/deps.sh installs it)"
q "CREATE EXTENSION IF NOT EXISTS jobq"
wait_for "SELECT jobq.stats() -> 'reaper' ->> 'status' = 'running'" 30
logdir=$JOBQ_TEST_DIR/soak
/usr/bin/python3 "$top/test/soak.py" --seconds "$seconds" --log "$logdir" || die "history check failed (log: $logdir/history.jsonl)"
q "SELECT jobq.drop_queue('soak', force => true)" >/dev/null
ok "soak of $seconds s"
