/*
 * jobq 0.1.0 install script, part 10: the job lifecycle.
 *
 * What a user (not a worker) does to a job, and how to watch it:
 *   update          versioned update (Grepr): the current version retires `finished`, a new
 *                   version with the new payload goes `pending`; with rollback_enabled, a
 *                   new version that fails for good is replaced by one made from the last
 *                   good payload (jobq._rollback, called by jobq._fail_final)
 *   stop, resume    park a job (at once when pending; a running job learns it from its
 *                   heartbeat and parks itself with release, or the reaper parks it when its
 *                   lease expires) and put it back to pending with its saved state
 *   cancel          like stop, but final: the job ends `cancelled`
 *   retry           a `failed` job goes back to pending with its attempts reset (Teraslice
 *                   _recover); the run moves back from jobq.history to the live set
 *   delete          marks the ended runs of a job deleted: gone from every listing and from
 *                   get/runs/versions, kept in jobq.history (and its events) until retention
 *   progress, result, errors, get_job, search_jobs_by_start_date, wait, views running/failed
 *
 * Versions cost writes only when update is used: jobq.job_versions holds the retired
 * versions of a run (with the retired lease token, which fences the old worker: its
 * complete/fail raise 55000, its heartbeat answers the retired version's status); the
 * current version is the job's row in jobq.jobs or jobq.history. A statement trigger on
 * jobq.history deletes the versions of runs that are purged.
 *
 * Every call that changes a live job locks its row (FOR UPDATE) first, so it serialises
 * with the worker calls of the hot path, which lock the same row. Illegal transitions
 * raise 55000 and change nothing; the full table is in README.md, "Job lifecycle".
 */

/* ---------------------------------------------------------------- storage */

CREATE TABLE jobq.job_versions (
	queue			text COLLATE "C" NOT NULL,
	id				text COLLATE "C" NOT NULL,
	run				bigint NOT NULL,
	version			integer NOT NULL,
	status			text NOT NULL CHECK (status IN ('finished', 'failed')),
	desired_status	text NOT NULL,
	payload			jsonb NOT NULL,
	rollback_enabled boolean NOT NULL,
	attempt			integer NOT NULL,
	lease			uuid,
	created_at		timestamptz NOT NULL,
	started_at		timestamptz,
	finished_at		timestamptz NOT NULL,
	PRIMARY KEY (run, version)
);
COMMENT ON TABLE jobq.job_versions IS
	'retired versions of jobs (written by jobq.update and rollback); the current version is the job itself';
CREATE INDEX job_versions_job_idx ON jobq.job_versions (queue, id, run, version);

-- What jobq.failed lists: failed runs, newest first.
CREATE INDEX history_failed_idx ON jobq.history (finished_at) WHERE status = 'failed';

/* Purged runs take their versions with them; a run moved back to the live set keeps them. */
CREATE FUNCTION jobq._history_purged() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
	DELETE FROM jobq.job_versions v USING gone g
	WHERE v.queue = g.queue AND v.id = g.id AND v.run = g.run
		AND NOT EXISTS (SELECT 1 FROM jobq.jobs l
			WHERE l.queue = g.queue AND l.id = g.id AND l.run = g.run);
	RETURN NULL;
END
$$;
CREATE TRIGGER history_purged AFTER DELETE ON jobq.history
	REFERENCING OLD TABLE AS gone FOR EACH STATEMENT
	EXECUTE FUNCTION jobq._history_purged();

/* ------------------------------------------------------------- internals */

/* A live row as the public row type. */
CREATE FUNCTION jobq._as_job(j jobq.jobs) RETURNS jobq.job
LANGUAGE sql IMMUTABLE AS $$
	SELECT j.queue, j.id, j.run, j.version, j.status, j.desired_status, j.payload, j.state,
		j.result, j.priority, j.run_at, j.timeout, j.max_retries, j.attempt, j.lease,
		j.lease_expires_at, j.worker, j.progress, j.message, j.persist, j.rollback_enabled,
		j.created_by, j.created_at, j.started_at, j.updated_at, j.finished_at
$$;

/*
 * _not_live(queue, id, verb): for a call that needs a live job and found none; raises
 * 55000 when the job has ended (naming its status), else P0002. Never returns.
 */
CREATE FUNCTION jobq._not_live(queue text, id text, verb text) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
	s text;
BEGIN
	SELECT h.status INTO s FROM jobq.history h
	WHERE h.queue = _not_live.queue AND h.id = _not_live.id AND h.deleted_at IS NULL
	ORDER BY h.run DESC LIMIT 1;
	IF FOUND THEN
		RAISE EXCEPTION 'cannot % job "%" in queue "%": it is %', verb, id, queue, s
			USING ERRCODE = 'object_not_in_prerequisite_state',
				DETAIL = 'Only live jobs (pending, running, stopped) can be changed.';
	END IF;
	PERFORM jobq._valid_queue(queue);
	RAISE EXCEPTION 'job "%" not found in queue "%"', id, queue USING ERRCODE = 'no_data_found';
END
$$;

/* _wrong_state(j, verb, why): raises 55000 for a live job that cannot take verb. */
CREATE FUNCTION jobq._wrong_state(j jobq.jobs, verb text, why text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
	RAISE EXCEPTION 'cannot % job "%" in queue "%": it is %', verb, j.id, j.queue, why
		USING ERRCODE = 'object_not_in_prerequisite_state';
END
$$;

/* When the job's current version began: the previous version's retirement, or creation. */
CREATE FUNCTION jobq._version_since(j jobq.jobs) RETURNS timestamptz
LANGUAGE sql STABLE AS $$
	SELECT COALESCE((SELECT v.finished_at FROM jobq.job_versions v
		WHERE v.queue = j.queue AND v.id = j.id AND v.run = j.run
			AND v.version = j.version - 1), j.created_at)
$$;

/*
 * _retire(j, status, desired_status): records live job j's current version in
 * jobq.job_versions as retired, with its lease token (which fences its worker).
 */
CREATE FUNCTION jobq._retire(j jobq.jobs, status text, desired_status text) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
	since timestamptz := jobq._version_since(j);
BEGIN
	INSERT INTO jobq.job_versions (queue, id, run, version, status, desired_status, payload,
		rollback_enabled, attempt, lease, created_at, started_at, finished_at)
	VALUES (j.queue, j.id, j.run, j.version, _retire.status, _retire.desired_status,
		j.payload, j.rollback_enabled, j.attempt,
		CASE WHEN j.status = 'running' THEN j.lease END, since,
		CASE WHEN j.started_at >= since THEN j.started_at END, pg_catalog.clock_timestamp());
END
$$;

/*
 * _retired_version(queue, id, lease): the version whose lease token this was, if it was
 * retired by update or rollback; else NULL. jobq._leased and the C hot path ask it when a
 * token is refused, to say so.
 */
CREATE FUNCTION jobq._retired_version(queue text, id text, lease uuid) RETURNS integer
LANGUAGE sql STABLE AS $$
	SELECT v.version FROM jobq.job_versions v
	WHERE v.queue = $1 AND v.id = $2 AND v.lease = $3
	ORDER BY v.run DESC, v.version DESC LIMIT 1
$$;

/*
 * _rollback(j): called by jobq._fail_final when live job j (locked, running, its failure
 * already recorded) fails for good with rollback_enabled. Retires j's version as failed
 * and makes a new version from the payload of the last version that retired finished;
 * it goes pending with fresh attempts and rollback disabled (so a failing rollback ends
 * the job). Returns false, changing nothing, when there is no such version.
 */
CREATE FUNCTION jobq._rollback(j jobq.jobs) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
	good jobq.job_versions;
	now timestamptz := pg_catalog.clock_timestamp();
BEGIN
	SELECT * INTO good FROM jobq.job_versions v
	WHERE v.queue = j.queue AND v.id = j.id AND v.run = j.run AND v.status = 'finished'
	ORDER BY v.version DESC LIMIT 1;
	IF NOT FOUND THEN
		RETURN false;
	END IF;
	PERFORM jobq._retire(j, 'failed', j.desired_status);
	UPDATE jobq.jobs x SET version = x.version + 1, payload = good.payload,
		rollback_enabled = false, status = 'pending', desired_status = 'running',
		attempt = 0, lease = NULL, lease_expires_at = NULL, worker = NULL,
		run_at = now, updated_at = now
	WHERE x.queue = j.queue AND x.id = j.id AND x.persist = j.persist
	RETURNING * INTO j;
	PERFORM jobq._event(j, 'warning', 'rolled back',
		pg_catalog.jsonb_build_object('failed_version', j.version - 1,
			'payload_of_version', good.version));
	PERFORM jobq._notify(j.queue);
	RETURN true;
END
$$;

/* ---------------------------------------------------------------- update */

/*
 * update(queue, id, payload, rollback_enabled): versioned update of a live job. The
 * current version retires `finished` (desired `finished`); if it was running, its lease
 * is fenced. The new version (version + 1) has the new payload, fresh attempts, keeps the
 * job's state, progress and message, and is pending (a job scheduled for later keeps its
 * run_at; otherwise it is due now). Returns the job.
 */
CREATE FUNCTION jobq.update(
	queue text,
	id text,
	payload jsonb,
	rollback_enabled boolean DEFAULT false)
RETURNS jobq.job
LANGUAGE plpgsql AS $$
#variable_conflict use_variable
DECLARE
	j jobq.jobs;
	now timestamptz := pg_catalog.clock_timestamp();
BEGIN
	IF payload IS NULL THEN
		RAISE EXCEPTION 'payload must not be null' USING ERRCODE = 'null_value_not_allowed';
	END IF;
	IF rollback_enabled IS NULL THEN
		RAISE EXCEPTION 'rollback_enabled must not be null' USING ERRCODE = 'null_value_not_allowed';
	END IF;
	SELECT * INTO j FROM jobq.jobs x WHERE x.queue = queue AND x.id = id FOR UPDATE;
	IF NOT FOUND THEN
		PERFORM jobq._not_live(queue, id, 'update');
	END IF;
	IF j.desired_status = 'cancelled' THEN
		PERFORM jobq._wrong_state(j, 'update', 'being cancelled');
	END IF;
	PERFORM jobq._retire(j, 'finished', 'finished');
	UPDATE jobq.jobs x SET version = x.version + 1, payload = payload,
		rollback_enabled = rollback_enabled, status = 'pending', desired_status = 'running',
		attempt = 0, lease = NULL, lease_expires_at = NULL, worker = NULL,
		run_at = CASE WHEN x.status = 'pending' AND x.attempt = 0 THEN x.run_at ELSE now END,
		updated_at = now
	WHERE x.queue = j.queue AND x.id = j.id AND x.persist = j.persist
	RETURNING * INTO j;
	PERFORM jobq._event(j, 'info', 'updated',
		pg_catalog.jsonb_build_object('from_version', j.version - 1,
			'rollback_enabled', rollback_enabled));
	PERFORM jobq._notify(queue);
	RETURN jobq._as_job(j);
END
$$;
COMMENT ON FUNCTION jobq.update(text, text, jsonb, boolean) IS
	'versioned update of a live job: the current version retires finished (its lease is fenced), version + 1 with the new payload goes pending; with rollback_enabled, if it fails for good a new version from the last good payload goes pending; 55000 for an ended or cancelling job';

/*
 * versions(queue, id): the versions of the job that jobq.get shows (its live run, else its
 * latest run), oldest first: the retired ones, then the current one.
 */
CREATE FUNCTION jobq.versions(queue text, id text)
RETURNS TABLE (version integer, status text, desired_status text, payload jsonb,
	rollback_enabled boolean, attempt integer, created_at timestamptz,
	started_at timestamptz, finished_at timestamptz)
LANGUAGE plpgsql STABLE AS $$
DECLARE
	j jobq.job;
	since timestamptz;
BEGIN
	j := jobq.get(queue, id);
	SELECT v.finished_at INTO since FROM jobq.job_versions v
	WHERE v.queue = j.queue AND v.id = j.id AND v.run = j.run AND v.version = j.version - 1;
	since := COALESCE(since, j.created_at);
	RETURN QUERY
		SELECT v.version, v.status, v.desired_status, v.payload, v.rollback_enabled,
			v.attempt, v.created_at, v.started_at, v.finished_at
		FROM jobq.job_versions v
		WHERE v.queue = j.queue AND v.id = j.id AND v.run = j.run AND v.version < j.version
		UNION ALL
		SELECT j.version, j.status, j.desired_status, j.payload, j.rollback_enabled,
			j.attempt, since, CASE WHEN j.started_at >= since THEN j.started_at END,
			j.finished_at
		ORDER BY 1;
END
$$;
COMMENT ON FUNCTION jobq.versions(text, text) IS
	'the job''s versions (of the run jobq.get shows), oldest first: version, status, desired_status, payload, rollback_enabled, attempt, times';

/* ------------------------------------------------------ stop, resume, cancel */

/*
 * stop(queue, id): a pending job stops at once; a running job gets desired_status
 * `stopped`, which its next heartbeat returns: the worker then parks it with release (or
 * the reaper parks it when its lease expires). Stopping a stopped job, or a running job
 * already asked to stop, changes nothing. Returns the job.
 */
CREATE FUNCTION jobq.stop(queue text, id text) RETURNS jobq.job
LANGUAGE plpgsql AS $$
DECLARE
	j jobq.jobs;
	now timestamptz := pg_catalog.clock_timestamp();
BEGIN
	SELECT * INTO j FROM jobq.jobs x WHERE x.queue = stop.queue AND x.id = stop.id FOR UPDATE;
	IF NOT FOUND THEN
		PERFORM jobq._not_live(queue, id, 'stop');
	END IF;
	IF j.desired_status = 'cancelled' THEN
		PERFORM jobq._wrong_state(j, 'stop', 'being cancelled');
	END IF;
	IF j.status = 'pending' THEN
		UPDATE jobq.jobs x SET status = 'stopped', desired_status = 'stopped', updated_at = now
		WHERE x.queue = j.queue AND x.id = j.id AND x.persist = j.persist
		RETURNING * INTO j;
		PERFORM jobq._event(j, 'info', 'stopped');
	ELSIF j.status = 'running' AND j.desired_status <> 'stopped' THEN
		UPDATE jobq.jobs x SET desired_status = 'stopped', updated_at = now
		WHERE x.queue = j.queue AND x.id = j.id AND x.persist = j.persist
		RETURNING * INTO j;
		PERFORM jobq._event(j, 'info', 'stop requested');
	END IF;
	RETURN jobq._as_job(j);
END
$$;
COMMENT ON FUNCTION jobq.stop(text, text) IS
	'stops a job: pending -> stopped at once; running -> desired_status stopped (its heartbeat says so, release or lease expiry parks it); 55000 for an ended or cancelling job';

/*
 * resume(queue, id): a stopped job goes back to pending with its saved state, so its next
 * attempt continues where it left off; a running job asked to stop is told to go on.
 * Resuming a pending or running job changes nothing. Returns the job.
 */
CREATE FUNCTION jobq.resume(queue text, id text) RETURNS jobq.job
LANGUAGE plpgsql AS $$
DECLARE
	j jobq.jobs;
	now timestamptz := pg_catalog.clock_timestamp();
BEGIN
	SELECT * INTO j FROM jobq.jobs x WHERE x.queue = resume.queue AND x.id = resume.id
		FOR UPDATE;
	IF NOT FOUND THEN
		PERFORM jobq._not_live(queue, id, 'resume');
	END IF;
	IF j.desired_status = 'cancelled' THEN
		PERFORM jobq._wrong_state(j, 'resume', 'being cancelled');
	END IF;
	IF j.status = 'stopped' OR j.desired_status = 'stopped' THEN
		UPDATE jobq.jobs x SET
			status = CASE WHEN x.status = 'stopped' THEN 'pending' ELSE x.status END,
			desired_status = 'running', updated_at = now
		WHERE x.queue = j.queue AND x.id = j.id AND x.persist = j.persist
		RETURNING * INTO j;
		PERFORM jobq._event(j, 'info', 'resumed');
		PERFORM jobq._notify(queue);
	END IF;
	RETURN jobq._as_job(j);
END
$$;
COMMENT ON FUNCTION jobq.resume(text, text) IS
	'resumes a stopped job (back to pending with its saved state) or withdraws a stop request; 55000 for an ended or cancelling job';

/*
 * cancel(queue, id): like stop, but final. A pending or stopped job ends `cancelled` at
 * once; a running job gets desired_status `cancelled` (heartbeat returns it; release, a
 * failure or lease expiry ends it cancelled; a complete still finishes it). Cancelling a
 * job already asked to cancel changes nothing. Returns the job (its ended run, if ended).
 */
CREATE FUNCTION jobq.cancel(queue text, id text) RETURNS jobq.job
LANGUAGE plpgsql AS $$
DECLARE
	j jobq.jobs;
BEGIN
	SELECT * INTO j FROM jobq.jobs x WHERE x.queue = cancel.queue AND x.id = cancel.id
		FOR UPDATE;
	IF NOT FOUND THEN
		PERFORM jobq._not_live(queue, id, 'cancel');
	END IF;
	IF j.status IN ('pending', 'stopped') THEN
		j.desired_status := 'cancelled';
		PERFORM jobq._event(j, 'info', 'cancelled');
		RETURN jobq._end(j, 'cancelled');
	ELSIF j.desired_status <> 'cancelled' THEN
		UPDATE jobq.jobs x SET desired_status = 'cancelled',
			updated_at = pg_catalog.clock_timestamp()
		WHERE x.queue = j.queue AND x.id = j.id AND x.persist = j.persist
		RETURNING * INTO j;
		PERFORM jobq._event(j, 'info', 'cancel requested');
	END IF;
	RETURN jobq._as_job(j);
END
$$;
COMMENT ON FUNCTION jobq.cancel(text, text) IS
	'cancels a job: pending or stopped -> cancelled at once; running -> desired_status cancelled (ends cancelled on release, failure or lease expiry); 55000 for an ended job';

/* ------------------------------------------------------------ retry, delete */

/*
 * retry(queue, id): Teraslice's _recover. The job's latest run must have ended `failed`;
 * it moves back from jobq.history to the live set (same run, version, payload and saved
 * state) as pending, due now, with its attempts reset, and an event says so.
 */
CREATE FUNCTION jobq.retry(queue text, id text) RETURNS jobq.job
LANGUAGE plpgsql AS $$
DECLARE
	h jobq.history;
	j jobq.jobs;
	now timestamptz := pg_catalog.clock_timestamp();
BEGIN
	PERFORM jobq._check_id(id);
	-- Serialise with enqueue of the same id: the run must not become live twice.
	PERFORM jobq._lock_bucket(jobq._key_bucket(queue, id));
	SELECT * INTO j FROM jobq.jobs x WHERE x.queue = retry.queue AND x.id = retry.id;
	IF FOUND THEN
		PERFORM jobq._wrong_state(j, 'retry', j.status);
	END IF;
	SELECT * INTO h FROM jobq.history x
	WHERE x.queue = retry.queue AND x.id = retry.id AND x.deleted_at IS NULL
	ORDER BY x.run DESC LIMIT 1
	FOR UPDATE;
	IF NOT FOUND THEN
		PERFORM jobq._valid_queue(queue);
		RAISE EXCEPTION 'job "%" not found in queue "%"', id, queue USING ERRCODE = 'no_data_found';
	END IF;
	IF h.status <> 'failed' THEN
		RAISE EXCEPTION 'cannot retry job "%" in queue "%": it is %', id, queue, h.status
			USING ERRCODE = 'object_not_in_prerequisite_state',
				DETAIL = 'Only a failed job can be retried.';
	END IF;
	-- Insert before delete: the history trigger keeps the versions of a run that is live.
	INSERT INTO jobq.jobs AS x (queue, id, run, version, status, desired_status, payload,
		state, result, priority, run_at, timeout, max_retries, attempt, progress, message,
		persist, rollback_enabled, created_by, created_at, started_at, updated_at)
	VALUES (h.queue, h.id, h.run, h.version, 'pending', 'running', h.payload, h.state, NULL,
		h.priority, now, h.timeout, h.max_retries, 0, h.progress, h.message, h.persist,
		h.rollback_enabled, h.created_by, h.created_at, h.started_at, now)
	RETURNING * INTO j;
	DELETE FROM jobq.history x WHERE x.queue = h.queue AND x.id = h.id AND x.run = h.run;
	PERFORM jobq._event(j, 'info', 'retried',
		pg_catalog.jsonb_build_object('attempts', h.attempt));
	PERFORM jobq._notify(queue);
	RETURN jobq._as_job(j);
END
$$;
COMMENT ON FUNCTION jobq.retry(text, text) IS
	'puts a failed job back to pending with its attempts reset and its saved state (Teraslice _recover); 55000 unless the job is failed';

/*
 * delete(queue, id): marks every ended run of an ended job deleted (Teraslice): it is gone
 * from jobq.search, search_jobs_by_start_date, queue_stats, the views, and from get, runs,
 * versions, progress and result (P0002), so it cannot be retried; its rows and events stay
 * for audit until the queue's retention purges them. 55000 while the job is live.
 * Returns the latest run as it was.
 */
CREATE FUNCTION jobq.delete(queue text, id text) RETURNS jobq.job
LANGUAGE plpgsql AS $$
#variable_conflict use_variable
DECLARE
	j jobq.jobs;
	r jobq.job;
	n bigint;
BEGIN
	SELECT * INTO j FROM jobq.jobs x WHERE x.queue = queue AND x.id = id;
	IF FOUND THEN
		RAISE EXCEPTION 'cannot delete job "%" in queue "%": it is %', id, queue, j.status
			USING ERRCODE = 'object_not_in_prerequisite_state',
				DETAIL = 'Only ended jobs (finished, failed, cancelled) can be deleted.',
				HINT = 'Cancel it first.';
	END IF;
	r := jobq.get(queue, id);
	UPDATE jobq.history x SET deleted_at = pg_catalog.clock_timestamp()
	WHERE x.queue = queue AND x.id = id AND x.deleted_at IS NULL;
	GET DIAGNOSTICS n = ROW_COUNT;
	INSERT INTO jobq.job_events (queue, id, run, version, attempt, level, message, detail)
	VALUES (r.queue, r.id, r.run, r.version, r.attempt, 'info', 'deleted',
		pg_catalog.jsonb_build_object('runs', n));
	RETURN r;
END
$$;
COMMENT ON FUNCTION jobq.delete(text, text) IS
	'deletes an ended job: its runs are marked deleted, gone from listings and lookups, kept for audit until retention; 55000 while it is live';

/* ---------------------------------------------------------------- monitoring */

CREATE FUNCTION jobq.progress(queue text, id text,
	OUT status text, OUT progress real, OUT result_code integer)
LANGUAGE sql STABLE AS $$
	SELECT j.status, COALESCE(j.progress, 0),
		CASE j.status WHEN 'finished' THEN 0 WHEN 'failed' THEN 1 WHEN 'cancelled' THEN 1
			ELSE -1 END
	FROM jobq.get($1, $2) j
$$;
COMMENT ON FUNCTION jobq.progress(text, text) IS
	'the job''s status, progress (0-100) and result_code: -1 while not ended, 0 finished, 1 failed or cancelled (ZeroG)';

CREATE FUNCTION jobq.result(queue text, id text) RETURNS jsonb
LANGUAGE sql STABLE AS $$
	SELECT j.result FROM jobq.get($1, $2) j
$$;
COMMENT ON FUNCTION jobq.result(text, text) IS
	'the result the job''s worker passed to complete; NULL until it finished';

/*
 * errors(queue, since, lim): error events across the jobs of a queue (all queues when
 * queue is NULL) at or after since, oldest first, at most lim.
 */
CREATE FUNCTION jobq.errors(
	queue text DEFAULT NULL,
	since timestamptz DEFAULT NULL,
	lim integer DEFAULT 100)
RETURNS SETOF jobq.job_events
LANGUAGE plpgsql STABLE AS $$
BEGIN
	IF lim IS NULL OR lim < 0 OR lim > 10000 THEN
		RAISE EXCEPTION 'lim must be between 0 and 10000, got %', COALESCE(lim::text, 'NULL')
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF queue IS NULL THEN
		RETURN QUERY SELECT * FROM jobq.job_events e
		WHERE e.level = 'error' AND e.at >= COALESCE(since, '-infinity')
		ORDER BY e.at, e.eid LIMIT lim;
		RETURN;
	END IF;
	IF NOT EXISTS (SELECT 1 FROM jobq.queues q WHERE q.queue = errors.queue) THEN
		PERFORM jobq._valid_queue(queue);
		RAISE EXCEPTION 'queue "%" does not exist', queue USING ERRCODE = 'no_data_found';
	END IF;
	RETURN QUERY SELECT * FROM jobq.job_events e
	WHERE e.level = 'error' AND e.queue = errors.queue
		AND e.at >= COALESCE(since, '-infinity')
	ORDER BY e.at, e.eid LIMIT lim;
END
$$;
COMMENT ON FUNCTION jobq.errors(text, timestamptz, integer) IS
	'error events across the jobs of a queue (NULL: all queues) at or after since, oldest first, at most lim (0..10000)';

/* ------------------------------------------------------------------ HarperDB */

CREATE TYPE jobq.harperdb_job AS (
	id					text,
	"user"				text,
	type				text,
	status				text,
	message				text,
	job_body			jsonb,
	created_datetime	bigint,
	start_datetime		bigint,
	end_datetime		bigint,
	"__createdtime__"	bigint,
	"__updatedtime__"	bigint,
	start_datetime_converted text,
	end_datetime_converted text
);
COMMENT ON TYPE jobq.harperdb_job IS
	'a job in HarperDB''s get_job fields: type is the queue, user the creator, job_body the payload, times in epoch milliseconds and *_converted ISO 8601 UTC';

CREATE FUNCTION jobq._epoch_ms(t timestamptz) RETURNS bigint
LANGUAGE sql IMMUTABLE AS $$
	SELECT pg_catalog.trunc(pg_catalog.extract('epoch', t) * 1000)::bigint
$$;

CREATE FUNCTION jobq._iso(t timestamptz) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
	SELECT pg_catalog.to_char(pg_catalog.timezone('UTC', t), 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')
$$;

/*
 * _harperdb(j): j in HarperDB's fields. status: COMPLETE (finished), ERROR (failed),
 * CANCELLED, else IN_PROGRESS; message: the job's message, for a failed job without one
 * its last error.
 */
CREATE FUNCTION jobq._harperdb(j jobq.job) RETURNS jobq.harperdb_job
LANGUAGE sql STABLE AS $$
	SELECT j.id, j.created_by, j.queue,
		CASE j.status WHEN 'finished' THEN 'COMPLETE' WHEN 'failed' THEN 'ERROR'
			WHEN 'cancelled' THEN 'CANCELLED' ELSE 'IN_PROGRESS' END,
		COALESCE(j.message, CASE WHEN j.status = 'failed' THEN (
			SELECT e.message FROM jobq.job_events e
			WHERE e.queue = j.queue AND e.id = j.id AND e.run = j.run AND e.level = 'error'
			ORDER BY e.eid DESC LIMIT 1) END),
		j.payload,
		jobq._epoch_ms(j.created_at), jobq._epoch_ms(j.started_at),
		jobq._epoch_ms(j.finished_at), jobq._epoch_ms(j.created_at),
		jobq._epoch_ms(j.updated_at), jobq._iso(j.started_at), jobq._iso(j.finished_at)
$$;

/*
 * get_job(id): HarperDB's get_job. A job id without its queue may exist in several queues:
 * one row per queue holding it (its live job, else its latest run), oldest first. Probes
 * each queue's job by the key (id, queue, ...) of the live jobs and of the history.
 */
CREATE FUNCTION jobq.get_job(id text) RETURNS SETOF jobq.harperdb_job
LANGUAGE sql STABLE AS $$
	SELECT hj.*
	FROM jobq.queues q
	CROSS JOIN LATERAL (
		SELECT x.j FROM (
			SELECT 0 AS rank, jobq._as_job(l) AS j FROM jobq.jobs l
			WHERE l.queue = q.queue AND l.id = $1
			UNION ALL
			(SELECT 1, ROW(h.queue, h.id, h.run, h.version, h.status, h.desired_status,
					h.payload, h.state, h.result, h.priority, h.run_at, h.timeout,
					h.max_retries, h.attempt, h.lease, h.lease_expires_at, h.worker,
					h.progress, h.message, h.persist, h.rollback_enabled, h.created_by,
					h.created_at, h.started_at, h.updated_at, h.finished_at)::jobq.job
			FROM jobq.history h
			WHERE h.queue = q.queue AND h.id = $1 AND h.deleted_at IS NULL
			ORDER BY h.run DESC LIMIT 1)) x
		ORDER BY x.rank LIMIT 1) r
	CROSS JOIN LATERAL jobq._harperdb(r.j) hj
	ORDER BY (r.j).created_at, (r.j).queue
$$;
COMMENT ON FUNCTION jobq.get_job(text) IS
	'HarperDB get_job: the job with this id in each queue that has it (live, else latest run), in HarperDB''s fields';

CREATE FUNCTION jobq.search_jobs_by_start_date(from_date timestamptz, to_date timestamptz)
RETURNS SETOF jobq.harperdb_job
LANGUAGE plpgsql STABLE AS $$
BEGIN
	IF from_date > to_date THEN
		RAISE EXCEPTION 'from_date must not be after to_date'
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	RETURN QUERY
	SELECT hj.* FROM (
		SELECT jobq._as_job(l) AS j, l.started_at FROM jobq.jobs l
		WHERE l.started_at >= COALESCE(from_date, '-infinity')
			AND l.started_at < COALESCE(to_date, 'infinity')
		UNION ALL
		SELECT ROW(h.queue, h.id, h.run, h.version, h.status, h.desired_status, h.payload,
				h.state, h.result, h.priority, h.run_at, h.timeout, h.max_retries, h.attempt,
				h.lease, h.lease_expires_at, h.worker, h.progress, h.message, h.persist,
				h.rollback_enabled, h.created_by, h.created_at, h.started_at, h.updated_at,
				h.finished_at)::jobq.job, h.started_at
		FROM jobq.history h
		WHERE h.deleted_at IS NULL AND h.started_at >= COALESCE(from_date, '-infinity')
			AND h.started_at < COALESCE(to_date, 'infinity')) x
	CROSS JOIN LATERAL jobq._harperdb(x.j) hj
	ORDER BY x.started_at, (x.j).run;
END
$$;
COMMENT ON FUNCTION jobq.search_jobs_by_start_date(timestamptz, timestamptz) IS
	'HarperDB search_jobs_by_start_date: jobs and runs whose (latest) attempt started in [from_date, to_date) (NULL: open), by start time, in HarperDB''s fields';

/* ------------------------------------------------------------------- waiting */

/*
 * wait(queue, id, timeout): returns when the job has ended or timeout has passed, with the
 * job's status and result at that moment. Between looks it sleeps until a transaction that
 * ends a job of the same wake-up slot commits (extension/wake.c), at most a second (without
 * preload, which the slots need: a second each time), and it commits before it
 * sleeps, so no transaction of it (nor the snapshot and xmin of the sleeping statement)
 * lasts more than about a second; that is why it is a procedure, and why it must be CALLed outside a transaction block (inside
 * one, it returns at once if the job has ended, else raises 2D000).
 */
CREATE PROCEDURE jobq.wait(
	queue text,
	id text,
	timeout interval DEFAULT '30 seconds',
	INOUT status text DEFAULT NULL,
	INOUT result jsonb DEFAULT NULL)
LANGUAGE plpgsql AS $$
-- Not SECURITY DEFINER (a procedure that is cannot COMMIT), so it runs with the caller's
-- search_path: every type, function and operator below is qualified.
DECLARE
	deadline pg_catalog.timestamptz;
	seen pg_catalog.int8;
	left_s pg_catalog.float8;
BEGIN
	IF timeout IS NULL OR timeout OPERATOR(pg_catalog.<) '0'::pg_catalog.interval THEN
		RAISE EXCEPTION 'timeout must not be negative, got %', COALESCE(timeout::pg_catalog.text, 'NULL')
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	deadline := pg_catalog.clock_timestamp() OPERATOR(pg_catalog.+) timeout;
	LOOP
		-- The wake-up counter first, then the job: a job that ends after the look has
		-- moved the counter, and _wake_wait returns at once.
		seen := jobq._wake_count(wait.queue, wait.id);
		SELECT j.status, j.result INTO wait.status, wait.result FROM jobq.get(wait.queue, wait.id) j;
		EXIT WHEN wait.status OPERATOR(pg_catalog.=) ANY ('{finished,failed,cancelled}'::pg_catalog.text[]);
		left_s := pg_catalog.date_part('epoch', deadline OPERATOR(pg_catalog.-) pg_catalog.clock_timestamp());
		EXIT WHEN left_s OPERATOR(pg_catalog.<=) 0;
		COMMIT;
		IF seen IS NOT NULL THEN
			-- Woken when a job of the slot ends; a look at least once a second all the same.
			PERFORM jobq._wake_wait(wait.queue, wait.id, seen, LEAST(left_s, 1));
		ELSE
			-- Not preloaded: no wake-ups; a look once a second (never a faster poll).
			PERFORM pg_catalog.pg_sleep(LEAST(left_s, 1));
		END IF;
	END LOOP;
END
$$;
COMMENT ON PROCEDURE jobq.wait(text, text, interval, text, jsonb) IS
	'waits until the job has ended or timeout passes; returns (status, result). Call outside a transaction block: CALL jobq.wait(queue => $1, id => $2, timeout => $3::interval) (the sidecar''s /run does so over libpq in autocommit); it sleeps until the transaction that ends the job commits (at most a second between looks) and commits before it sleeps, so none of its transactions lasts more than about a second';

/* ----------------------------------------------------------------- views */

CREATE VIEW jobq.running AS
SELECT j.queue, j.id, j.version, j.attempt, j.max_retries, j.worker, j.desired_status,
	j.progress, j.message, j.started_at, pg_catalog.now() - j.started_at AS running_for,
	j.lease_expires_at, j.lease
FROM jobq.jobs j
WHERE j.status = 'running'
ORDER BY j.queue, j.started_at;
COMMENT ON VIEW jobq.running IS
	'running jobs: who holds them, since when, their progress, and whether a stop or cancel was asked';

CREATE VIEW jobq.failed AS
SELECT h.queue, h.id, h.run, h.version, h.attempt, h.max_retries, h.worker,
	e.message AS error, e.at AS failed_at, h.payload, h.state, h.created_at, h.started_at,
	h.finished_at
FROM jobq.history h
LEFT JOIN LATERAL (
	SELECT x.message, x.at FROM jobq.job_events x
	WHERE x.queue = h.queue AND x.id = h.id AND x.run = h.run AND x.level = 'error'
	ORDER BY x.eid DESC LIMIT 1) e ON true
WHERE h.status = 'failed' AND h.deleted_at IS NULL
ORDER BY h.finished_at DESC;
COMMENT ON VIEW jobq.failed IS
	'failed runs not deleted, newest first, with their last error (jobq.retry puts one back to pending)';
