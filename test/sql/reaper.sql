-- reaper: jobq.reap(), the background worker's work, run on demand (no timing: leases are
-- expired by moving lease_expires_at into the past), and jobq.stats() where no reaper runs.
\set VERBOSITY terse
-- A clean slate: reap() works on every queue of the database.
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS jobq CASCADE;
CREATE EXTENSION jobq;
RESET client_min_messages;

CREATE FUNCTION expire(q text, ids text[]) RETURNS bigint LANGUAGE sql AS $$
	WITH u AS (UPDATE jobq.jobs SET lease_expires_at = clock_timestamp() - interval '1 second'
		WHERE queue = q AND id = ANY (ids) AND status = 'running' RETURNING 1)
	SELECT count(*) FROM u
$$;

------------------------------------------------------------ no reaper here
SELECT jobq.stats() -> 'reaper' ->> 'present' AS present;
SELECT m.l AS reaper_metrics FROM regexp_split_to_table(jobq.metrics(), E'\n') m(l)
WHERE m.l LIKE '%reaper%';
SELECT jobq._reaper_info() ?& ARRAY['present', 'preloaded', 'databases'] AS keys;
SELECT jobq.stop_reaper() AS stopped;
SELECT * FROM jobq.reap();
SELECT jobq.reap(0);                                                -- 22023
\echo :LAST_ERROR_SQLSTATE

------------------------------------------------------------ expired leases
SELECT queue FROM jobq.create_queue('r', retry_base => '10 ms', max_retries => 1);
SELECT count(*) FROM jobq.enqueue_batch('r', '[{"id": "a"}, {"id": "b"}, {"id": "c"}, {"id": "d"}]');
CREATE TEMP TABLE l1 AS SELECT id, lease, attempt FROM jobq.lease('r', 'w1', n => 4);
SELECT id, attempt FROM l1 ORDER BY id;
SELECT * FROM jobq.reap();                                          -- nothing expired yet
SELECT expire('r', '{a,b,c}');
SELECT * FROM jobq.reap(batch => 2);                                -- at most a batch
SELECT * FROM jobq.reap();
SELECT * FROM jobq.reap();
SELECT id, status, attempt, lease IS NULL AS no_lease, worker IS NULL AS no_worker,
	run_at > clock_timestamp() - interval '1 minute' AS backoff_set
FROM jobq.jobs WHERE queue = 'r' ORDER BY id;
-- one error event "lease expired" per reaped job, with its attempt
SELECT id, level, message, attempt, detail ->> 'retry' AS retry
FROM jobq.job_events WHERE queue = 'r' ORDER BY id, eid;
-- the old lease is fenced off
SELECT jobq.complete('r', 'a', lease => (SELECT lease FROM l1 WHERE id = 'a'));  -- 55000
\echo :LAST_ERROR_SQLSTATE
-- the next lease is attempt 2 (after the 10 ms backoff)
SELECT pg_sleep(0.1);
CREATE TEMP TABLE l2 AS SELECT id, lease, attempt FROM jobq.lease('r', 'w2', n => 4);
SELECT id, attempt FROM l2 ORDER BY id;

-- attempts spent (max_retries 1): failed; a stop or cancel request is honoured instead
UPDATE jobq.jobs SET desired_status = 'stopped' WHERE queue = 'r' AND id = 'b';
UPDATE jobq.jobs SET desired_status = 'cancelled' WHERE queue = 'r' AND id = 'c';
SELECT expire('r', '{a,b,c}');
SELECT * FROM jobq.reap();
SELECT id, status FROM jobq.get('r', 'a') UNION ALL
SELECT id, status FROM jobq.get('r', 'b') UNION ALL
SELECT id, status FROM jobq.get('r', 'c') UNION ALL
SELECT id, status FROM jobq.get('r', 'd');
SELECT count(*) AS lease_expired_events FROM jobq.events('r', 'a')
WHERE level = 'error' AND message = 'lease expired';

-- max_retries => 0 fails at once; max_retries => -1 comes back every time
SELECT (jobq.enqueue('r', id => 'once', max_retries => 0)).status;
SELECT (jobq.enqueue('r', id => 'ever', max_retries => -1)).status;
DO $$
BEGIN
	FOR i IN 1..5 LOOP
		PERFORM jobq.lease('r', 'w3', n => 10);
		PERFORM expire('r', '{once,ever}');
		PERFORM jobq.reap();
		UPDATE jobq.jobs SET run_at = clock_timestamp() WHERE queue = 'r' AND status = 'pending';
	END LOOP;
END
$$;
SELECT id, status, attempt FROM jobq.get('r', 'once') UNION ALL
SELECT id, status, attempt FROM jobq.get('r', 'ever');

-- a running job's saved state goes to the next attempt
SELECT (jobq.enqueue('rs', id => 's')).status;
SELECT jobq.heartbeat('rs', 's', state => '{"page": 7}', lease => lease) FROM jobq.lease('rs', 'w4');
SELECT expire('rs', '{s}');
SELECT * FROM jobq.reap();
UPDATE jobq.jobs SET run_at = clock_timestamp() WHERE queue = 'rs' AND id = 's';
SELECT id, attempt, state FROM jobq.lease('rs', 'w5');

-- unlogged jobs are reaped the same way
SELECT (jobq.enqueue('ru', id => 'u', persist => false)).status;
SELECT count(*) FROM jobq.lease('ru', 'w6');
SELECT expire('ru', '{u}');
SELECT * FROM jobq.reap();
SELECT status, attempt, persist FROM jobq.get('ru', 'u');

-- a job whose transition raises (here a trigger of the user's) is skipped with a WARNING;
-- the rest of the batch is reaped, and the job is reaped once it no longer raises
-- (refuse(): the trigger function of both tests, the reaper's and the purge's)
CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	RAISE EXCEPTION 'refused: % of job %', TG_OP, OLD.id;
END
$$;
CREATE TRIGGER poison BEFORE UPDATE ON jobq.jobs_persistent
	FOR EACH ROW WHEN (OLD.queue = 'rp' AND OLD.id = 'bad' AND NEW.status <> 'running') EXECUTE FUNCTION refuse();
SELECT count(*) FROM jobq.enqueue_batch('rp', '[{"id": "bad"}, {"id": "ok1"}, {"id": "ok2"}]');
SELECT count(*) FROM jobq.lease('rp', 'w7', n => 3);
SELECT expire('rp', '{bad}');   -- expired first: first in the batch
SELECT expire('rp', '{ok1,ok2}');
SELECT * FROM jobq.reap();
SELECT id, status, attempt FROM jobq.jobs WHERE queue = 'rp' ORDER BY id;
DROP TRIGGER poison ON jobq.jobs_persistent;
SELECT * FROM jobq.reap();
SELECT id, status FROM jobq.jobs WHERE queue = 'rp' ORDER BY id;

---------------------------------------------------------------- retention
SELECT queue FROM jobq.create_queue('ret', retention => '1 hour');
SELECT count(*) FROM jobq.enqueue_batch('ret', '[{"id": "x1"}, {"id": "x2"}, {"id": "x3"}, {"id": "x4"}]');
SELECT count(*) FROM (
	SELECT CASE WHEN id = 'x3' THEN jobq.fail('ret', id, 'boom', false)
		ELSE jobq.complete('ret', id)::text END
	FROM jobq.lease('ret', 'w', n => 3)) x;
SELECT jobq.log('ret', 'x1', 'info', 'hello') > 0 AS logged;
-- x1 runs again under the same id, with an event of its own
SELECT (jobq.enqueue('ret', id => 'x1')).status;
SELECT jobq.log('ret', 'x1', 'info', 'second run') > 0 AS logged;
SELECT * FROM jobq.reap();                                          -- nothing is old enough
-- age the ended runs of x1 and x3 past the retention
UPDATE jobq.history SET finished_at = finished_at - interval '2 hours'
WHERE queue = 'ret' AND id IN ('x1', 'x3');
SELECT * FROM jobq.reap();
SELECT id, status FROM jobq.history WHERE queue = 'ret' ORDER BY id;
SELECT id, status FROM jobq.jobs WHERE queue = 'ret' ORDER BY id;
SELECT id, message FROM jobq.job_events WHERE queue = 'ret' ORDER BY eid;
-- retention 0: every ended run goes; other queues keep theirs
SELECT queue FROM jobq.alter_queue('ret', retention => '0');
SELECT * FROM jobq.reap();
SELECT queue, count(*) FROM jobq.history GROUP BY queue ORDER BY queue;
-- purge batches are bounded too
SELECT count(*) FROM jobq.enqueue_batch('ret', '[{"id": "y1"}, {"id": "y2"}, {"id": "y3"}]');
SELECT count(jobq.complete('ret', id)) FROM jobq.lease('ret', 'w', n => 3);
SELECT * FROM jobq.reap(batch => 2);
SELECT * FROM jobq.reap(batch => 2);
-- a run whose deletion raises (here a trigger of the user's) is skipped with a WARNING;
-- the others are purged, and it goes once it no longer raises
SELECT queue FROM jobq.create_queue('retz', retention => '0');
SELECT count(*) FROM jobq.enqueue_batch('retz', '[{"id": "z1"}, {"id": "zbad"}, {"id": "z2"}]');
SELECT count(jobq.complete('retz', id)) FROM jobq.lease('retz', 'w', n => 3);
CREATE TRIGGER keep BEFORE DELETE ON jobq.history
	FOR EACH ROW WHEN (OLD.id = 'zbad') EXECUTE FUNCTION refuse();
SELECT * FROM jobq.reap();
SELECT id FROM jobq.history WHERE queue = 'retz' ORDER BY id;
DROP TRIGGER keep ON jobq.history;
DROP FUNCTION refuse();
SELECT * FROM jobq.reap();
SELECT count(*) FROM jobq.history WHERE queue = 'retz';

-- stats() still answers, without a reaper
SELECT jobq.stats() -> 'reaper' ->> 'present' AS present,
	(jobq.stats() -> 'totals' ->> 'failed')::int AS failed;

DROP FUNCTION expire(text, text[]);
