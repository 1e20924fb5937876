#!/usr/bin/env bash
# relay: relay-rs's worker API through jobq-http, every route with every status code of
# relay's tables that can be provoked: enqueue 202/400/409/422/429/500, batch 202,
# next 200/204, heartbeat 202/404, reschedule 202/404, complete 200/404/409,
# exists 200/404, get 200/404; plus 404 for an unknown route and 405 with Allow.
source "$(dirname "$0")/../lib.sh"
source "$(dirname "$0")/sidecar.bash"
fresh_db jobq_http_relay
start_sidecar

# enqueue: relay's body fields exactly
req POST /v1/enqueue '{"id": "1", "queue": "emails", "timeout": 30, "persist_data": true,
	"max_retries": 0, "payload": {"to": "ada"}, "state": {"page": 0}}'
expect_status 202 "enqueue"
expect_eq "$(jget 'j["id"]')" 1 "enqueue answers the id"
expect_eq "$(q "SELECT timeout, max_retries, persist, payload->>'to', state->>'page'
	FROM jobq.get('emails', '1')")" "00:00:30|0|t|ada|0" "relay's fields are stored"
req POST /v1/enqueue '{"id": "1", "queue": "emails", "timeout": 30}'
expect_status 409 "enqueue of a live id"
expect_eq "$(jget 'j["sqlstate"]')" 23505 "409 carries the SQLSTATE"
req POST /v1/enqueue '{"id": "2", "queue": "emails", "timeout": 30'
expect_status 400 "enqueue with malformed JSON"
req POST /v1/enqueue ''
expect_status 400 "enqueue without a body"
req POST /v1/enqueue '{"id": "2", "queue": "bad queue!", "timeout": 30}'
expect_status 422 "enqueue into an invalid queue name"
req POST /v1/enqueue '{"id": "2", "queue": "emails", "timeout": -5}'
expect_status 422 "enqueue with a negative timeout"
req POST /v1/enqueue '{"id": "2", "queue": "emails", "timeout": 30, "max_retries": "many"}'
expect_status 422 "enqueue with a non-integer max_retries"
req POST /v1/enqueue '[{"id": "2", "queue": "emails"}]'
expect_status 422 "enqueue with an array body"
req POST /v1/enqueue '{"id": "later", "queue": "emails", "timeout": 5, "max_retries": -1,
	"persist_data": false, "payload": "RAW", "run_at": "2100-01-01T00:00:00Z"}'
expect_status 202 "enqueue scheduled, unlogged, retried forever"
expect_eq "$(q "SELECT persist, max_retries, run_at > now() + interval '50 years'
	FROM jobq.get('emails', 'later')")" "f|-1|t" "persist_data, max_retries, run_at"

# enqueue of a plain job (queue and payload only): passed to jobq.enqueue as they are, with
# the same result as the job object taken apart in SQL; anything else takes that way
payload='{"b": [1, 2.50, "\u00e9\n"], "a": null, "c": {"d": true}}'
req POST /v1/enqueue "{\"queue\": \"plain\", \"payload\": $payload}"
expect_status 202 "enqueue of a plain job"
expect_eq "$(enqueue_form)" "t|f" "a plain job is passed to enqueue as it is"
expect_eq "$body" "{\"id\": \"$(jget 'j["id"]')\", \"queue\": \"plain\", \"status\": \"pending\"}" \
	"a plain job answers id, queue, status as jsonb prints them"
expect_eq "$(q "SELECT payload = '$payload'::jsonb FROM jobq.get('plain', '$(jget 'j["id"]')')")" t \
	"a plain job's payload is stored as sent"
req POST /v1/enqueue '{"payload" : 7 , "queue":"plain"}'
expect_status 202 "enqueue of a plain job, payload first"
expect_eq "$(q "SELECT payload FROM jobq.get('plain', '$(jget 'j["id"]')')")" 7 "payload first"
req POST /v1/enqueue '{"queue": "plain"}'
expect_status 202 "enqueue of a job without payload"
expect_eq "$(q "SELECT payload FROM jobq.get('plain', '$(jget 'j["id"]')')")" '{}' "no payload is {}"
req POST /v1/enqueue '{"queue": "plain", "payload": 1, "payload": {"n": 2}}'
expect_status 202 "enqueue with a repeated key"
expect_eq "$(enqueue_form)" "f|t" "a repeated key takes the statement that parses the body"
expect_eq "$(q "SELECT payload FROM jobq.get('plain', '$(jget 'j["id"]')')")" '{"n": 2}' \
	"a repeated key: the last one counts, as in jsonb"
req POST /v1/enqueue '{"queue": "pl\u0061in", "payload": 3}'
expect_status 202 "enqueue with an escaped queue name"
expect_eq "$body" "{\"id\": \"$(jget 'j["id"]')\", \"queue\": \"plain\", \"status\": \"pending\"}" \
	"the answer is the same either way"
req POST /v1/enqueue '{"queue": "bad queue!", "payload": 1}'
expect_status 422 "a plain job into an invalid queue name"
req POST /v1/enqueue '{"queue": "plain", "payload": "\u0000"}'
expect_status 422 "a plain job with a payload jsonb refuses"
req POST /v1/enqueue '{"payload": 1}'
expect_status 422 "a job without a queue"
expect_eq "$(q "SELECT count(*) FROM jobq.jobs WHERE queue = 'plain'")" 5 "refused jobs left nothing"

# batch: duplicates skipped, several queues at once
req POST /v1/enqueue/batch '[{"id": "1", "queue": "emails", "timeout": 30},
	{"id": "b1", "queue": "emails", "timeout": 30, "payload": {"n": 1}},
	{"id": "b2", "queue": "sms", "timeout": 10}]'
expect_status 202 "enqueue batch"
expect_eq "$(jget 'sorted(j["enqueued"])')" '["b1", "b2"]' "batch skips the live id"
req POST /v1/enqueue/batch '{"id": "x"}'
expect_status 422 "batch needs an array"

# next: 200 with an array, 204 when empty
req GET '/v1/next?queue=emails&num_jobs=5'
expect_status 200 "next"
expect_eq "$(jget '[x["id"] for x in j]')" '["1", "b1"]' "next leases due jobs in order"
expect_eq "$(jget 'j[0]["timeout"], j[0]["persist_data"], j[0]["payload"], j[0]["state"]')" \
	'[30, true, {"to": "ada"}, {"page": 0}]' "next answers relay's fields"
lease1=$(jget 'j[0]["lease"]')
req GET '/v1/next?queue=emails'
expect_status 204 "next on an empty queue"
[ -z "$body" ] || die "204 has no body"
req GET '/v1/next?queue=emails&num_jobs=x'
expect_status 400 "next with a malformed num_jobs"
req GET '/v1/next'
expect_status 400 "next without queue"
req GET '/v1/next?queue=bad%20queue'
expect_status 422 "next on an invalid queue name"

# heartbeat: body = state
req PATCH '/v1/heartbeat?queue=emails&job_id=1' '{"page": 7}'
expect_status 202 "heartbeat"
expect_eq "$(jget 'j["desired_status"]')" running "heartbeat answers desired_status"
expect_eq "$(q "SELECT state->>'page' FROM jobq.get('emails', '1')")" 7 "heartbeat saved the state"
req PATCH '/v1/heartbeat?queue=emails&job_id=nope' '{}'
expect_status 404 "heartbeat of an unknown job"
req PATCH '/v1/heartbeat?queue=emails&job_id=later' '{}'
expect_status 409 "heartbeat of a pending job"
req PATCH "/v1/heartbeat?queue=emails&job_id=1&lease=00000000-0000-0000-0000-000000000000" '{}'
expect_status 409 "heartbeat with a stale lease token"
req PATCH "/v1/heartbeat?queue=emails&job_id=1&lease=$lease1&progress=50" '{"page": 8}'
expect_status 202 "heartbeat with the lease token and progress"
req PATCH "/v1/heartbeat?queue=emails&job_id=1&progress=half" '{}'
expect_status 400 "heartbeat with a malformed progress"
req PATCH "/v1/heartbeat?queue=emails&job_id=1&progress=500" '{}'
expect_status 422 "heartbeat with progress out of range"

# reschedule
req POST /v1/reschedule '{"id": "b1", "queue": "emails", "run_at": "2100-01-01T00:00:00Z",
	"payload": {"n": 2}}'
expect_status 202 "reschedule"
expect_eq "$(jget 'j["status"], j["payload"]')" '["pending", {"n": 2}]' "reschedule answers the job"
req POST /v1/reschedule '{"id": "nope", "queue": "emails"}'
expect_status 404 "reschedule of an unknown job"

# complete: 200/404, 409 for a job that is not running
req DELETE '/v1/complete?queue=emails&job_id=1' '{"sent": true}'
expect_status 200 "complete"
expect_eq "$(q "SELECT status, result->>'sent' FROM jobq.get('emails', '1')")" "finished|true" \
	"complete stored the result"
expect_eq "$body" '{"id": "1", "queue": "emails", "status": "finished"}' "complete answers id, queue, status"
# an id with characters JSON escapes: the answer escapes them as jsonb does
odd=$(printf 'q"\\\t\b\001\177x')
q "SELECT jobq.enqueue('emails', id => \$\$$odd\$\$)" >/dev/null
lease_odd=$(q "SELECT lease FROM jobq.lease('emails', n => 10) WHERE id = \$\$$odd\$\$")
req DELETE "/v1/complete?queue=emails&job_id=$(python3 -c 'import sys, urllib.parse
print(urllib.parse.quote(sys.argv[1], safe=""))' "$odd")&lease=$lease_odd"
expect_status 200 "complete of a job whose id needs escapes"
expect_eq "$body" "$(q "SELECT jsonb_build_object('id', \$\$$odd\$\$, 'queue', 'emails', 'status', 'finished')")" \
	"escaped as jsonb escapes"
req DELETE '/v1/complete?queue=emails&job_id=1'
expect_status 404 "complete of a job that is not live"
req DELETE '/v1/complete?queue=emails&job_id=later'
expect_status 409 "complete of a pending job"

# exists (HEAD), get
req HEAD '/v1/exists?queue=emails&job_id=later'
expect_status 200 "exists of a live job"
req HEAD '/v1/exists?queue=emails&job_id=1'
expect_status 404 "exists of an ended job"
req GET '/v1/get?queue=emails&job_id=1'
expect_status 200 "get of an ended job"
expect_eq "$(jget 'j["status"], j["result"]')" '["finished", {"sent": true}]' "get answers the run"
[ "$(jget '"lease" in j')" = false ] || die "get must not show the lease token"
req GET '/v1/get?queue=emails&job_id=nope'
expect_status 404 "get of an unknown job"

# routing
req GET /v1/nope
expect_status 404 "unknown route"
req PUT /v1/enqueue '{}'
expect_status 405 "wrong method"
expect_eq "$(header Allow)" POST "405 says Allow"
req GET /v1/exists
expect_status 405 "exists is HEAD only"
expect_eq "$(header Allow)" HEAD "Allow: HEAD"

# 429: relay's retryable error, when every pooled connection is busy: a pool of one,
# held by a synchronous /run, and a request timeout of 1 s
stop_sidecar
start_sidecar --pool 1 --timeout 1
curl -s -o /dev/null -XPOST "$base/v1/queues/slow/run?timeout=3" -d '{}' &
runner=$!
wait_for "SELECT count(*) = 1 FROM jobq.jobs WHERE queue = 'slow'" 5
sleep 0.2
req POST /v1/enqueue '{"id": "busy", "queue": "emails", "timeout": 30}'
expect_status 429 "enqueue while the pool is exhausted"
[ -n "$(header Retry-After)" ] || die "429 without Retry-After"
ok "429 has Retry-After: $(header Retry-After)"
wait "$runner"
stop_sidecar

# 500: anything else, e.g. a database without the extension; the error text stays in the log
psql -X -q -d postgres -c "DROP DATABASE IF EXISTS jobq_http_noext" -c "CREATE DATABASE jobq_http_noext"
PGDATABASE=jobq_http_noext start_sidecar
req POST /v1/enqueue '{"id": "1", "queue": "emails", "timeout": 30}'
expect_status 500 "enqueue without the extension"
expect_eq "$(jget 'j["error"]')" "internal error (logged by jobq-http)" "500 hides the database's text"
grep -q "database error" "$sidecar_log" || die "the 500's cause is logged"
stop_sidecar
psql -X -q -d postgres -c "DROP DATABASE jobq_http_noext"

# the access log: method, path, status, microseconds
grep -Eq '^POST /v1/enqueue 500 [0-9]+$' "$sidecar_log" || die "access log line"
ok "access log"
