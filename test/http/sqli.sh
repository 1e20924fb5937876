#!/usr/bin/env bash
# sqli: an SQL-injection corpus in every path segment, query parameter and body field of
# jobq-http's routes. Every answer is 4xx, except where the field is free text (a job id,
# a payload, a worker name, a queue to search), where the value is stored or looked up as
# itself; never 5xx.
# With log_statement = all (ALTER SYSTEM for the test, reset at its end) PostgreSQL's log
# shows the injected text only in "DETAIL:  parameters:" lines (or in error messages that
# quote a value), never inside the text of a statement; the schema is intact afterwards.
source "$(dirname "$0")/../lib.sh"
source "$(dirname "$0")/sidecar.bash"
fresh_db jobq_http_sqli

reset_log() {
	psql -X -q -d postgres -c "ALTER SYSTEM RESET log_statement" -c "SELECT pg_reload_conf()" \
		>/dev/null 2>&1 || true
}
trap 'reset_log; sidecar_cleanup' EXIT
log=$JOBQ_TEST_DIR/server.log
offset=$(stat -c %s "$log")
psql -X -q -d postgres -c "ALTER SYSTEM SET log_statement = 'all'" -c "SELECT pg_reload_conf()" >/dev/null
wait_for "SELECT current_setting('log_statement') = 'all'" 10
q "SELECT jobq.create_queue(queue => 'q')" >/dev/null
q "SELECT (jobq.enqueue(queue => 'q', id => 'known')).id" >/dev/null
start_sidecar

python3 - "$base" <<'PY' || die "an injected request got an unexpected answer"
import collections, http.client, json, sys, urllib.parse

u = urllib.parse.urlparse(sys.argv[1])
M = "INJ42"
corpus = [
    M + "'; DROP TABLE jobq.jobs; --",
    M + "' OR '1'='1",
    M + '" OR "1"="1',
    M + "'); SELECT pg_catalog.pg_sleep(3); --",
    M + "$$; DROP SCHEMA jobq CASCADE; $$",
    M + "\\'; DELETE FROM jobq.jobs; --",
    "1 OR 1=1 -- " + M,
    "1; DROP TABLE jobq.queues -- " + M,
    M + "' UNION SELECT usename, passwd FROM pg_catalog.pg_shadow --",
    M + "'/**/OR/**/1=1/**/--",
    M + "'::text); COMMIT; DROP TABLE jobq.queues; --",
    M + "%27%3B%20DROP%20TABLE%20jobq.jobs",
    M + "\u2019; DROP TABLE jobq.jobs; --",
]
counts = collections.Counter()
bad = []

def call(method, path, body=None, free=False):
    c = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
    c.request(method, path, body=body, headers={"Content-Type": "application/json"} if body else {})
    r = c.getresponse()
    data = r.read()
    c.close()
    counts[r.status // 100 * 100] += 1
    if r.status >= 500 or (r.status < 400 and not free):
        bad.append("%s %s %s -> %d %s" % (method, path[:80], (body or "")[:80], r.status, data[:120]))

def enc(s):
    return urllib.parse.quote(s, safe="")

for p in corpus:
    e = enc(p)
    j = json.dumps(p)
    # path segments
    for path in ("/v1/queues/%s", "/v1/queues/%s/jobs/x", "/v1/queues/%s/jobs/x/events"):
        call("GET", path % e)
    call("GET", "/v1/queues/%s/jobs" % e, free=True)     # a search: no such queue, []
    call("PUT", "/v1/queues/%s" % e, "{}")
    call("DELETE", "/v1/queues/%s" % e)
    call("POST", "/v1/queues/%s/_pause" % e)
    call("POST", "/v1/queues/%s/jobs" % e, "{}")
    call("POST", "/v1/queues/%s/run?timeout=1" % e, "{}")
    for sub in ("", "/versions", "/events", "/errors", "/progress", "/info", "/data"):
        call("GET", "/v1/queues/q/jobs/%s%s" % (e, sub))
    call("PUT", "/v1/queues/q/jobs/%s" % e, '{"payload": {}}')
    call("DELETE", "/v1/queues/q/jobs/%s" % e)
    for act in ("_stop", "_resume", "_cancel", "_recover"):
        call("POST", "/v1/queues/q/jobs/%s/%s" % (e, act))
    # query parameters
    call("GET", "/v1/next?queue=%s" % e)
    call("GET", "/v1/next?queue=q&num_jobs=%s" % e)
    call("GET", "/v1/next?queue=q&timeout=%s" % e)
    call("GET", "/v1/next?queue=q-idle&worker=%s" % e, free=True)
    call("GET", "/v1/get?queue=%s&job_id=known" % e)
    call("GET", "/v1/get?queue=q&job_id=%s" % e)
    call("HEAD", "/v1/exists?queue=q&job_id=%s" % e)
    for k in ("status", "sort", "from_date", "to_date", "size", "from"):
        call("GET", "/v1/jobs?%s=%s" % (k, e))
    call("GET", "/v1/jobs?queue=%s" % e, free=True)
    for k in ("job_id", "message", "lease", "progress"):
        qs = {"queue": "q", "job_id": "known", k: p}
        call("PATCH", "/v1/heartbeat?" + urllib.parse.urlencode(qs), "{}")
    for k in ("job_id", "lease"):
        qs = {"queue": "q", "job_id": "known", k: p}
        call("DELETE", "/v1/complete?" + urllib.parse.urlencode(qs), "{}")
    call("DELETE", "/v1/queues/q?force=%s" % e)
    # body fields
    for k in ("queue", "timeout", "max_retries", "run_at", "priority", "persist_data", "persist"):
        call("POST", "/v1/enqueue", json.dumps({"queue": "q", "id": "x", k: p}))
    call("POST", "/v1/enqueue", json.dumps({"queue": "q", "id": p}), free=True)
    call("POST", "/v1/enqueue", json.dumps({"queue": "q", "payload": p, "state": p}), free=True)
    call("POST", "/v1/enqueue/batch", json.dumps([{"queue": p, "id": "b"}]))
    call("POST", "/v1/reschedule", json.dumps({"queue": "q", "id": p}), free=True)
    call("POST", "/v1/reschedule", json.dumps({"queue": "q", "id": "known", "run_at": p}))
    for k in ("timeout", "retention", "retry_base", "retry_cap", "max_retries", "max_running", "paused"):
        call("PUT", "/v1/queues/q", json.dumps({k: p}))
    call("POST", "/v1/queues/q/jobs", json.dumps({"id": "y", "timeout": p}))
    call("PUT", "/v1/queues/q/jobs/known", json.dumps({"payload": {}, "rollback_enabled": p}))
    call("POST", "/v1/operations", json.dumps({"operation": p}))
    call("POST", "/v1/operations", json.dumps({"operation": "get_job", "id": p}), free=True)
    for k in ("from_date", "to_date"):
        call("POST", "/v1/operations", json.dumps({"operation": "search_jobs_by_start_date",
                                                   "from_date": "2020-01-01", "to_date": "2030-01-01", k: p}))
print("answers by class:", dict(sorted(counts.items())), "for", sum(counts.values()), "requests")
if bad:
    print("\n".join(bad[:30]))
    sys.exit(1)
PY
ok "injected requests: 4xx, or stored as data where the field is free text; no 5xx"

# ---- PostgreSQL's log: the corpus only ever travels as parameters
psql -X -q -d postgres -c "SELECT pg_catalog.pg_sleep(0.2)" >/dev/null
tail -c +"$((offset + 1))" "$log" >"$tmpd/server.log"
reset_log
python3 - "$tmpd/server.log" <<'PY' || die "injected text inside SQL statement text"
import re, sys
text = open(sys.argv[1], encoding="utf-8", errors="replace").read()
start = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+ \S+ \[\d+\] ", re.M)
idx = [m.start() for m in start.finditer(text)] + [len(text)]
entries = [text[idx[i]:idx[i + 1]] for i in range(len(idx) - 1)]
kinds = re.compile(r"\b(LOG|DETAIL|ERROR|STATEMENT|CONTEXT|HINT|WARNING|NOTICE):  (.*)", re.S)
params = statements = 0
bad = []
for e in entries:
    m = kinds.search(e)
    if not m:
        continue
    level, msg = m.group(1), m.group(2)
    if level == "LOG" and re.match(r"(statement|execute|bind|parse|duration)", msg):
        statements += 1
        if "INJ42" in msg:
            bad.append(e)
    elif level == "STATEMENT" and "INJ42" in msg:
        bad.append(e)
    elif level == "DETAIL" and msg.startswith("parameters:") and "INJ42" in msg:
        params += 1
print("logged statements: %d; parameter lines carrying the corpus: %d" % (statements, params))
if bad:
    print("\n".join(b[:400] for b in bad[:10]))
    sys.exit(1)
if params == 0 or statements == 0:
    sys.exit("log_statement = all logged nothing of the test")
PY
ok "the corpus appears only in DETAIL: parameters lines"

expect_eq "$(q "SELECT count(*) FROM pg_catalog.pg_tables WHERE schemaname = 'jobq' AND tablename IN ('jobs', 'queues')")" 2 "jobq's tables are intact"
expect_eq "$(q "SELECT jobq.exists('q', 'known')")" t "the known job is still there"
kill -0 "$sidecar_pid" || die "the sidecar crashed"
stop_sidecar
