/*
 * jobq 0.1.0 install script, part 00: the job model and the core SQL API.
 *
 * Storage:
 *   jobq.queues        one row per queue, with its defaults and settings
 *   jobq.jobs          the live set (pending, running, stopped), partitioned by `persist`
 *                      into jobq.jobs_persistent (logged) and jobq.jobs_unlogged (UNLOGGED);
 *                      `lease` scans only its partial index over pending rows
 *   jobq.history       ended runs (finished, failed, cancelled), kept for the queue's retention
 *   jobq.job_events    append-only log per job: errors, warnings, notable transitions
 *
 * A job moves from jobq.jobs to jobq.history when it ends, so enqueueing the same id again
 * starts a new run. `(queue, id)` is unique among live jobs across both partitions: the
 * primary key covers one partition, and enqueue with a client-given id takes a transaction
 * advisory lock on the key's bucket and checks the other partition.
 *
 * The hot path (lease, heartbeat, complete, fail) is C in extension/; the rest is here.
 * The parts of this script are concatenated in file name order into jobq--0.1.0.sql.
 */

\echo Use "CREATE EXTENSION jobq" to load this file. \quit

/*
 * The extension lives in pg_catalog (jobq.control) and creates its schema here, so the
 * schema belongs to the extension and this script runs with search_path = pg_catalog only:
 * if a schema named jobq already exists (say, made by someone else to plant objects in it),
 * CREATE SCHEMA fails and nothing is installed. Privileges: 90_privileges.sql.
 */
CREATE SCHEMA jobq;
COMMENT ON SCHEMA jobq IS 'jobq: a durable job queue (the extension jobq)';

/*
 * Who is calling (extension/caller.c): the role in effect outside any SECURITY DEFINER
 * function, i.e. the session's role after SET ROLE. The API functions run as the
 * extension's owner, so CURRENT_USER there would name the owner.
 */
CREATE FUNCTION jobq._caller() RETURNS text
	LANGUAGE c STABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'jobq_caller';
COMMENT ON FUNCTION jobq._caller() IS
	'the calling role (outside SECURITY DEFINER functions); recorded as created_by';
CREATE FUNCTION jobq._caller_sees_all() RETURNS boolean
	LANGUAGE c STABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'jobq_caller_sees_all';
COMMENT ON FUNCTION jobq._caller_sees_all() IS
	'whether the calling role reads every job (superuser or jobq_admin), not only those it created';

/* ---------------------------------------------------------------- storage */

CREATE TABLE jobq.queues (
	queue		text COLLATE "C" PRIMARY KEY,
	timeout		interval NOT NULL DEFAULT '30 seconds',
	max_retries	integer NOT NULL DEFAULT 3,
	retry_base	interval NOT NULL DEFAULT '1 second',
	retry_cap	interval NOT NULL DEFAULT '1 hour',
	retention	interval NOT NULL DEFAULT '7 days',
	paused		boolean NOT NULL DEFAULT false,
	max_running	integer,
	created_at	timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(),
	updated_at	timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp()
);
COMMENT ON TABLE jobq.queues IS 'jobq queues and their settings (write through jobq.create_queue/alter_queue)';

CREATE SEQUENCE jobq.run_seq CACHE 64;
COMMENT ON SEQUENCE jobq.run_seq IS 'identifies each run of a job, and orders jobs by enqueue';

/*
 * A job's status is a domain rather than a CHECK constraint on the tables: the executor
 * reads a table's CHECK constraints from their stored text and plans them again at every
 * statement that writes the table, a domain's once per backend (bench/callgrind.sh, W2
 * n = 1: 8% of a job's instructions). One domain serves both tables, as PL/pgSQL code
 * reads an ended run into a variable of the live row type; which statuses are live
 * (pending, running, stopped) and which ended is the API functions' to keep.
 */
CREATE DOMAIN jobq.status AS text
	CHECK (VALUE IN ('pending', 'running', 'stopped', 'finished', 'failed', 'cancelled'));

/* The row type every job-returning function returns; live and history rows share it. */
CREATE TYPE jobq.job AS (
	queue			text,
	id				text,
	run				bigint,
	version			integer,
	status			jobq.status,
	desired_status	text,
	payload			jsonb,
	state			jsonb,
	result			jsonb,
	priority		integer,
	run_at			timestamptz,
	timeout			interval,
	max_retries		integer,
	attempt			integer,
	lease			uuid,
	lease_expires_at timestamptz,
	worker			text,
	progress		real,
	message			text,
	persist			boolean,
	rollback_enabled boolean,
	created_by		text,
	created_at		timestamptz,
	started_at		timestamptz,
	updated_at		timestamptz,
	finished_at		timestamptz
);
COMMENT ON TYPE jobq.job IS 'a job (live) or one of its ended runs';

CREATE TABLE jobq.jobs (
	queue			text COLLATE "C" NOT NULL,
	id				text COLLATE "C" NOT NULL,
	run				bigint NOT NULL DEFAULT pg_catalog.nextval('jobq.run_seq'),
	version			integer NOT NULL DEFAULT 0,
	status			jobq.status NOT NULL DEFAULT 'pending',
	desired_status	text NOT NULL DEFAULT 'running',
	payload			jsonb NOT NULL DEFAULT '{}',
	state			jsonb,
	result			jsonb,
	priority		integer NOT NULL DEFAULT 0,
	run_at			timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(),
	timeout			interval NOT NULL,
	max_retries		integer NOT NULL,
	attempt			integer NOT NULL DEFAULT 0,
	lease			uuid,
	lease_expires_at timestamptz,
	worker			text,
	progress		real,
	message			text,
	persist			boolean NOT NULL DEFAULT true,
	rollback_enabled boolean NOT NULL DEFAULT false,
	created_by		text NOT NULL DEFAULT jobq._caller(),
	created_at		timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(),
	started_at		timestamptz,
	updated_at		timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(),
	finished_at		timestamptz,
	-- The key leads with id, not queue: two ids almost always differ, so a B-tree comparison
	-- is decided by one text at a fixed offset, where (queue, id, ...) compared the equal
	-- queue names first and then found id past a varlena (nocache_index_getattr). An enqueue
	-- and a non-HOT lease insert into it, a completion looks a job up by it (bench/callgrind.sh,
	-- with history's key the same way: W2 n = 100 145 000 -> 128 000 instructions per job). A
	-- look-up by queue alone does not use it: the lease and the reaper have their own
	-- indexes, and drop_queue scans.
	PRIMARY KEY (id, queue, persist)
) PARTITION BY LIST (persist);
COMMENT ON TABLE jobq.jobs IS 'live jobs (pending, running, stopped); ended runs move to jobq.history';

-- A queue's live set is small and churns: autovacuum visits it as soon as 1% of it is
-- dead (not the default 20%), without the cost-based pauses, so dead index entries do not
-- pile up in front of the lease scan (W5 of bench/: 2.3x -> 1.6x the size of a fresh
-- backlog after a million jobs).
CREATE TABLE jobq.jobs_persistent PARTITION OF jobq.jobs FOR VALUES IN (true)
	WITH (fillfactor = 80, autovacuum_vacuum_scale_factor = 0.01,
		autovacuum_vacuum_cost_delay = 0);
CREATE UNLOGGED TABLE jobq.jobs_unlogged PARTITION OF jobq.jobs FOR VALUES IN (false)
	WITH (fillfactor = 80, autovacuum_vacuum_scale_factor = 0.01,
		autovacuum_vacuum_cost_delay = 0);
COMMENT ON TABLE jobq.jobs_persistent IS 'live jobs enqueued with persist => true (WAL-logged)';
COMMENT ON TABLE jobq.jobs_unlogged IS 'live jobs enqueued with persist => false (UNLOGGED: lost on a crash)';

-- What lease scans: waiting jobs only, in lease order, the queue's by its name's hash. Every
-- key column has a fixed width, so a B-tree comparison reads each at a cached offset instead
-- of walking past a text (and comparing texts): an enqueue inserts into this index, and a
-- lease reads a whole leaf page of it (W2 n = 100: 189 500 -> 177 400 instructions per job,
-- W1 b100: 63 900 -> 59 700, bench/callgrind.sh). Queues whose names hash alike share a
-- range of the index; lease also tests queue = $1, so it only reads past the other's jobs.
CREATE INDEX jobs_pending_idx ON jobq.jobs (pg_catalog.hashtext(queue), priority, run_at, run)
	WHERE status = 'pending';
-- What the reaper scans: running jobs by lease expiry.
CREATE INDEX jobs_running_idx ON jobq.jobs (lease_expires_at)
	WHERE status = 'running';

-- A finished run costs two B-tree inserts: its key, which serves the look-ups by job and by
-- run of a job (id first, as jobq.jobs's), and history_retention_idx (20_reaper.sql), which
-- serves those by queue; a listing by created_at scans.
-- (Each insert is about 14 000 instructions, bench/callgrind.sh.)
CREATE TABLE jobq.history (
	LIKE jobq.jobs INCLUDING DEFAULTS,
	deleted_at		timestamptz,
	PRIMARY KEY (id, queue, run)
);
ALTER TABLE jobq.history ALTER status DROP DEFAULT;
COMMENT ON TABLE jobq.history IS 'ended runs of jobs (finished, failed, cancelled), purged after the queue''s retention';

CREATE TABLE jobq.job_events (
	eid			bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	queue		text COLLATE "C" NOT NULL,
	id			text COLLATE "C" NOT NULL,
	run			bigint NOT NULL,
	version		integer NOT NULL,
	attempt		integer NOT NULL,
	level		text NOT NULL CHECK (level IN ('info', 'warning', 'error')),
	message		text NOT NULL,
	detail		jsonb,
	at			timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp()
);
COMMENT ON TABLE jobq.job_events IS 'per-job event log: errors, warnings and notable transitions';
CREATE INDEX job_events_job_idx ON jobq.job_events (queue, id, eid);
CREATE INDEX job_events_run_idx ON jobq.job_events (run);
CREATE INDEX job_events_errors_idx ON jobq.job_events (queue, at) WHERE level = 'error';

/* ------------------------------------------------------------- internals */

CREATE FUNCTION jobq._valid_queue(queue text) RETURNS text
	LANGUAGE c IMMUTABLE AS 'MODULE_PATHNAME', 'jobq_valid_queue';
COMMENT ON FUNCTION jobq._valid_queue(text) IS
	'returns queue if it is a valid queue name, else raises 22023';

/*
 * _queue(queue, create): the queue's row; creates it with defaults when missing and
 * create is true, else raises P0002. Validates the name only on the slow path.
 */
CREATE FUNCTION jobq._queue(queue text, create_missing boolean DEFAULT true)
RETURNS jobq.queues
LANGUAGE plpgsql AS $$
DECLARE
	q jobq.queues;
BEGIN
	SELECT * INTO q FROM jobq.queues AS x WHERE x.queue = _queue.queue;
	IF FOUND THEN
		RETURN q;
	END IF;
	PERFORM jobq._valid_queue(queue);
	IF NOT create_missing THEN
		RAISE EXCEPTION 'queue "%" does not exist', queue USING ERRCODE = 'no_data_found';
	END IF;
	INSERT INTO jobq.queues AS x (queue) VALUES (_queue.queue) ON CONFLICT DO NOTHING;
	SELECT * INTO q FROM jobq.queues AS x WHERE x.queue = _queue.queue;
	RETURN q;
END
$$;

CREATE FUNCTION jobq._check_id(id text) RETURNS text
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
	IF id IS NULL OR id = '' THEN
		RAISE EXCEPTION 'id must not be empty' USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF pg_catalog.length(id) > 256 THEN
		RAISE EXCEPTION 'id is longer than 256 characters' USING ERRCODE = 'invalid_parameter_value';
	END IF;
	RETURN id;
END
$$;

/*
 * Serialises enqueues of one client-given (queue, id) across the two partitions: a
 * transaction advisory lock on one of 1024 buckets of the key, so that a batch of any
 * size holds at most 1024 locks (the lock table is finite). Generated ids need none.
 */
CREATE FUNCTION jobq._key_bucket(queue text, id text) RETURNS integer
LANGUAGE sql IMMUTABLE AS $$
	SELECT pg_catalog.hashtext(queue || E'\x1f' || id) & 1023
$$;

CREATE FUNCTION jobq._lock_bucket(bucket integer) RETURNS void
LANGUAGE sql AS $$
	SELECT pg_catalog.pg_advisory_xact_lock(1785684593, bucket)
$$;

/*
 * _notify_later(queue): true when the reaper will send this transaction's NOTIFY jobq, queue
 * once it commits (bgworker/notify.c: transactions that NOTIFY commit one at a time), false
 * when the caller must send it: no reaper serves the database, or jobq.notify_via_reaper is off.
 */
CREATE FUNCTION jobq._notify_later(queue text) RETURNS boolean
	LANGUAGE c VOLATILE AS 'MODULE_PATHNAME', 'jobq_notify_later';

/*
 * Wakes workers waiting for jobs of a queue. NOTIFY is only a hint: when the notification
 * queue is half full (a listener idle in a transaction), skip it rather than let COMMIT fail.
 */
CREATE FUNCTION jobq._notify(queue text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
	IF NOT jobq._notify_later(queue) AND pg_catalog.pg_notification_queue_usage() < 0.5 THEN
		PERFORM pg_catalog.pg_notify('jobq', queue);
	END IF;
END
$$;

CREATE FUNCTION jobq._check_timeout(timeout interval, argname text DEFAULT 'timeout')
RETURNS interval
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
	IF timeout IS NOT NULL AND timeout <= interval '0' THEN
		RAISE EXCEPTION '% must be positive, got %', argname, timeout
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	RETURN timeout;
END
$$;

/* Appends an event to a job's log; the job's current run, version and attempt are taken. */
CREATE FUNCTION jobq._event(j jobq.jobs, level text, message text, detail jsonb DEFAULT NULL)
RETURNS bigint
LANGUAGE sql AS $$
	INSERT INTO jobq.job_events (queue, id, run, version, attempt, level, message, detail)
	VALUES (j.queue, j.id, j.run, j.version, j.attempt, level, message, detail)
	RETURNING eid
$$;

/*
 * Wake-ups for jobq.wait (extension/wake.c): _ended marks a job that ends in this
 * transaction, whose waiters are woken when it commits; _wake_count is the counter of the
 * job's wake-up slot (NULL when jobq is not preloaded); _wake_wait sleeps until that counter
 * moves past seen or timeout seconds pass.
 */
CREATE FUNCTION jobq._ended(queue text, id text) RETURNS void
	LANGUAGE c VOLATILE AS 'MODULE_PATHNAME', 'jobq_ended';
CREATE FUNCTION jobq._wake_count(queue text, id text) RETURNS bigint
	LANGUAGE c VOLATILE AS 'MODULE_PATHNAME', 'jobq_wake_count';
CREATE FUNCTION jobq._wake_wait(queue text, id text, seen bigint, timeout float8) RETURNS boolean
	LANGUAGE c VOLATILE AS 'MODULE_PATHNAME', 'jobq_wake_wait';

/*
 * _end(j, status, result, error): moves live job j to the history with a terminal status.
 * The caller holds j's row lock (it selected j FOR UPDATE).
 */
CREATE FUNCTION jobq._end(j jobq.jobs, status text, result jsonb DEFAULT NULL)
RETURNS jobq.job
LANGUAGE plpgsql AS $$
DECLARE
	r jobq.job;
	now timestamptz := pg_catalog.clock_timestamp();
BEGIN
	DELETE FROM jobq.jobs x WHERE x.queue = j.queue AND x.id = j.id AND x.persist = j.persist;
	INSERT INTO jobq.history AS h (queue, id, run, version, status, desired_status, payload, state,
		result, priority, run_at, timeout, max_retries, attempt, lease, lease_expires_at, worker,
		progress, message, persist, rollback_enabled, created_by, created_at, started_at,
		updated_at, finished_at)
	VALUES (j.queue, j.id, j.run, j.version, _end.status, j.desired_status, j.payload, j.state,
		_end.result, j.priority, j.run_at, j.timeout, j.max_retries, j.attempt, NULL, NULL,
		j.worker, j.progress, j.message, j.persist, j.rollback_enabled, j.created_by,
		j.created_at, j.started_at, now, now)
	RETURNING h.queue, h.id, h.run, h.version, h.status, h.desired_status, h.payload, h.state,
		h.result, h.priority, h.run_at, h.timeout, h.max_retries, h.attempt, h.lease,
		h.lease_expires_at, h.worker, h.progress, h.message, h.persist, h.rollback_enabled,
		h.created_by, h.created_at, h.started_at, h.updated_at, h.finished_at
	INTO r;
	PERFORM jobq._ended(j.queue, j.id);
	RETURN r;
END
$$;

/*
 * _live(queue, id, lease): the live job, locked FOR UPDATE, for a call that needs the
 * current lease: raises P0002 when the job is not live, 55000 when it is not running or
 * lease is given and is not the job's current token.
 */
CREATE FUNCTION jobq._leased(queue text, id text, lease uuid) RETURNS jobq.jobs
LANGUAGE plpgsql AS $$
DECLARE
	j jobq.jobs;
	retired integer;
BEGIN
	SELECT * INTO j FROM jobq.jobs x WHERE x.queue = _leased.queue AND x.id = _leased.id
		FOR UPDATE;
	-- The token of a version retired by jobq.update or a rollback (10_lifecycle.sql).
	IF lease IS NOT NULL AND j.lease IS DISTINCT FROM lease THEN
		retired := jobq._retired_version(queue, id, lease);
		IF retired IS NOT NULL THEN
			RAISE EXCEPTION 'lease of job "%" in queue "%" belongs to retired version %',
				id, queue, retired
				USING ERRCODE = 'object_not_in_prerequisite_state',
					DETAIL = 'The job was updated or rolled back to a new version; the work of this lease is not wanted.';
		END IF;
	END IF;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'job "%" is not live in queue "%"', id, queue
			USING ERRCODE = 'no_data_found';
	END IF;
	IF j.status <> 'running' THEN
		RAISE EXCEPTION 'job "%" in queue "%" is not running (status %)', id, queue, j.status
			USING ERRCODE = 'object_not_in_prerequisite_state';
	END IF;
	IF lease IS NOT NULL AND j.lease IS DISTINCT FROM lease THEN
		RAISE EXCEPTION 'stale lease for job "%" in queue "%"', id, queue
			USING ERRCODE = 'object_not_in_prerequisite_state',
				DETAIL = 'The lease token is not the job''s current one: the lease expired and the job was leased again, or it was released.';
	END IF;
	RETURN j;
END
$$;

/*
 * _fail_final(queue, id, error, retry, lease): the slow path of jobq.fail, taken when the
 * C fast path (retry with backoff) did not apply. Raises the right error when the job is
 * not leased; otherwise records the failure and moves the job to where it must go:
 * back to pending (retry while attempts remain, for callers without the fast path),
 * stopped or cancelled when so desired, else failed (or, with rollback_enabled, a new
 * version from the last good payload: jobq._rollback).  Returns the new status.
 */
CREATE FUNCTION jobq._fail_final(queue text, id text, error text, retry boolean, lease uuid)
RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
	j jobq.jobs;
	q jobq.queues;
	now timestamptz := pg_catalog.clock_timestamp();
	backoff interval;
BEGIN
	j := jobq._leased(queue, id, lease);
	PERFORM jobq._event(j, 'error', COALESCE(error, 'failed'),
		pg_catalog.jsonb_build_object('attempt', j.attempt, 'retry', retry));
	IF j.desired_status = 'stopped' THEN
		UPDATE jobq.jobs x SET status = 'stopped', lease = NULL, lease_expires_at = NULL,
			worker = NULL, updated_at = now
		WHERE x.queue = j.queue AND x.id = j.id AND x.persist = j.persist;
		RETURN 'stopped';
	ELSIF j.desired_status = 'cancelled' THEN
		PERFORM jobq._end(j, 'cancelled');
		RETURN 'cancelled';
	ELSIF retry AND (j.max_retries < 0 OR j.attempt <= j.max_retries) THEN
		SELECT * INTO q FROM jobq.queues x WHERE x.queue = j.queue;
		backoff := LEAST(q.retry_cap, q.retry_base * pg_catalog.power(2, LEAST(j.attempt - 1, 30)));
		UPDATE jobq.jobs x SET status = 'pending', run_at = now + backoff, lease = NULL,
			lease_expires_at = NULL, worker = NULL, updated_at = now
		WHERE x.queue = j.queue AND x.id = j.id AND x.persist = j.persist;
		RETURN 'pending';
	END IF;
	-- Failed for good: a new version from the last good payload, if enabled (10_lifecycle.sql).
	IF j.rollback_enabled AND jobq._rollback(j) THEN
		RETURN 'pending';
	END IF;
	PERFORM jobq._end(j, 'failed');
	RETURN 'failed';
END
$$;

/* ------------------------------------------------------------------ queues */

CREATE FUNCTION jobq.create_queue(
	queue text,
	timeout interval DEFAULT '30 seconds',
	max_retries integer DEFAULT 3,
	retention interval DEFAULT '7 days',
	retry_base interval DEFAULT '1 second',
	retry_cap interval DEFAULT '1 hour',
	max_running integer DEFAULT NULL,
	paused boolean DEFAULT false)
RETURNS jobq.queues
LANGUAGE plpgsql AS $$
DECLARE
	q jobq.queues;
BEGIN
	PERFORM jobq._valid_queue(queue);
	PERFORM jobq._check_timeout(timeout);
	PERFORM jobq._check_timeout(retry_base, 'retry_base');
	PERFORM jobq._check_timeout(retry_cap, 'retry_cap');
	IF timeout IS NULL OR max_retries IS NULL OR retention IS NULL OR retry_base IS NULL
		OR retry_cap IS NULL OR paused IS NULL THEN
		RAISE EXCEPTION 'queue settings must not be null' USING ERRCODE = 'null_value_not_allowed';
	END IF;
	IF retention < interval '0' THEN
		RAISE EXCEPTION 'retention must not be negative, got %', retention
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF max_running IS NOT NULL AND max_running < 1 THEN
		RAISE EXCEPTION 'max_running must be at least 1, got %', max_running
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	INSERT INTO jobq.queues AS x (queue, timeout, max_retries, retention, retry_base, retry_cap,
		max_running, paused)
	VALUES (queue, timeout, max_retries, retention, retry_base, retry_cap, max_running, paused)
	ON CONFLICT DO NOTHING
	RETURNING * INTO q;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'queue "%" already exists', queue USING ERRCODE = 'unique_violation';
	END IF;
	RETURN q;
END
$$;
COMMENT ON FUNCTION jobq.create_queue(text, interval, integer, interval, interval, interval, integer, boolean) IS
	'creates a queue with its defaults (timeout, max_retries, retention, retry backoff base and cap, max_running, paused); 23505 if it exists';

CREATE FUNCTION jobq.alter_queue(
	queue text,
	timeout interval DEFAULT NULL,
	max_retries integer DEFAULT NULL,
	retention interval DEFAULT NULL,
	retry_base interval DEFAULT NULL,
	retry_cap interval DEFAULT NULL,
	max_running integer DEFAULT NULL)
RETURNS jobq.queues
LANGUAGE plpgsql AS $$
DECLARE
	q jobq.queues;
BEGIN
	PERFORM jobq._check_timeout(timeout);
	PERFORM jobq._check_timeout(retry_base, 'retry_base');
	PERFORM jobq._check_timeout(retry_cap, 'retry_cap');
	IF retention < interval '0' THEN
		RAISE EXCEPTION 'retention must not be negative, got %', retention
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF max_running < 0 THEN
		RAISE EXCEPTION 'max_running must not be negative, got % (0 removes the cap)', max_running
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	UPDATE jobq.queues x SET
		timeout = COALESCE(alter_queue.timeout, x.timeout),
		max_retries = COALESCE(alter_queue.max_retries, x.max_retries),
		retention = COALESCE(alter_queue.retention, x.retention),
		retry_base = COALESCE(alter_queue.retry_base, x.retry_base),
		retry_cap = COALESCE(alter_queue.retry_cap, x.retry_cap),
		max_running = CASE WHEN alter_queue.max_running IS NULL THEN x.max_running
			WHEN alter_queue.max_running = 0 THEN NULL ELSE alter_queue.max_running END,
		updated_at = pg_catalog.clock_timestamp()
	WHERE x.queue = alter_queue.queue
	RETURNING * INTO q;
	IF NOT FOUND THEN
		PERFORM jobq._valid_queue(queue);
		RAISE EXCEPTION 'queue "%" does not exist', queue USING ERRCODE = 'no_data_found';
	END IF;
	RETURN q;
END
$$;
COMMENT ON FUNCTION jobq.alter_queue(text, interval, integer, interval, interval, interval, integer) IS
	'changes a queue''s settings (NULL keeps a setting; max_running 0 removes the cap); existing jobs keep theirs';

CREATE FUNCTION jobq.drop_queue(queue text, force boolean DEFAULT false) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
	n bigint;
BEGIN
	PERFORM jobq._queue(queue, false);
	PERFORM 1 FROM jobq.queues x WHERE x.queue = drop_queue.queue FOR UPDATE;
	IF NOT force AND EXISTS (SELECT 1 FROM jobq.jobs x WHERE x.queue = drop_queue.queue) THEN
		RAISE EXCEPTION 'queue "%" has live jobs', queue
			USING ERRCODE = 'object_not_in_prerequisite_state',
				HINT = 'Use force => true to drop the queue with its jobs.';
	END IF;
	-- The live jobs go without a run in the history: their waiters (jobq.wait) are woken
	-- at the commit, as when a job ends, and find the job gone (P0002) at once.
	WITH d AS (DELETE FROM jobq.jobs x WHERE x.queue = drop_queue.queue RETURNING x.queue, x.id)
	SELECT count(*) INTO n FROM d, LATERAL jobq._ended(d.queue, d.id) e;
	DELETE FROM jobq.history x WHERE x.queue = drop_queue.queue;
	DELETE FROM jobq.job_events x WHERE x.queue = drop_queue.queue;
	DELETE FROM jobq.job_versions x WHERE x.queue = drop_queue.queue;
	DELETE FROM jobq.queues x WHERE x.queue = drop_queue.queue;
END
$$;
COMMENT ON FUNCTION jobq.drop_queue(text, boolean) IS
	'drops a queue with its history and events; refuses (55000) while it has live jobs unless force';

CREATE FUNCTION jobq.pause_queue(queue text) RETURNS jobq.queues
LANGUAGE plpgsql AS $$
DECLARE
	q jobq.queues;
BEGIN
	PERFORM jobq._queue(queue, false);
	UPDATE jobq.queues x SET paused = true, updated_at = pg_catalog.clock_timestamp()
	WHERE x.queue = pause_queue.queue RETURNING * INTO q;
	RETURN q;
END
$$;
COMMENT ON FUNCTION jobq.pause_queue(text) IS
	'pauses a queue: enqueue still works, lease returns nothing until resume_queue';

CREATE FUNCTION jobq.resume_queue(queue text) RETURNS jobq.queues
LANGUAGE plpgsql AS $$
DECLARE
	q jobq.queues;
BEGIN
	PERFORM jobq._queue(queue, false);
	UPDATE jobq.queues x SET paused = false, updated_at = pg_catalog.clock_timestamp()
	WHERE x.queue = resume_queue.queue RETURNING * INTO q;
	PERFORM jobq._notify(queue);
	RETURN q;
END
$$;
COMMENT ON FUNCTION jobq.resume_queue(text) IS 'resumes a paused queue';

/* ----------------------------------------------------------------- enqueue */

/*
 * _enqueue_sql: jobq.enqueue by statements. jobq.enqueue (C, extension/enqueue.c) inserts
 * the common job itself (a queue that exists; no id, timeout or persist given) and calls
 * this for every other: it creates the queue on first use, checks a given id and timeout,
 * and inserts through the partitioned table.
 */
CREATE FUNCTION jobq._enqueue_sql(
	queue text,
	payload jsonb,
	id text,
	timeout interval,
	max_retries integer,
	persist boolean,
	run_at timestamptz,
	priority integer,
	state jsonb)
RETURNS jobq.job
LANGUAGE plpgsql AS $$
DECLARE
	q jobq.queues;
	j jobq.job;
BEGIN
	q := jobq._queue(queue);
	IF timeout IS NOT NULL THEN
		PERFORM jobq._check_timeout(timeout);
	END IF;
	IF id IS NULL THEN
		id := jobq._new_id();
	ELSE
		PERFORM jobq._check_id(id);
		PERFORM jobq._lock_bucket(jobq._key_bucket(queue, id));
		IF EXISTS (SELECT 1 FROM jobq.jobs x WHERE x.queue = _enqueue_sql.queue AND x.id = _enqueue_sql.id) THEN
			RAISE EXCEPTION 'job "%" already exists in queue "%"', id, queue
				USING ERRCODE = 'unique_violation';
		END IF;
	END IF;
	INSERT INTO jobq.jobs AS x (queue, id, payload, state, priority, run_at, timeout,
		max_retries, persist)
	VALUES (queue, id, COALESCE(payload, '{}'), state,
		COALESCE(priority, 0),
		COALESCE(run_at, pg_catalog.clock_timestamp()),
		COALESCE(timeout, q.timeout),
		COALESCE(max_retries, q.max_retries),
		COALESCE(persist, true))
	-- no ON CONFLICT: a generated id is new, and a given one was checked under its
	-- bucket's lock (a conflict would still be 23505, from the primary key)
	RETURNING x.queue, x.id, x.run, x.version, x.status, x.desired_status, x.payload, x.state,
		x.result, x.priority, x.run_at, x.timeout, x.max_retries, x.attempt, x.lease,
		x.lease_expires_at, x.worker, x.progress, x.message, x.persist, x.rollback_enabled,
		x.created_by, x.created_at, x.started_at, x.updated_at, x.finished_at
	INTO j;
	PERFORM jobq._notify(queue);
	RETURN j;
END
$$;

CREATE FUNCTION jobq.enqueue(
	queue text,
	payload jsonb DEFAULT '{}',
	id text DEFAULT NULL,
	timeout interval DEFAULT NULL,
	max_retries integer DEFAULT NULL,
	persist boolean DEFAULT true,
	run_at timestamptz DEFAULT NULL,
	priority integer DEFAULT 0,
	state jsonb DEFAULT NULL)
RETURNS jobq.job
LANGUAGE c VOLATILE AS 'MODULE_PATHNAME', 'jobq_enqueue';
COMMENT ON FUNCTION jobq.enqueue(text, jsonb, text, interval, integer, boolean, timestamptz, integer, jsonb) IS
	'enqueues a job (id generated when NULL); creates the queue on first use; 23505 if (queue, id) is live';

/*
 * _batch_rows(jobs, queue_timeout, queue_max_retries): the job objects of enqueue_batch's
 * array as the columns of its rows, in the array's order (ord), with the queue's timeout
 * and max_retries where a job gives none; id is null when not given (the caller generates
 * one), run_at too (the caller's clock_timestamp(), which an inlined function may not
 * call). Inlined into the caller's statement, so the array is read once there.
 */
CREATE FUNCTION jobq._batch_rows(jobs jsonb, queue_timeout interval, queue_max_retries integer)
RETURNS TABLE (ord bigint, id text, payload jsonb, state jsonb, timeout interval,
	max_retries integer, persist boolean, run_at timestamptz, priority integer)
LANGUAGE sql STABLE AS $$
	SELECT s.ord, s.e ->> 'id', COALESCE(s.e -> 'payload', '{}'), s.e -> 'state',
		COALESCE(CASE WHEN s.e ? 'timeout' THEN
			jobq._check_timeout(CASE pg_catalog.jsonb_typeof(s.e -> 'timeout')
				WHEN 'number' THEN pg_catalog.make_interval(secs => (s.e ->> 'timeout')::float8)
				WHEN 'string' THEN (s.e ->> 'timeout')::interval END) END, queue_timeout),
		COALESCE((s.e ->> 'max_retries')::integer, queue_max_retries),
		COALESCE((s.e ->> 'persist')::boolean, (s.e ->> 'persist_data')::boolean, true),
		(s.e ->> 'run_at')::timestamptz,
		COALESCE((s.e ->> 'priority')::integer, 0)
	FROM pg_catalog.jsonb_array_elements(jobs) WITH ORDINALITY AS s(e, ord)
$$;

/*
 * enqueue_batch(queue, jobs): jobs is a JSON array of objects with the optional keys
 * id, payload, state, timeout (seconds, or an interval string), max_retries, persist
 * (or relay's persist_data), run_at, priority. Returns the ids enqueued, in input order;
 * ids that are already live are skipped (relay). jobq.enqueue_batch (C, extension/enqueue.c)
 * writes an array of jobs that give only payload, state, priority and max_retries into a
 * queue that exists itself (direct.c); every other call runs _enqueue_batch_sql.
 */
CREATE FUNCTION jobq._enqueue_batch_sql(queue text, jobs jsonb) RETURNS SETOF text
LANGUAGE plpgsql AS $$
DECLARE
	q jobq.queues;
	bad jsonb;
	given boolean;
BEGIN
	q := jobq._queue(queue);
	IF jobs IS NULL OR pg_catalog.jsonb_typeof(jobs) <> 'array' THEN
		RAISE EXCEPTION 'jobs must be a JSON array of job objects' USING ERRCODE = 'invalid_parameter_value';
	END IF;
	-- One pass: the first invalid element, and whether any element names its id.
	SELECT (pg_catalog.array_agg(e) FILTER (WHERE pg_catalog.jsonb_typeof(e) <> 'object'
			OR (e ? 'id' AND pg_catalog.jsonb_typeof(e -> 'id') NOT IN ('string', 'number'))
			OR (e ? 'timeout' AND pg_catalog.jsonb_typeof(e -> 'timeout') NOT IN ('string', 'number', 'null'))))[1],
		COALESCE(pg_catalog.bool_or(e ? 'id'), false)
	INTO bad, given
	FROM pg_catalog.jsonb_array_elements(jobs) e;
	IF bad IS NOT NULL THEN
		RAISE EXCEPTION 'jobs: invalid job object %', bad USING ERRCODE = 'invalid_parameter_value';
	END IF;

	IF NOT given THEN
		-- Generated ids only: a fresh time-ordered id cannot be live already, so the rows
		-- go straight in, in the array's order, without the duplicate handling below
		-- (bench/ W1: 40% fewer instructions per job).
		RETURN QUERY
		INSERT INTO jobq.jobs AS x (queue, id, payload, state, priority, run_at, timeout,
			max_retries, persist)
		SELECT _enqueue_batch_sql.queue, jobq._new_id(), b.payload, b.state, b.priority,
			COALESCE(b.run_at, pg_catalog.clock_timestamp()), b.timeout, b.max_retries, b.persist
		FROM jobq._batch_rows(jobs, q.timeout, q.max_retries) b
		ORDER BY b.ord
		RETURNING x.id;
	ELSE
		PERFORM jobq._check_id(e ->> 'id') FROM pg_catalog.jsonb_array_elements(jobs) e WHERE e ? 'id';
		PERFORM jobq._lock_bucket(k.bucket) FROM (
			SELECT DISTINCT jobq._key_bucket(queue, e ->> 'id') AS bucket
			FROM pg_catalog.jsonb_array_elements(jobs) e WHERE e ? 'id' ORDER BY 1) k;

		RETURN QUERY
		WITH src AS (
			SELECT r.ord, COALESCE(r.id, jobq._new_id()) AS id, r.id IS NOT NULL AS given,
				r.payload, r.state, r.timeout, r.max_retries, r.persist, r.run_at, r.priority
			FROM jobq._batch_rows(jobs, q.timeout, q.max_retries) r),
		b AS (SELECT DISTINCT ON (src.id) * FROM src ORDER BY src.id, src.ord),
		ins AS (
			INSERT INTO jobq.jobs AS x (queue, id, payload, state, priority, run_at, timeout,
				max_retries, persist)
			SELECT _enqueue_batch_sql.queue, b.id, b.payload, b.state, b.priority,
				COALESCE(b.run_at, pg_catalog.clock_timestamp()), b.timeout, b.max_retries,
				b.persist
			FROM b
			WHERE NOT b.given OR NOT EXISTS (
				SELECT 1 FROM jobq.jobs y WHERE y.queue = _enqueue_batch_sql.queue AND y.id = b.id)
			ORDER BY b.ord
			ON CONFLICT DO NOTHING
			RETURNING x.id)
		SELECT ins.id FROM ins JOIN b ON b.id = ins.id ORDER BY b.ord;
	END IF;
	PERFORM jobq._notify(queue);
END
$$;
COMMENT ON FUNCTION jobq._enqueue_batch_sql(text, jsonb) IS
	'enqueue_batch by statements: every call the C path (direct.c) does not take';

CREATE FUNCTION jobq.enqueue_batch(queue text, jobs jsonb) RETURNS SETOF text
LANGUAGE c VOLATILE AS 'MODULE_PATHNAME', 'jobq_enqueue_batch';
COMMENT ON FUNCTION jobq.enqueue_batch(text, jsonb) IS
	'enqueues a JSON array of jobs into one queue; returns the ids enqueued; live duplicates are skipped';

/* ------------------------------------------------------------- hot path (C) */

CREATE FUNCTION jobq._new_id() RETURNS text
	LANGUAGE c VOLATILE AS 'MODULE_PATHNAME', 'jobq_new_id';
COMMENT ON FUNCTION jobq._new_id() IS
	'enqueue: a generated job id, a time-ordered (version 7) UUID as text, so that ids enqueued together sort together';

CREATE FUNCTION jobq._token() RETURNS uuid
	LANGUAGE c VOLATILE AS 'MODULE_PATHNAME', 'jobq_token';
COMMENT ON FUNCTION jobq._token() IS
	'lease: a fresh random (version 4) UUID for a lease token, from a generator seeded once per backend';

/*
 * What lease returns, one row per job. A named row type rather than RETURNS TABLE: the
 * executor takes a row type's descriptor from the type cache, where it would build a
 * RETURNS TABLE function's from its catalog row at every call.
 */
CREATE TYPE jobq.leased AS (queue text, id text, run bigint, version integer, attempt integer,
	lease uuid, payload jsonb, state jsonb, timeout interval, lease_expires_at timestamptz,
	max_retries integer, priority integer, persist boolean, run_at timestamptz,
	created_at timestamptz);
COMMENT ON TYPE jobq.leased IS 'a leased job, as jobq.lease returns it';

CREATE FUNCTION jobq.lease(
	queue text,
	worker text DEFAULT NULL,
	n integer DEFAULT 1,
	timeout interval DEFAULT NULL)
RETURNS SETOF jobq.leased
LANGUAGE c VOLATILE AS 'MODULE_PATHNAME', 'jobq_lease';
COMMENT ON FUNCTION jobq.lease(text, text, integer, interval) IS
	'leases up to n (1..10000) due pending jobs of an unpaused queue, by priority, run_at, enqueue order; FOR UPDATE SKIP LOCKED';

CREATE FUNCTION jobq.heartbeat(
	queue text,
	id text,
	state jsonb DEFAULT NULL,
	progress real DEFAULT NULL,
	message text DEFAULT NULL,
	lease uuid DEFAULT NULL)
RETURNS text
LANGUAGE c VOLATILE AS 'MODULE_PATHNAME', 'jobq_heartbeat';
COMMENT ON FUNCTION jobq.heartbeat(text, text, jsonb, real, text, uuid) IS
	'extends a running job''s lease by its timeout, saves state/progress/message; returns desired_status';

CREATE FUNCTION jobq.complete(
	queue text,
	id text,
	result jsonb DEFAULT NULL,
	lease uuid DEFAULT NULL)
RETURNS void
LANGUAGE c VOLATILE AS 'MODULE_PATHNAME', 'jobq_complete';
COMMENT ON FUNCTION jobq.complete(text, text, jsonb, uuid) IS
	'finishes a running job with its result; the run moves to the history';

CREATE FUNCTION jobq.complete_batch(
	queue text,
	ids text[],
	leases uuid[],
	results jsonb[] DEFAULT NULL)
RETURNS SETOF text
LANGUAGE c VOLATILE AS 'MODULE_PATHNAME', 'jobq_complete_batch';
COMMENT ON FUNCTION jobq.complete_batch(text, text[], uuid[], jsonb[]) IS
	'complete for many jobs in one statement, each fenced by its own lease token; returns the ids completed (the others are untouched)';

CREATE FUNCTION jobq.fail(
	queue text,
	id text,
	error text DEFAULT NULL,
	retry boolean DEFAULT true,
	lease uuid DEFAULT NULL)
RETURNS text
LANGUAGE c VOLATILE AS 'MODULE_PATHNAME', 'jobq_fail';
COMMENT ON FUNCTION jobq.fail(text, text, text, boolean, uuid) IS
	'records a failure (an error event); retries with backoff while attempts remain, else failed; returns the new status';

/* ------------------------------------------------------------ other calls */

CREATE FUNCTION jobq.release(
	queue text,
	id text,
	state jsonb DEFAULT NULL,
	lease uuid DEFAULT NULL)
RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
	j jobq.jobs;
	now timestamptz := pg_catalog.clock_timestamp();
BEGIN
	j := jobq._leased(queue, id, lease);
	IF j.desired_status = 'cancelled' THEN
		j.state := COALESCE(release.state, j.state);
		PERFORM jobq._event(j, 'info', 'cancelled');
		PERFORM jobq._end(j, 'cancelled');
		RETURN 'cancelled';
	END IF;
	UPDATE jobq.jobs x SET
		status = CASE WHEN j.desired_status = 'stopped' THEN 'stopped' ELSE 'pending' END,
		state = COALESCE(release.state, x.state),
		attempt = x.attempt - 1, lease = NULL, lease_expires_at = NULL, worker = NULL,
		run_at = now, updated_at = now
	WHERE x.queue = j.queue AND x.id = j.id AND x.persist = j.persist
	RETURNING * INTO j;
	IF j.status = 'stopped' THEN
		PERFORM jobq._event(j, 'info', 'stopped');
	ELSE
		PERFORM jobq._notify(queue);
	END IF;
	RETURN j.status;
END
$$;
COMMENT ON FUNCTION jobq.release(text, text, jsonb, uuid) IS
	'gives a lease back without counting an attempt: the job goes to pending (or stopped/cancelled when so desired); returns the new status';

CREATE FUNCTION jobq.reschedule(
	queue text,
	id text,
	run_at timestamptz DEFAULT NULL,
	payload jsonb DEFAULT NULL,
	state jsonb DEFAULT NULL,
	timeout interval DEFAULT NULL,
	max_retries integer DEFAULT NULL)
RETURNS jobq.job
LANGUAGE plpgsql AS $$
DECLARE
	j jobq.job;
	now timestamptz := pg_catalog.clock_timestamp();
BEGIN
	PERFORM jobq._check_timeout(timeout);
	UPDATE jobq.jobs x SET status = 'pending', desired_status = 'running',
		run_at = COALESCE(reschedule.run_at, now),
		payload = COALESCE(reschedule.payload, x.payload),
		state = COALESCE(reschedule.state, x.state),
		timeout = COALESCE(reschedule.timeout, x.timeout),
		max_retries = COALESCE(reschedule.max_retries, x.max_retries),
		attempt = 0, lease = NULL, lease_expires_at = NULL, worker = NULL, updated_at = now
	WHERE x.queue = reschedule.queue AND x.id = reschedule.id
	RETURNING x.queue, x.id, x.run, x.version, x.status, x.desired_status, x.payload, x.state,
		x.result, x.priority, x.run_at, x.timeout, x.max_retries, x.attempt, x.lease,
		x.lease_expires_at, x.worker, x.progress, x.message, x.persist, x.rollback_enabled,
		x.created_by, x.created_at, x.started_at, x.updated_at, x.finished_at
	INTO j;
	IF NOT FOUND THEN
		PERFORM jobq._valid_queue(queue);
		RAISE EXCEPTION 'job "%" is not live in queue "%"', id, queue USING ERRCODE = 'no_data_found';
	END IF;
	PERFORM jobq._notify(queue);
	RETURN j;
END
$$;
COMMENT ON FUNCTION jobq.reschedule(text, text, timestamptz, jsonb, jsonb, interval, integer) IS
	'puts a live job back to pending at run_at (default now), optionally with a new payload, state, timeout, max_retries; attempts restart (relay)';

/* ----------------------------------------------------------------- reading */

CREATE FUNCTION jobq.get(queue text, id text) RETURNS jobq.job
LANGUAGE plpgsql STABLE AS $$
DECLARE
	j jobq.job;
	-- A producer reads only the jobs it created (90_privileges.sql).
	me text := CASE WHEN NOT jobq._caller_sees_all() THEN jobq._caller() END;
BEGIN
	SELECT x.queue, x.id, x.run, x.version, x.status, x.desired_status, x.payload, x.state,
		x.result, x.priority, x.run_at, x.timeout, x.max_retries, x.attempt, x.lease,
		x.lease_expires_at, x.worker, x.progress, x.message, x.persist, x.rollback_enabled,
		x.created_by, x.created_at, x.started_at, x.updated_at, x.finished_at
	INTO j FROM jobq.jobs x WHERE x.queue = get.queue AND x.id = get.id
		AND (me IS NULL OR x.created_by = me);
	IF NOT FOUND THEN
		SELECT x.queue, x.id, x.run, x.version, x.status, x.desired_status, x.payload, x.state,
			x.result, x.priority, x.run_at, x.timeout, x.max_retries, x.attempt, x.lease,
			x.lease_expires_at, x.worker, x.progress, x.message, x.persist, x.rollback_enabled,
			x.created_by, x.created_at, x.started_at, x.updated_at, x.finished_at
		INTO j FROM jobq.history x WHERE x.queue = get.queue AND x.id = get.id
			AND x.deleted_at IS NULL AND (me IS NULL OR x.created_by = me)
		ORDER BY x.run DESC LIMIT 1;
	END IF;
	IF NOT FOUND THEN
		PERFORM jobq._valid_queue(queue);
		RAISE EXCEPTION 'job "%" not found in queue "%"', id, queue USING ERRCODE = 'no_data_found';
	END IF;
	RETURN j;
END
$$;
COMMENT ON FUNCTION jobq.get(text, text) IS 'the live job, else its latest run not deleted; P0002 if unknown (to a producer: unless it created it)';

CREATE FUNCTION jobq.exists(queue text, id text) RETURNS boolean
LANGUAGE sql STABLE AS $$
	SELECT EXISTS (SELECT 1 FROM jobq.jobs x WHERE x.queue = $1 AND x.id = $2
		AND (jobq._caller_sees_all() OR x.created_by = jobq._caller()))
$$;
COMMENT ON FUNCTION jobq.exists(text, text) IS 'true when (queue, id) is a live job (pending, running, stopped)';

CREATE FUNCTION jobq.runs(queue text, id text) RETURNS SETOF jobq.job
LANGUAGE sql STABLE AS $$
	SELECT x.queue, x.id, x.run, x.version, x.status, x.desired_status, x.payload, x.state,
		x.result, x.priority, x.run_at, x.timeout, x.max_retries, x.attempt, x.lease,
		x.lease_expires_at, x.worker, x.progress, x.message, x.persist, x.rollback_enabled,
		x.created_by, x.created_at, x.started_at, x.updated_at, x.finished_at
	FROM (
		SELECT h.queue, h.id, h.run, h.version, h.status, h.desired_status, h.payload, h.state,
			h.result, h.priority, h.run_at, h.timeout, h.max_retries, h.attempt, h.lease,
			h.lease_expires_at, h.worker, h.progress, h.message, h.persist, h.rollback_enabled,
			h.created_by, h.created_at, h.started_at, h.updated_at, h.finished_at
		FROM jobq.history h WHERE h.queue = $1 AND h.id = $2 AND h.deleted_at IS NULL
		UNION ALL
		SELECT l.queue, l.id, l.run, l.version, l.status, l.desired_status, l.payload, l.state,
			l.result, l.priority, l.run_at, l.timeout, l.max_retries, l.attempt, l.lease,
			l.lease_expires_at, l.worker, l.progress, l.message, l.persist, l.rollback_enabled,
			l.created_by, l.created_at, l.started_at, l.updated_at, l.finished_at
		FROM jobq.jobs l WHERE l.queue = $1 AND l.id = $2
	) x WHERE jobq._caller_sees_all() OR x.created_by = jobq._caller()
	ORDER BY x.run
$$;
COMMENT ON FUNCTION jobq.runs(text, text) IS 'every run of a job still kept and not deleted, oldest first; the live one last';

/*
 * search(from_date, to_date, queue, status, lim, skip, sort, direction): jobs (live and
 * ended runs) created in [from_date, to_date), paged and sorted by a whitelisted column.
 */
CREATE FUNCTION jobq.search(
	from_date timestamptz DEFAULT NULL,
	to_date timestamptz DEFAULT NULL,
	queue text DEFAULT NULL,
	status text DEFAULT NULL,
	lim integer DEFAULT 100,
	skip integer DEFAULT 0,
	sort text DEFAULT 'created_at',
	direction text DEFAULT 'asc')
RETURNS SETOF jobq.job
LANGUAGE plpgsql STABLE AS $$
BEGIN
	IF lim IS NULL OR lim < 0 OR lim > 10000 THEN
		RAISE EXCEPTION 'lim must be between 0 and 10000, got %', lim USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF skip IS NULL OR skip < 0 THEN
		RAISE EXCEPTION 'skip must not be negative, got %', skip USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF sort IS NULL OR sort NOT IN ('created_at', 'started_at', 'finished_at', 'updated_at',
		'run_at', 'priority', 'status', 'queue', 'id', 'run') THEN
		RAISE EXCEPTION 'sort must be one of created_at, started_at, finished_at, updated_at, run_at, priority, status, queue, id, run; got %', sort
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF direction IS NULL OR pg_catalog.lower(direction) NOT IN ('asc', 'desc') THEN
		RAISE EXCEPTION 'direction must be asc or desc, got %', direction USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF status IS NOT NULL AND status NOT IN ('pending', 'running', 'stopped', 'finished', 'failed', 'cancelled') THEN
		RAISE EXCEPTION 'status must be one of pending, running, stopped, finished, failed, cancelled; got %', status
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	RETURN QUERY EXECUTE pg_catalog.format(
		'SELECT * FROM (
			SELECT h.queue, h.id, h.run, h.version, h.status, h.desired_status, h.payload, h.state,
				h.result, h.priority, h.run_at, h.timeout, h.max_retries, h.attempt, h.lease,
				h.lease_expires_at, h.worker, h.progress, h.message, h.persist, h.rollback_enabled,
				h.created_by, h.created_at, h.started_at, h.updated_at, h.finished_at
			FROM jobq.history h WHERE h.deleted_at IS NULL
			UNION ALL
			SELECT l.queue, l.id, l.run, l.version, l.status, l.desired_status, l.payload, l.state,
				l.result, l.priority, l.run_at, l.timeout, l.max_retries, l.attempt, l.lease,
				l.lease_expires_at, l.worker, l.progress, l.message, l.persist, l.rollback_enabled,
				l.created_by, l.created_at, l.started_at, l.updated_at, l.finished_at
			FROM jobq.jobs l) x
		WHERE ($1 IS NULL OR x.created_at >= $1) AND ($2 IS NULL OR x.created_at < $2)
			AND ($3 IS NULL OR x.queue = $3) AND ($4 IS NULL OR x.status = $4)
		ORDER BY x.%I %s, x.run %s LIMIT $5 OFFSET $6',
		sort, pg_catalog.lower(direction), pg_catalog.lower(direction))
	USING from_date, to_date, queue, status, lim, skip;
END
$$;
COMMENT ON FUNCTION jobq.search(timestamptz, timestamptz, text, text, integer, integer, text, text) IS
	'jobs and runs created in [from_date, to_date), filtered by queue and status, paged (lim, skip) and sorted';

CREATE FUNCTION jobq.events(queue text, id text, level text DEFAULT NULL)
RETURNS SETOF jobq.job_events
LANGUAGE sql STABLE AS $$
	SELECT * FROM jobq.job_events e
	WHERE e.queue = $1 AND e.id = $2 AND ($3 IS NULL OR e.level = $3)
	ORDER BY e.eid
$$;
COMMENT ON FUNCTION jobq.events(text, text, text) IS 'a job''s events (all runs), oldest first, optionally of one level';

CREATE FUNCTION jobq.log(queue text, id text, level text, message text, detail jsonb DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
	j jobq.jobs;
BEGIN
	IF level IS NULL OR level NOT IN ('info', 'warning', 'error') THEN
		RAISE EXCEPTION 'level must be info, warning or error, got %', COALESCE(level, 'NULL')
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF message IS NULL THEN
		RAISE EXCEPTION 'message must not be null' USING ERRCODE = 'null_value_not_allowed';
	END IF;
	SELECT * INTO j FROM jobq.jobs x WHERE x.queue = log.queue AND x.id = log.id;
	IF NOT FOUND THEN
		SELECT * INTO j FROM jobq.history x WHERE x.queue = log.queue AND x.id = log.id
		ORDER BY x.run DESC LIMIT 1;
	END IF;
	IF NOT FOUND THEN
		PERFORM jobq._valid_queue(queue);
		RAISE EXCEPTION 'job "%" not found in queue "%"', id, queue USING ERRCODE = 'no_data_found';
	END IF;
	RETURN jobq._event(j, level, message, detail);
END
$$;
COMMENT ON FUNCTION jobq.log(text, text, text, text, jsonb) IS
	'appends an info, warning or error event to a job''s log; returns its id';

/* ------------------------------------------------------------ observability */

CREATE VIEW jobq.queue_stats AS
SELECT q.queue, q.paused,
	COALESCE(l.pending, 0) AS pending,
	COALESCE(l.scheduled, 0) AS scheduled,
	COALESCE(l.running, 0) AS running,
	COALESCE(l.stopped, 0) AS stopped,
	COALESCE(h.finished, 0) AS finished,
	COALESCE(h.failed, 0) AS failed,
	COALESCE(h.cancelled, 0) AS cancelled,
	l.oldest_pending_at
FROM jobq.queues q
LEFT JOIN (
	SELECT x.queue,
		pg_catalog.count(*) FILTER (WHERE x.status = 'pending' AND x.run_at <= pg_catalog.now()) AS pending,
		pg_catalog.count(*) FILTER (WHERE x.status = 'pending' AND x.run_at > pg_catalog.now()) AS scheduled,
		pg_catalog.count(*) FILTER (WHERE x.status = 'running') AS running,
		pg_catalog.count(*) FILTER (WHERE x.status = 'stopped') AS stopped,
		pg_catalog.min(x.run_at) FILTER (WHERE x.status = 'pending') AS oldest_pending_at
	FROM jobq.jobs x GROUP BY x.queue) l ON l.queue = q.queue
LEFT JOIN (
	SELECT x.queue,
		pg_catalog.count(*) FILTER (WHERE x.status = 'finished') AS finished,
		pg_catalog.count(*) FILTER (WHERE x.status = 'failed') AS failed,
		pg_catalog.count(*) FILTER (WHERE x.status = 'cancelled') AS cancelled
	FROM jobq.history x WHERE x.deleted_at IS NULL GROUP BY x.queue) h ON h.queue = q.queue;
COMMENT ON VIEW jobq.queue_stats IS
	'per queue: jobs due (pending), scheduled for later, running, stopped, and ended runs kept';

/*
 * The state of the reaper serving this database, from shared memory (bgworker/): its last
 * run (time, jobs reaped, runs purged, errors) and totals; {"present": false, ...} when no
 * reaper serves this database.
 */
CREATE FUNCTION jobq._reaper_info() RETURNS jsonb
LANGUAGE c VOLATILE AS 'MODULE_PATHNAME', 'jobq_reaper_info';

CREATE FUNCTION jobq.stats() RETURNS jsonb
LANGUAGE sql STABLE AS $$
	SELECT pg_catalog.jsonb_build_object(
		'version', '0.1.0',
		'database', pg_catalog.current_database(),
		'at', pg_catalog.clock_timestamp(),
		'queues', COALESCE((SELECT pg_catalog.jsonb_object_agg(s.queue,
				pg_catalog.to_jsonb(s) - 'queue') FROM jobq.queue_stats s), '{}'),
		'totals', (SELECT pg_catalog.jsonb_build_object(
				'pending', COALESCE(pg_catalog.sum(s.pending), 0),
				'scheduled', COALESCE(pg_catalog.sum(s.scheduled), 0),
				'running', COALESCE(pg_catalog.sum(s.running), 0),
				'stopped', COALESCE(pg_catalog.sum(s.stopped), 0),
				'finished', COALESCE(pg_catalog.sum(s.finished), 0),
				'failed', COALESCE(pg_catalog.sum(s.failed), 0),
				'cancelled', COALESCE(pg_catalog.sum(s.cancelled), 0))
			FROM jobq.queue_stats s),
		'reaper', jobq._reaper_info())
$$;
COMMENT ON FUNCTION jobq.stats() IS 'queue counts, totals and the reaper''s last run, as JSON';

/*
 * metrics(openmetrics): the queues and the reaper in the Prometheus text exposition
 * (version 0.0.4), or in OpenMetrics 1.0 when openmetrics is true (a counter's HELP and TYPE
 * lines name its family without _total, and the text ends with "# EOF"). The sidecar serves it
 * at /metrics and /v1/cluster/stats. Label values need no escaping: a queue name is letters,
 * digits and "_ - . :". The reaper's counters are those of the reaper serving this
 * database, since it started; without one, jobq_reaper_up is 0 and the counters are absent.
 */
CREATE FUNCTION jobq.metrics(openmetrics boolean DEFAULT false) RETURNS text
LANGUAGE sql STABLE AS $$
	WITH s AS MATERIALIZED (SELECT * FROM jobq.queue_stats),
	r AS MATERIALIZED (SELECT jobq._reaper_info() AS i),
	lines (k, sub, line) AS (
		VALUES (10, '', '# HELP jobq_jobs Jobs of a queue by status (pending: due now; scheduled: waiting for their run_at; finished, failed, cancelled: ended runs kept).'),
			(11, '', '# TYPE jobq_jobs gauge'),
			(20, '', '# HELP jobq_queue_paused 1 when the queue is paused.'),
			(21, '', '# TYPE jobq_queue_paused gauge'),
			(30, '', '# HELP jobq_oldest_pending_seconds Age of the queue''s oldest pending job.'),
			(31, '', '# TYPE jobq_oldest_pending_seconds gauge'),
			(40, '', '# HELP jobq_reaper_up 1 while a reaper serves this database.'),
			(41, '', '# TYPE jobq_reaper_up gauge')
		UNION ALL
		SELECT 12, s.queue || ' ' || v.k, pg_catalog.format('jobq_jobs{queue="%s",status="%s"} %s',
			s.queue, v.status, v.n)
		FROM s, LATERAL (VALUES (1, 'pending', s.pending), (2, 'scheduled', s.scheduled),
			(3, 'running', s.running), (4, 'stopped', s.stopped), (5, 'finished', s.finished),
			(6, 'failed', s.failed), (7, 'cancelled', s.cancelled)) AS v(k, status, n)
		UNION ALL
		SELECT 22, s.queue, pg_catalog.format('jobq_queue_paused{queue="%s"} %s', s.queue,
			s.paused::integer)
		FROM s
		UNION ALL
		SELECT 32, s.queue, pg_catalog.format('jobq_oldest_pending_seconds{queue="%s"} %s', s.queue,
			COALESCE(GREATEST(0, pg_catalog.date_part('epoch',
				pg_catalog.now() - s.oldest_pending_at)), 0))
		FROM s
		UNION ALL
		SELECT 42, '', 'jobq_reaper_up ' || COALESCE((r.i ->> 'present')::boolean, false)::integer
		FROM r
		UNION ALL
		-- the reaper's counters, while a reaper runs: HELP, TYPE and the sample of each
		SELECT 50, v.name, pg_catalog.format(
			E'# HELP jobq_reaper_%1$s%2$s %3$s\n# TYPE jobq_reaper_%1$s%2$s counter\njobq_reaper_%1$s_total %4$s',
			v.name, CASE WHEN openmetrics THEN '' ELSE '_total' END, v.help,
			(r.i -> 'totals' ->> v.name)::bigint)
		FROM r, (VALUES ('ticks', 'Ticks of the reaper.'),
				('reaped', 'Expired leases the reaper failed (retried or ended).'),
				('purged', 'Ended runs the reaper purged after their retention.'),
				('errors', 'Ticks of the reaper that raised an error.')) AS v(name, help)
		WHERE (r.i ->> 'present')::boolean
		UNION ALL
		SELECT 90, '', '# EOF' WHERE openmetrics)
	SELECT pg_catalog.string_agg(l.line, E'\n' ORDER BY l.k, l.sub COLLATE "C") || E'\n' FROM lines l
$$;
COMMENT ON FUNCTION jobq.metrics(boolean) IS
	'the queues (jobs by status, paused, oldest pending job''s age) and the reaper (up, counters) in Prometheus text, or OpenMetrics when openmetrics is true';
