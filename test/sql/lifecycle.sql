-- lifecycle: stop, resume, cancel, retry, delete, and every refusal of the transition
-- table in README.md ("Job lifecycle"): 55000 for a wrong state, P0002 for an unknown job,
-- class 22 for a bad argument; a refusal or a no-op changes nothing.
\set VERBOSITY terse
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS jobq;
RESET client_min_messages;

\i test/sql/include/try.sql
-- fp(queue, id): a fingerprint of everything stored about a job (live row, runs,
-- versions, number of events), to show that a call changed nothing.
CREATE FUNCTION pg_temp.fp(q text, i text) RETURNS text LANGUAGE sql AS $$
	SELECT md5(concat_ws('|',
		(SELECT string_agg(x::text, ',') FROM jobq.jobs x WHERE x.queue = q AND x.id = i),
		(SELECT string_agg(x::text, ',' ORDER BY x.run) FROM jobq.history x
			WHERE x.queue = q AND x.id = i),
		(SELECT string_agg(x::text, ',' ORDER BY x.run, x.version) FROM jobq.job_versions x
			WHERE x.queue = q AND x.id = i),
		(SELECT count(*)::text FROM jobq.job_events x WHERE x.queue = q AND x.id = i)))
$$;
-- st(queue, id): what a user sees of a job.
CREATE FUNCTION pg_temp.st(q text, i text,
	OUT status text, OUT desired_status text, OUT attempt integer, OUT state jsonb,
	OUT live boolean)
LANGUAGE sql AS $$
	SELECT j.status, j.desired_status, j.attempt, j.state, jobq.exists(q, i)
	FROM jobq.get(q, i) j
$$;

SELECT queue FROM jobq.create_queue('lc', max_retries => 1, retry_base => '1 ms');

-- 1. stop of a pending job: at once. It is not leased until resumed.
SELECT id, status FROM jobq.enqueue('lc', '{"n": 1}', id => 'a', state => '{"page": 0}');
SELECT status, desired_status FROM jobq.stop('lc', 'a');
SELECT * FROM pg_temp.st('lc', 'a');
SELECT count(*) AS leased FROM jobq.lease('lc', 'w');
SELECT level, message FROM jobq.events('lc', 'a');
-- stop again: nothing changes.
SELECT pg_temp.fp('lc', 'a') AS fp \gset
SELECT status, desired_status FROM jobq.stop('lc', 'a');
SELECT pg_temp.fp('lc', 'a') = :'fp' AS unchanged;
-- resume: pending again, with its state; resume of a pending job changes nothing.
SELECT status, desired_status, state FROM jobq.resume('lc', 'a');
SELECT pg_temp.fp('lc', 'a') AS fp \gset
SELECT status, desired_status FROM jobq.resume('lc', 'a');
SELECT pg_temp.fp('lc', 'a') = :'fp' AS unchanged;

-- 2. stop -> resume round trip of a running job keeps its state: the worker learns the
-- stop from heartbeat and parks the job with release; the attempt after resume gets the
-- state saved last.
SELECT lease AS t1, attempt, state FROM jobq.lease('lc', 'w1') \gset
SELECT :attempt AS attempt, :'state' AS state;
SELECT jobq.heartbeat('lc', 'a', state => '{"page": 3}', lease => :'t1');
SELECT status, desired_status FROM jobq.stop('lc', 'a');
SELECT pg_temp.fp('lc', 'a') AS fp \gset
SELECT status, desired_status FROM jobq.stop('lc', 'a');
SELECT pg_temp.fp('lc', 'a') = :'fp' AS unchanged;
SELECT jobq.heartbeat('lc', 'a', state => '{"page": 4}', lease => :'t1');
SELECT jobq.release('lc', 'a', state => '{"page": 5}', lease => :'t1');
SELECT * FROM pg_temp.st('lc', 'a');
SELECT count(*) AS leased FROM jobq.lease('lc', 'w');
SELECT pg_temp.try(format($$SELECT jobq.heartbeat('lc', 'a', lease => %L)$$, :'t1'));
SELECT status, desired_status, state FROM jobq.resume('lc', 'a');
SELECT lease AS t2, attempt, state FROM jobq.lease('lc', 'w2') \gset
SELECT :attempt AS attempt, :'state' AS state;

-- 3. resume withdraws a stop request the worker has not acted on yet.
SELECT status, desired_status FROM jobq.stop('lc', 'a');
SELECT status, desired_status FROM jobq.resume('lc', 'a');
SELECT jobq.heartbeat('lc', 'a', lease => :'t2');

-- 4. a worker that never acts on the stop: the reaper parks the job when its lease
-- expires (it calls fail with the token and retry); the state saved last is kept.
SELECT jobq.heartbeat('lc', 'a', state => '{"page": 6}', lease => :'t2');
SELECT status, desired_status FROM jobq.stop('lc', 'a');
SELECT jobq.fail('lc', 'a', 'lease expired', true, :'t2');
SELECT * FROM pg_temp.st('lc', 'a');
SELECT status FROM jobq.resume('lc', 'a');
SELECT lease AS t3, attempt, state FROM jobq.lease('lc', 'w3') \gset
SELECT :attempt AS attempt, :'state' AS state;
SELECT jobq.complete('lc', 'a', '{"pages": 6}', lease => :'t3');
SELECT * FROM pg_temp.st('lc', 'a');
SELECT level, message, version, attempt FROM jobq.events('lc', 'a');

-- 5. cancel: pending and stopped jobs end at once; a running job is told by heartbeat
-- and ends cancelled on release, on failure or lease expiry; a complete still finishes it.
SELECT id FROM jobq.enqueue('lc', id => 'c1');
SELECT status, desired_status FROM jobq.cancel('lc', 'c1');
SELECT * FROM pg_temp.st('lc', 'c1');
SELECT id FROM jobq.enqueue('lc', id => 'c2');
SELECT status FROM jobq.stop('lc', 'c2');
SELECT status, desired_status FROM jobq.cancel('lc', 'c2');
SELECT id FROM jobq.enqueue('lc', id => 'c3');
SELECT lease AS c3 FROM jobq.lease('lc', 'w') \gset
SELECT status, desired_status FROM jobq.cancel('lc', 'c3');
SELECT pg_temp.fp('lc', 'c3') AS fp \gset
SELECT status, desired_status FROM jobq.cancel('lc', 'c3');
SELECT pg_temp.fp('lc', 'c3') = :'fp' AS unchanged;
SELECT jobq.heartbeat('lc', 'c3', lease => :'c3');
SELECT jobq.release('lc', 'c3', lease => :'c3');
SELECT * FROM pg_temp.st('lc', 'c3');
SELECT id FROM jobq.enqueue('lc', id => 'c4');
SELECT lease AS c4 FROM jobq.lease('lc', 'w') \gset
SELECT status FROM jobq.stop('lc', 'c4');
SELECT status, desired_status FROM jobq.cancel('lc', 'c4');
SELECT jobq.fail('lc', 'c4', 'lease expired', true, :'c4');
SELECT * FROM pg_temp.st('lc', 'c4');
SELECT id FROM jobq.enqueue('lc', id => 'c5');
SELECT lease AS c5 FROM jobq.lease('lc', 'w') \gset
SELECT status FROM jobq.cancel('lc', 'c5');
SELECT jobq.complete('lc', 'c5', '{"done": true}', lease => :'c5');
SELECT status, result FROM jobq.get('lc', 'c5');
SELECT message FROM jobq.events('lc', 'c3');

-- 6. retry (Teraslice _recover): a failed job goes back to pending, attempts reset, its
-- state kept, and an event says so; the same run and version.
SELECT id FROM jobq.enqueue('lc', '{"n": 2}', id => 'r', max_retries => 0);
SELECT lease AS r1 FROM jobq.lease('lc', 'w') \gset
SELECT jobq.heartbeat('lc', 'r', state => '{"row": 7}', lease => :'r1');
SELECT jobq.fail('lc', 'r', 'disk full', lease => :'r1');
SELECT run AS run_r FROM jobq.get('lc', 'r') \gset
SELECT * FROM pg_temp.st('lc', 'r');
SELECT status, desired_status, attempt, state, run = :run_r AS same_run, result IS NULL AS no_result
FROM jobq.retry('lc', 'r');
SELECT * FROM pg_temp.st('lc', 'r');
SELECT count(*) AS runs FROM jobq.runs('lc', 'r');
SELECT level, message, attempt, detail FROM jobq.events('lc', 'r');
SELECT lease AS r2, attempt, state FROM jobq.lease('lc', 'w') \gset
SELECT :attempt AS attempt, :'state' AS state;
SELECT jobq.complete('lc', 'r', lease => :'r2');

-- 7. delete: ended jobs only. The runs are marked deleted: gone from get, runs, search,
-- queue_stats and the views, kept in jobq.history with their events until retention.
SELECT pg_temp.try($$SELECT jobq.delete('lc', 'nope')$$);
SELECT finished, cancelled FROM jobq.queue_stats WHERE queue = 'lc';
SELECT status, id FROM jobq.delete('lc', 'r');
SELECT pg_temp.try($$SELECT jobq.get('lc', 'r')$$);
SELECT count(*) AS runs FROM jobq.runs('lc', 'r');
SELECT count(*) AS found FROM jobq.search(queue => 'lc') WHERE id = 'r';
SELECT finished, cancelled FROM jobq.queue_stats WHERE queue = 'lc';
SELECT status, deleted_at IS NOT NULL AS deleted FROM jobq.history WHERE queue = 'lc' AND id = 'r';
SELECT level, message, detail FROM jobq.events('lc', 'r') ORDER BY eid DESC LIMIT 1;
SELECT pg_temp.try($$SELECT jobq.delete('lc', 'r')$$);
SELECT pg_temp.try($$SELECT jobq.retry('lc', 'r')$$);
SELECT pg_temp.try($$SELECT jobq.progress('lc', 'r')$$);
-- the id can be enqueued again: a new run; deleting it later marks every run.
SELECT status FROM jobq.enqueue('lc', id => 'r');
SELECT count(*) AS runs FROM jobq.runs('lc', 'r');
SELECT status FROM jobq.cancel('lc', 'r');
SELECT status FROM jobq.enqueue('lc', id => 'r');
SELECT status FROM jobq.cancel('lc', 'r');
SELECT count(*) AS runs FROM jobq.runs('lc', 'r');
SELECT status FROM jobq.delete('lc', 'r');
SELECT count(*) AS runs, count(*) FILTER (WHERE deleted_at IS NOT NULL) AS deleted
FROM jobq.history WHERE queue = 'lc' AND id = 'r';
SELECT detail FROM jobq.events('lc', 'r') ORDER BY eid DESC LIMIT 1;

-- 8. refusals of live jobs: delete of a pending, running or stopped job; retry of a live
-- job; stop, resume or update of a job being cancelled. Each raises 55000, changes nothing.
SELECT id FROM jobq.enqueue('lc', id => 'p');
SELECT id FROM jobq.enqueue('lc', id => 's');
SELECT status FROM jobq.stop('lc', 's');
SELECT id FROM jobq.enqueue('lc', id => 'k', priority => -1);
SELECT lease AS k FROM jobq.lease('lc', 'w') \gset
SELECT id FROM jobq.enqueue('lc', id => 'x', priority => -1);
SELECT lease AS x FROM jobq.lease('lc', 'w') \gset
SELECT status FROM jobq.cancel('lc', 'x');
SELECT pg_temp.fp('lc', 'p') || pg_temp.fp('lc', 's') || pg_temp.fp('lc', 'k')
	|| pg_temp.fp('lc', 'x') AS fp \gset
SELECT c AS call, pg_temp.try(c) AS outcome FROM unnest(ARRAY[
	$$SELECT jobq.delete('lc', 'p')$$,
	$$SELECT jobq.delete('lc', 'k')$$,
	$$SELECT jobq.delete('lc', 's')$$,
	$$SELECT jobq.delete('lc', 'x')$$,
	$$SELECT jobq.retry('lc', 'p')$$,
	$$SELECT jobq.retry('lc', 'k')$$,
	$$SELECT jobq.retry('lc', 's')$$,
	$$SELECT jobq.stop('lc', 'x')$$,
	$$SELECT jobq.resume('lc', 'x')$$,
	$$SELECT jobq.update('lc', 'x', '{}')$$]) c;
SELECT pg_temp.fp('lc', 'p') || pg_temp.fp('lc', 's') || pg_temp.fp('lc', 'k')
	|| pg_temp.fp('lc', 'x') = :'fp' AS unchanged;

-- 9. refusals of ended jobs: finished (a), cancelled (c1), failed (f). Each raises 55000
-- naming the status, and changes nothing.
SELECT id FROM jobq.enqueue('lc', id => 'f', max_retries => 0, priority => -1);
SELECT lease AS f FROM jobq.lease('lc', 'w') \gset
SELECT jobq.fail('lc', 'f', 'boom', lease => :'f');
SELECT pg_temp.fp('lc', 'a') || pg_temp.fp('lc', 'c1') || pg_temp.fp('lc', 'f') AS fp \gset
SELECT c AS call, pg_temp.try(c) AS outcome FROM unnest(ARRAY[
	$$SELECT jobq.stop('lc', 'a')$$,
	$$SELECT jobq.resume('lc', 'a')$$,
	$$SELECT jobq.cancel('lc', 'a')$$,
	$$SELECT jobq.update('lc', 'a', '{}')$$,
	$$SELECT jobq.retry('lc', 'a')$$,
	$$SELECT jobq.stop('lc', 'c1')$$,
	$$SELECT jobq.resume('lc', 'c1')$$,
	$$SELECT jobq.cancel('lc', 'c1')$$,
	$$SELECT jobq.update('lc', 'c1', '{}')$$,
	$$SELECT jobq.retry('lc', 'c1')$$,
	$$SELECT jobq.stop('lc', 'f')$$,
	$$SELECT jobq.resume('lc', 'f')$$,
	$$SELECT jobq.cancel('lc', 'f')$$,
	$$SELECT jobq.update('lc', 'f', '{}')$$]) c;
SELECT pg_temp.fp('lc', 'a') || pg_temp.fp('lc', 'c1') || pg_temp.fp('lc', 'f') = :'fp' AS unchanged;

-- 10. unknown jobs (P0002), unknown queues (P0002), bad arguments (class 22).
SELECT c AS call, pg_temp.try(c) AS outcome FROM unnest(ARRAY[
	$$SELECT jobq.stop('lc', 'nope')$$,
	$$SELECT jobq.resume('lc', 'nope')$$,
	$$SELECT jobq.cancel('lc', 'nope')$$,
	$$SELECT jobq.retry('lc', 'nope')$$,
	$$SELECT jobq.delete('lc', 'nope')$$,
	$$SELECT jobq.update('lc', 'nope', '{}')$$,
	$$SELECT jobq.stop('no_such_queue', 'a')$$,
	$$SELECT jobq.stop('bad queue!', 'a')$$,
	$$SELECT jobq.retry('lc', '')$$,
	$$SELECT jobq.delete('bad queue!', 'a')$$]) c;

-- Clean up the live jobs of this file.
SELECT jobq.drop_queue('lc', force => true);
