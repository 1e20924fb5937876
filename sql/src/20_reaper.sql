/*
 * jobq 0.1.0 install script, part 20: the reaper's work and its control.
 *
 * The background worker (bgworker/reaper.c) calls jobq.reap(batch) once per short
 * transaction, over and over while a call comes back with a full batch of either kind of
 * work; tests and operators call the same function on demand. One call:
 *   1. takes up to `batch` running jobs whose lease expired, oldest expiry first, through
 *      jobs_running_idx, FOR UPDATE SKIP LOCKED (a row some worker is writing right now is
 *      left for the next tick), and puts each through jobq.fail(..., 'lease expired',
 *      retry => true, lease): back to pending with backoff while attempts remain, else
 *      failed; stopped or cancelled when so desired. Queues that got jobs back are notified.
 *   2. deletes up to `batch` ended runs (jobq.history) whose finished_at is older than their
 *      queue's retention, with their events; rows locked by someone else are skipped.
 * Row locks are held on at most `batch` rows of each kind, until the caller commits.
 */

-- What the purge scans: one queue's ended runs by age.
CREATE INDEX history_retention_idx ON jobq.history (queue, finished_at);

/*
 * _reap_expired(batch): fails up to batch running jobs whose lease expired, with the error
 * event "lease expired"; returns how many. Wakes workers of queues that got jobs back.
 */
CREATE FUNCTION jobq._reap_expired(batch integer) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
	now timestamptz := pg_catalog.clock_timestamp();
	n integer;
	woken text[];
BEGIN
	WITH c AS MATERIALIZED (
		SELECT j.queue, j.id, j.lease FROM jobq.jobs j
		WHERE j.status = 'running' AND j.lease_expires_at < now
		ORDER BY j.lease_expires_at
		LIMIT batch
		FOR UPDATE OF j SKIP LOCKED),
	f AS MATERIALIZED (
		SELECT c.queue, jobq.fail(c.queue, c.id, 'lease expired', true, c.lease) AS status
		FROM c)
	SELECT pg_catalog.count(*)::integer,
		pg_catalog.array_agg(DISTINCT f.queue) FILTER (WHERE f.status = 'pending')
	INTO n, woken
	FROM f;
	PERFORM jobq._notify(w.queue) FROM pg_catalog.unnest(woken) AS w(queue);
	RETURN n;
END
$$;
COMMENT ON FUNCTION jobq._reap_expired(integer) IS
	'reaper: fails up to batch running jobs whose lease expired ("lease expired", retry); returns how many';

/*
 * _purge(batch): deletes up to batch ended runs older than their queue's retention (by
 * finished_at), with their events; returns how many runs. Events of a run that is still
 * live (never the case for an ended run, but cheap to make sure) are kept.
 */
CREATE FUNCTION jobq._purge(batch integer) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
	now timestamptz := pg_catalog.clock_timestamp();
	candidates bigint[];
	n integer;
BEGIN
	SELECT pg_catalog.array_agg(x.run) INTO candidates FROM (
		SELECT h.run FROM jobq.queues q
		CROSS JOIN LATERAL (
			SELECT h.run FROM jobq.history h
			WHERE h.queue = q.queue
				AND h.finished_at < now - q.retention
			ORDER BY h.finished_at
			LIMIT batch) h
		LIMIT batch) x;
	IF candidates IS NULL THEN
		RETURN 0;
	END IF;
	WITH c AS MATERIALIZED (
		SELECT h.run FROM jobq.history h JOIN jobq.queues q ON q.queue = h.queue
		WHERE h.run = ANY (candidates)
			AND h.finished_at < now - q.retention
		FOR UPDATE OF h SKIP LOCKED),
	d AS (
		DELETE FROM jobq.history h USING c WHERE h.run = c.run
		RETURNING h.queue, h.id, h.run),
	e AS (
		DELETE FROM jobq.job_events ev USING d
		WHERE ev.run = d.run
			AND NOT EXISTS (SELECT 1 FROM jobq.jobs l
				WHERE l.queue = d.queue AND l.id = d.id
					AND l.run = d.run))
	SELECT pg_catalog.count(*)::integer INTO n FROM d;
	RETURN n;
END
$$;
COMMENT ON FUNCTION jobq._purge(integer) IS
	'reaper: deletes up to batch ended runs older than their queue''s retention, with their events; returns how many';

/*
 * reap(batch): one round of the reaper's work in the caller's transaction (see the head
 * of this file). batch defaults to jobq.reaper_batch (1000). Returns how many expired jobs
 * were failed (reaped) and how many ended runs were deleted (purged); a count equal to
 * batch means there may be more.
 */
CREATE FUNCTION jobq.reap(batch integer DEFAULT NULL, OUT reaped integer, OUT purged integer)
LANGUAGE plpgsql AS $$
BEGIN
	batch := COALESCE(batch,
		NULLIF(pg_catalog.current_setting('jobq.reaper_batch', true), '')::integer,
		1000);
	IF batch < 1 THEN
		RAISE EXCEPTION 'batch must be at least 1, got %', batch
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	reaped := jobq._reap_expired(batch);
	purged := jobq._purge(batch);
END
$$;
COMMENT ON FUNCTION jobq.reap(integer) IS
	'the reaper''s work, on demand: fails up to batch expired leases ("lease expired", retried while attempts remain) and purges up to batch ended runs past retention; returns (reaped, purged)';

/* ------------------------------------------------------------ worker control */

CREATE FUNCTION jobq.start_reaper() RETURNS integer
LANGUAGE c VOLATILE STRICT AS 'MODULE_PATHNAME', 'jobq_start_reaper';
COMMENT ON FUNCTION jobq.start_reaper() IS
	'launches a reaper for the current database as a dynamic background worker (for servers without jobq in shared_preload_libraries); returns its pid, or the pid of the reaper already serving the database';
REVOKE ALL ON FUNCTION jobq.start_reaper() FROM PUBLIC;

CREATE FUNCTION jobq.stop_reaper() RETURNS boolean
LANGUAGE c VOLATILE STRICT AS 'MODULE_PATHNAME', 'jobq_stop_reaper';
COMMENT ON FUNCTION jobq.stop_reaper() IS
	'asks the reaper of the current database to exit for good (until the server restarts or jobq.start_reaper()); false when none runs';
REVOKE ALL ON FUNCTION jobq.stop_reaper() FROM PUBLIC;
