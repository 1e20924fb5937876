#!/usr/bin/env bash
# group: plain POST /v1/enqueue requests that arrive while more are in flight than the pool
# has connections go together, one statement and one transaction per group (http/group.c).
# A lock on jobq.jobs_persistent holds the first statements so that the rest pile up:
#  - 20 requests: each answered 202 with its own id and payload, in fewer transactions
#    than jobs (and one per job with --enqueue-streams 0); at most 64 jobs and 1 MiB of
#    payloads a group;
#  - a job that fails in a group (empty queue, a payload jsonb refuses) gets the answer it
#    gets alone, and the others are enqueued;
#  - a group whose connection is lost answers every job with 429 and enqueues none
#    (never runs them again: a job is enqueued at most once);
#  - a group whose statement times out answers every job 504 at once, without running each
#    into the timeout again;
#  - a group runs under one token's role: created_by is each request's own role;
#  - a job waits for a group at most --timeout (then 429), as for a pooled connection.
source "$(dirname "$0")/../lib.sh"
source "$(dirname "$0")/sidecar.bash"
fresh_db jobq_http_group
role=jobq_http_group_producer
q "SELECT jobq.create_queue('g')" >/dev/null

holder_pid=
# hold_lock: a session holds a SHARE lock on the live jobs (an enqueue waits for it)
hold_lock() {
	psql -X -q -c "BEGIN" -c "LOCK TABLE jobq.jobs_persistent IN SHARE MODE" \
		-c "SELECT pg_sleep(60)" -c "COMMIT" >/dev/null 2>&1 &
	holder_pid=$!
	wait_for "SELECT count(*) = 1 FROM pg_locks WHERE relation = 'jobq.jobs_persistent'::regclass
		AND mode = 'ShareLock' AND granted" 10
}
# release_lock: cancel the holder's sleep, which ends its transaction
release_lock() {
	q "SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(60)'" >/dev/null
	wait "$holder_pid" 2>/dev/null || true
}
# waiting_on_lock N: N of the sidecar's statements wait for the lock
waiting_on_lock() {
	wait_for "SELECT count(*) = $1 FROM pg_stat_activity WHERE application_name = 'jobq-http'
		AND wait_event_type = 'Lock'" 10
}
# post NAME DATA [CURL-ARG...]: POST /v1/enqueue with body DATA (curl's --data-binary: @FILE
# reads a file) in the background; status and body in $tmpd/{status,body}-NAME
post() {
	local name=$1 data=$2
	shift 2
	(curl -s -m 30 -o "$tmpd/body-$name" -w '%{http_code}' -X POST "$@" --data-binary "$data" \
		"$base/v1/enqueue" >"$tmpd/status-$name" || echo 000 >"$tmpd/status-$name") &
	posts+=($!)
}
# post_many FIRST LAST [CURL-ARG...]: post {"queue": $QUEUE (g), "payload": {"n": N}} as N, for
# N in FIRST..LAST at once
post_many() {
	local first=$1 last=$2 n
	shift 2
	for ((n = first; n <= last; n++)); do
		post "$n" "{\"queue\": \"${QUEUE:-g}\", \"payload\": {\"n\": $n}}" "$@"
	done
}
posts=()
# answered: wait for every request posted (not for the sidecar, also a child of this shell)
answered() {
	wait "${posts[@]}"
	posts=()
}
# answer N: "STATUS BODY" of request N
answer() { echo "$(cat "$tmpd/status-$1") $(cat "$tmpd/body-$1")"; }
# expect_enqueued FIRST LAST: each request answered 202 with the id of a job holding its payload
expect_enqueued() {
	local n id
	for ((n = $1; n <= $2; n++)); do
		read -r st _ <<<"$(answer "$n")"
		[ "$st" = 202 ] || die "request $n: expected 202, got $(answer "$n")"
		id=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["id"])' "$tmpd/body-$n")
		expect_eq "$(q "SELECT payload->>'n' FROM jobq.jobs WHERE queue = 'g' AND id = '$id'")" \
			"$n" "request $n's answer names its own job" >/dev/null
	done
	ok "requests $1-$2: 202, each with the id of the job holding its payload"
}
# groups FIRST LAST: the sizes of the transactions that enqueued jobs FIRST..LAST, largest
# first ("64,2"); transactions FIRST LAST: how many there were
groups() {
	q "SELECT string_agg(c::text, ',' ORDER BY c DESC) FROM (SELECT count(*) c FROM jobq.jobs
		WHERE queue = 'g' AND (payload->>'n')::int BETWEEN $1 AND $2 GROUP BY xmin::text) s"
}
transactions() { groups "$1" "$2" | awk -F, '{print NF}'; }

# 1. a pool of 2: the first two requests run alone (and wait for the lock), the other 18 wait
#    for a stream and go as one group once the lock is gone (threads enough for round 1c's 68)
start_sidecar --pool 2 --threads 80
hold_lock
post_many 1 20
waiting_on_lock 2
sleep 1 # the other 18 requests reach the sidecar
release_lock
answered
expect_enqueued 1 20
expect_eq "$(q "SELECT count(*) FROM jobq.jobs WHERE queue = 'g'")" 20 "20 jobs, no more"
tx=$(transactions 1 20)
((tx <= 4)) || die "20 jobs in $tx transactions: expected the waiting 18 in one or two groups"
ok "20 jobs in $tx transactions"
expect_eq "$(q "SELECT max(c) >= 9 FROM (SELECT count(*) c FROM jobq.jobs WHERE queue = 'g'
	GROUP BY xmin::text) s")" t "one transaction enqueued at least 9 of them"
# metric NAME: its value in GET /metrics
metric() {
	req GET /metrics ''
	awk -v m="$1" '$1 == m { print $2 }' <<<"$body"
}
groups=$(metric jobq_http_enqueue_groups_total)
grouped=$(metric jobq_http_enqueue_grouped_jobs_total)
((groups >= 1 && groups <= 2 && grouped >= 9 && grouped <= 18)) ||
	die "GET /metrics: $groups groups of $grouped jobs (expected 1-2 groups of 9-18)"
ok "GET /metrics counts $groups groups of $grouped jobs"

# 1b. a group holds at most 1 MiB of payloads: three waiting jobs of 400 000 bytes go in two
#     groups (two, then one), not one
python3 -c 'import sys; [open(f"{sys.argv[1]}/big-{n}", "w").write(
	"{\"queue\": \"g\", \"payload\": {\"n\": %d, \"pad\": \"%s\"}}" % (n, "x" * 400000))
	for n in (31, 32, 33)]' "$tmpd"
hold_lock
post_many 21 22
waiting_on_lock 2
for n in 31 32 33; do
	post "$n" "@$tmpd/big-$n"
done
sleep 1
release_lock
answered
expect_enqueued 31 33
expect_eq "$(transactions 31 33)" 2 "three jobs of 400 000 bytes in two groups (1 MiB a group)"

# 1c. a group holds at most 64 jobs: 66 waiting jobs go in two groups, of 64 and 2
hold_lock
post_many 1001 1002
waiting_on_lock 2
post_many 1003 1068
sleep 1.5
release_lock
answered
expect_enqueued 1003 1068
expect_eq "$(groups 1003 1068)" "64,2" "66 waiting jobs in two groups: 64 (the most a group takes) and 2"

# 2. a failing job in a group: its own error, as alone; the others are enqueued
req POST /v1/enqueue '{"queue": "", "payload": {"n": 0}}'
alone_empty=$status
req POST /v1/enqueue '{"queue": "g", "payload": {"n": "\u0000"}}'
alone_nul=$status
expect_eq "$alone_empty $alone_nul" "422 422" "alone: an empty queue and a \\u0000 payload are 422"
hold_lock
post_many 101 102
waiting_on_lock 2
post_many 103 110
post bad1 '{"queue": "", "payload": {"n": 0}}'
post bad2 '{"queue": "g", "payload": {"n": "\u0000"}}'
post_many 111 118
sleep 1
release_lock
answered
expect_enqueued 101 118
expect_eq "$(cat "$tmpd/status-bad1") $(cat "$tmpd/status-bad2")" "$alone_empty $alone_nul" \
	"in a group, the failing jobs get the answers they get alone"
expect_eq "$(q "SELECT count(*) FROM jobq.jobs WHERE queue <> 'g'
	OR pg_catalog.jsonb_typeof(payload -> 'n') <> 'number'")" 0 "the failing jobs left nothing"
expect_eq "$(q "SELECT count(*) FROM jobq.jobs WHERE queue = 'g' AND (payload->>'n')::int BETWEEN 101 AND 118")" \
	18 "the other 18 are enqueued, once each"

# 3. a group's connection is lost: every job of it 429, none enqueued. The group enqueues
#    into queue g3, which another session is creating (uncommitted): it waits for that
#    session, while the two requests ahead of it only wait for the lock on the live jobs.
psql -X -q -c "BEGIN" -c "SELECT jobq.create_queue('g3')" -c "SELECT pg_sleep(61)" -c "COMMIT" \
	>/dev/null 2>&1 &
creator_pid=$!
wait_for "SELECT count(*) = 1 FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(61)'" 10
hold_lock
post_many 201 202
waiting_on_lock 2
QUEUE=g3 post_many 203 220
sleep 1
release_lock
wait_for "SELECT count(*) = 1 FROM pg_stat_activity WHERE application_name = 'jobq-http'
	AND query LIKE '%jsonb_array_elements(\$1::jsonb) WITH ORDINALITY%' AND wait_event_type = 'Lock'" 10
q "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'jobq-http'
	AND query LIKE '%jsonb_array_elements(\$1::jsonb) WITH ORDINALITY%'" >/dev/null
q "SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(61)'" >/dev/null
wait "$creator_pid" 2>/dev/null || true
answered
expect_enqueued 201 202
for ((n = 203; n <= 220; n++)); do
	read -r st _ <<<"$(answer "$n")"
	[ "$st" = 429 ] || die "request $n: expected 429 (its group's connection was lost), got $(answer "$n")"
done
ok "the 18 requests of the lost group answered 429"
expect_eq "$(q "SELECT count(*) FROM jobq.jobs WHERE queue = 'g3'")" 0 \
	"the lost group's jobs are not enqueued, nor run again"
req POST /v1/enqueue '{"queue": "g", "payload": {"n": 221}}'
expect_status 202 "the sidecar enqueues again after the lost connection"
stop_sidecar

# 4. a group's statement timeout (--timeout 2) is every job's answer: the two requests ahead
#    and the group time out once each (3 timeouts in the server's log), not once per job
start_sidecar --pool 2 --timeout 2
timeouts() { grep -c 'canceling statement due to statement timeout' "$JOBQ_TEST_DIR/server.log" || true; }
before=$(timeouts)
hold_lock
post_many 501 502
waiting_on_lock 2
post_many 503 510
answered
release_lock
for ((n = 501; n <= 510; n++)); do
	read -r st _ <<<"$(answer "$n")"
	[ "$st" = 504 ] || die "request $n: expected 504 (statement timeout), got $(answer "$n")"
done
ok "the 10 requests answered 504"
expect_eq "$(($(timeouts) - before))" 3 "two requests alone and one group timed out, once each"
expect_eq "$(q "SELECT count(*) FROM jobq.jobs WHERE queue = 'g' AND (payload->>'n')::int BETWEEN 501 AND 510")" \
	0 "none of them is enqueued"
stop_sidecar

# 5. without grouping (--enqueue-streams 0): a transaction per job
start_sidecar --pool 2 --enqueue-streams 0
hold_lock
post_many 301 310
waiting_on_lock 2
sleep 1
release_lock
answered
expect_enqueued 301 310
expect_eq "$(transactions 301 310)" 10 "--enqueue-streams 0: one transaction per job"
expect_eq "$(metric jobq_http_enqueue_groups_total)" 0 "--enqueue-streams 0: no group counted"
stop_sidecar

# 6. a group runs under one token's role: each job's created_by is its request's role
producer_role "$role"
printf 'tok-admin\ntok-producer %s\n' "$role" >"$tmpd/tokens"
start_sidecar --pool 2 --tokens "$tmpd/tokens"
hold_lock
post_many 401 402 -H 'Authorization: Bearer tok-admin'
waiting_on_lock 2
post_many 403 410 -H 'Authorization: Bearer tok-producer'
post_many 411 420 -H 'Authorization: Bearer tok-admin'
sleep 1
release_lock
answered
expect_enqueued 401 420
expect_eq "$(q "SELECT count(*) FILTER (WHERE created_by = '$role'), count(*) FILTER (WHERE created_by = 'postgres')
	FROM jobq.jobs WHERE queue = 'g' AND (payload->>'n')::int BETWEEN 403 AND 410")" "8|0" \
	"the producer token's jobs were created by its role"
expect_eq "$(q "SELECT count(*) FILTER (WHERE created_by = 'postgres')
	FROM jobq.jobs WHERE queue = 'g' AND (payload->>'n')::int IN (401, 402, 411, 412, 413, 414, 415, 416, 417, 418, 419, 420)")" \
	12 "the admin token's jobs were created by the login role"
tx=$(transactions 403 420)
((tx <= 6)) || die "18 jobs of two roles in $tx transactions: expected grouping per role"
ok "18 jobs of two roles in $tx transactions"
stop_sidecar

# 7. a job waits for a group at most --timeout, as for a pooled connection: behind a request
#    that holds the one connection (and times out) and a group of another role, a producer's
#    job gets 429 (53300) at its deadline
start_sidecar --pool 1 --timeout 3 --tokens "$tmpd/tokens"
hold_lock
post_many 601 601 -H 'Authorization: Bearer tok-admin'
waiting_on_lock 1
post_many 602 602 -H 'Authorization: Bearer tok-admin'
sleep 0.3 # 602 is the oldest waiting: the next group is the admin token's
post_many 603 603 -H 'Authorization: Bearer tok-producer'
answered
release_lock
expect_eq "$(cut -c1-3 <<<"$(answer 601)") $(cut -c1-3 <<<"$(answer 602)")" "504 504" \
	"the request alone and the admin token's group time out (504)"
read -r st _ <<<"$(answer 603)"
expect_eq "$st $(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["sqlstate"])' "$tmpd/body-603")" \
	"429 53300" "the producer's job, still waiting for a group at its deadline, gets 429 (53300)"
expect_eq "$(q "SELECT count(*) FROM jobq.jobs WHERE (payload->>'n')::int BETWEEN 601 AND 603")" 0 \
	"none of them is enqueued"
stop_sidecar
