-- privileges: the roles jobq_producer, jobq_worker and jobq_admin (README, "Security").
-- For PUBLIC, an ungranted login role and a member of each group role, every function,
-- procedure, table, view and sequence of schema jobq is checked twice: what the catalog
-- grants (has_*_privilege) and what a call does. The lists come from pg_proc and
-- pg_class, so a new object shows up here (and fails the test until it is placed).
-- Successful calls are rolled back (priv_try raises after the call), so they all see the
-- same fixtures.
\set VERBOSITY terse
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS jobq;
DO $$
DECLARE
	r text;
BEGIN
	FOREACH r IN ARRAY '{priv_nobody,priv_producer,priv_producer2,priv_worker,priv_admin}'::text[] LOOP
		IF EXISTS (SELECT FROM pg_roles WHERE rolname = r) THEN
			EXECUTE format('DROP OWNED BY %I', r);
			EXECUTE format('DROP ROLE %I', r);
		END IF;
	END LOOP;
END
$$;
RESET client_min_messages;

------------------------------------------------------------ roles and schema
SELECT rolname, rolcanlogin, rolsuper, rolinherit FROM pg_roles
WHERE rolname IN ('jobq_producer', 'jobq_worker', 'jobq_admin') ORDER BY 1;
CREATE ROLE priv_nobody LOGIN;
CREATE ROLE priv_producer LOGIN IN ROLE jobq_producer;
CREATE ROLE priv_producer2 LOGIN IN ROLE jobq_producer;
CREATE ROLE priv_worker LOGIN IN ROLE jobq_worker;
CREATE ROLE priv_admin LOGIN IN ROLE jobq_admin;
CREATE TABLE priv_roles (who text PRIMARY KEY, role text, ord int);
INSERT INTO priv_roles VALUES ('public', 'public', 1), ('nobody', 'priv_nobody', 2),
	('producer', 'priv_producer', 3), ('worker', 'priv_worker', 4), ('admin', 'priv_admin', 5);
-- the schema: USAGE for the three group roles only, CREATE for nobody but its owner
SELECT r.who, has_schema_privilege(r.role, 'jobq', 'USAGE') AS usage,
	has_schema_privilege(r.role, 'jobq', 'CREATE') AS "create"
FROM priv_roles r ORDER BY r.ord;
-- the extension's schema is its own member, owned by the installing superuser
SELECT n.nspname, pg_get_userbyid(n.nspowner) AS owner,
	EXISTS (SELECT FROM pg_depend d WHERE d.classid = 'pg_namespace'::regclass
		AND d.objid = n.oid AND d.refclassid = 'pg_extension'::regclass AND d.deptype = 'e') AS member
FROM pg_namespace n WHERE n.nspname = 'jobq';
-- standalone types: USAGE for the three roles, not PUBLIC
SELECT t.typname, r.who, has_type_privilege(r.role, t.oid, 'USAGE') AS usage
FROM pg_type t CROSS JOIN priv_roles r
WHERE t.typnamespace = 'jobq'::regnamespace AND t.typtype = 'c'
	AND NOT EXISTS (SELECT FROM pg_class c WHERE c.oid = t.typrelid AND c.relkind <> 'c')
ORDER BY 1, r.ord;

------------------------------------------------------------ SECURITY DEFINER
-- every API function runs as the owner, those in SQL and PL/pgSQL with a pinned
-- search_path, those in C without (they pin it around their statements: t/trojans);
-- internals and the procedure wait (which commits, so cannot be SECURITY DEFINER) run
-- as the caller
SELECT p.prokind, p.prosecdef, p.proconfig, p.proname LIKE '\_%' AS internal,
	l.lanname = 'c' AS in_c, count(*)
FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang
WHERE p.pronamespace = 'jobq'::regnamespace
GROUP BY 1, 2, 3, 4, 5 ORDER BY 1, 2, 3, 4, 5;
SELECT p.oid::regprocedure AS "not pinned", l.lanname
FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang
WHERE p.pronamespace = 'jobq'::regnamespace AND p.prosecdef
	AND p.proconfig IS DISTINCT FROM '{"search_path=pg_catalog, pg_temp"}'
ORDER BY 1::text;
SELECT p.oid::regprocedure AS "run as the caller" FROM pg_proc p
WHERE p.pronamespace = 'jobq'::regnamespace AND NOT p.prosecdef
	AND p.proname NOT LIKE '\_%';

------------------------------------------------------------ fixtures
SELECT (jobq.create_queue('pq')).queue;
SELECT (jobq.create_queue('pq_empty')).queue;
SELECT (jobq.enqueue('pq', id => 'run1')).status;
SELECT count(*) FROM jobq.lease('pq', 'w');
SELECT (jobq.enqueue('pq', id => 'failed1')).status;
SELECT count(*) FROM jobq.lease('pq', 'w');
SELECT jobq.fail('pq', 'failed1', 'broken', retry => false);
SELECT (jobq.enqueue('pq', id => 'done1')).status;
SELECT count(*) FROM jobq.lease('pq', 'w');
SELECT jobq.complete('pq', 'done1');
SELECT (jobq.enqueue('pq', id => 'pend1')).status;
-- the producer's own jobs, in queue pq_p: mine_done (finished) and mine (pending)
SET ROLE priv_producer;
SELECT (jobq.enqueue('pq_p', id => 'mine_done')).created_by;
RESET ROLE;
SELECT count(*) FROM jobq.lease('pq_p', 'w');
SELECT jobq.complete('pq_p', 'mine_done');
SET ROLE priv_producer;
SELECT (jobq.enqueue('pq_p', id => 'mine')).created_by;
RESET ROLE;

------------------------------------------------------------ one call of each routine
CREATE TABLE priv_calls (fn name PRIMARY KEY, call text NOT NULL);
INSERT INTO priv_calls VALUES
	('_as_job', 'SELECT jobq._as_job(NULL::jobq.jobs)'),
	('_caller', 'SELECT jobq._caller()'),
	('_caller_sees_all', 'SELECT jobq._caller_sees_all()'),
	('_check_id', 'SELECT jobq._check_id(''x'')'),
	('_check_timeout', 'SELECT jobq._check_timeout(''1 s'')'),
	('_end', 'SELECT jobq._end(NULL::jobq.jobs, ''finished'')'),
	('_ended', 'SELECT jobq._ended(''pq'', ''x'')'),
	('_epoch_ms', 'SELECT jobq._epoch_ms(now())'),
	('_event', 'SELECT jobq._event(NULL::jobq.jobs, ''info'', ''x'')'),
	('_fail_expired', 'SELECT * FROM jobq._fail_expired(''{}'', ''{}'', ''{}'')'),
	('_fail_final', 'SELECT jobq._fail_final(''pq'', ''run1'', ''x'', true, NULL)'),
	('_harperdb', 'SELECT jobq._harperdb(NULL::jobq.job)'),
	('_history_purged', 'SELECT jobq._history_purged()'),
	('_iso', 'SELECT jobq._iso(now())'),
	('_key_bucket', 'SELECT jobq._key_bucket(''a'', ''b'')'),
	('_leased', 'SELECT jobq._leased(''pq'', ''run1'', NULL)'),
	('_lock_bucket', 'SELECT jobq._lock_bucket(1)'),
	('_not_live', 'SELECT jobq._not_live(''pq'', ''zz'', ''x'')'),
	('_notify', 'SELECT jobq._notify(''pq'')'),
	('_notify_later', 'SELECT jobq._notify_later(''pq'')'),
	('_enqueue_sql', 'SELECT jobq._enqueue_sql(''pq'', ''{}'', NULL, NULL, NULL, true, NULL, 0, NULL)'),
	('_enqueue_batch_sql', 'SELECT jobq._enqueue_batch_sql(''pq'', ''[{}]'')'),
	('_purge', 'SELECT jobq._purge(1)'),
	('_purge_rows', 'SELECT jobq._purge_rows(''{}'', now())'),
	('_queue', 'SELECT jobq._queue(''pq'', false)'),
	('_reap_expired', 'SELECT jobq._reap_expired(1)'),
	('_reaper_info', 'SELECT jobq._reaper_info()'),
	('_retire', 'SELECT jobq._retire(NULL::jobq.jobs, ''finished'', ''finished'')'),
	('_retired_version', 'SELECT jobq._retired_version(''pq'', ''x'', NULL)'),
	('_rollback', 'SELECT jobq._rollback(NULL::jobq.jobs)'),
	('_batch_rows', 'SELECT * FROM jobq._batch_rows(''[{}]'', ''1 s'', 0)'),
	('_new_id', 'SELECT jobq._new_id()'),
	('_token', 'SELECT jobq._token()'),
	('_valid_queue', 'SELECT jobq._valid_queue(''pq'')'),
	('_version_since', 'SELECT jobq._version_since(NULL::jobq.jobs)'),
	('_wake_count', 'SELECT jobq._wake_count(''pq'', ''x'')'),
	('_wake_wait', 'SELECT jobq._wake_wait(''pq'', ''x'', -1, 0)'),
	('_wrong_state', 'SELECT jobq._wrong_state(NULL::jobq.jobs, ''x'', ''y'')'),
	('alter_queue', 'SELECT jobq.alter_queue(''pq'', max_retries => 5)'),
	('cancel', 'SELECT jobq.cancel(''pq'', ''pend1'')'),
	('complete', 'SELECT jobq.complete(''pq'', ''run1'')'),
	('compact', 'SELECT jobq.compact()'),
	('complete_batch', 'SELECT jobq.complete_batch(''pq'', ''{run1}'', ''{00000000-0000-0000-0000-000000000000}'')'),
	('create_queue', 'SELECT jobq.create_queue(''pq_new'')'),
	('delete', 'SELECT jobq.delete(''pq'', ''done1'')'),
	('drop_queue', 'SELECT jobq.drop_queue(''pq_empty'')'),
	('enqueue', 'SELECT jobq.enqueue(''pq'')'),
	('enqueue_batch', 'SELECT jobq.enqueue_batch(''pq'', ''[{}]'')'),
	('errors', 'SELECT jobq.errors(''pq'')'),
	('events', 'SELECT jobq.events(''pq'', ''pend1'')'),
	('exists', 'SELECT jobq.exists(''pq_p'', ''mine'')'),
	('fail', 'SELECT jobq.fail(''pq'', ''run1'', ''x'')'),
	('get', 'SELECT jobq.get(''pq_p'', ''mine'')'),
	('get_job', 'SELECT jobq.get_job(''pend1'')'),
	('heartbeat', 'SELECT jobq.heartbeat(''pq'', ''run1'')'),
	('lease', 'SELECT jobq.lease(''pq'')'),
	('log', 'SELECT jobq.log(''pq'', ''run1'', ''info'', ''x'')'),
	('metrics', 'SELECT jobq.metrics()'),
	('pause_queue', 'SELECT jobq.pause_queue(''pq_empty'')'),
	('progress', 'SELECT jobq.progress(''pq_p'', ''mine'')'),
	('reap', 'SELECT jobq.reap()'),
	('release', 'SELECT jobq.release(''pq'', ''run1'')'),
	('reschedule', 'SELECT jobq.reschedule(''pq'', ''pend1'')'),
	('result', 'SELECT jobq.result(''pq_p'', ''mine'')'),
	('resume', 'SELECT jobq.resume(''pq'', ''pend1'')'),
	('resume_queue', 'SELECT jobq.resume_queue(''pq_empty'')'),
	('retry', 'SELECT jobq.retry(''pq'', ''failed1'')'),
	('runs', 'SELECT jobq.runs(''pq_p'', ''mine'')'),
	('search', 'SELECT jobq.search()'),
	('search_jobs_by_start_date', 'SELECT jobq.search_jobs_by_start_date(NULL, NULL)'),
	-- launching a worker is not transactional (t/reaper_dynamic.sh starts one): only the
	-- refusal is tried
	('start_reaper', 'SKIP IF GRANTED: SELECT jobq.start_reaper()'),
	('stats', 'SELECT jobq.stats()'),
	('stop', 'SELECT jobq.stop(''pq'', ''pend1'')'),
	('stop_reaper', 'SELECT jobq.stop_reaper()'),
	('update', 'SELECT jobq.update(''pq'', ''pend1'', ''{}'')'),
	('versions', 'SELECT jobq.versions(''pq'', ''pend1'')'),
	('wait', 'CALL jobq.wait(''pq_p'', ''mine_done'', ''0'')');
-- every routine of the schema has a call here, and jobq has no overloads
SELECT p.oid::regprocedure AS "no call" FROM pg_proc p
WHERE p.pronamespace = 'jobq'::regnamespace AND p.proname NOT IN (SELECT fn FROM priv_calls);
SELECT c.fn AS "no such routine" FROM priv_calls c
WHERE NOT EXISTS (SELECT FROM pg_proc p WHERE p.pronamespace = 'jobq'::regnamespace AND p.proname = c.fn);
SELECT p.proname AS overloaded FROM pg_proc p WHERE p.pronamespace = 'jobq'::regnamespace
GROUP BY 1 HAVING count(*) > 1;

-- priv_try(sql): 'ok' if sql ran (then undone), else its SQLSTATE
CREATE FUNCTION priv_try(sql text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
	EXECUTE sql;
	RAISE EXCEPTION USING ERRCODE = 'JQ000';
EXCEPTION
	WHEN SQLSTATE 'JQ000' THEN RETURN 'ok';
	WHEN OTHERS THEN RETURN SQLSTATE;
END
$$;
CREATE TABLE priv_results (who text, what text, op text, granted boolean, outcome text);
GRANT SELECT ON priv_calls, priv_roles TO PUBLIC;
GRANT INSERT ON priv_results TO PUBLIC;

-- routines: granted? and the call's outcome, as each role
CREATE FUNCTION priv_routines(who text) RETURNS void LANGUAGE sql AS $$
	INSERT INTO priv_results
	SELECT who, c.fn, 'EXECUTE', g.granted,
		CASE WHEN g.granted AND c.call LIKE 'SKIP IF GRANTED:%' THEN 'skipped'
			ELSE priv_try(regexp_replace(c.call, '^SKIP IF GRANTED: ', '')) END
	FROM priv_calls c
	JOIN pg_proc p ON p.pronamespace = 'jobq'::regnamespace AND p.proname = c.fn
	CROSS JOIN LATERAL (SELECT has_function_privilege(
		(SELECT r.role FROM priv_roles r WHERE r.who = priv_routines.who), p.oid, 'EXECUTE')
		AS granted) g
	ORDER BY c.fn
$$;
-- tables, views, sequences: each privilege granted? SELECT tried on all; INSERT, UPDATE,
-- DELETE, TRUNCATE tried on tables; nextval on sequences
CREATE FUNCTION priv_relations(who text) RETURNS void LANGUAGE sql AS $$
	INSERT INTO priv_results
	SELECT who, c.relname, o.op,
		CASE WHEN c.relkind = 'S' THEN has_sequence_privilege(r.role, c.oid,
				CASE o.op WHEN 'SELECT' THEN 'SELECT' ELSE 'UPDATE' END)
			ELSE has_table_privilege(r.role, c.oid, o.op) END,
		priv_try(CASE o.op
			WHEN 'SELECT' THEN format('SELECT FROM jobq.%I LIMIT 1', c.relname)
			WHEN 'INSERT' THEN format('INSERT INTO jobq.%I DEFAULT VALUES', c.relname)
			WHEN 'UPDATE' THEN format('UPDATE jobq.%I SET queue = queue', c.relname)
			WHEN 'DELETE' THEN format('DELETE FROM jobq.%I', c.relname)
			WHEN 'TRUNCATE' THEN format('TRUNCATE jobq.%I', c.relname)
			WHEN 'nextval' THEN format('SELECT nextval(%L)', 'jobq.' || c.relname) END)
	FROM pg_class c
	CROSS JOIN (SELECT r.role FROM priv_roles r WHERE r.who = priv_relations.who) r
	JOIN (VALUES ('SELECT'), ('INSERT'), ('UPDATE'), ('DELETE'), ('TRUNCATE'), ('nextval')) o(op)
		ON (c.relkind IN ('r', 'p') AND o.op <> 'nextval')
			OR (c.relkind = 'v' AND o.op = 'SELECT')
			OR (c.relkind = 'S' AND o.op IN ('SELECT', 'nextval'))
	WHERE c.relnamespace = 'jobq'::regnamespace AND c.relkind IN ('r', 'p', 'v', 'S')
$$;
-- REFERENCES and TRIGGER: granted to nobody
SELECT c.relname, r.who, p.priv FROM pg_class c CROSS JOIN priv_roles r
CROSS JOIN (VALUES ('REFERENCES'), ('TRIGGER')) p(priv)
WHERE c.relnamespace = 'jobq'::regnamespace AND c.relkind IN ('r', 'p', 'v')
	AND has_table_privilege(r.role, c.oid, p.priv);

-- PUBLIC's rights are those of a role granted nothing: priv_nobody calls for it
SET ROLE priv_nobody;
SELECT priv_routines('public'), priv_relations('public');
SELECT priv_routines('nobody'), priv_relations('nobody');
SET ROLE priv_producer;
SELECT priv_routines('producer'), priv_relations('producer');
SET ROLE priv_worker;
SELECT priv_routines('worker'), priv_relations('worker');
SET ROLE priv_admin;
SELECT priv_routines('admin'), priv_relations('admin');
RESET ROLE;

-- the matrix: + granted and the call ran, - not granted and refused with 42501, +? granted
-- and not called (start_reaper); anything else is printed as granted/outcome
CREATE FUNCTION priv_cell(granted boolean, outcome text) RETURNS text LANGUAGE sql AS $$
	SELECT CASE WHEN granted AND outcome = 'ok' THEN '+'
		WHEN granted AND outcome = 'skipped' THEN '+?'
		WHEN NOT granted AND outcome = '42501' THEN '-'
		ELSE granted || '/' || outcome END
$$;
SELECT x.what AS routine,
	max(priv_cell(x.granted, x.outcome)) FILTER (WHERE x.who = 'public') AS public,
	max(priv_cell(x.granted, x.outcome)) FILTER (WHERE x.who = 'nobody') AS nobody,
	max(priv_cell(x.granted, x.outcome)) FILTER (WHERE x.who = 'producer') AS producer,
	max(priv_cell(x.granted, x.outcome)) FILTER (WHERE x.who = 'worker') AS worker,
	max(priv_cell(x.granted, x.outcome)) FILTER (WHERE x.who = 'admin') AS admin
FROM priv_results x WHERE x.op = 'EXECUTE' GROUP BY x.what ORDER BY x.what;
SELECT x.what AS relation, x.op,
	max(priv_cell(x.granted, x.outcome)) FILTER (WHERE x.who = 'public') AS public,
	max(priv_cell(x.granted, x.outcome)) FILTER (WHERE x.who = 'nobody') AS nobody,
	max(priv_cell(x.granted, x.outcome)) FILTER (WHERE x.who = 'producer') AS producer,
	max(priv_cell(x.granted, x.outcome)) FILTER (WHERE x.who = 'worker') AS worker,
	max(priv_cell(x.granted, x.outcome)) FILTER (WHERE x.who = 'admin') AS admin
FROM priv_results x WHERE x.op <> 'EXECUTE' GROUP BY x.what, x.op ORDER BY x.what, x.op;
-- the rule, checked: granted calls run, refused calls fail with 42501, nothing else
SELECT x.who, x.what, x.op, x.granted, x.outcome AS mismatch FROM priv_results x
WHERE priv_cell(x.granted, x.outcome) NOT IN ('+', '-', '+?');
-- no group role can write a table, whatever the privilege
SELECT count(*) AS writes_allowed FROM priv_results x
WHERE x.op IN ('INSERT', 'UPDATE', 'DELETE', 'TRUNCATE', 'nextval') AND x.outcome <> '42501';

------------------------------------------------------------ a producer reads its own jobs
SET ROLE priv_producer;
SELECT id, status, created_by FROM jobq.get('pq_p', 'mine');
SELECT jobq.exists('pq_p', 'mine') AS exists, (jobq.progress('pq_p', 'mine')).status;
SELECT count(*) AS runs FROM jobq.runs('pq_p', 'mine');
-- someone else's job is unknown to it
SELECT jobq.get('pq', 'pend1');
\echo :LAST_ERROR_SQLSTATE
SELECT jobq.exists('pq', 'pend1') AS exists, (SELECT count(*) FROM jobq.runs('pq', 'pend1')) AS runs;
SET ROLE priv_producer2;
SELECT jobq.get('pq_p', 'mine');
\echo :LAST_ERROR_SQLSTATE
SELECT jobq.result('pq_p', 'mine_done');
\echo :LAST_ERROR_SQLSTATE
CALL jobq.wait('pq_p', 'mine_done', '0');
\echo :LAST_ERROR_SQLSTATE
SELECT jobq.exists('pq_p', 'mine') AS exists;
-- and it cannot touch the tables, nor lease
SELECT count(*) FROM jobq.jobs;
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM jobq.lease('pq_p');
\echo :LAST_ERROR_SQLSTATE
-- SET ROLE is what counts: created_by is the role in effect, not the login role
SET ROLE priv_producer2;
SELECT (jobq.enqueue('pq_p', id => 'theirs')).created_by;
RESET ROLE;
SELECT created_by FROM jobq.get('pq_p', 'theirs');
-- an admin (and a superuser) reads every job
SET ROLE priv_admin;
SELECT id, created_by FROM jobq.get('pq_p', 'mine');
SELECT count(*) AS visible FROM jobq.search(queue => 'pq_p');
RESET ROLE;

------------------------------------------------------------ clean up
DROP FUNCTION priv_routines(text), priv_relations(text), priv_cell(boolean, text), priv_try(text);
DROP TABLE priv_calls, priv_results, priv_roles;
SELECT jobq.drop_queue(q, force => true) FROM unnest('{pq,pq_empty,pq_p}'::text[]) q;
DROP ROLE priv_nobody, priv_producer, priv_producer2, priv_worker, priv_admin;
