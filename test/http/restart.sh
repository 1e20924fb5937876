#!/usr/bin/env bash
# restart: PostgreSQL stopped under a running sidecar -> every request is answered at once
# with 429 and Retry-After (relay's "retryable"), never a hang or a crash; /metrics still
# answers (database down); started again -> requests succeed without restarting the
# sidecar, and long-polls are woken again (the LISTEN connection came back). Both a fast
# and an immediate (crash) stop. The cluster is left running.
source "$(dirname "$0")/../lib.sh"
source "$(dirname "$0")/sidecar.bash"
fresh_db jobq_http_restart
start_sidecar --pool 4

down_checks() {
	local mode=$1 i
	for i in 1 2 3; do
		req POST /v1/enqueue "{\"queue\": \"r\", \"id\": \"down-$mode-$i\"}" --max-time 5
		expect_status 429 "enqueue while PostgreSQL is down ($mode)"
		[ -n "$(header Retry-After)" ] || die "429 without Retry-After"
	done
	req GET '/v1/next?queue=r' '' --max-time 5
	expect_status 429 "next while PostgreSQL is down ($mode)"
	req GET '/v1/next?queue=r&wait=3' '' --max-time 5
	expect_status 429 "a long-poll while PostgreSQL is down ($mode)"
	req GET /v1/queues '' --max-time 5
	expect_status 429 "management while PostgreSQL is down ($mode)"
	req GET /metrics '' --max-time 5
	expect_status 200 "/metrics while PostgreSQL is down ($mode)"
	grep -q '^jobq_http_database_up 0$' <<<"$body" || die "/metrics says the database is down"
	kill -0 "$sidecar_pid" || die "the sidecar died"
}

# up again: a client that honours Retry-After gets through within a few seconds
up_checks() {
	local mode=$1 i
	for ((i = 0; i < 50; i++)); do
		req POST /v1/enqueue "{\"queue\": \"r\", \"id\": \"up-$mode\"}" --max-time 5
		[ "$status" = 202 ] && break
		[ "$status" = 429 ] || die "after the restart: HTTP $status: $body"
		sleep 0.2
	done
	expect_status 202 "enqueue after PostgreSQL is back ($mode)"
	req GET '/v1/next?queue=r&num_jobs=10'
	expect_status 200 "next after PostgreSQL is back ($mode)"
	req GET /v1/queues
	expect_status 200 "management after PostgreSQL is back ($mode)"
	# the LISTEN connection reconnects too: a long-poll is woken by an enqueue
	for ((i = 0; i < 50; i++)); do
		req GET /metrics
		grep -q '^jobq_http_listener_up 1$' <<<"$body" && break
		sleep 0.1
	done
	grep -q '^jobq_http_listener_up 1$' <<<"$body" || die "the LISTEN connection came back"
	curl -s -o /dev/null -w '%{http_code} %{time_total}\n' "$base/v1/next?queue=r2&wait=10" >"$tmpd/lp" &
	local poller=$!
	sleep 0.5
	req POST /v1/enqueue '{"queue": "r2"}'
	wait "$poller"
	read -r code secs <"$tmpd/lp"
	expect_eq "$code" 200 "a long-poll is woken after the restart ($mode)"
	ok "it returned after $secs s of its 10 s wait"
}

req POST /v1/enqueue '{"queue": "r", "id": "before"}'
expect_status 202 "enqueue before the stop"
# open every pooled connection, so that all of them are stale after the restart
pids=()
for i in 1 2 3 4 5 6 7 8; do
	curl -s -o /dev/null "$base/v1/queues" &
	pids+=($!)
done
wait "${pids[@]}"

for mode in fast immediate; do
	bash "$top/scripts/cluster.sh" stop "$JOBQ_TEST_DIR" "$mode"
	down_checks "$mode"
	bash "$top/scripts/cluster.sh" start "$JOBQ_TEST_DIR" "$PGPORT" >/dev/null
	up_checks "$mode"
done
expect_eq "$(q "SELECT count(*) FROM jobq.jobs WHERE queue = 'r' AND id LIKE 'down-%'")" 0 \
	"nothing was enqueued while down"
grep -q 'connected to the database' "$sidecar_log" || die "the reconnect is logged"
stop_sidecar
pg_isready -q || die "the cluster is left running"
