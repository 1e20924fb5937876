#!/usr/bin/env bash
# auth: bearer tokens. No token or a wrong one -> 401; each token runs as its PostgreSQL
# role (SET ROLE), so GRANTs decide: a producer-only role may enqueue but gets 403 on
# /v1/next (42501); the role is reset before the connection serves another token.
source "$(dirname "$0")/../lib.sh"
source "$(dirname "$0")/sidecar.bash"
fresh_db jobq_http_auth
role=jobq_http_producer

producer_role "$role"

cat >"$tmpd/tokens" <<TOKENS
# TOKEN ROLE
s3cret-admin
s3cret-producer $role   # may enqueue, may not lease
TOKENS
# a pool of one connection: every request reuses it, whoever's token it carries
start_sidecar --tokens "$tmpd/tokens" --pool 1

req POST /v1/enqueue '{"id": "1", "queue": "mail", "timeout": 30}'
expect_status 401 "no token"
case "$(header WWW-Authenticate)" in Bearer*) ok "401 says WWW-Authenticate: Bearer";; *) die "WWW-Authenticate";; esac
req POST /v1/enqueue '{"id": "1", "queue": "mail", "timeout": 30}' -H 'Authorization: Bearer nope'
expect_status 401 "wrong token"
req POST /v1/enqueue '{"id": "1", "queue": "mail", "timeout": 30}' -H 'Authorization: Bearer s3cret-admi'
expect_status 401 "a prefix of a token"
req POST /v1/enqueue '{"id": "1", "queue": "mail", "timeout": 30}' -H 'Authorization: Basic czNjcmV0LWFkbWluOg=='
expect_status 401 "basic auth"
req GET /v1/nope '' -H 'Authorization: Bearer nope'
expect_status 401 "unknown route without a valid token"

# the producer: enqueue yes, as itself; lease no
req POST /v1/enqueue '{"id": "1", "queue": "mail", "timeout": 30}' -H 'Authorization: Bearer s3cret-producer'
expect_status 202 "producer enqueues"
expect_eq "$(q "SELECT created_by FROM jobq.get('mail', '1')")" "$role" "the job was created as the token's role"
req GET '/v1/next?queue=mail' '' -H 'Authorization: Bearer s3cret-producer'
expect_status 403 "producer may not lease"
expect_eq "$(jget 'j["sqlstate"]')" 42501 "403 carries 42501"
req GET '/v1/next?queue=mail&wait=2' '' -H 'Authorization: Bearer s3cret-producer'
expect_status 403 "nor long-poll"

# the same pooled connection, back to the login role for the admin token
req GET /v1 '' -H 'Authorization: Bearer s3cret-admin'
expect_status 200 "admin"
expect_eq "$(jget 'j["user"]')" postgres "the role was reset for the next token"
req GET '/v1/next?queue=mail' '' -H 'Authorization: Bearer s3cret-admin'
expect_status 200 "admin leases"
expect_eq "$(jget '[x["id"] for x in j]')" '["1"]' "the producer's job"
req DELETE '/v1/complete?queue=mail&job_id=1' '' -H 'Authorization: Bearer s3cret-producer'
expect_status 403 "producer may not complete"
stop_sidecar

# a token whose role cannot be used is an error of the sidecar's configuration
printf 'tok ghost_role_that_does_not_exist\n' >"$tmpd/tokens2"
start_sidecar --tokens "$tmpd/tokens2"
req GET /v1 '' -H 'Authorization: Bearer tok'
expect_status 500 "a token mapped to a missing role"
grep -q 'cannot set role' "$sidecar_log" || die "the missing role is logged"
stop_sidecar

# a tokens file that cannot be read: the sidecar refuses to start
rc=0
"$SIDECAR_BIN" --tokens "$tmpd/missing" --listen "127.0.0.1:$(free_port)" 2>"$tmpd/err" || rc=$?
expect_eq "$rc" 2 "a missing tokens file stops the start"
grep -q 'cannot open tokens file' "$tmpd/err" || die "says why"
