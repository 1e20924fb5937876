#!/usr/bin/env bash
# harden: jobq-http's hardening flags. Tokens stored as sha256:HEX work like plain ones (a
# prefix, the digest itself or a wrong token -> 401); --rate N gives each token N requests
# per second -> 429 with Retry-After, one token's flood not touching another's budget;
# a non-loopback --listen is refused without --tokens, and without TLS unless --insecure;
# --tls-cert serves HTTPS (OpenSSL 3 through jobq-http-libssl.so), also on 0.0.0.0 with
# tokens and without --insecure; no file is served (there is no document root).
source "$(dirname "$0")/../lib.sh"
source "$(dirname "$0")/sidecar.bash"
fresh_db jobq_http_harden

hash=$(printf %s 'hashed-secret' | sha256sum | cut -d' ' -f1)
cat >"$tmpd/tokens" <<TOKENS
# a plain token and a hashed one
plain-secret
sha256:$hash
TOKENS
start_sidecar --tokens "$tmpd/tokens" --rate 5

req GET /v1 '' -H 'Authorization: Bearer hashed-secret'
expect_status 200 "a token stored as sha256:HEX"
req GET /v1 '' -H "Authorization: Bearer sha256:$hash"
expect_status 401 "the stored digest is not itself a token"
req GET /v1 '' -H "Authorization: Bearer $hash"
expect_status 401 "nor is the bare digest"
req GET /v1 '' -H 'Authorization: Bearer hashed-secre'
expect_status 401 "a prefix of a hashed token"
req GET /v1 '' -H 'Authorization: Bearer plain-secret'
expect_status 200 "a plain token"

# ---- rate: 5 per second, bursts of 5; a flood of 20 gets 429s, the other token is unhurt
sleep 1.2
codes=$(for i in $(seq 1 20); do
	curl -s -o /dev/null -w '%{http_code}\n' -H 'Authorization: Bearer plain-secret' "$base/v1/openapi.yaml"
done | sort | uniq -c | awk '{printf "%s:%s ", $2, $1}')
echo "20 requests at once with --rate 5: $codes"
n200=$(sed -n 's/.*200:\([0-9]*\).*/\1/p' <<<"$codes")
n429=$(sed -n 's/.*429:\([0-9]*\).*/\1/p' <<<"$codes")
# 5 at once, then 5 a second while the 20 curls run (slow machines: a little more)
[ "${n200:-0}" -ge 5 ] && [ "${n200:-0}" -le 12 ] || die "expected 5 to 12 answered, got ${n200:-0}"
[ "${n429:-0}" -ge 8 ] || die "expected at least 8 429s, got ${n429:-0}"
ok "the flood is cut at the rate"
# still over the rate: 10 requests sent at once now (a slow machine may have refilled a few
# tokens since the flood, never 10)
curls=()
for i in $(seq 1 10); do
	curl -s -D "$tmpd/again$i.h" -o /dev/null -H 'Authorization: Bearer plain-secret' "$base/v1" &
	curls+=($!)
done
wait "${curls[@]}"
again=$(grep -l '^HTTP/1.1 429' "$tmpd"/again*.h | head -1)
[ -n "$again" ] || die "still over the rate: 10 requests at once all answered"
ok "still over the rate: $(grep -l '^HTTP/1.1 429' "$tmpd"/again*.h | wc -l) of 10 requests at once got 429"
retry=$(tr -d '\r' <"$again" | sed -n 's/^Retry-After: *//Ip')
[ -n "$retry" ] && [ "$retry" -ge 1 ] || die "429 without Retry-After"
ok "429 says Retry-After: $retry"
req GET /v1 '' -H 'Authorization: Bearer hashed-secret'
expect_status 200 "another token has its own budget"
sleep 1.1
req GET /v1 '' -H 'Authorization: Bearer plain-secret'
expect_status 200 "the budget refills"

# ---- civetweb serves nothing of its own: no files, no directory, no CGI
for path in /etc/passwd /http/Makefile /index.html /cgi-bin/x.cgi /x.shtml; do
	req GET "$path" '' -H 'Authorization: Bearer hashed-secret'
	expect_status 404 "no file at $path"
done
stop_sidecar

# ---- rate without tokens: all loopback clients share one budget
start_sidecar --rate 2
sleep 1.1
codes=$(for i in 1 2 3 4 5 6; do curl -s -o /dev/null -w '%{http_code} ' "$base/v1/openapi.yaml"; done)
grep -q 429 <<<"$codes" || die "no 429 without tokens: $codes"
ok "--rate without tokens: $codes"
stop_sidecar

# ---- exposure: non-loopback needs tokens, and TLS or --insecure
port=$(free_port)
refuse() {
	local what=$1 expect=$2 rc=0
	shift 2
	timeout 10 "$SIDECAR_BIN" --db "host=$PGHOST port=$PGPORT dbname=$PGDATABASE" "$@" 2>"$tmpd/err" &
	local pid=$!
	sidecar_pids+=("$pid")
	wait "$pid" || rc=$?
	[ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] || die "$what: expected a refusal, got exit $rc"
	grep -q -- "$expect" "$tmpd/err" || { cat "$tmpd/err"; die "$what: the message"; }
	ok "$what: exit $rc, $(head -1 "$tmpd/err")"
}
refuse "0.0.0.0 without tokens" "without --tokens" --listen "0.0.0.0:$port"
refuse "[::] without tokens" "without --tokens" --listen "[::]:$port"
refuse "0.0.0.0 with tokens, without TLS" "give --tls-cert" --listen "0.0.0.0:$port" --tokens "$tmpd/tokens"
JOBQ_HTTP_LISTEN="0.0.0.0:$port" refuse "JOBQ_HTTP_LISTEN=0.0.0.0, --insecure, no tokens" \
	"without --tokens" --insecure
# --insecure lets it start
timeout 10 "$SIDECAR_BIN" --db "host=$PGHOST port=$PGPORT dbname=$PGDATABASE" --listen "0.0.0.0:$port" \
	--tokens "$tmpd/tokens" --insecure 2>"$tmpd/err" &
pid=$!
sidecar_pids+=("$pid")
for ((i = 0; i < 50; i++)); do
	[ "$(curl -s -o /dev/null -w '%{http_code}' -H 'Authorization: Bearer plain-secret' \
		"http://127.0.0.1:$port/v1/openapi.yaml")" = 200 ] && break
	sleep 0.1
done
[ "$i" -lt 50 ] || { cat "$tmpd/err"; die "--insecure on 0.0.0.0 did not start"; }
ok "0.0.0.0 with tokens and --insecure serves"
kill -TERM "$pid"
wait "$pid" || true

# ---- a malformed hashed token stops the start
printf 'sha256:abc\n' >"$tmpd/badtokens"
refuse "a short sha256: token" "64 hexadecimal" --listen "127.0.0.1:$port" --tokens "$tmpd/badtokens"

# ---- TLS: HTTPS with the certificate given (civetweb through OpenSSL 3, with the adapter
# jobq-http-libssl.so); plain HTTP on that port gets no answer; 0.0.0.0 with tokens and TLS
# needs no --insecure
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$tmpd/key.pem" -out "$tmpd/cert.pem" -days 1 \
	-subj /CN=localhost -addext subjectAltName=IP:127.0.0.1 2>/dev/null
cat "$tmpd/cert.pem" "$tmpd/key.pem" >"$tmpd/tls.pem"
for listen in "127.0.0.1:$port" "0.0.0.0:$port"; do
	extra=()
	[ "$listen" = "0.0.0.0:$port" ] && extra=(--tokens "$tmpd/tokens")
	timeout 20 "$SIDECAR_BIN" --db "host=$PGHOST port=$PGPORT dbname=$PGDATABASE" --listen "$listen" \
		--tls-cert "$tmpd/tls.pem" "${extra[@]}" 2>"$tmpd/err" &
	pid=$!
	sidecar_pids+=("$pid")
	code=
	for ((i = 0; i < 50; i++)); do
		kill -0 "$pid" 2>/dev/null || { cat "$tmpd/err"; die "--tls-cert on $listen: the sidecar exited"; }
		code=$(curl -s --cacert "$tmpd/cert.pem" -o "$tmpd/tls-body" -w '%{http_code}' \
			-H 'Authorization: Bearer plain-secret' "https://127.0.0.1:$port/v1/openapi.yaml" || true)
		[ "$code" = 200 ] && break
		sleep 0.1
	done
	[ "$code" = 200 ] || { cat "$tmpd/err"; die "--tls-cert on $listen: HTTPS answered '$code'"; }
	grep -q '^openapi:' "$tmpd/tls-body" || die "--tls-cert on $listen: not the OpenAPI document"
	ok "--tls-cert on $listen serves HTTPS, the certificate verified by curl"
	plain=$(curl -s -m 3 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/v1/openapi.yaml" || true)
	[ "$plain" != 200 ] || die "plain HTTP served on the TLS port"
	ok "plain HTTP on the TLS port is not served (curl: '$plain')"
	kill -TERM "$pid"
	wait "$pid" || true
done
