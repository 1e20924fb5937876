#!/usr/bin/env bash
# cluster.sh: a throwaway (or kept) PostgreSQL cluster with jobq preloaded.
#
#   cluster.sh start DIR [PORT]   initdb DIR if empty, start it; prints "PORT SOCKETDIR"
#   cluster.sh stop DIR [MODE]    stop it (MODE: fast, immediate)
#   cluster.sh restart DIR        restart with the same settings
#
# The server runs as the `postgres` OS user when called as root (PostgreSQL refuses root),
# listens on 127.0.0.1 and on a private socket directory DIR/sock, on a free port.
set -euo pipefail

bindir=$(pg_config --bindir)
as_pg() {
	if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

free_port() {
	local p
	for _ in $(seq 1 200); do
		p=$((20000 + RANDOM % 30000))
		if ! (echo >"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
			echo "$p"
			return
		fi
	done
	echo "cluster.sh: no free port" >&2
	exit 1
}

cmd=${1:?usage: cluster.sh start|stop|restart DIR [PORT]}
dir=${2:?usage: cluster.sh start|stop|restart DIR [PORT]}
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
data=$dir/data
sock=$dir/sock

case "$cmd" in
start)
	[ "$(id -u)" -eq 0 ] && chown postgres: "$dir"
	if [ ! -f "$data/PG_VERSION" ]; then
		as_pg mkdir -p "$sock"
		as_pg "$bindir/initdb" -D "$data" -A trust -U postgres -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 ||
			{ cat "$dir/initdb.log" >&2; exit 1; }
		cat >>"$data/postgresql.conf" <<CONF
# added by jobq's cluster.sh
listen_addresses = '127.0.0.1'
unix_socket_directories = '$sock'
shared_preload_libraries = 'jobq'
max_worker_processes = 16
max_connections = 100
fsync = on
log_line_prefix = '%m [%p] %q%a '
jobq.database = 'postgres'
CONF
	fi
	port=${3:-}
	[ -n "$port" ] || port=$(cat "$dir/port" 2>/dev/null || true)
	# A free port can be taken by another process before the server binds it: then, unless
	# the caller asked for this port, try another one.
	for attempt in 1 2 3 4 5; do
		if [ -z "$port" ] || (echo >"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then port=$(free_port); fi
		echo "$port" >"$dir/port"
		log_start=$(wc -c 2>/dev/null <"$dir/server.log" || echo 0)
		if as_pg "$bindir/pg_ctl" -D "$data" -o "-p $port" -l "$dir/server.log" -w -t 60 start >/dev/null; then
			echo "$port $sock"
			exit 0
		fi
		if [ -n "${3:-}" ] || ! tail -c +"$((log_start + 1))" "$dir/server.log" | grep -q 'could not bind\|could not create any TCP/IP sockets'; then
			break
		fi
		echo "cluster.sh: port $port was taken, trying another (attempt $attempt)" >&2
		port=
	done
	tail -20 "$dir/server.log" >&2
	exit 1
	;;
stop)
	mode=${3:-fast}
	[ -f "$data/postmaster.pid" ] || exit 0
	as_pg "$bindir/pg_ctl" -D "$data" -m "$mode" -w -t 60 stop >/dev/null 2>&1 || true
	;;
restart)
	port=$(cat "$dir/port")
	as_pg "$bindir/pg_ctl" -D "$data" -o "-p $port" -l "$dir/server.log" -w -t 60 restart >/dev/null
	;;
*)
	echo "cluster.sh: unknown command $cmd" >&2
	exit 2
	;;
esac
