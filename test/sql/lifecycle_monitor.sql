-- lifecycle_monitor: progress and result (ZeroG), events and errors (ZeroG, Teraslice),
-- get_job and search_jobs_by_start_date (HarperDB), search paging, wait, and the views
-- jobq.running and jobq.failed.
\set VERBOSITY terse
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS jobq;
RESET client_min_messages;

\i test/sql/include/try.sql

SELECT queue FROM jobq.create_queue('lm', max_retries => 0);
SELECT queue FROM jobq.create_queue('lm2', max_retries => 0);

-- 1. progress: status, percent, result_code -1 while not ended, 0 finished, 1 failed or
-- cancelled. result: what complete was given, also in jobq.get.
SELECT id FROM jobq.enqueue('lm', '{"csv": "a.csv"}', id => 'p');
SELECT * FROM jobq.progress('lm', 'p');
SELECT lease AS p FROM jobq.lease('lm', 'w1') \gset
SELECT jobq.heartbeat('lm', 'p', progress => 40, message => 'loaded 140 of 350', lease => :'p');
SELECT * FROM jobq.progress('lm', 'p');
SELECT jobq.result('lm', 'p') IS NULL AS no_result_yet;
SELECT pg_temp.try(format($$SELECT jobq.heartbeat('lm', 'p', progress => 101, lease => %L)$$, :'p'));
SELECT jobq.complete('lm', 'p', '{"loaded": 350}', lease => :'p');
SELECT * FROM jobq.progress('lm', 'p');
SELECT jobq.result('lm', 'p');
SELECT result FROM jobq.get('lm', 'p');
SELECT id FROM jobq.enqueue('lm', id => 'q');
SELECT status FROM jobq.cancel('lm', 'q');
SELECT * FROM jobq.progress('lm', 'q');
SELECT pg_temp.try($$SELECT jobq.progress('lm', 'nope')$$);
SELECT pg_temp.try($$SELECT jobq.result('lm', 'nope')$$);

-- 2. events: log info, warning, error; oldest first, with version and attempt; by level.
SELECT id FROM jobq.enqueue('lm', id => 'e');
SELECT lease AS e FROM jobq.lease('lm', 'w1') \gset
SELECT jobq.log('lm', 'e', 'info', 'started reading') > 0 AS logged;
SELECT jobq.log('lm', 'e', 'warning', 'slow source', '{"ms": 900}') > 0 AS logged;
SELECT jobq.log('lm', 'e', 'error', 'bad row', '{"row": 12}') > 0 AS logged;
SELECT version FROM jobq.update('lm', 'e', '{"csv": "b.csv"}');
SELECT lease AS e FROM jobq.lease('lm', 'w1') \gset
SELECT jobq.log('lm', 'e', 'info', 'second version') > 0 AS logged;
SELECT jobq.complete('lm', 'e', lease => :'e');
SELECT level, message, detail, version, attempt FROM jobq.events('lm', 'e');
SELECT level, message FROM jobq.events('lm', 'e', 'error');
SELECT pg_temp.try($$SELECT jobq.log('lm', 'e', 'debug', 'x')$$);
SELECT pg_temp.try($$SELECT jobq.log('lm', 'nope', 'info', 'x')$$);

-- 3. errors across the jobs of a queue, oldest first, since a time, at most lim.
SELECT id FROM jobq.enqueue('lm', id => 'f1');
SELECT id FROM jobq.enqueue('lm', id => 'f2');
SELECT lease AS f1, id FROM jobq.lease('lm', 'w2') \gset
SELECT :'id' AS leased;
SELECT jobq.fail('lm', 'f1', 'timeout talking to s3', lease => :'f1');
SELECT lease AS f2, id FROM jobq.lease('lm', 'w2') \gset
SELECT :'id' AS leased;
SELECT jobq.fail('lm', 'f2', 'access denied', lease => :'f2');
SELECT id FROM jobq.enqueue('lm2', id => 'o');
SELECT lease AS o FROM jobq.lease('lm2', 'w3') \gset
SELECT jobq.fail('lm2', 'o', 'other queue', lease => :'o');
SELECT id, message, version, attempt FROM jobq.errors('lm');
SELECT id, message FROM jobq.errors('lm', lim => 2);
SELECT id, message FROM jobq.errors(queue => 'lm',
	since => (SELECT at FROM jobq.events('lm', 'f2', 'error')));
SELECT count(*) AS later FROM jobq.errors('lm', since => now() + interval '1 day');
SELECT count(*) FILTER (WHERE queue = 'lm') AS lm, count(*) FILTER (WHERE queue = 'lm2') AS lm2
FROM jobq.errors(NULL, lim => 10000);
SELECT c AS call, pg_temp.try(c) AS outcome FROM unnest(ARRAY[
	$$SELECT jobq.errors('no_such_queue')$$,
	$$SELECT jobq.errors('bad queue!')$$,
	$$SELECT jobq.errors('lm', lim => -1)$$,
	$$SELECT jobq.errors('lm', lim => NULL)$$]) c;

-- 4. HarperDB get_job: one row per queue holding the id, in HarperDB's fields.
SELECT id, "user" = current_user AS by_me, type, status, message, job_body,
	created_datetime = "__createdtime__" AS created_same,
	start_datetime >= created_datetime AS started_after_created,
	end_datetime >= start_datetime AS ended_after_started,
	"__updatedtime__" >= created_datetime AS updated_after_created,
	start_datetime_converted ~ '^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$' AS iso_start,
	start_datetime_converted::timestamptz
		= to_timestamp(start_datetime / 1000.0) AS iso_matches_ms,
	end_datetime_converted::timestamptz = to_timestamp(end_datetime / 1000.0) AS iso_end_matches
FROM jobq.get_job('p');
SELECT abs(h.start_datetime - extract(epoch FROM j.started_at) * 1000) < 1 AS start_ms,
	abs(h.end_datetime - extract(epoch FROM j.finished_at) * 1000) < 1 AS end_ms
FROM jobq.get_job('p') h, jobq.get('lm', 'p') j;
SELECT id, type, status, message FROM jobq.get_job('f1');
SELECT id FROM jobq.enqueue('lm2', id => 'p');
SELECT type, status, start_datetime IS NULL AS not_started,
	end_datetime_converted IS NOT NULL AS ended
FROM jobq.get_job('p');
SELECT count(*) AS found FROM jobq.get_job('nope');

-- 5. HarperDB search_jobs_by_start_date: runs whose attempt started in [from, to).
SELECT id, type, status FROM jobq.search_jobs_by_start_date(now() - interval '1 hour',
	now() + interval '1 hour') WHERE type IN ('lm', 'lm2') ORDER BY type, id;
SELECT count(*) AS found FROM jobq.search_jobs_by_start_date(now() + interval '1 hour', NULL)
WHERE type IN ('lm', 'lm2');
SELECT status FROM jobq.delete('lm', 'f2');
SELECT count(*) AS found FROM jobq.search_jobs_by_start_date(NULL, NULL) WHERE id = 'f2';
SELECT pg_temp.try($$SELECT jobq.search_jobs_by_start_date(now(), now() - interval '1 day')$$);

-- 6. search: paged with lim and skip, sorted by a whitelisted column and direction.
SELECT string_agg(id, ' ') AS ids FROM jobq.search(queue => 'lm', sort => 'id');
SELECT string_agg(id, ' ') AS ids FROM jobq.search(queue => 'lm', sort => 'id', direction => 'DESC');
SELECT string_agg(id, ' ') AS ids FROM jobq.search(queue => 'lm', sort => 'id', lim => 2, skip => 1);
SELECT string_agg(id, ' ') AS ids FROM jobq.search(queue => 'lm', status => 'failed', sort => 'id');
SELECT c AS call, pg_temp.try(c) AS outcome FROM unnest(ARRAY[
	$$SELECT jobq.search(sort => 'payload')$$,
	$$SELECT jobq.search(sort => 'id; DROP TABLE jobq.jobs')$$,
	$$SELECT jobq.search(direction => 'sideways')$$,
	$$SELECT jobq.search(lim => -1)$$,
	$$SELECT jobq.search(skip => -1)$$,
	$$SELECT jobq.search(status => 'done')$$]) c;

-- 7. wait: returns at once for an ended job, with its status and result; after the
-- timeout for one that has not ended.
CALL jobq.wait('lm', 'p', '1 second');
CALL jobq.wait(queue => 'lm', id => 'q', timeout => '0');
SELECT id FROM jobq.enqueue('lm', id => 'w');
CALL jobq.wait(queue => 'lm', id => 'w', timeout => '50 ms');
SELECT pg_temp.try($$CALL jobq.wait('lm', 'nope', '1 second')$$);
SELECT pg_temp.try($$CALL jobq.wait('lm', 'w', '-1 second')$$);
-- Inside a transaction block it cannot commit: fine for an ended job, 2D000 otherwise.
BEGIN;
CALL jobq.wait('lm', 'p');
CALL jobq.wait('lm', 'w', '50 ms');
ROLLBACK;
-- What it sleeps on (extension/wake.c): a slot counter that has moved since it was read
-- returns at once (true); an unchanged one sleeps out its timeout (false); a commit that
-- ends a job moves its slot's counter; bad arguments are refused.
SELECT jobq._wake_wait('lm', 'w', jobq._wake_count('lm', 'w') - 1, 30) AS moved;
SELECT jobq._wake_wait('lm', 'w', jobq._wake_count('lm', 'w'), 0.01) AS unchanged;
SELECT id FROM jobq.enqueue('lm', id => 'wk');
SELECT jobq._wake_count('lm', 'wk') AS before \gset
SELECT (jobq.cancel('lm', 'wk')).status;
SELECT jobq._wake_count('lm', 'wk') > :before AS moved_by_the_cancel;
SELECT pg_temp.try($$SELECT jobq._wake_wait('lm', 'w', 0, -1)$$);
SELECT pg_temp.try($$SELECT jobq._wake_wait('lm', 'w', NULL, 1)$$);

-- 8. views for operators.
SELECT lease AS w FROM jobq.lease('lm', 'w4') \gset
SELECT jobq.heartbeat('lm', 'w', progress => 10, lease => :'w');
SELECT status FROM jobq.stop('lm', 'w');
SELECT queue, id, version, attempt, worker, desired_status, progress,
	running_for >= interval '0' AS running_for_ok, lease_expires_at > now() AS lease_ok
FROM jobq.running WHERE queue IN ('lm', 'lm2');
SELECT queue, id, version, attempt, error, failed_at IS NOT NULL AS failed_at_ok
FROM jobq.failed WHERE queue IN ('lm', 'lm2') ORDER BY queue, id;
SELECT status FROM jobq.retry('lm', 'f1');
SELECT count(*) AS failed FROM jobq.failed WHERE queue = 'lm';

SELECT jobq.drop_queue('lm', force => true);
SELECT jobq.drop_queue('lm2', force => true);
