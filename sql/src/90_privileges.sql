
/*
 * jobq 0.1.0 install script, part 90: roles and privileges (pgq's reader/writer/admin split).
 *
 *   jobq_producer   enqueue, enqueue_batch; get, exists, runs, progress, result, wait on the
 *                   jobs it created (created_by is the calling role, jobq._caller())
 *   jobq_worker     lease, heartbeat, complete, complete_batch, fail, release, reschedule, log
 *   jobq_admin      every API function (queue settings, lifecycle, search, events,
 *                   versions, errors, HarperDB calls, stats, reap, start/stop_reaper), reads
 *                   every job, SELECT on the tables and views
 *
 * The roles are NOLOGIN groups, created here when absent (roles are cluster-wide: a second
 * database finds them). PUBLIC has no privilege on any object of schema jobq, and the
 * schema's USAGE belongs to the three roles only. No table is writable by anyone but the
 * owner: every write goes through an API function, which is SECURITY DEFINER (it runs as
 * the extension's owner) with `search_path = pg_catalog, pg_temp` pinned, so the
 * caller's search_path cannot redirect a function or operator it uses. An API function in
 * SQL or PL/pgSQL is pinned by its SET clause; one in C (enqueue, lease, complete...) has
 * none and pins the path itself around each statement it runs (extension/plan.c): a SET
 * clause costs about 10 000 instructions a call, a fifth of a one-job lease's own work,
 * and the C functions' common calls run no statement. Internals
 * (jobq._*) are not SECURITY DEFINER and are executable by the owner only (they run
 * inside an API function), except jobq._valid_queue (all three roles: a pure check) and
 * jobq._queue (jobq_admin: the sidecar reads a queue through it). jobq.wait is a
 * procedure that commits while it polls, which a SECURITY DEFINER procedure cannot: it
 * runs with the caller's rights and search_path, and qualifies every name it uses.
 */

DO $$
DECLARE
	r pg_catalog.text;
BEGIN
	FOREACH r IN ARRAY '{jobq_producer,jobq_worker,jobq_admin}'::pg_catalog.text[] LOOP
		IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles x WHERE x.rolname OPERATOR(pg_catalog.=) r) THEN
			EXECUTE pg_catalog.format('CREATE ROLE %I NOLOGIN', r);
		END IF;
	END LOOP;
END
$$;

REVOKE ALL ON SCHEMA jobq FROM PUBLIC;
GRANT USAGE ON SCHEMA jobq TO jobq_producer, jobq_worker, jobq_admin;
REVOKE ALL ON ALL TABLES IN SCHEMA jobq FROM PUBLIC;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA jobq FROM PUBLIC;
REVOKE ALL ON ALL ROUTINES IN SCHEMA jobq FROM PUBLIC;
REVOKE ALL ON TYPE jobq.job, jobq.harperdb_job, jobq.leased, jobq.status FROM PUBLIC;
GRANT USAGE ON TYPE jobq.job, jobq.harperdb_job, jobq.status
	TO jobq_producer, jobq_worker, jobq_admin;
GRANT USAGE ON TYPE jobq.leased TO jobq_worker, jobq_admin;

/*
 * Every API function (not jobq._*, not the procedure jobq.wait) runs as the owner; those
 * in SQL and PL/pgSQL with the pinned search_path, those in C pin it themselves.
 */
DO $$
DECLARE
	f record;
BEGIN
	FOR f IN
		SELECT p.proname, pg_catalog.pg_get_function_identity_arguments(p.oid) AS args,
			l.lanname OPERATOR(pg_catalog.=) 'c' AS in_c
		FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_language l ON l.oid OPERATOR(pg_catalog.=) p.prolang
		WHERE p.pronamespace OPERATOR(pg_catalog.=) 'jobq'::pg_catalog.regnamespace
			AND p.prokind OPERATOR(pg_catalog.=) 'f'
			AND NOT p.proname OPERATOR(pg_catalog.~~) '\_%'
	LOOP
		EXECUTE pg_catalog.format(
			'ALTER FUNCTION jobq.%I(%s) SECURITY DEFINER%s',
			f.proname, f.args,
			CASE WHEN f.in_c THEN '' ELSE ' SET search_path = pg_catalog, pg_temp' END);
	END LOOP;
END
$$;

GRANT EXECUTE ON FUNCTION
	jobq.enqueue(text, jsonb, text, interval, integer, boolean, timestamptz, integer, jsonb),
	jobq.enqueue_batch(text, jsonb),
	jobq.get(text, text),
	jobq.exists(text, text),
	jobq.runs(text, text),
	jobq.progress(text, text),
	jobq.result(text, text),
	jobq._valid_queue(text)
TO jobq_producer;
GRANT EXECUTE ON PROCEDURE jobq.wait(text, text, interval, text, jsonb) TO jobq_producer;
-- jobq.wait runs as its caller (a procedure that COMMITs cannot be SECURITY DEFINER).
GRANT EXECUTE ON FUNCTION jobq._wake_count(text, text), jobq._wake_wait(text, text, bigint, float8)
TO jobq_producer, jobq_admin;

GRANT EXECUTE ON FUNCTION
	jobq.lease(text, text, integer, interval),
	jobq.heartbeat(text, text, jsonb, real, text, uuid),
	jobq.complete(text, text, jsonb, uuid),
	jobq.complete_batch(text, text[], uuid[], jsonb[]),
	jobq.fail(text, text, text, boolean, uuid),
	jobq.release(text, text, jsonb, uuid),
	jobq.reschedule(text, text, timestamptz, jsonb, jsonb, interval, integer),
	jobq.log(text, text, text, text, jsonb),
	jobq._valid_queue(text)
TO jobq_worker;

DO $$
DECLARE
	f record;
BEGIN
	FOR f IN
		SELECT p.proname, p.prokind, pg_catalog.pg_get_function_identity_arguments(p.oid) AS args
		FROM pg_catalog.pg_proc p
		WHERE p.pronamespace OPERATOR(pg_catalog.=) 'jobq'::pg_catalog.regnamespace
			AND (NOT p.proname OPERATOR(pg_catalog.~~) '\_%'
				OR p.proname OPERATOR(pg_catalog.=) ANY ('{_valid_queue,_queue}'::pg_catalog.name[]))
	LOOP
		EXECUTE pg_catalog.format('GRANT EXECUTE ON %s jobq.%I(%s) TO jobq_admin',
			CASE f.prokind WHEN 'p' THEN 'PROCEDURE' ELSE 'FUNCTION' END, f.proname, f.args);
	END LOOP;
END
$$;
GRANT SELECT ON ALL TABLES IN SCHEMA jobq TO jobq_admin;

/* What this part promises, checked: a violation stops the install. */
DO $$
BEGIN
	IF EXISTS (SELECT FROM pg_catalog.pg_proc p
			JOIN pg_catalog.pg_language l ON l.oid OPERATOR(pg_catalog.=) p.prolang
		WHERE p.pronamespace OPERATOR(pg_catalog.=) 'jobq'::pg_catalog.regnamespace
			AND p.prosecdef
			AND p.proconfig IS DISTINCT FROM CASE WHEN l.lanname OPERATOR(pg_catalog.=) 'c'
				THEN NULL ELSE '{"search_path=pg_catalog, pg_temp"}'::pg_catalog.text[] END) THEN
		RAISE EXCEPTION 'jobq: a SECURITY DEFINER function in SQL without the pinned search_path, or one in C with a SET clause';
	END IF;
END
$$;
