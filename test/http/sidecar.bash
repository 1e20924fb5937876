# sidecar.bash: helpers for the sidecar tests under test/http (sourced after test/lib.sh;
# not a test itself: the runner runs *.sh only).
#
#   start_sidecar [FLAG...]   start jobq-http (or $SIDECAR_BIN) on a free loopback port against
#                             the runner's cluster and $PGDATABASE; sets $base, $sidecar_pid,
#                             $sidecar_log; it is killed when the test exits
#   stop_sidecar              SIGTERM, wait; fails unless it exits 0
#   req METHOD PATH [BODY] [CURL-ARG...]
#                             one request; sets $status, $body (and $headers)
#   expect_status CODE WHAT   after req
#   jget EXPR                 evaluate a Python expression over the last body (as `j`)
#   producer_role ROLE        (re)create NOLOGIN ROLE with jobq_producer (enqueue and read
#                             its own jobs, nothing else: README, "Security"); it is dropped
#                             when the test exits

SIDECAR_BIN=${SIDECAR_BIN:-$top/http/jobq-http}
sidecar_pid=
sidecar_pids=()
tmpd=$(mktemp -d /tmp/jobq-http-test.XXXXXX)

sidecar_cleanup() {
	local p
	for p in "${sidecar_pids[@]}"; do
		kill -KILL "$p" 2>/dev/null || true
	done
	rm -rf "$tmpd"
}
trap sidecar_cleanup EXIT

# A port below the ephemeral range (32768-60999), where no client socket sits; nobody
# listens on it now (start_sidecar still retries when the bind loses a race).
free_port() {
	local p
	for _ in $(seq 1 200); do
		p=$((10000 + RANDOM % 22000))
		if ! (echo >"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
			echo "$p"
			return
		fi
	done
	die "no free port"
}

start_sidecar() {
	local port i attempt
	for attempt in 1 2 3 4 5; do
		port=$(free_port)
		base=http://127.0.0.1:$port
		sidecar_log=$tmpd/sidecar-$port.log
		"$SIDECAR_BIN" --listen "127.0.0.1:$port" \
			--db "host=$PGHOST port=$PGPORT user=$PGUSER dbname=$PGDATABASE" "$@" \
			2>"$sidecar_log" &
		sidecar_pid=$!
		sidecar_pids+=("$sidecar_pid")
		for ((i = 0; i < 100; i++)); do
			if curl -s -o /dev/null "$base/v1/openapi.yaml" 2>/dev/null; then
				return 0
			fi
			if ! kill -0 "$sidecar_pid" 2>/dev/null; then
				# another process took the port between free_port and the bind: another one
				grep -q 'cannot bind' "$sidecar_log" && continue 2
				cat "$sidecar_log" >&2
				die "sidecar exited"
			fi
			sleep 0.1
		done
		cat "$sidecar_log" >&2
		die "sidecar did not start on $base"
	done
	die "no port could be bound"
}

stop_sidecar() {
	local rc=0
	kill -TERM "$sidecar_pid"
	wait "$sidecar_pid" || rc=$?
	expect_eq "$rc" 0 "sidecar exits 0 on SIGTERM"
}

req() {
	local method=$1 path=$2 data=${3-}
	shift 3 2>/dev/null || shift $#
	local args=(-s -m 30 -X "$method" -D "$tmpd/headers" -o "$tmpd/body" -w '%{http_code}')
	[ "$method" = HEAD ] && args=(-s -m 30 -I -D "$tmpd/headers" -o /dev/null -w '%{http_code}')
	[ -n "$data" ] && args+=(--data-binary "$data")
	status=$(curl "${args[@]}" "$@" "$base$path") || status=000
	body=$(cat "$tmpd/body" 2>/dev/null || true)
	headers=$(cat "$tmpd/headers" 2>/dev/null || true)
	: >"$tmpd/body"
}

expect_status() {
	[ "$status" = "$1" ] || die "$2: expected HTTP $1, got $status: $body"
	ok "$2 ($1)"
}

jget() {
	python3 -c 'import json, sys
j = json.loads(sys.stdin.read() or "null")
v = eval(sys.argv[1])
print(json.dumps(v) if isinstance(v, (dict, list, tuple, bool)) or v is None else v)' "$1" <<<"$body"
}

# enqueue_form: which enqueue statement the sidecar's sessions ran last, as "PLAIN|OBJECT" (t or
# f each): jobq.enqueue($1, $2::jsonb) with the job as given (jh_plain_job), or the job object
# taken apart in SQL (JH_SQL_ENQUEUE_ARGS). Sequential requests use the pool's first slot.
enqueue_form() {
	q "SELECT count(*) FILTER (WHERE query LIKE '%jobq.enqueue(\$1, \$2::jsonb)%') > 0,
		count(*) FILTER (WHERE query LIKE '%COALESCE(s.b -> ''payload''%') > 0
		FROM pg_stat_activity WHERE pid <> pg_backend_pid() AND datname = current_database()"
}

header() {
	grep -i "^$1:" <<<"$headers" | head -1 | sed 's/^[^:]*: *//; s/\r$//'
}

producer_role() {
	psql -X -q -v ON_ERROR_STOP=1 <<SQL
DO \$\$ BEGIN
	IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '$1') THEN
		EXECUTE 'DROP OWNED BY $1';
		EXECUTE 'DROP ROLE $1';
	END IF;
END \$\$;
CREATE ROLE $1 NOLOGIN;
GRANT jobq_producer TO $1;
SQL
	# shellcheck disable=SC2064 # the role's name now
	trap "psql -X -q -c 'DROP OWNED BY $1' -c 'DROP ROLE $1' >/dev/null 2>&1 || true; sidecar_cleanup" EXIT
}
