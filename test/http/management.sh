#!/usr/bin/env bash
# management: jobq-http's management routes: system (/v1, cluster state and stats as JSON
# and Prometheus text, /metrics, the OpenAPI document), queues, jobs and their lifecycle
# actions and views, synchronous /run (200 and 504), HarperDB operations.
source "$(dirname "$0")/../lib.sh"
source "$(dirname "$0")/sidecar.bash"
fresh_db jobq_http_mgmt
start_sidecar

# ---- system
req GET /v1
expect_status 200 "GET /v1"
expect_eq "$(jget 'j["name"], j["database"], j["extension_version"] is not None')" \
	'["jobq", "jobq_http_mgmt", true]' "/v1 names the database and versions"
req GET /v1/cluster/state
expect_status 200 "cluster state"
expect_eq "$(jget 'j["sidecar"]["pool_size"], j["sidecar"]["listener_connected"]')" \
	'[8, true]' "cluster state shows the pool and the LISTEN connection"
req GET /v1/openapi.yaml
expect_status 200 "openapi document"
grep -q '^openapi: 3' <<<"$body" || die "openapi document starts with openapi: 3"
for route in /v1/enqueue /v1/next /v1/queues/{queue}/run /v1/operations /metrics; do
	grep -qF "  $route:" <<<"$body" || die "openapi describes $route"
done
ok "openapi describes the routes"

# ---- queues
req PUT /v1/queues/reports '{"timeout": 10, "max_retries": 1, "retention": "1 day", "paused": true}'
expect_status 201 "PUT creates a queue"
expect_eq "$(jget 'j["timeout"], j["max_retries"], j["retention"], j["paused"]')" \
	'[10, 1, 86400, true]' "the queue's settings, intervals in seconds"
req PUT /v1/queues/reports '{"paused": false, "max_running": 2}'
expect_status 200 "PUT changes a queue"
expect_eq "$(jget 'j["paused"], j["max_running"], j["timeout"]')" '[false, 2, 10]' \
	"PUT keeps what it does not name"
req PUT /v1/queues/reports '{"timeout": "soon"}'
expect_status 422 "PUT with a bad interval"
req PUT /v1/queues/reports '{"timeout": '
expect_status 400 "PUT with malformed JSON"
req GET /v1/queues/reports
expect_status 200 "GET a queue"
expect_eq "$(jget 'j["stats"]["pending"]')" 0 "a queue shows its counts"
req GET /v1/queues/nope
expect_status 404 "GET an unknown queue"
req POST /v1/queues/reports/_pause
expect_status 200 "_pause"
expect_eq "$(jget 'j["paused"]')" true "paused"
req POST /v1/queues/reports/_resume
expect_status 200 "_resume"
expect_eq "$(jget 'j["paused"]')" false "resumed"
req POST /v1/queues/nope/_pause
expect_status 404 "_pause of an unknown queue"
req GET /v1/queues
expect_status 200 "GET /v1/queues"
expect_eq "$(jget '[x["queue"] for x in j]')" '["reports"]' "the queue list"

# ---- jobs
req POST /v1/queues/reports/jobs '{"id": "r/1 x", "payload": {"month": 1}, "priority": 2}'
expect_status 202 "POST a job"
expect_eq "$(enqueue_form)" "f|t" "a job that gives its id is taken apart in SQL"
job_keys=$(jget 'sorted(j.keys())')
expect_eq "$(header Location)" "/v1/queues/reports/jobs/r%2F1%20x" "Location of the job"
req GET "$(header Location)"
expect_status 200 "GET the job at its Location"
expect_eq "$(jget 'j["id"], j["status"], j["version"], j["priority"]')" \
	'["r/1 x", "pending", 0, 2]' "the job"
req POST /v1/queues/reports/jobs '{"id": "r/1 x"}'
expect_status 409 "POST a live id again"
req POST /v1/queues/reports/jobs ''
expect_status 202 "POST a job without a body (generated id, empty payload)"
gen=$(jget 'j["id"]')
expect_eq "$(jget 'sorted(j.keys())')" "$job_keys" "a job without a body is answered in full"
req POST /v1/queues/monthly/jobs '{"payload": {"month": 3, "days": [1, 2]}}'
expect_status 202 "POST a job that gives only its payload"
expect_eq "$(enqueue_form)" "t|f" "a payload-only job is passed to enqueue as it is"
expect_eq "$(jget 'sorted(j.keys())')" "$job_keys" "a payload-only job is answered in full"
expect_eq "$(jget 'j["payload"], j["priority"], j["status"]')" '[{"days": [1, 2], "month": 3}, 0, "pending"]' \
	"a payload-only job"
expect_eq "$(q "SELECT payload FROM jobq.get('monthly', '$(jget 'j["id"]')')")" \
	'{"days": [1, 2], "month": 3}' "a payload-only job's payload is stored"
req GET /v1/queues/reports/jobs/nope
expect_status 404 "GET an unknown job"

# versioned update: 202 with the new version
req PUT "/v1/queues/reports/jobs/r%2F1%20x" '{"payload": {"month": 2}, "rollback_enabled": true}'
expect_status 202 "PUT a job (versioned update)"
expect_eq "$(jget 'j["version"], j["payload"], j["rollback_enabled"]')" \
	'[1, {"month": 2}, true]' "the update bumped the version"
req PUT "/v1/queues/reports/jobs/r%2F1%20x" '{"rollback_enabled": true}'
expect_status 422 "PUT without a payload"
req GET "/v1/queues/reports/jobs/r%2F1%20x/versions"
expect_status 200 "versions"
expect_eq "$(jget '[(v["version"], v["status"]) for v in j]')" \
	'[[0, "finished"], [1, "pending"]]' "the versions, oldest first"
req GET "/v1/queues/reports/jobs/r%2F1%20x/events"
expect_status 200 "events"
expect_eq "$(jget '[e["message"] for e in j]')" '["updated"]' "the events"

# stop, resume, cancel
req POST "/v1/queues/reports/jobs/r%2F1%20x/_stop"
expect_status 200 "_stop"
expect_eq "$(jget 'j["status"]')" stopped "stopped"
req POST "/v1/queues/reports/jobs/r%2F1%20x/_resume"
expect_status 200 "_resume"
expect_eq "$(jget 'j["status"]')" pending "resumed"
req POST "/v1/queues/reports/jobs/r%2F1%20x/_recover"
expect_status 409 "_recover of a job that has not failed"
req DELETE "/v1/queues/reports/jobs/r%2F1%20x"
expect_status 409 "DELETE of a live job"
req POST "/v1/queues/reports/jobs/r%2F1%20x/_cancel"
expect_status 200 "_cancel"
expect_eq "$(jget 'j["status"]')" cancelled "cancelled"
req POST "/v1/queues/reports/jobs/r%2F1%20x/_stop"
expect_status 409 "_stop of an ended job"
req GET "/v1/queues/reports/jobs/r%2F1%20x/progress"
expect_status 200 "progress"
expect_eq "$(jget 'j["status"], j["result_code"]')" '["cancelled", 1]' "progress of a cancelled job"

# a job that fails for good, then _recover; errors, info, data
q "SELECT jobq.enqueue('reports', '{\"month\": 3}', id => 'r3', max_retries => 0)" >/dev/null
q "SELECT id FROM jobq.lease('reports', n => 10)" >/dev/null
q "SELECT jobq.fail('reports', 'r3', error => 'disk full')" >/dev/null
req GET /v1/queues/reports/jobs/r3/errors
expect_status 200 "errors"
expect_eq "$(jget '[e["message"] for e in j]')" '["disk full"]' "the job's errors"
req GET /v1/queues/reports/jobs/r3/info
expect_status 200 "info"
expect_eq "$(jget 'j["status"], j["result_code"], len(j["errors"]), len(j["events"]) >= 1')" \
	'["failed", 1, 1, true]' "info: status, result_code, errors, events"
req POST /v1/queues/reports/jobs/r3/_recover
expect_status 200 "_recover"
expect_eq "$(jget 'j["status"], j["attempt"]')" '["pending", 0]' "recovered to pending"
q "SELECT id FROM jobq.lease('reports', n => 10)" >/dev/null
q "SELECT jobq.complete('reports', 'r3', result => '{\"rows\": 12}')" >/dev/null
q "SELECT jobq.complete('reports', '$gen')" >/dev/null
req GET /v1/queues/reports/jobs/r3/data
expect_status 200 "data"
expect_eq "$body" '{"rows": 12}' "data is the result"
req GET /v1/queues/reports/jobs/r3/progress
expect_eq "$(jget 'j["status"], j["progress"], j["result_code"]')" '["finished", 100, 0]' \
	"progress of a finished job"
req DELETE /v1/queues/reports/jobs/r3
expect_status 200 "DELETE an ended job"
req GET /v1/queues/reports/jobs/r3
expect_status 404 "a deleted job is gone"

# listing: queue, status, from, size, sort, from_date, to_date
for i in 1 2 3 4 5; do
	req POST /v1/queues/list/jobs "{\"id\": \"l$i\"}"
	expect_status 202 "POST l$i"
done
req GET '/v1/jobs?queue=list&size=2&sort=id:asc'
expect_status 200 "GET /v1/jobs"
expect_eq "$(jget '[x["id"] for x in j]')" '["l1", "l2"]' "size and sort"
req GET '/v1/jobs?queue=list&size=2&from=2&sort=id:asc'
expect_eq "$(jget '[x["id"] for x in j]')" '["l3", "l4"]' "from"
req GET '/v1/jobs?queue=list&sort=_created:desc&size=1'
expect_eq "$(jget '[x["id"] for x in j]')" '["l5"]' "Teraslice's _created:desc"
req GET '/v1/queues/list/jobs?status=pending&size=1000'
expect_eq "$(jget 'len(j)')" 5 "GET /v1/queues/{queue}/jobs with status"
req GET '/v1/jobs?status=finished'
expect_eq "$(jget 'sorted(x["queue"] for x in j)')" '["reports"]' "status filter"
req GET '/v1/jobs?queue=list&from_date=2000-01-01&to_date=2001-01-01'
expect_eq "$(jget 'len(j)')" 0 "from_date and to_date"
req GET '/v1/jobs?size=1001'
expect_status 422 "size above 1000"
req GET '/v1/jobs?from=x'
expect_status 400 "malformed from"
req GET '/v1/jobs?sort=payload'
expect_status 422 "sort by a column that is not allowed"
req GET '/v1/jobs?from_date=yesterday-ish'
expect_status 422 "malformed from_date"

# ---- stats and metrics
req GET /v1/cluster/stats
expect_status 200 "cluster stats (JSON)"
expect_eq "$(jget 'j["queues"]["list"]["pending"]')" 5 "stats count the pending jobs"
req GET /v1/cluster/stats '' -H 'Accept: application/openmetrics-text'
expect_status 200 "cluster stats (OpenMetrics)"
grep -q '^jobq_jobs{queue="list",status="pending"} 5$' <<<"$body" || die "OpenMetrics sample: $body"
[ "$(tail -1 <<<"$body")" = "# EOF" ] || die "OpenMetrics ends with # EOF"
case "$(header Content-Type)" in application/openmetrics-text*) ;; *) die "OpenMetrics content type";; esac
req GET /v1/cluster/stats '' -H 'Accept: text/plain'
grep -q '^# TYPE jobq_jobs gauge$' <<<"$body" || die "Prometheus text"
ok "Prometheus text when asked by Accept"
req GET /metrics
expect_status 200 "/metrics"
grep -q '^jobq_http_database_up 1$' <<<"$body" || die "/metrics: database up"
grep -q '^jobq_jobs{queue="list",status="pending"} 5$' <<<"$body" || die "/metrics: queue samples"
grep -q '^jobq_reaper_up [01]$' <<<"$body" || die "/metrics: the reaper's samples (jobq.metrics())"
[ "$(grep -c '^# EOF' <<<"$body")" = 0 ] || die "/metrics: # EOF in Prometheus text"
grep -q '^# HELP jobq_http_requests_total ' <<<"$body" || die "/metrics: HELP names the counter as its samples"
req GET /metrics '' -H 'Accept: application/openmetrics-text'
[ "$(grep -c '^# EOF$' <<<"$body")" = 1 ] && [ "$(tail -1 <<<"$body")" = "# EOF" ] ||
	die "/metrics (OpenMetrics): one # EOF, last: $body"
grep -q '^# TYPE jobq_http_requests counter$' <<<"$body" || die "/metrics (OpenMetrics): counter family"
ok "/metrics has the sidecar's, the queues' and the reaper's samples"

# ---- synchronous jobs: a worker (next + complete over HTTP) finishes it -> 200
(
	curl -s -o "$tmpd/leased" "$base/v1/next?queue=sync&wait=10"
	id=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[0]["id"])' "$tmpd/leased")
	curl -s -o /dev/null -XDELETE "$base/v1/complete?queue=sync&job_id=$id" -d '{"answer": 42}'
) &
worker=$!
req POST '/v1/queues/sync/run?timeout=10' '{"payload": {"question": "?"}}'
wait "$worker"
expect_status 200 "/run finished by a worker"
expect_eq "$(jget 'j["status"], j["result"]')" '["finished", {"answer": 42}]' "/run answers the result"
# nobody works it: cancelled past the timeout -> 504 with the job
req POST '/v1/queues/sync/run?timeout=1' '{"id": "slow"}'
expect_status 504 "/run past its timeout"
expect_eq "$(jget 'j["id"], j["status"]')" '["slow", "cancelled"]' "the job was cancelled"
req POST '/v1/queues/sync/run?timeout=x' '{}'
expect_status 400 "/run with a malformed timeout"

# ---- HarperDB operations
req POST /v1/operations '{"operation": "get_job", "id": "l1"}'
expect_status 200 "get_job"
expect_eq "$(jget '[(x["id"], x["type"], x["status"]) for x in j]')" \
	'[["l1", "list", "IN_PROGRESS"]]' "get_job in HarperDB's fields"
req POST /v1/operations '{"operation": "search_jobs_by_start_date",
	"from_date": "2000-01-01T00:00:00.000+0000", "to_date": "2999-01-01T00:00:00.000+0000"}'
expect_status 200 "search_jobs_by_start_date"
expect_eq "$(jget 'sorted(set(x["type"] for x in j))')" '["reports", "sync"]' \
	"jobs that started, in HarperDB's fields"
req POST /v1/operations '{"operation": "drop_database"}'
expect_status 422 "an unknown operation"
req POST /v1/operations '{"operation": "search_jobs_by_start_date", "from_date": "never"}'
expect_status 422 "a malformed date"

# ---- drop a queue
req DELETE /v1/queues/list
expect_status 409 "DELETE a queue with live jobs"
req DELETE '/v1/queues/list?force=true'
expect_status 200 "DELETE a queue with force"
req DELETE /v1/queues/list
expect_status 404 "DELETE an unknown queue"
stop_sidecar
