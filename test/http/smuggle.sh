#!/usr/bin/env bash
# smuggle: the HTTP framing and size limits of jobq-http, against the sidecar built with
# AddressSanitizer and UBSan, over raw sockets. Request smuggling (Content-Length with
# Transfer-Encoding: chunked, Content-Length twice, a signed one, an odd transfer coding)
# -> one 400 (civetweb itself answers 411 to a negative one), the connection closed, and
# the smuggled second request never served (no access-log line, no job); bodies over
# --max-body -> 413 with Content-Length and chunked; GET with 5000 slashes, a 9 KiB
# request line (414), 20 KiB of headers (431), a 1 MiB URL, headers dripped one byte at a
# time (closed after --timeout) -> refused, no crash, and the sidecar keeps serving; at
# SIGTERM it exits 0 with nothing reported by the sanitizers.
source "$(dirname "$0")/../lib.sh"
make -s -C "$top/http" asan >/dev/null
SIDECAR_BIN=$top/http/jobq-http-asan
source "$(dirname "$0")/sidecar.bash"
fresh_db jobq_http_smuggle

export ASAN_OPTIONS=detect_leaks=1:halt_on_error=1:abort_on_error=0:exitcode=23
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1:exitcode=24
start_sidecar --max-body 1024 --timeout 2

python3 - "$base" <<'PY'
import re, socket, sys, threading, time, urllib.parse

u = urllib.parse.urlparse(sys.argv[1])
HOST, PORT = u.hostname, u.port

def exchange(raw, wait=5.0):
    """Sends raw bytes, reads until the server closes (or wait s); returns the bytes."""
    s = socket.create_connection((HOST, PORT), timeout=wait)
    try:
        s.sendall(raw)
    except OSError:
        pass
    out = b""
    deadline = time.monotonic() + wait
    try:
        while time.monotonic() < deadline:
            try:
                b = s.recv(65536)
            except socket.timeout:
                break
            if not b:
                return out, True
            out += b
    except OSError:
        return out, True
    finally:
        s.close()
    return out, False

def statuses(resp):
    return [int(m) for m in re.findall(rb"HTTP/1\.[01] (\d{3}) ", resp)]

def smuggled(n):
    body = b'{"id": "s%d"}' % n
    return (b"POST /v1/queues/smuggled/jobs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n" % len(body)) + body

fails = []
def expect(what, cond, detail=""):
    print(("ok: " if cond else "FAIL: ") + what + (" " + detail if not cond else ""))
    if not cond:
        fails.append(what)

# ---- smuggling: each must be answered once with 400 and the connection closed
cases = []
first = b'{"queue": "mail", "id": "first"}'
sm = smuggled(1)
chunked = b"%x\r\n%s\r\n0\r\n\r\n" % (len(first), first)
cases.append(("Content-Length with Transfer-Encoding: chunked",
    b"POST /v1/enqueue HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\nTransfer-Encoding: chunked\r\n\r\n"
    % len(chunked) + chunked + sm))
cases.append(("Transfer-Encoding: chunked with Content-Length (CL.TE order)",
    b"POST /v1/enqueue HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n"
    + chunked + sm))
cases.append(("Content-Length twice, different",
    b"POST /v1/enqueue HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\nContent-Length: 0\r\n\r\n"
    % len(first) + first + sm))
cases.append(("Content-Length twice, same",
    b"POST /v1/enqueue HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\nContent-Length: %d\r\n\r\n"
    % (len(first), len(first)) + first + sm))
cases.append(("signed Content-Length +N",
    b"POST /v1/enqueue HTTP/1.1\r\nHost: x\r\nContent-Length: +%d\r\n\r\n" % len(first) + first + sm))
cases.append(("negative Content-Length",
    b"POST /v1/enqueue HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n" + first + sm))
cases.append(("Content-Length as a list",
    b"POST /v1/enqueue HTTP/1.1\r\nHost: x\r\nContent-Length: %d, %d\r\n\r\n"
    % (len(first), len(first)) + first + sm))
cases.append(("Transfer-Encoding: identity, chunked",
    b"POST /v1/enqueue HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: identity, chunked\r\n\r\n" + chunked + sm))
cases.append(("Transfer-Encoding twice",
    b"POST /v1/enqueue HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n"
    + chunked + sm))
cases.append(("Transfer-Encoding: xchunked",
    b"POST /v1/enqueue HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: xchunked\r\n\r\n" + chunked + sm))
for what, raw in cases:
    resp, closed = exchange(raw)
    st = statuses(resp)
    # civetweb answers a negative Content-Length itself, with 411
    expect("%s -> one 400, closed" % what, st in ([400], [411]) and closed, "got %r closed=%s: %r" % (st, closed, resp[:300]))

# a chunked body over --max-body, and a Content-Length one, then a smuggled request
big = b"x" * 600
resp, closed = exchange(b"POST /v1/enqueue HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                        + (b"%x\r\n%s\r\n" % (len(big), big)) * 4 + b"0\r\n\r\n" + smuggled(2))
expect("chunked body over --max-body -> one 413", statuses(resp) == [413] and closed, repr(resp[:200]))
resp, closed = exchange(b"POST /v1/enqueue HTTP/1.1\r\nHost: x\r\nContent-Length: 2400\r\n\r\n" + big * 4 + smuggled(3))
expect("Content-Length body over --max-body -> one 413", statuses(resp) == [413] and closed, repr(resp[:200]))

# a well-framed pipeline is still served in full (the checks do not break keep-alive)
ok1 = b'{"queue": "mail", "id": "p1"}'
resp, closed = exchange(b"POST /v1/enqueue HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(ok1) + ok1
                        + b"GET /v1/get?queue=mail&job_id=p1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
expect("a pipeline of two good requests -> 202, 200", statuses(resp) == [202, 200], repr(statuses(resp)))

# ---- sizes
resp, _ = exchange(b"GET " + b"/" * 5000 + b"v1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
st = statuses(resp)
expect("5000 slashes -> 4xx", len(st) == 1 and 400 <= st[0] < 500, repr(st))
resp, _ = exchange(b"GET /v1/" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
expect("a 9 KiB request line -> 414", statuses(resp) == [414], repr(resp[:200]))
resp, _ = exchange(b"GET /v1?x=" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
expect("a 9 KiB query string -> 414", statuses(resp) == [414], repr(resp[:200]))
hdrs = b"".join(b"X-H%d: %s\r\n" % (i, b"h" * 1000) for i in range(20))
resp, _ = exchange(b"GET /v1 HTTP/1.1\r\nHost: x\r\n" + hdrs + b"\r\n")
expect("20 KiB of headers -> 431", statuses(resp) == [431], repr(resp[:200]))
resp, closed = exchange(b"GET /v1/" + b"a" * (1 << 20) + b" HTTP/1.1\r\nHost: x\r\n\r\n")
st = statuses(resp)
expect("a 1 MiB URL -> refused", closed and all(400 <= s < 500 for s in st), repr(resp[:200]))
resp, closed = exchange(b"GET /v1 HTTP/1.1\r\nHost: x\r\n" + b"X-Big: " + b"b" * (1 << 20) + b"\r\n\r\n")
expect("a 1 MiB header -> refused", closed and all(400 <= s < 500 for s in statuses(resp)), repr(resp[:200]))

# ---- slow drip: one byte every 0.2 s; closed within --timeout (2 s) + slack, others served
def drip(result):
    s = socket.create_connection((HOST, PORT), timeout=20)
    start = time.monotonic()
    msg = b"GET /v1 HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"s" * 200
    try:
        for b in msg:
            s.sendall(bytes([b]))
            time.sleep(0.2)
        result.append(("never closed", time.monotonic() - start))
    except OSError:
        result.append(("closed", time.monotonic() - start))
    finally:
        s.close()
drips = []
threads = [threading.Thread(target=drip, args=(drips,)) for _ in range(4)]
for t in threads:
    t.start()
time.sleep(0.5)
resp, _ = exchange(b"GET /v1/openapi.yaml HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
expect("served while slow clients drip", statuses(resp) == [200], repr(resp[:100]))
for t in threads:
    t.join()
expect("dripping clients are cut off after the request timeout",
       all(r[0] == "closed" and r[1] < 12 for r in drips), repr(drips))

if fails:
    sys.exit("%d failed: %s" % (len(fails), "; ".join(fails)))
PY

# ---- nothing smuggled got through
if grep -q 'smuggled' "$sidecar_log"; then
	grep 'smuggled' "$sidecar_log"
	die "a smuggled request reached the router"
fi
expect_eq "$(q "SELECT count(*) FROM jobq.jobs WHERE queue = 'smuggled'")" 0 "no smuggled job"
expect_eq "$(q "SELECT count(*) FROM jobq.jobs WHERE id = 'first'")" 0 "no job from a refused body"
kill -0 "$sidecar_pid" || die "the sidecar crashed"
req GET /v1
expect_status 200 "still serving"
stop_sidecar
if grep -E 'AddressSanitizer|LeakSanitizer|runtime error:' "$sidecar_log"; then
	die "the sanitizers reported an error"
fi
ok "AddressSanitizer, LeakSanitizer, UBSan: nothing reported"
