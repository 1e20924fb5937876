#!/usr/bin/env bash
# asan: 20 000 mixed requests (every relay route, management, errors of every kind,
# long-polls, oversized bodies, hostile paths) against jobq-http built with
# AddressSanitizer and UBSan (make -C http asan), then SIGTERM: the sidecar must exit 0
# with no error, no undefined behaviour and no leak reported (LeakSanitizer runs at exit).
source "$(dirname "$0")/../lib.sh"
make -s -C "$top/http" asan >/dev/null
SIDECAR_BIN=$top/http/jobq-http-asan
source "$(dirname "$0")/sidecar.bash"
fresh_db jobq_http_asan

export ASAN_OPTIONS=detect_leaks=1:halt_on_error=1:abort_on_error=0:exitcode=23
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1:exitcode=24
start_sidecar --pool 4 --threads 16 --max-body 65536 --timeout 5

python3 - "$base" <<'PY'
import collections, http.client, json, sys, threading, time, urllib.parse

base = urllib.parse.urlparse(sys.argv[1])
TOTAL, THREADS = 20000, 4
counts = collections.Counter()
errors = []
lock = threading.Lock()

class Client:
    def __init__(self):
        self.c = None

    def req(self, method, path, body=None, headers=None):
        for attempt in range(3):
            if self.c is None:
                self.c = http.client.HTTPConnection(base.hostname, base.port, timeout=30)
            try:
                self.c.request(method, path, body=body, headers=headers or {})
                r = self.c.getresponse()
                data = r.read()
                if r.getheader("Connection", "").lower() == "close":
                    self.c.close()
                    self.c = None
                return r.status, data
            except (http.client.HTTPException, ConnectionError, OSError):
                # the server closes the connection after a 413; reconnect
                self.c.close()
                self.c = None
        raise RuntimeError("no answer to %s %s" % (method, path))

def worker(t):
    cl = Client()
    n = TOTAL // THREADS
    q = "asan%d" % (t % 2)
    for i in range(n):
        k = i % 24
        jid = "t%d-%d" % (t, i // 24)
        try:
            if k == 0:
                s, _ = cl.req("POST", "/v1/enqueue", json.dumps(
                    {"id": jid, "queue": q, "timeout": 30, "payload": {"i": i}, "state": None}))
            elif k == 1:
                s, _ = cl.req("POST", "/v1/enqueue", json.dumps({"id": jid, "queue": q, "timeout": 30}))
            elif k == 2:
                s, data = cl.req("GET", "/v1/next?queue=%s&num_jobs=3" % q)
            elif k == 3:
                s, _ = cl.req("PATCH", "/v1/heartbeat?queue=%s&job_id=%s&progress=50" % (q, jid),
                              json.dumps({"page": i}))
            elif k == 4:
                s, _ = cl.req("DELETE", "/v1/complete?queue=%s&job_id=%s" % (q, jid), '{"ok": 1}')
            elif k == 5:
                s, _ = cl.req("HEAD", "/v1/exists?queue=%s&job_id=%s" % (q, jid))
            elif k == 6:
                s, _ = cl.req("GET", "/v1/get?queue=%s&job_id=%s" % (q, jid))
            elif k == 7:
                s, _ = cl.req("POST", "/v1/enqueue/batch", json.dumps(
                    [{"id": jid + "b%d" % x, "queue": q} for x in range(3)]))
            elif k == 8:
                s, _ = cl.req("POST", "/v1/reschedule", json.dumps({"id": jid + "b0", "queue": q}))
            elif k == 9:
                s, _ = cl.req("GET", "/v1/queues")
            elif k == 10:
                s, _ = cl.req("GET", "/v1/jobs?queue=%s&size=5&sort=id:desc" % q)
            elif k == 11:
                s, _ = cl.req("GET", "/v1/cluster/stats",
                              headers={"Accept": "application/openmetrics-text"} if i % 2 else {})
            elif k == 12:
                s, _ = cl.req("GET", "/metrics")
            elif k == 13:
                s, _ = cl.req("POST", "/v1/enqueue", '{"queue": ')
            elif k == 14:
                s, _ = cl.req("GET", "/v1/queues/%s/jobs/%s/nope" % (q, jid))
            elif k == 15:
                s, _ = cl.req("PUT", "/v1/enqueue", "{}")
            elif k == 16:
                s, _ = cl.req("POST", "/v1/queues/%s/jobs" % q, json.dumps({"id": jid + "m", "payload": [1, 2]}))
            elif k == 17:
                s, _ = cl.req("PUT", "/v1/queues/%s/jobs/%s" % (q, jid + "m"), '{"payload": {"v": 2}}')
            elif k == 18:
                s, _ = cl.req("GET", "/v1/queues/%s/jobs/%s/info" % (q, jid + "m"))
            elif k == 19:
                s, _ = cl.req("POST", "/v1/queues/%s/jobs/%s/_cancel" % (q, jid + "m"))
            elif k == 20:
                s, _ = cl.req("GET", "/v1/queues/%s%%00/jobs/x%%zz?queue=%%00" % q)
            elif k == 21:
                s, _ = cl.req("POST", "/v1/enqueue", "x" * (70000 if i % 48 == 21 else 100))
            elif k == 22:
                s, _ = cl.req("POST", "/v1/operations", json.dumps({"operation": "get_job", "id": jid}))
            else:
                s, _ = cl.req("GET", "/v1/next?queue=%s-idle&wait=%d" % (q, 1 if i % 480 == 23 else 0))
        except Exception as e:
            with lock:
                errors.append("%s (request %d of thread %d)" % (e, i, t))
            return
        with lock:
            counts[s] += 1

start = time.monotonic()
threads = [threading.Thread(target=worker, args=(t,)) for t in range(THREADS)]
for t in threads:
    t.start()
for t in threads:
    t.join()
secs = time.monotonic() - start
print("statuses:", dict(sorted(counts.items())))
print("%d requests in %.1f s (%.0f/s)" % (sum(counts.values()), secs, sum(counts.values()) / secs))
if errors:
    sys.exit("FAIL: " + "; ".join(errors[:5]))
if sum(counts.values()) != TOTAL:
    sys.exit("FAIL: %d answers for %d requests" % (sum(counts.values()), TOTAL))
bad = {s: n for s, n in counts.items() if s >= 500}
if bad:
    sys.exit("FAIL: server errors %r" % bad)
PY
ok "20000 requests answered, none 5xx"

stop_sidecar
if grep -E 'AddressSanitizer|LeakSanitizer|runtime error:' "$sidecar_log"; then
	die "the sanitizers reported an error"
fi
ok "AddressSanitizer, LeakSanitizer, UBSan: nothing reported"
