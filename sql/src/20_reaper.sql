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
 * _fail_expired(queues, ids, leases): puts the expired leases ids[i] of queues[i] through
 * jobq.fail(..., 'lease expired', retry => true, leases[i]) in one statement; returns how
 * many, and the queues that got a job back (pending again).
 */
CREATE FUNCTION jobq._fail_expired(queues text[], ids text[], leases uuid[],
	OUT n integer, OUT woken text[])
LANGUAGE sql AS $$
	WITH f AS MATERIALIZED (
		SELECT c.queue, jobq.fail(c.queue, c.id, 'lease expired', true, c.lease) AS status
		FROM ROWS FROM (pg_catalog.unnest(queues), pg_catalog.unnest(ids), pg_catalog.unnest(leases))
			AS c(queue, id, lease))
	SELECT pg_catalog.count(*)::integer,
		COALESCE(pg_catalog.array_agg(DISTINCT f.queue) FILTER (WHERE f.status = 'pending'), '{}')
	FROM f
$$;

/*
 * _reap_expired(batch): fails up to batch running jobs whose lease expired, with the error
 * event "lease expired"; returns how many. Wakes workers of queues that got jobs back.
 * The batch goes through _fail_expired at once. Should one job's transition raise (a
 * trigger of the user's, a statement timeout), the batch goes again one job at a time, each
 * in a subtransaction of its own, and the job that raises is skipped with a WARNING (and
 * tried again at the next tick): one bad job does not stop the reaping of the others.
 */
CREATE FUNCTION jobq._reap_expired(batch integer) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
	now timestamptz := pg_catalog.clock_timestamp();
	queues text[];
	ids text[];
	leases uuid[];
	n integer;
	woken text[];
	f record;
BEGIN
	SELECT pg_catalog.array_agg(c.queue), pg_catalog.array_agg(c.id), pg_catalog.array_agg(c.lease)
	INTO queues, ids, leases
	FROM (SELECT j.queue, j.id, j.lease FROM jobq.jobs j
		WHERE j.status = 'running' AND j.lease_expires_at < now
		ORDER BY j.lease_expires_at
		LIMIT batch
		FOR UPDATE OF j SKIP LOCKED) c;
	IF ids IS NULL THEN
		RETURN 0;
	END IF;
	BEGIN
		SELECT x.n, x.woken INTO n, woken FROM jobq._fail_expired(queues, ids, leases) x;
	EXCEPTION WHEN OTHERS THEN
		n := 0;
		woken := '{}';
		FOR i IN 1 .. pg_catalog.cardinality(ids) LOOP
			BEGIN
				f := jobq._fail_expired(queues[i:i], ids[i:i], leases[i:i]);
				n := n + f.n;
				woken := woken || f.woken;
			EXCEPTION WHEN OTHERS THEN
				RAISE WARNING 'jobq reaper: the expired lease of job "%" in queue "%" was not reaped: %',
					ids[i], queues[i], SQLERRM;
			END;
		END LOOP;
	END;
	PERFORM jobq._notify(w.queue) FROM (SELECT DISTINCT u.queue FROM pg_catalog.unnest(woken) AS u(queue)) w;
	RETURN n;
END
$$;
COMMENT ON FUNCTION jobq._reap_expired(integer) IS
	'reaper: fails up to batch running jobs whose lease expired ("lease expired", retry); returns how many';

/* _purge_rows(tids, now): deletes the ended runs at tids still past their retention at now. */
CREATE FUNCTION jobq._purge_rows(tids tid[], now timestamptz) RETURNS integer
LANGUAGE sql AS $$
	WITH c AS MATERIALIZED (
		SELECT h.ctid AS tid FROM jobq.history h JOIN jobq.queues q ON q.queue = h.queue
		WHERE h.ctid = ANY (tids)
			AND h.finished_at < now - q.retention
		FOR UPDATE OF h SKIP LOCKED),
	d AS (
		DELETE FROM jobq.history h USING c WHERE h.ctid = c.tid
		RETURNING h.queue, h.id, h.run),
	e AS (
		DELETE FROM jobq.job_events ev USING d
		WHERE ev.run = d.run
			AND NOT EXISTS (SELECT 1 FROM jobq.jobs l
				WHERE l.queue = d.queue AND l.id = d.id
					AND l.run = d.run))
	SELECT pg_catalog.count(*)::integer FROM d
$$;

/*
 * _purge(batch): deletes up to batch ended runs older than their queue's retention (by
 * finished_at), with their events; returns how many runs. Events of a run that is still
 * live (never the case for an ended run, but cheap to make sure) are kept. Should deleting
 * one run raise, the candidates go again one at a time and that run is skipped with a
 * WARNING, as _reap_expired does with a job.
 */
CREATE FUNCTION jobq._purge(batch integer) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
	now timestamptz := pg_catalog.clock_timestamp();
	candidates tid[];
	n integer;
BEGIN
	-- Candidates by row address: the history's key leads with (id, queue), not run.
	SELECT pg_catalog.array_agg(x.ctid) INTO candidates FROM (
		SELECT h.ctid FROM jobq.queues q
		CROSS JOIN LATERAL (
			SELECT h.ctid FROM jobq.history h
			WHERE h.queue = q.queue
				AND h.finished_at < now - q.retention
			ORDER BY h.finished_at
			LIMIT batch) h
		LIMIT batch) x;
	IF candidates IS NULL THEN
		RETURN 0;
	END IF;
	BEGIN
		n := jobq._purge_rows(candidates, now);
	EXCEPTION WHEN OTHERS THEN
		-- One run's deletion raised (a trigger of the user's, say): purge the candidates one
		-- at a time, skipping with a WARNING the ones that raise, so retention goes on.
		n := 0;
		FOR i IN 1 .. pg_catalog.cardinality(candidates) LOOP
			BEGIN
				n := n + jobq._purge_rows(ARRAY[candidates[i]], now);
			EXCEPTION WHEN OTHERS THEN
				RAISE WARNING 'jobq reaper: an ended run past its retention was not purged: %', SQLERRM;
			END;
		END LOOP;
	END;
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

/*
 * compact(min_size, max_rows): rebuilds the bloated B-tree indexes of jobq's tables.
 *
 * A snapshot held open while jobs flow (a long transaction, a long report) keeps every
 * dead index entry of the busy tables; when it ends, VACUUM frees the entries but a B-tree
 * never gives pages back to the file system, so the indexes of the live set stay at their
 * peak (5x the steady size after 60 s in bench/snapshot.sh). An index is rebuilt when it is
 * larger than min_size and than 4 times what its table's rows need (an estimate: 64 bytes
 * an entry), and its table holds at most max_rows rows (so the rebuild is short: REINDEX
 * blocks the table's writers while it runs). It waits at most 100 ms for its lock and
 * skips the index otherwise, and does nothing while a transaction older than 1 s holds a
 * snapshot (a rebuild would keep what that snapshot may see). The reaper calls it every jobq.compact_interval. Returns the
 * indexes rebuilt with their sizes before and after.
 */
CREATE FUNCTION jobq.compact(min_size bigint DEFAULT 1048576, max_rows bigint DEFAULT 100000)
RETURNS TABLE (index_name regclass, size_before bigint, size_after bigint)
LANGUAGE plpgsql AS $$
DECLARE
	r record;
	saved text := pg_catalog.current_setting('lock_timeout');
BEGIN
	IF min_size IS NULL OR min_size < 0 OR max_rows IS NULL OR max_rows < 0 THEN
		RAISE EXCEPTION 'min_size and max_rows must be non-negative, got % and %', min_size, max_rows
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	-- While a transaction holds an old snapshot, the dead entries it may still see are
	-- kept by a rebuild as well: wait until it ends.
	IF EXISTS (SELECT FROM pg_catalog.pg_stat_activity a
		WHERE a.backend_xmin IS NOT NULL AND a.pid <> pg_catalog.pg_backend_pid()
			AND a.xact_start < pg_catalog.clock_timestamp() - interval '1 second') THEN
		RETURN;
	END IF;
	FOR r IN
		SELECT i.indexrelid::pg_catalog.regclass AS idx,
			pg_catalog.pg_relation_size(i.indexrelid) AS size
		FROM pg_catalog.pg_index i
		JOIN pg_catalog.pg_class t ON t.oid = i.indrelid
		JOIN pg_catalog.pg_class x ON x.oid = i.indexrelid
		JOIN pg_catalog.pg_am a ON a.oid = x.relam
		-- the rows: the last VACUUM's or ANALYZE's count, or the statistics' live rows when
		-- more (a table being loaded that was never analysed has reltuples -1, not 0 rows)
		CROSS JOIN LATERAL (SELECT GREATEST(t.reltuples::bigint,
			pg_catalog.pg_stat_get_live_tuples(t.oid), 0) AS n) rows
		WHERE t.relnamespace = 'jobq'::pg_catalog.regnamespace AND t.relkind = 'r'
			AND a.amname = 'btree' AND rows.n <= max_rows
			AND pg_catalog.pg_relation_size(i.indexrelid) > min_size
			AND pg_catalog.pg_relation_size(i.indexrelid) > 4 * (64 * rows.n + 8192)
		ORDER BY 2 DESC
	LOOP
		BEGIN
			PERFORM pg_catalog.set_config('lock_timeout', '100ms', true);
			EXECUTE pg_catalog.format('REINDEX INDEX %s', r.idx);
			PERFORM pg_catalog.set_config('lock_timeout', saved, true);
			index_name := r.idx;
			size_before := r.size;
			size_after := pg_catalog.pg_relation_size(r.idx);
			RETURN NEXT;
		EXCEPTION WHEN lock_not_available THEN
			PERFORM pg_catalog.set_config('lock_timeout', saved, true);
		END;
	END LOOP;
END
$$;
COMMENT ON FUNCTION jobq.compact(bigint, bigint) IS
	'rebuilds B-tree indexes of jobq tables of at most max_rows rows that are over min_size and 4x what their rows need (REINDEX, 100 ms lock timeout, skipped when busy); the reaper calls it every jobq.compact_interval';

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
