#!/usr/bin/env bash
# cluster_port: scripts/cluster.sh start, when the port it found free is taken before the
# server binds it (here: a socket bound to it that does not listen, so the free-port probe,
# a connect, finds nobody there):
# - with no port named, it tries another one and the server starts there;
# - with that port named, it fails and says why (the server's "could not bind").
source "$(dirname "$0")/../lib.sh"
dir=$(mktemp -d)
chmod 755 "$dir"
holder=
trap '[ -z "$holder" ] || kill "$holder" 2>/dev/null; bash "$top/scripts/cluster.sh" stop "$dir" immediate; rm -rf "$dir"' EXIT

# A port bound on 127.0.0.1 (not listening) for as long as this test runs.
python3 -c 'import socket, sys, time
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1], flush=True)
time.sleep(300)' >"$dir/taken" &
holder=$!
for _ in $(seq 50); do [ -s "$dir/taken" ] && break; sleep 0.1; done
taken=$(cat "$dir/taken")
[ -n "$taken" ] || die "no port was bound"
! (echo >"/dev/tcp/127.0.0.1/$taken") 2>/dev/null || die "port $taken accepts connections"

bash "$top/scripts/cluster.sh" start "$dir" >/dev/null
bash "$top/scripts/cluster.sh" stop "$dir" fast
echo "$taken" >"$dir/port" # the port a restart would take again
read -r port _ < <(bash "$top/scripts/cluster.sh" start "$dir" 2>"$dir/err") || die "start failed: $(cat "$dir/err")"
[ "$port" != "$taken" ] || die "started on the taken port $taken"
grep -q "port $taken was taken, trying another" "$dir/err" || die "no word of the retry: $(cat "$dir/err")"
pg_isready -q -h "$dir/sock" -p "$port" || die "the server is not ready on port $port"
ok "a taken port: started on $port instead of $taken"
bash "$top/scripts/cluster.sh" stop "$dir" fast

if bash "$top/scripts/cluster.sh" start "$dir" "$taken" >/dev/null 2>"$dir/err"; then
	die "a start naming the taken port $taken succeeded"
fi
grep -q 'could not bind' "$dir/err" || die "the failure does not say why: $(cat "$dir/err")"
ok "a start naming the taken port fails with the server's reason"
