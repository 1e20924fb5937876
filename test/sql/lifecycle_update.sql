-- lifecycle_update: versioned update (Grepr), the fencing of a retired version's lease,
-- rollback to the last good version, and jobq.versions.
\set VERBOSITY terse
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS jobq;
RESET client_min_messages;

\i test/sql/include/try.sql
-- v(queue, id): the versions of a job, without times.
CREATE FUNCTION pg_temp.v(q text, i text) RETURNS TABLE (version integer, status text,
	desired_status text, payload jsonb, rollback_enabled boolean, attempt integer,
	times_ok boolean)
LANGUAGE sql AS $$
	SELECT v.version, v.status, v.desired_status, v.payload, v.rollback_enabled, v.attempt,
		v.created_at IS NOT NULL
		AND (v.started_at IS NULL OR v.started_at >= v.created_at)
		AND (v.finished_at IS NULL OR v.finished_at >= v.created_at)
		AND v.created_at >= lag(v.finished_at, 1, v.created_at) OVER (ORDER BY v.version)
	FROM jobq.versions(q, i) v
$$;

SELECT queue FROM jobq.create_queue('lu', max_retries => 1, retry_base => '1 ms');

-- 1. Grepr's update with rollbackEnabled. Version 0 runs; the update retires it
-- (finished/finished) and version 1 goes pending.
SELECT version, status FROM jobq.enqueue('lu', '{"graph": "g0"}', id => 'pipe');
SELECT * FROM pg_temp.v('lu', 'pipe');
SELECT lease AS t0, version FROM jobq.lease('lu', 'w0') \gset
SELECT :version AS leased_version;
SELECT jobq.heartbeat('lu', 'pipe', state => '{"offset": 10}', progress => 20, lease => :'t0');
SELECT version, status, desired_status, payload, attempt, state, progress, rollback_enabled
FROM jobq.update('lu', 'pipe', '{"graph": "g1"}', rollback_enabled => true);
SELECT * FROM pg_temp.v('lu', 'pipe');
-- The retired version's worker: heartbeat tells it to stop; complete, fail and release
-- are refused (55000) and change nothing.
SELECT jobq.heartbeat('lu', 'pipe', state => '{"offset": 99}', lease => :'t0');
SELECT state FROM jobq.get('lu', 'pipe');
SELECT call, pg_temp.try(format(c, :'t0')) AS outcome FROM (VALUES
	('complete', $$SELECT jobq.complete('lu', 'pipe', lease => %L)$$),
	('fail', $$SELECT jobq.fail('lu', 'pipe', 'late', lease => %L)$$),
	('fail, no retry', $$SELECT jobq.fail('lu', 'pipe', 'late', false, %L)$$),
	('release', $$SELECT jobq.release('lu', 'pipe', lease => %L)$$)) v(call, c);
SELECT status, version, attempt FROM jobq.get('lu', 'pipe');
-- Version 1 is leased by another worker, with the job's state, and fails: first retried,
-- then (retries spent) it fails for good. Rollback: version 2 from version 0's payload.
SELECT lease AS t1, version, attempt, payload, state FROM jobq.lease('lu', 'w1') \gset
SELECT :version AS version, :attempt AS attempt, :'payload' AS payload, :'state' AS state;
SELECT jobq.fail('lu', 'pipe', 'bad graph', lease => :'t1');
UPDATE jobq.jobs SET run_at = now() WHERE queue = 'lu' AND id = 'pipe';
SELECT lease AS t1b, version, attempt FROM jobq.lease('lu', 'w1') \gset
SELECT :version AS version, :attempt AS attempt;
SELECT jobq.fail('lu', 'pipe', 'bad graph again', lease => :'t1b');
-- Grepr: version 0 finished/finished, version 1 failed/running, version 2 pending/running.
SELECT * FROM pg_temp.v('lu', 'pipe');
SELECT version, status, desired_status, payload, attempt, rollback_enabled,
	jobq.exists('lu', 'pipe') AS live
FROM jobq.get('lu', 'pipe');
SELECT level, message, version, attempt, detail - 'next_run_at' AS detail
FROM jobq.events('lu', 'pipe');
-- The failed version's worker is told to stop, and cannot complete.
SELECT jobq.heartbeat('lu', 'pipe', lease => :'t1b');
SELECT pg_temp.try(format($$SELECT jobq.complete('lu', 'pipe', lease => %L)$$, :'t1b'));
-- Version 2 runs and finishes; the old tokens stay fenced after the job ended.
SELECT lease AS t2, version, payload FROM jobq.lease('lu', 'w2') \gset
SELECT :version AS version, :'payload' AS payload;
SELECT jobq.complete('lu', 'pipe', '{"ok": true}', lease => :'t2');
SELECT * FROM pg_temp.v('lu', 'pipe');
SELECT jobq.heartbeat('lu', 'pipe', lease => :'t0');
SELECT pg_temp.try(format($$SELECT jobq.complete('lu', 'pipe', lease => %L)$$, :'t0'));

-- 2. fail(retry => false) of a version with rollback_enabled rolls back at once; so does
-- the reaper's fail when the lease expires with no retries left. A rollback version has
-- rollback disabled: when it fails for good, the job ends failed.
SELECT id FROM jobq.enqueue('lu', '{"v": "a"}', id => 'rb', max_retries => 0);
SELECT version FROM jobq.update('lu', 'rb', '{"v": "b"}', true);
SELECT lease AS rb1 FROM jobq.lease('lu', 'w') \gset
SELECT jobq.fail('lu', 'rb', 'no', false, :'rb1');
SELECT version, status, payload, rollback_enabled FROM jobq.get('lu', 'rb');
SELECT version, payload FROM jobq.update('lu', 'rb', '{"v": "c"}', true);
SELECT lease AS rb2 FROM jobq.lease('lu', 'w') \gset
SELECT jobq.fail('lu', 'rb', 'lease expired', true, :'rb2');
SELECT version, status, payload FROM jobq.get('lu', 'rb');
SELECT lease AS rb3 FROM jobq.lease('lu', 'w') \gset
SELECT jobq.fail('lu', 'rb', 'still no', false, :'rb3');
SELECT version, status, payload, jobq.exists('lu', 'rb') AS live FROM jobq.get('lu', 'rb');
SELECT * FROM pg_temp.v('lu', 'rb');

-- 3. Without rollback_enabled a failing new version ends the job failed; its versions
-- stay visible from the ended run. retry brings back that version.
SELECT id FROM jobq.enqueue('lu', '{"v": 1}', id => 'nr', max_retries => 0);
SELECT version, rollback_enabled FROM jobq.update('lu', 'nr', '{"v": 2}');
SELECT lease AS nr FROM jobq.lease('lu', 'w') \gset
SELECT jobq.fail('lu', 'nr', 'broken', lease => :'nr');
SELECT * FROM pg_temp.v('lu', 'nr');
SELECT version, status, payload FROM jobq.retry('lu', 'nr');
SELECT * FROM pg_temp.v('lu', 'nr');

-- 4. update of a pending job (never leased, scheduled later: keeps its run_at), of a
-- stopped job (the new version is pending), of a running job asked to stop (the new
-- version is pending, desired running).
SELECT id FROM jobq.enqueue('lu', id => 'later', run_at => now() + interval '1 hour');
SELECT run_at AS later_at FROM jobq.get('lu', 'later') \gset
SELECT version, status, run_at = :'later_at' AS same_run_at FROM jobq.update('lu', 'later', '{"x": 1}');
SELECT id FROM jobq.enqueue('lu', id => 'st', state => '{"s": 1}');
SELECT status FROM jobq.stop('lu', 'st');
SELECT version, status, desired_status, state FROM jobq.update('lu', 'st', '{"x": 2}');
SELECT id FROM jobq.enqueue('lu', id => 'rs', priority => -1);
SELECT lease AS rs FROM jobq.lease('lu', 'w') \gset
SELECT status, desired_status FROM jobq.stop('lu', 'rs');
SELECT version, status, desired_status FROM jobq.update('lu', 'rs', '{"x": 3}');
SELECT jobq.heartbeat('lu', 'rs', lease => :'rs');
SELECT * FROM pg_temp.v('lu', 'rs');

-- 5. refusals: update of an ended or cancelling job (55000), unknown job (P0002), bad
-- arguments (class 22); versions of an unknown job (P0002).
SELECT id FROM jobq.enqueue('lu', id => 'cx');
SELECT status FROM jobq.cancel('lu', 'cx');
SELECT c AS call, pg_temp.try(c) AS outcome FROM unnest(ARRAY[
	$$SELECT jobq.update('lu', 'cx', '{}')$$,
	$$SELECT jobq.update('lu', 'pipe', '{}')$$,
	$$SELECT jobq.update('lu', 'nope', '{}')$$,
	$$SELECT jobq.update('lu', 'rs', NULL)$$,
	$$SELECT jobq.update('lu', 'rs', '{}', NULL)$$,
	$$SELECT jobq.update('bad queue!', 'rs', '{}')$$,
	$$SELECT jobq.versions('lu', 'nope')$$]) c;
SELECT version, status FROM jobq.get('lu', 'rs');

-- 6. versions live as long as their run: a retention purge of the run deletes them
-- (trigger on jobq.history), drop_queue deletes them with the queue.
SELECT count(*) AS versions FROM jobq.job_versions WHERE queue = 'lu' AND id = 'pipe';
DELETE FROM jobq.history WHERE queue = 'lu' AND id = 'pipe';
SELECT count(*) AS versions FROM jobq.job_versions WHERE queue = 'lu' AND id = 'pipe';
SELECT count(*) > 0 AS some FROM jobq.job_versions WHERE queue = 'lu';
SELECT jobq.drop_queue('lu', force => true);
SELECT count(*) AS versions FROM jobq.job_versions WHERE queue = 'lu';
