#!/usr/bin/env bash
# run.sh: `make run`. Installs what is missing, builds and installs jobq, starts a local
# PostgreSQL with jobq preloaded (the reaper runs in database postgres) under ./.run
# (kept between runs; JOBQ_RUN_DIR overrides), creates the extension, starts the sidecar jobq-http on
# 127.0.0.1:8080 when it is built, prints how to connect, and stays in the foreground
# until Ctrl-C, which stops everything.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"

bash scripts/deps.sh
make -s >/dev/null
make -s install >/dev/null

dir=${JOBQ_RUN_DIR:-$top/.run}
listen=${JOBQ_HTTP_LISTEN:-127.0.0.1:8080}
mkdir -p "$dir"
read -r port sock < <(bash scripts/cluster.sh start "$dir")
export PGHOST=$sock PGPORT=$port PGUSER=postgres PGDATABASE=postgres
psql -X -q -c "CREATE EXTENSION IF NOT EXISTS jobq"

http_pid=
stop() {
	trap - INT TERM EXIT
	echo
	echo "stopping"
	[ -n "$http_pid" ] && kill -TERM "$http_pid" 2>/dev/null && wait "$http_pid" 2>/dev/null
	bash scripts/cluster.sh stop "$dir"
	exit 0
}
trap stop INT TERM EXIT

if [ -x http/jobq-http ]; then
	http/jobq-http --listen "$listen" --db "host=$sock port=$port user=postgres dbname=postgres" \
		2>>"$dir/jobq-http.log" &
	http_pid=$!
fi

cat <<MSG
jobq is running: PostgreSQL $(pg_config --version | awk '{print $2}') with jobq, data in .run/data, log in .run/server.log

Connect:
  psql -h $sock -p $port -U postgres postgres
  psql -h 127.0.0.1 -p $port -U postgres postgres

First example:
  SELECT id FROM jobq.enqueue('emails', '{"to": "ada@example.com"}');
  SELECT id, lease, payload FROM jobq.lease('emails', worker => 'w1');
  SELECT jobq.complete('emails', '<id>', result => '{"sent": true}');
MSG
if [ -n "$http_pid" ]; then
	cat <<MSG

Sidecar: http://$listen (log in .run/jobq-http.log)
  curl -s -XPOST $listen/v1/enqueue -d '{"id":"1","queue":"emails","timeout":30,"payload":{"to":"ada@example.com"}}'
  curl -s '$listen/v1/next?queue=emails'
  curl -s -XDELETE '$listen/v1/complete?queue=emails&job_id=1'
MSG
fi
echo
echo "Ctrl-C stops it."
while :; do sleep 1; done
