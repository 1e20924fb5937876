#!/usr/bin/env bash
# trojans: search_path attacks. A low-privilege role plants look-alikes of what jobq uses
# (operators on text, timestamptz, jsonb...; now(), clock_timestamp(), gen_random_uuid(),
# hashtext(), pg_notify(), jsonb_build_object() and friends; functions and tables named
# like jobq's) in schema public and in pg_temp. Each look-alike counts its calls in a
# sequence (not rolled back) and raises. Then every API function is called, as that role
# (a member of jobq_admin, jobq_producer and jobq_worker) and as a superuser, with
# search_path = public, pg_temp, pg_catalog and pg_temp, public, pg_catalog: every call
# succeeds and no trap is sprung. Finally CREATE EXTENSION into databases where the role
# planted a schema named jobq or objects named like jobq's in public runs none of them.
source "$(dirname "$0")/../lib.sh"
role=jobq_trojan
tmpd=$(mktemp -d)
dropall() {
	psql -X -q -d postgres -c "DROP DATABASE IF EXISTS jobq_trojans WITH (FORCE)" \
		-c "DROP DATABASE IF EXISTS jobq_trojans_schema WITH (FORCE)" \
		-c "DROP DATABASE IF EXISTS jobq_trojans_public WITH (FORCE)" \
		-c "DROP ROLE IF EXISTS $role" >/dev/null 2>&1 || true
}
trap 'dropall; rm -rf "$tmpd"' EXIT
dropall
psql -X -q -v ON_ERROR_STOP=1 -d postgres -c "CREATE ROLE $role LOGIN IN ROLE jobq_admin, jobq_producer, jobq_worker"

# plant DB: the traps in public (as the role) and, for a session, in pg_temp
plant_public() {
	psql -X -q -v ON_ERROR_STOP=1 -d "$1" <<SQL
GRANT CREATE ON SCHEMA public TO $role;
SET ROLE $role;
CREATE SEQUENCE public.trojan_hits;
GRANT USAGE, SELECT, UPDATE ON SEQUENCE public.trojan_hits TO PUBLIC;
CREATE FUNCTION public.trojan(what text) RETURNS boolean LANGUAGE plpgsql AS \$\$
BEGIN
	PERFORM pg_catalog.nextval('public.trojan_hits');
	RAISE EXCEPTION 'TROJAN % ran as %', what, current_user;
END
\$\$;
-- functions: name, arguments, result
DO \$\$
DECLARE
	f text[];
BEGIN
	FOREACH f SLICE 1 IN ARRAY ARRAY[
		['now', '', 'timestamptz'], ['clock_timestamp', '', 'timestamptz'],
		['statement_timestamp', '', 'timestamptz'], ['transaction_timestamp', '', 'timestamptz'],
		['gen_random_uuid', '', 'uuid'], ['hashtext', 'text', 'integer'],
		['pg_notify', 'text, text', 'void'], ['pg_notification_queue_usage', '', 'double precision'],
		['pg_advisory_xact_lock', 'integer, integer', 'void'],
		['jsonb_build_object', 'text, integer, text, boolean', 'jsonb'],
		['jsonb_build_object', 'text, integer, text, boolean, text, timestamptz', 'jsonb'],
		['jsonb_build_object', 'text, integer, text, integer', 'jsonb'],
		['jsonb_build_object', 'text, bigint', 'jsonb'],
		['jsonb_build_object', 'text, text', 'jsonb'],
		['jsonb_typeof', 'jsonb', 'text'], ['jsonb_array_elements', 'jsonb', 'SETOF jsonb'],
		['jsonb_object_agg_trap', 'text', 'jsonb'], ['to_jsonb', 'text', 'jsonb'],
		['coalesce', 'text, text', 'text'], ['coalesce', 'jsonb, jsonb', 'jsonb'],
		['nullif', 'text, text', 'text'], ['greatest', 'integer, integer', 'integer'],
		['least', 'interval, interval', 'interval'],
		['length', 'text', 'integer'], ['lower', 'text', 'text'], ['upper', 'text', 'text'],
		['power', 'integer, integer', 'double precision'],
		['power', 'double precision, double precision', 'double precision'],
		['format', 'text, text', 'text'], ['format', 'text, text, text', 'text'],
		['current_setting', 'text, boolean', 'text'], ['current_database', '', 'name'],
		['date_part', 'text, interval', 'double precision'],
		['date_part', 'text, timestamptz', 'double precision'],
		['make_interval', 'double precision', 'interval'], ['pg_sleep', 'double precision', 'void'],
		['nextval', 'regclass', 'bigint'], ['nextval', 'text', 'bigint'],
		['trunc', 'numeric', 'numeric'], ['to_char', 'timestamptz, text', 'text'],
		['timezone', 'text, timestamptz', 'timestamp'], ['array_length', 'text[], integer', 'integer'],
		['unnest', 'text[]', 'SETOF text'], ['uuid_eq', 'uuid, uuid', 'boolean'],
		-- jobq's own names, unqualified
		['enqueue', 'text', 'jsonb'], ['lease', 'text', 'jsonb'], ['get', 'text, text', 'jsonb'],
		['complete', 'text, text', 'void'], ['fail', 'text, text', 'text'],
		['_caller', '', 'text'], ['_caller_sees_all', '', 'boolean'],
		['_queue', 'text, boolean', 'jsonb'], ['_queue', 'text', 'jsonb'], ['_notify', 'text', 'void'],
		['_valid_queue', 'text', 'text'], ['_leased', 'text, text, uuid', 'jsonb'],
		['_fail_final', 'text, text, text, boolean, uuid', 'text'], ['_event', 'jsonb, text, text', 'bigint'],
		['_retired_version', 'text, text, uuid', 'integer'], ['_key_bucket', 'text, text', 'integer'],
		['_lock_bucket', 'integer', 'void'], ['_check_id', 'text', 'text'],
		['_check_timeout', 'interval', 'interval'], ['_check_timeout', 'interval, text', 'interval'],
		['reap', 'integer', 'record'], ['_reaper_info', '', 'jsonb']
	] LOOP
		EXECUTE pg_catalog.format(
			'CREATE FUNCTION public.%I(%s) RETURNS %s LANGUAGE plpgsql AS %L',
			f[1], f[2], f[3],
			pg_catalog.format('BEGIN PERFORM public.trojan(%L); END', f[1] || '(' || f[2] || ')'));
	END LOOP;
END
\$\$;
-- operators: symbol, left, right, result
DO \$\$
DECLARE
	o text[];
	n integer := 0;
BEGIN
	FOREACH o SLICE 1 IN ARRAY ARRAY[
		['=', 'text', 'text', 'boolean'], ['<>', 'text', 'text', 'boolean'],
		['=', 'integer', 'integer', 'boolean'], ['=', 'bigint', 'bigint', 'boolean'],
		['=', 'uuid', 'uuid', 'boolean'], ['=', 'boolean', 'boolean', 'boolean'],
		['=', 'jsonb', 'jsonb', 'boolean'], ['<', 'integer', 'integer', 'boolean'],
		['>', 'integer', 'integer', 'boolean'], ['<=', 'integer', 'integer', 'boolean'],
		['<', 'interval', 'interval', 'boolean'], ['<=', 'interval', 'interval', 'boolean'],
		['<', 'timestamptz', 'timestamptz', 'boolean'], ['<=', 'timestamptz', 'timestamptz', 'boolean'],
		['>=', 'timestamptz', 'timestamptz', 'boolean'],
		['+', 'timestamptz', 'interval', 'timestamptz'], ['-', 'timestamptz', 'interval', 'timestamptz'],
		['-', 'timestamptz', 'timestamptz', 'interval'], ['*', 'interval', 'double precision', 'interval'],
		['*', 'double precision', 'double precision', 'double precision'],
		['<=', 'double precision', 'double precision', 'boolean'],
		['+', 'integer', 'integer', 'integer'], ['-', 'integer', 'integer', 'integer'],
		['&', 'integer', 'integer', 'integer'], ['||', 'text', 'text', 'text'],
		['~~', 'text', 'text', 'boolean'], ['?', 'jsonb', 'text', 'boolean'],
		['->', 'jsonb', 'text', 'jsonb'], ['->>', 'jsonb', 'text', 'text'],
		['-', 'jsonb', 'text', 'jsonb'], ['||', 'jsonb', 'jsonb', 'jsonb']
	] LOOP
		n := n + 1;
		EXECUTE pg_catalog.format(
			'CREATE FUNCTION public.trojan_op%s(%s, %s) RETURNS %s LANGUAGE plpgsql AS %L',
			n, o[2], o[3], o[4],
			pg_catalog.format('BEGIN PERFORM public.trojan(%L); END',
				'operator ' || o[2] || ' ' || o[1] || ' ' || o[3]));
		EXECUTE pg_catalog.format(
			'CREATE OPERATOR public.%s (LEFTARG = %s, RIGHTARG = %s, FUNCTION = public.trojan_op%s)',
			o[1], o[2], o[3], n);
	END LOOP;
END
\$\$;
-- relations named like jobq's
CREATE VIEW public.queues AS SELECT public.trojan('public.queues') AS queue;
CREATE VIEW public.jobs AS SELECT public.trojan('public.jobs') AS queue;
CREATE VIEW public.history AS SELECT public.trojan('public.history') AS queue;
CREATE VIEW public.job_events AS SELECT public.trojan('public.job_events') AS queue;
CREATE VIEW public.job_versions AS SELECT public.trojan('public.job_versions') AS queue;
RESET ROLE;
SQL
}

# the same relations in the session's pg_temp: prepended to a psql script
temp_traps="
CREATE TEMP VIEW queues AS SELECT public.trojan('pg_temp.queues') AS queue;
CREATE TEMP VIEW jobs AS SELECT public.trojan('pg_temp.jobs') AS queue;
CREATE TEMP VIEW history AS SELECT public.trojan('pg_temp.history') AS queue;
CREATE TEMP VIEW job_events AS SELECT public.trojan('pg_temp.job_events') AS queue;
CREATE TEMP VIEW run_seq AS SELECT public.trojan('pg_temp.run_seq') AS queue;
CREATE TEMP TABLE jobs_persistent (queue text);
CREATE FUNCTION pg_temp.now() RETURNS timestamptz LANGUAGE plpgsql AS
	'BEGIN PERFORM public.trojan(''pg_temp.now()''); END';
CREATE FUNCTION pg_temp.clock_timestamp() RETURNS timestamptz LANGUAGE plpgsql AS
	'BEGIN PERFORM public.trojan(''pg_temp.clock_timestamp()''); END';
CREATE FUNCTION pg_temp.gen_random_uuid() RETURNS uuid LANGUAGE plpgsql AS
	'BEGIN PERFORM public.trojan(''pg_temp.gen_random_uuid()''); END';
"

hits() { psql -X -qAt -d "$1" -c "SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM public.trojan_hits"; }

fresh_db jobq_trojans
plant_public jobq_trojans

# The traps work: with public first, = on text is the role's.
out=$(psql -X -qAt -d jobq_trojans -c "SET search_path = public, pg_catalog" \
	-c "SELECT 'a'::pg_catalog.text = 'b'::pg_catalog.text" 2>&1 || true)
case "$out" in *"TROJAN operator text = text"*) ok "a planted operator is used by a naive query";; *) die "trap not live: $out";; esac
out=$(psql -X -qAt -d jobq_trojans -c "SET search_path = public, pg_catalog" \
	-c "SELECT now()" 2>&1 || true)
case "$out" in *"TROJAN now()"*) ok "a planted now() is used by a naive query";; *) die "trap not live: $out";; esac
psql -X -q -d jobq_trojans -c "SELECT pg_catalog.setval('public.trojan_hits', 1, false)" >/dev/null
expect_eq "$(hits jobq_trojans)" 0 "counter reset"

# Every API call with search_path $2 as role $1 ("" = the superuser); queue $3.
api_calls() {
	local setrole=${1:+SET ROLE $1;} path=$2 qn=$3
	cat <<SQL
\set ON_ERROR_STOP 1
\set VERBOSITY default
$setrole
$temp_traps
SET search_path = $path;
SELECT (jobq.create_queue('$qn', timeout => '30 s', max_retries => 1)).queue;
SELECT (jobq.alter_queue('$qn', max_retries => 2)).max_retries;
SELECT (jobq.pause_queue('$qn')).paused;
SELECT (jobq.resume_queue('$qn')).paused;
SELECT (jobq.enqueue('$qn', '{"n": 1}', id => 'a')).status;
SELECT (jobq.enqueue('$qn', '{"n": 2}')).status;
SELECT jobq.enqueue_batch('$qn', '[{"id": "b"}, {"id": "c", "timeout": 5}, {"id": "d", "persist": false}]');
SELECT jobq.exists('$qn', 'a'), (jobq.get('$qn', 'a')).status, (jobq.progress('$qn', 'a')).status;
SELECT count(*) FROM jobq.runs('$qn', 'a');
SELECT jobq.result('$qn', 'a');
SELECT lease AS tok FROM jobq.lease('$qn', 'w', 1) \gset
SELECT jobq.heartbeat('$qn', 'a', '{"s": 1}', 50, 'half', :'tok');
SELECT jobq.log('$qn', 'a', 'warning', 'careful', '{"x": 1}');
SELECT jobq.complete('$qn', 'a', '{"r": 1}', :'tok');
SELECT (jobq.enqueue('$qn', id => 'f', priority => -5)).status;
SELECT lease AS ftok FROM jobq.lease('$qn', 'w', 1) \gset
SELECT count(*) FROM jobq.complete_batch('$qn', '{f}', ARRAY[:'ftok']::uuid[]);
SELECT count(*) FROM jobq.lease('$qn', 'w', 2);
SELECT jobq.fail('$qn', 'b', 'boom');
SELECT jobq.fail(queue => '$qn', id => x.id, error => 'final', retry => false) FROM jobq.search(queue => '$qn', status => 'running') x;
SELECT (jobq.enqueue('$qn', id => 'e')).status;
SELECT id AS eid, lease AS etok FROM jobq.lease('$qn', 'w', 10) WHERE id OPERATOR(pg_catalog.=) 'e' \gset
SELECT jobq.release('$qn', 'e', '{"s": 2}', :'etok');
SELECT (jobq.reschedule('$qn', 'e', payload => '{"n": 9}')).status;
SELECT (jobq.update('$qn', 'e', '{"n": 10}', true)).version;
SELECT count(*) FROM jobq.versions('$qn', 'e');
SELECT (jobq.stop('$qn', 'e')).status;
SELECT (jobq.resume('$qn', 'e')).status;
SELECT (jobq.cancel('$qn', 'e')).status;
SELECT (jobq.retry('$qn', x.id)).status FROM jobq.search(queue => '$qn', status => 'failed') x;
SELECT (jobq.delete('$qn', 'e')).status;
SELECT count(*) FROM jobq.events('$qn', 'b');
SELECT count(*) FROM jobq.errors('$qn');
SELECT count(*) FROM jobq.search(queue => '$qn', sort => 'priority', direction => 'desc');
SELECT count(*) FROM jobq.get_job('a');
SELECT count(*) FROM jobq.search_jobs_by_start_date(NULL, NULL);
SELECT jobq.stats() IS NOT NULL;
SELECT jobq.metrics() IS NOT NULL;
SELECT jobq.metrics(openmetrics => true) IS NOT NULL;
SELECT (jobq.reap()).reaped;
SELECT count(*) FROM jobq.compact();
SELECT jobq.stop_reaper();
CALL jobq.wait('$qn', 'a', '1 s');
CALL jobq.wait('$qn', 'b', '0.05 s');
SELECT jobq.drop_queue('$qn', force => true);
SQL
}

# The C functions' common calls, without a statement (extension/direct.c: the API
# functions in C have no SET search_path clause), and the statements of their
# diagnoses, with search_path $2 as role $1; queue $3. Run while no unlogged job
# exists (the last line says so): api_calls' persist => false job takes every later
# lease and completion to the statements.
direct_calls() {
	local setrole=${1:+SET ROLE $1;} path=$2 qn=$3
	cat <<SQL
\set ON_ERROR_STOP 1
$setrole
$temp_traps
SET search_path = $path;
SELECT (jobq.create_queue('$qn')).queue;
SELECT (jobq.enqueue('$qn', '{"n": 1}')).status;
SELECT count(*) FROM jobq.enqueue_batch('$qn', '[{"payload": {"n": 2}}, {"payload": {"n": 3}}, {"payload": {"n": 4}}]');
SELECT id AS i1, lease AS t1 FROM jobq.lease('$qn', 'w', 1) \gset
SELECT jobq.complete('$qn', :'i1', '{"r": 1}', :'t1');
SELECT pg_catalog.array_agg(id) AS ids, pg_catalog.array_agg(lease) AS toks FROM jobq.lease('$qn', 'w', 2) \gset
SELECT count(*) FROM jobq.complete_batch('$qn', :'ids', :'toks');
SELECT id AS i4 FROM jobq.lease('$qn', 'w', 1) \gset
\set ON_ERROR_STOP 0
SELECT jobq.complete('$qn', 'nope', NULL, NULL);
SELECT jobq.complete('$qn', :'i4', NULL, '00000000-0000-4000-8000-000000000000');
\set ON_ERROR_STOP 1
SELECT 'direct: ' || (pg_catalog.pg_relation_size('jobq.jobs_unlogged') OPERATOR(pg_catalog.=) 0);
SELECT jobq.drop_queue('$qn', force => true);
SQL
}

# run_calls GENERATOR WHO PATH QUEUE: GENERATOR's script run in jobq_trojans, which must
# succeed without springing a trap; its output is left in $tmpd/out.
run_calls() {
	"$1" "$2" "$3" "$4" >"$tmpd/calls.sql"
	if ! psql -X -q -d jobq_trojans -f "$tmpd/calls.sql" >"$tmpd/out" 2>&1; then
		cat "$tmpd/out"
		die "$1 as ${2:-superuser} with search_path $3"
	fi
	if grep -q TROJAN "$tmpd/out"; then
		cat "$tmpd/out"
		die "a trap ran"
	fi
}

n=0
for who in "$role" ""; do
	for path in "public, pg_temp, pg_catalog" "pg_temp, public, pg_catalog"; do
		n=$((n + 1))
		run_calls direct_calls "$who" "$path" "dq$n"
		expect_eq "$(grep -c -E 'ERROR: .*(is not live in queue|stale lease for job)|direct: true' "$tmpd/out")" 3 \
			"as ${who:-superuser}, search_path = $path: the direct paths and their diagnoses ran"
		expect_eq "$(hits jobq_trojans)" 0 "as ${who:-superuser}, search_path = $path: no trap"
	done
done

# Every API routine is called above (start_reaper launches a worker: t/reaper_dynamic.sh).
missing=$(psql -X -qAt -d jobq_trojans -c "SELECT p.proname FROM pg_catalog.pg_proc p
	WHERE p.pronamespace = 'jobq'::regnamespace AND p.proname NOT LIKE '\\_%'
		AND p.proname <> 'start_reaper' ORDER BY 1" | while read -r f; do
	api_calls "" x q | grep -q "jobq\\.$f(" || echo "$f"
done)
expect_eq "$missing" "" "every API routine is called"

n=0
for who in "$role" ""; do
	for path in "public, pg_temp, pg_catalog" "pg_temp, public, pg_catalog" "public, pg_catalog, pg_temp"; do
		n=$((n + 1))
		run_calls api_calls "$who" "$path" "tq$n"
		expect_eq "$(hits jobq_trojans)" 0 "as ${who:-superuser}, search_path = $path: every call ran, no trap"
	done
done

# CREATE EXTENSION where the role made a schema named jobq first: refused, nothing of
# the role's runs, nothing is installed.
psql -X -q -v ON_ERROR_STOP=1 -d postgres -c "CREATE DATABASE jobq_trojans_schema"
plant_public jobq_trojans_schema
psql -X -q -v ON_ERROR_STOP=1 -d jobq_trojans_schema <<SQL
GRANT CREATE ON DATABASE jobq_trojans_schema TO $role;
SET ROLE $role;
CREATE SCHEMA jobq;
CREATE TABLE jobq.queues (queue text);
CREATE FUNCTION jobq._valid_queue(queue text) RETURNS text LANGUAGE plpgsql AS
	'BEGIN PERFORM public.trojan(''jobq._valid_queue''); END';
CREATE FUNCTION jobq._caller() RETURNS text LANGUAGE plpgsql AS
	'BEGIN PERFORM public.trojan(''jobq._caller''); END';
SQL
out=$(psql -X -q -d jobq_trojans_schema -c "SET search_path = public, jobq, pg_catalog" \
	-c "CREATE EXTENSION jobq" 2>&1 || true)
echo "$out"
case "$out" in *'schema "jobq" already exists'*) ok "CREATE EXTENSION refuses a schema jobq it did not make";;
	*) die "CREATE EXTENSION into a planted schema: $out";; esac
expect_eq "$(psql -X -qAt -d jobq_trojans_schema -c "SELECT count(*) FROM pg_extension WHERE extname = 'jobq'")" 0 "jobq is not installed"
expect_eq "$(hits jobq_trojans_schema)" 0 "no trap ran"

# CREATE EXTENSION where the role planted jobq's names (and the traps) in public, with
# public first in the installer's search_path: installs, runs none of them.
psql -X -q -v ON_ERROR_STOP=1 -d postgres -c "CREATE DATABASE jobq_trojans_public"
plant_public jobq_trojans_public
out=$(psql -X -q -v ON_ERROR_STOP=1 -d jobq_trojans_public -c "SET search_path = public, pg_temp, pg_catalog" \
	-c "CREATE EXTENSION jobq" 2>&1) || die "CREATE EXTENSION beside planted objects: $out"
expect_eq "$(hits jobq_trojans_public)" 0 "CREATE EXTENSION ran no trap"
api_calls "" "public, pg_temp, pg_catalog" tq >"$tmpd/calls.sql"
psql -X -q -d jobq_trojans_public -f "$tmpd/calls.sql" >"$tmpd/out" 2>&1 || { cat "$tmpd/out"; die "API calls in the planted database"; }
expect_eq "$(hits jobq_trojans_public)" 0 "and the API runs none either"
