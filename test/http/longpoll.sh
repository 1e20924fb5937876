#!/usr/bin/env bash
# longpoll: GET /v1/next?wait=5 is woken by the LISTEN connection as soon as another client
# enqueues: prints the median wake-up latency of 20 tries (each must return its job before
# the wait expires; machines are noisy, so that is all that is asserted). A waiting request
# holds no pooled connection; a wait that expires is 204; SIGTERM drains: a waiting
# long-poll is answered at once, an in-flight /run is finished, and the exit status is 0.
source "$(dirname "$0")/../lib.sh"
source "$(dirname "$0")/sidecar.bash"
fresh_db jobq_http_longpoll
# one pooled connection: if a waiting request held it, the enqueue below would get 429
start_sidecar --pool 1 --timeout 3

python3 - "$base" <<'PY'
import http.client, json, statistics, sys, threading, time, urllib.parse

base = urllib.parse.urlparse(sys.argv[1])

def request(method, path, body=None, timeout=15):
    c = http.client.HTTPConnection(base.hostname, base.port, timeout=timeout)
    c.request(method, path, body=body)
    r = c.getresponse()
    data = r.read()
    c.close()
    return r.status, data

def waiting():
    status, data = request("GET", "/metrics")
    for line in data.decode().splitlines():
        if line.startswith("jobq_http_waiting_requests "):
            return int(line.split()[1])
    return -1

latencies = []
for i in range(20):
    result = {}
    def poll():
        result["status"], result["body"] = request("GET", "/v1/next?queue=lp&wait=5")
        result["t1"] = time.monotonic()
    t = threading.Thread(target=poll)
    start = time.monotonic()
    t.start()
    while waiting() < 1:
        if time.monotonic() - start > 3:
            sys.exit("FAIL: the long-poll did not start waiting")
        time.sleep(0.005)
    t0 = time.monotonic()
    status, _ = request("POST", "/v1/enqueue", json.dumps({"id": "j%d" % i, "queue": "lp", "timeout": 30}))
    if status != 202:
        sys.exit("FAIL: enqueue while a long-poll waits (pool of one): HTTP %d" % status)
    t.join()
    if result["status"] != 200:
        sys.exit("FAIL: try %d: the long-poll got HTTP %d" % (i, result["status"]))
    got = [j["id"] for j in json.loads(result["body"])]
    if got != ["j%d" % i]:
        sys.exit("FAIL: try %d: leased %r" % (i, got))
    latency = result["t1"] - t0
    if latency >= 4.5:
        sys.exit("FAIL: try %d: woken only after %.3f s" % (i, latency))
    latencies.append(latency * 1000)

print("wake-up latency over 20 tries: median %.1f ms, min %.1f ms, max %.1f ms"
      % (statistics.median(latencies), min(latencies), max(latencies)))

# three long-polls on other queues wait at once; the pool's one connection stays free
threads = []
results = {}
for q in ("a", "b", "c"):
    def poll(q=q):
        results[q] = request("GET", "/v1/next?queue=%s&wait=10" % q)[0]
    threads.append(threading.Thread(target=poll))
    threads[-1].start()
start = time.monotonic()
while waiting() < 3:
    if time.monotonic() - start > 3:
        sys.exit("FAIL: three long-polls did not all wait")
    time.sleep(0.01)
for q in ("a", "b", "c"):
    s, _ = request("POST", "/v1/enqueue", json.dumps({"queue": q}))
    if s != 202:
        sys.exit("FAIL: enqueue into %s while three long-polls wait: HTTP %d" % (q, s))
for t in threads:
    t.join()
if results != {"a": 200, "b": 200, "c": 200}:
    sys.exit("FAIL: the three long-polls: %r" % results)
print("ok: three waiting long-polls hold no pooled connection, each woken by its queue")
PY

# a wait that expires: 204 after about the wait
t0=$(date +%s%N)
req GET '/v1/next?queue=empty&wait=1'
expect_status 204 "a wait that expires"
ms=$((($(date +%s%N) - t0) / 1000000))
[ "$ms" -ge 900 ] && [ "$ms" -lt 4000 ] || die "the 1 s wait took $ms ms"
ok "the 1 s wait took $ms ms"
req GET '/v1/next?queue=empty&wait=301'
expect_status 422 "wait above 300 s"
stop_sidecar

# SIGTERM drains: the waiting long-poll is answered at once (204), the /run in flight is
# finished (its 2 s timeout: 504 with the job cancelled), and the sidecar exits 0
start_sidecar
curl -s -o "$tmpd/poll" -w '%{http_code}' "$base/v1/next?queue=drain&wait=30" >"$tmpd/poll.status" &
poller=$!
curl -s -o "$tmpd/run" -w '%{http_code}' -XPOST "$base/v1/queues/drain2/run?timeout=2" -d '{}' \
	>"$tmpd/run.status" &
runner=$!
wait_for "SELECT count(*) = 1 FROM jobq.jobs WHERE queue = 'drain2'" 5
t0=$(date +%s%N)
stop_sidecar
wait "$poller" "$runner"
expect_eq "$(cat "$tmpd/poll.status")" 204 "the waiting long-poll was answered on SIGTERM"
expect_eq "$(cat "$tmpd/run.status")" 504 "the /run in flight was finished before the exit"
ms=$((($(date +%s%N) - t0) / 1000000))
[ "$ms" -lt 10000 ] || die "the drain took $ms ms"
ok "drained in $ms ms"
grep -q 'SIGTERM: finishing the requests in flight' "$sidecar_log" || die "the drain is logged"
