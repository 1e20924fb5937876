#!/usr/bin/env bash
# hostile: limits and hostile input. A 2 MiB body -> 413 (with Content-Length and
# chunked); malformed JSON -> 400; unknown routes -> 404; queue names and ids with
# quotes, semicolons, ".." (reserved), %00, unicode, CR/LF -> 422 or handled; never an SQL error
# (syntax, undefined object) and never a crash.
source "$(dirname "$0")/../lib.sh"
source "$(dirname "$0")/sidecar.bash"
fresh_db jobq_http_hostile
start_sidecar

# ---- body limit (default 1 MiB)
python3 -c 'import sys; sys.stdout.write("{\"queue\": \"big\", \"payload\": \"" + "a" * (2 << 20) + "\"}")' \
	>"$tmpd/big.json"
req POST /v1/enqueue "@$tmpd/big.json"
expect_status 413 "2 MiB body"
req POST /v1/enqueue "@$tmpd/big.json" -H 'Transfer-Encoding: chunked'
expect_status 413 "2 MiB chunked body"
python3 -c 'import sys; sys.stdout.write("{\"queue\": \"big\", \"payload\": \"" + "a" * 1000000 + "\"}")' \
	>"$tmpd/1m.json"
req POST /v1/enqueue "@$tmpd/1m.json"
expect_status 202 "a body just under 1 MiB"

# ---- malformed JSON -> 400, whatever the route
for bad in '{' '{"queue": }' '[1,]' '{"a" 1}' "{'queue': 'x'}" '{"queue": "x"} trailing' \
	'nul' '{"queue": "x\u00"}' "$(printf '{"queue": "a\tb"}')" '01' '{"a":1,}' \
	"$(python3 -c 'print("[" * 100000)')"; do
	req POST /v1/enqueue "$bad"
	expect_status 400 "malformed JSON ${bad:0:24}"
done
req POST /v1/enqueue/batch '[{"queue": "x"},'
expect_status 400 "malformed batch"
req PATCH '/v1/heartbeat?queue=x&job_id=1' '{"state": '
expect_status 400 "malformed heartbeat state"
req PUT /v1/queues/x '{"paused": tru}'
expect_status 400 "malformed queue settings"
req POST /v1/operations '{"operation": "get_job", "id": 1'
expect_status 400 "malformed operation"

# well-formed JSON that PostgreSQL refuses -> 422
req POST /v1/enqueue '{"queue": "x", "payload": "\u0000"}'
expect_status 422 "a NUL escape in a string"
req POST /v1/enqueue "$(printf '{"queue": "x", "payload": "\xff\xfe"}')"
expect_status 422 "invalid UTF-8"
req POST /v1/enqueue '{"queue": "x", "max_retries": 1e400}'
expect_status 422 "a number out of range"
req POST /v1/enqueue '{"queue": "x", "run_at": "the day after tomorrow"}'
expect_status 422 "a bad run_at"

# ---- routes
for path in /v2 /v1/enqueue/x /v1/queues/a/b/c/d/e/f /etc/passwd /v1/queues/q/jobs/i/_explode; do
	req GET "$path"
	expect_status 404 "unknown route $path"
done
req DELETE /v1/queues
expect_status 405 "wrong method"
req GET '/v1/queues/../../etc/passwd' '' --path-as-is
expect_status 404 "dot segments are not resolved"
req GET '/v1/queues/%zz'
expect_status 400 "a malformed escape in the path"

# ---- queue names: 422 (or a valid name, handled), never an SQL error
long=$(printf 'q%.0s' $(seq 1 200))
for name in "it%27s" "a%3Bb" "%27%3B%20DROP%20TABLE%20jobq.jobs%3B--" "a%00b" "%E2%9C%93" \
	"%F0%9F%92%A3" "a%2Fb" "a%0D%0Ab" "$long" "%22" "%5C" "a%20b" "%25"; do
	req GET "/v1/next?queue=$name"
	case $status in 422) ;; *) die "next?queue=$name: expected 422, got $status: $body";; esac
	req GET "/v1/queues/$name"
	[ "$status" = 422 ] || die "GET /v1/queues/$name: expected 422, got $status: $body"
	req POST "/v1/queues/$name/jobs" '{}'
	[ "$status" = 422 ] || die "POST /v1/queues/$name/jobs: expected 422, got $status: $body"
	req POST /v1/enqueue "{\"queue\": \"$(python3 -c 'import sys, urllib.parse; print(urllib.parse.unquote(sys.argv[1]).replace("\\", "\\\\").replace("\"", "\\\"").replace("\r", "\\r").replace("\n", "\\n").replace("\x00", "\\u0000"))' "$name")\"}"
	[ "$status" = 422 ] || die "enqueue into $name: expected 422, got $status: $body"
done
ok "hostile queue names are refused with 422"
# "." and ".." are reserved (path segments clients resolve away): refused however they come
req POST '/v1/queues/../jobs' '{"id": "dots"}' --path-as-is
expect_status 422 "enqueue into the queue named .."
req GET '/v1/queues/.' '' --path-as-is
expect_status 422 "GET the queue named ."
req GET '/v1/next?queue=..'
expect_status 422 "lease from the queue named .."
req POST /v1/enqueue '{"queue": ".."}'
expect_status 422 "relay enqueue into the queue named .."
req POST '/v1/queues/.../jobs' '{"id": "dots"}'
expect_status 202 "the queue named ... (not a path segment)"

# ids may be any text: quotes, slashes, CR/LF, unicode; the Location header stays one line
for id in "it's; DROP TABLE jobq.jobs;--" "a/b/../c" $'line\r\nSet-Cookie: x=1' "✓ 💣" '%00'; do
	idjson=$(python3 -c 'import json, sys; print(json.dumps(sys.argv[1]))' "$id")
	req POST /v1/queues/ids/jobs "{\"id\": $idjson}"
	expect_status 202 "job id $(printf %q "$id")"
	grep -qi '^Set-Cookie' <<<"$headers" && die "header injection through the id"
	loc=$(header Location)
	req GET "$loc"
	expect_status 200 "GET the job at $loc"
	expect_eq "$(jget 'j["id"]')" "$id" "the id round-trips"
done
req POST /v1/queues/ids/jobs '{"id": ""}'
expect_status 422 "an empty id"
req GET '/v1/get?queue=ids&job_id=a%00'
expect_status 422 "a NUL in a query parameter"
req GET "/v1/get?queue=ids&job_id=$(printf 'x%.0s' $(seq 1 5000))"
expect_status 400 "a query parameter longer than 4096 bytes"

# ---- still alive, and no SQL error of the sidecar's own making ever reached PostgreSQL
kill -0 "$sidecar_pid" || die "the sidecar crashed"
req GET /v1
expect_status 200 "still serving"
if grep -E 'database error (42|XX|26)' "$sidecar_log"; then die "an SQL error of the sidecar's own"; fi
if grep -E 'ERROR: +(syntax error|(function|relation|column|prepared statement|schema|type) .* does not exist)' \
	"$JOBQ_TEST_DIR/server.log" | grep -q jobq-http; then
	die "PostgreSQL logged a syntax or undefined-object error from jobq-http"
fi
ok "no SQL error leaked"
stop_sidecar
