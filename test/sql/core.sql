-- core: the enqueue -> lease -> heartbeat -> complete/fail cycle, queues, reading calls,
-- and every refusal of bad input (right SQLSTATE, nothing written).
\set VERBOSITY terse
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS jobq;
RESET client_min_messages;

-------------------------------------------------------------------- queues
SELECT queue, timeout, max_retries, retention, paused, max_running
FROM jobq.create_queue('mail', timeout => '10 seconds', max_retries => 2, retry_base => '1 minute');
SELECT queue, timeout, max_retries FROM jobq.alter_queue('mail', max_retries => 1);
SELECT jobq.create_queue('mail');                                   -- 23505
\echo :LAST_ERROR_SQLSTATE
SELECT jobq.alter_queue('nope');                                    -- P0002
\echo :LAST_ERROR_SQLSTATE
SELECT jobq.alter_queue('mail', timeout => '0 s');                  -- 22023
\echo :LAST_ERROR_SQLSTATE
SELECT jobq.create_queue('neg', timeout => '-1 s');                 -- 22023
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) FROM jobq.queues WHERE queue = 'neg';

-- queue names: NULL, empty, too long, bad characters; nothing is created
SELECT jobq.enqueue(NULL);  -- 22004
\echo :LAST_ERROR_SQLSTATE
SELECT jobq.enqueue('');  -- 22023
\echo :LAST_ERROR_SQLSTATE
SELECT jobq.enqueue(repeat('q', 129));  -- 22023
\echo :LAST_ERROR_SQLSTATE
SELECT jobq.enqueue('bad name');  -- 22023
\echo :LAST_ERROR_SQLSTATE
SELECT jobq.enqueue('semi;colon');  -- 22023
\echo :LAST_ERROR_SQLSTATE
SELECT jobq.enqueue('quote''s');  -- 22023
\echo :LAST_ERROR_SQLSTATE
SELECT jobq.enqueue('ünï');  -- 22023
\echo :LAST_ERROR_SQLSTATE
SELECT jobq.enqueue('..');  -- 22023: a path segment in the sidecar's URLs
\echo :LAST_ERROR_SQLSTATE
SELECT jobq.create_queue('.');  -- 22023
\echo :LAST_ERROR_SQLSTATE
SELECT (jobq.enqueue(repeat('q', 128))).status;                     -- 128 is fine
SELECT (jobq.enqueue('ok_-.:Name9')).status;                        -- every allowed character
SELECT (jobq.enqueue('...')).status;                                -- dots, but not a path segment
SELECT count(*) FROM jobq.queues;
SELECT jobq.lease('bad name');  -- 22023
\echo :LAST_ERROR_SQLSTATE
SELECT jobq.lease(NULL);  -- 22004
\echo :LAST_ERROR_SQLSTATE

------------------------------------------------------------------- enqueue
SELECT id, status, attempt, version, payload, timeout, max_retries, persist, created_by = current_user AS mine
FROM jobq.enqueue('mail', '{"to": "ada"}', id => 'a');
SELECT jobq.enqueue('mail', '{}', id => 'a');                       -- 23505 live duplicate
\echo :LAST_ERROR_SQLSTATE
SELECT jobq.enqueue('mail', '{}', id => 'a', persist => false);     -- 23505 across partitions too
\echo :LAST_ERROR_SQLSTATE
SELECT jobq.enqueue('mail', '{}', id => '');                        -- 22023
\echo :LAST_ERROR_SQLSTATE
SELECT jobq.enqueue('mail', '{}', id => 'z', timeout => '0');       -- 22023
\echo :LAST_ERROR_SQLSTATE
SELECT jobq.enqueue('mail', '{}', id => 'z', timeout => '-5 s');    -- 22023
\echo :LAST_ERROR_SQLSTATE
SELECT jobq.enqueue('mail', 'not json', id => 'z');                 -- 22P02 (text interface)
\echo :LAST_ERROR_SQLSTATE
SELECT jobq.enqueue('mail', '{}', id => 'z', state => '{bad');      -- 22P02
\echo :LAST_ERROR_SQLSTATE
SELECT jobq.exists('mail', 'z');
-- a generated id is a time-ordered (version 7) UUID: its first 48 bits are the time in ms
SELECT id ~ '^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$' AS uuid_v7,
	abs(extract(epoch FROM clock_timestamp()) * 1000
		- ('x' || substr(replace(id, '-', ''), 1, 12))::bit(48)::bigint) < 60000 AS time_now
FROM jobq.enqueue('gen');
-- defaults come from the queue; explicit values win
SELECT timeout, max_retries FROM jobq.enqueue('mail', id => 'b', timeout => '5 s', max_retries => -1);
SELECT count(*) FROM jobq.jobs WHERE queue = 'mail';

-- a rolled-back enqueue leaves nothing
BEGIN;
SELECT (jobq.enqueue('mail', id => 'rolled')).status;
ROLLBACK;
SELECT jobq.exists('mail', 'rolled');

--------------------------------------------------------------- batch enqueue
SELECT * FROM jobq.enqueue_batch('batch',
	'[{"id": "b1", "payload": {"n": 1}}, {"id": "b2", "timeout": 7, "max_retries": 0},
	  {"id": "b1"}, {"id": "b3", "persist_data": false, "priority": -1, "timeout": "2 minutes"}]');
SELECT * FROM jobq.enqueue_batch('batch', '[{"id": "b2"}, {"id": "b4"}]');   -- b2 skipped
SELECT id, timeout, max_retries, persist, priority FROM jobq.jobs WHERE queue = 'batch' ORDER BY id;
-- generated ids: answered in the array's order
CREATE TEMP TABLE gen AS
	SELECT * FROM jobq.enqueue_batch('batch', '[{}, {"payload": 1, "timeout": 9, "priority": 2}]')
	WITH ORDINALITY AS r(id, ord);
SELECT g.ord, j.payload, j.status, j.timeout, j.max_retries, j.priority FROM gen g JOIN jobq.jobs j ON j.queue = 'batch' AND j.id = g.id
	ORDER BY g.ord;
SELECT jobq.enqueue_batch('batch', '{"id": 1}');                             -- 22023: not an array
\echo :LAST_ERROR_SQLSTATE
SELECT jobq.enqueue_batch('batch', '[1, 2]');                                -- 22023: not objects
\echo :LAST_ERROR_SQLSTATE
SELECT jobq.enqueue_batch('batch', '[{"timeout": -1}]');                     -- 22023
\echo :LAST_ERROR_SQLSTATE
SELECT jobq.enqueue_batch('batch', '[{"id": "x"}]x');                        -- 22P02
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) FROM jobq.jobs WHERE queue = 'batch';
-- a status outside the six is refused even to the owner (the domain jobq.status)
UPDATE jobq.jobs SET status = 'done' WHERE queue = 'batch';                 -- 23514
\echo :LAST_ERROR_SQLSTATE

--------------------------------------------------------------------- lease
-- order: priority, then run_at, then enqueue order; future run_at is not leased early
SELECT count(*) FROM (
	SELECT jobq.enqueue('order', id => 'late', run_at => now() + interval '1 hour')
	UNION ALL SELECT jobq.enqueue('order', id => 'p0-first')
	UNION ALL SELECT jobq.enqueue('order', id => 'p0-second')
	UNION ALL SELECT jobq.enqueue('order', id => 'urgent', priority => -5)
	UNION ALL SELECT jobq.enqueue('order', id => 'older', run_at => now() - interval '1 minute')
	UNION ALL SELECT jobq.enqueue('order', id => 'low', priority => 5)) s;
SELECT id, attempt, lease IS NOT NULL AS has_lease FROM jobq.lease('order', 'w1', n => 10);
SELECT id, status FROM jobq.jobs WHERE queue = 'order' ORDER BY id;
SELECT count(*) FROM jobq.lease('order', 'w1', n => 10);                   -- 'late' is not due

-- n and timeout are checked
SELECT jobq.lease('order', n => 0);  -- 22023
\echo :LAST_ERROR_SQLSTATE
SELECT jobq.lease('order', n => 10001);  -- 22023
\echo :LAST_ERROR_SQLSTATE
SELECT jobq.lease('order', n => NULL);  -- 22004
\echo :LAST_ERROR_SQLSTATE
SELECT jobq.lease('order', timeout => '0 s');  -- 22023
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) FROM jobq.lease('unknown-queue');                          -- nothing, no error

-- a paused queue accepts jobs but leases nothing
SELECT paused FROM jobq.pause_queue('mail');
SELECT (jobq.enqueue('mail', id => 'while-paused')).status;
SELECT count(*) FROM jobq.lease('mail', n => 10);
SELECT paused FROM jobq.resume_queue('mail');
SELECT jobq.pause_queue('nope');                                           -- P0002
\echo :LAST_ERROR_SQLSTATE

-- max_running caps the jobs running at once
SELECT queue FROM jobq.create_queue('capped', max_running => 2);
SELECT count(*) FROM jobq.enqueue_batch('capped', '[{}, {}, {}, {}]');
SELECT count(*) FROM jobq.lease('capped', n => 10);
SELECT count(*) FROM jobq.lease('capped', n => 10);

-------------------------------------------------------- heartbeat, complete
SELECT id, attempt, lease AS tok_a FROM jobq.lease('mail', 'w1', timeout => '1 minute') \gset
SELECT :'id' AS leased, :attempt AS attempt;
SELECT jobq.heartbeat('mail', 'a', state => '{"page": 2}', progress => 40, message => 'half', lease => :'tok_a');
SELECT status, state, progress, message, worker, timeout FROM jobq.get('mail', 'a');
SELECT jobq.heartbeat('mail', 'a', progress => 101);                      -- 22023
\echo :LAST_ERROR_SQLSTATE
SELECT jobq.heartbeat('mail', 'a', progress => -1);                       -- 22023
\echo :LAST_ERROR_SQLSTATE
SELECT jobq.heartbeat('mail', 'a', state => '{oops');                     -- 22P02
\echo :LAST_ERROR_SQLSTATE
SELECT jobq.heartbeat('mail', 'a', lease => gen_random_uuid());           -- 55000: stale token
\echo :LAST_ERROR_SQLSTATE
SELECT jobq.heartbeat('mail', 'nobody');                                  -- P0002
\echo :LAST_ERROR_SQLSTATE
SELECT jobq.heartbeat('mail', 'b');                                       -- 55000: pending
\echo :LAST_ERROR_SQLSTATE
SELECT jobq.complete('mail', 'b');                                        -- 55000: not running
\echo :LAST_ERROR_SQLSTATE
SELECT jobq.complete('mail', 'a', '{"sent": true}', lease => gen_random_uuid());  -- 55000
\echo :LAST_ERROR_SQLSTATE
SELECT status, state FROM jobq.get('mail', 'a');                          -- unchanged
SELECT jobq.complete('mail', 'a', '{"sent": true}', lease => :'tok_a');
SELECT status, result, progress, attempt, lease IS NULL AS no_lease FROM jobq.get('mail', 'a');
SELECT jobq.exists('mail', 'a');
SELECT jobq.complete('mail', 'a', lease => :'tok_a');                     -- P0002: ended
\echo :LAST_ERROR_SQLSTATE
SELECT jobq.complete('mail', NULL);                                       -- 22004
\echo :LAST_ERROR_SQLSTATE

-- the same id can run again; runs lists both
SELECT status, attempt FROM jobq.enqueue('mail', '{"to": "ada", "again": true}', id => 'a');
SELECT status, payload FROM jobq.get('mail', 'a');
SELECT status, result FROM jobq.runs('mail', 'a');

----------------------------------------------------------- fail and retry
-- queue 'retry': max_retries 2, backoff base 1 minute, cap 3 minutes
SELECT queue FROM jobq.create_queue('retry', max_retries => 2, retry_base => '1 minute', retry_cap => '3 minutes');
SELECT status FROM jobq.enqueue('retry', id => 'r');
SELECT attempt, lease AS tok FROM jobq.lease('retry') \gset
SELECT jobq.fail('retry', 'r', 'boom 1', lease => :'tok');
SELECT status, attempt, run_at - updated_at BETWEEN '59 s' AND '61 s' AS backoff_1m FROM jobq.jobs WHERE id = 'r';
SELECT count(*) FROM jobq.lease('retry');                                 -- backing off
UPDATE jobq.jobs SET run_at = now() WHERE id = 'r';
SELECT attempt, lease AS tok FROM jobq.lease('retry') \gset
SELECT :attempt AS attempt;
SELECT jobq.fail('retry', 'r', 'boom 2', lease => :'tok');
SELECT status, attempt, run_at - updated_at BETWEEN '119 s' AND '121 s' AS backoff_2m FROM jobq.jobs WHERE id = 'r';
UPDATE jobq.jobs SET run_at = now() WHERE id = 'r';
SELECT attempt, lease AS tok FROM jobq.lease('retry') \gset
SELECT jobq.fail('retry', 'r', 'boom 3', lease => :'tok');              -- attempts spent
SELECT status, attempt FROM jobq.get('retry', 'r');
SELECT jobq.exists('retry', 'r');
SELECT level, message, attempt, detail->>'attempt' AS detail_attempt FROM jobq.events('retry', 'r');
-- the cap: attempt 5 would wait 16 minutes, the cap says 3
SELECT status FROM jobq.enqueue('retry', id => 'capme', max_retries => -1);
UPDATE jobq.jobs SET attempt = 4 WHERE id = 'capme';
SELECT attempt FROM jobq.lease('retry');
SELECT jobq.fail('retry', 'capme', 'again');
SELECT run_at - updated_at BETWEEN '179 s' AND '181 s' AS capped_3m FROM jobq.jobs WHERE id = 'capme';
-- retry => false ends it at once
UPDATE jobq.jobs SET run_at = now() WHERE id = 'capme';
SELECT count(*) FROM jobq.lease('retry');
SELECT jobq.fail('retry', 'capme', 'fatal', retry => false);
SELECT status FROM jobq.get('retry', 'capme');
SELECT jobq.fail('retry', 'capme', 'late');                               -- P0002: not live
\echo :LAST_ERROR_SQLSTATE

------------------------------------------------------------------ release
SELECT status FROM jobq.enqueue('rel', id => 'c', max_retries => 0);
SELECT attempt, lease AS tok FROM jobq.lease('rel') \gset
SELECT jobq.release('rel', 'c', state => '{"step": 3}', lease => gen_random_uuid());  -- 55000
\echo :LAST_ERROR_SQLSTATE
SELECT jobq.release('rel', 'c', state => '{"step": 3}', lease => :'tok');
SELECT status, attempt, state FROM jobq.get('rel', 'c');
SELECT attempt, state FROM jobq.lease('rel');                             -- not counted: attempt 1
SELECT jobq.release('rel', 'nope');                                       -- P0002
\echo :LAST_ERROR_SQLSTATE

---------------------------------------------------------------- fencing
-- a stale token cannot complete, fail, heartbeat or release the next attempt
SELECT status FROM jobq.enqueue('fence', id => 'f', max_retries => 5);
SELECT lease AS old FROM jobq.lease('fence') \gset
UPDATE jobq.jobs SET lease_expires_at = now() - interval '1 s' WHERE id = 'f';
SELECT jobq.fail('fence', 'f', 'lease expired', lease => :'old');         -- what the reaper does
UPDATE jobq.jobs SET run_at = now() WHERE id = 'f';
SELECT lease AS new, attempt FROM jobq.lease('fence') \gset
SELECT jobq.complete('fence', 'f', '{"late": true}', lease => :'old');    -- 55000
\echo :LAST_ERROR_SQLSTATE
SELECT jobq.fail('fence', 'f', 'late', lease => :'old');                  -- 55000
\echo :LAST_ERROR_SQLSTATE
SELECT jobq.heartbeat('fence', 'f', lease => :'old');                     -- 55000
\echo :LAST_ERROR_SQLSTATE
SELECT jobq.release('fence', 'f', lease => :'old');                       -- 55000
\echo :LAST_ERROR_SQLSTATE
SELECT status, attempt, lease = :'new' AS current FROM jobq.get('fence', 'f');
SELECT jobq.complete('fence', 'f', '{"ok": true}', lease => :'new');
SELECT status, result FROM jobq.get('fence', 'f');

------------------------------------------------------------- reschedule
SELECT status FROM jobq.enqueue('resch', id => 'r1', payload => '{"v": 1}');
SELECT count(*) FROM jobq.lease('resch');
SELECT status, attempt, payload, run_at > now() + interval '50 minutes' AS later
FROM jobq.reschedule('resch', 'r1', run_at => now() + interval '1 hour', payload => '{"v": 2}');
SELECT count(*) FROM jobq.lease('resch');
SELECT jobq.reschedule('resch', 'none');                                  -- P0002
\echo :LAST_ERROR_SQLSTATE
SELECT jobq.reschedule('resch', 'r1', timeout => '0 s');                  -- 22023
\echo :LAST_ERROR_SQLSTATE

---------------------------------------------------------- unlogged jobs
SELECT persist FROM jobq.enqueue('fast', id => 'u1', persist => false);
SELECT (SELECT count(*) FROM jobq.jobs_unlogged WHERE id = 'u1') AS unlogged,
	(SELECT count(*) FROM jobq.jobs_persistent WHERE id = 'u1') AS logged;
SELECT jobq.enqueue('fast', id => 'u1');                                  -- 23505 across partitions
\echo :LAST_ERROR_SQLSTATE
SELECT id, persist FROM jobq.lease('fast');
SELECT jobq.complete('fast', 'u1');
SELECT status, persist FROM jobq.get('fast', 'u1');

-------------------------------------------------------- get, log, events
SELECT jobq.get('mail', 'nope');                                          -- P0002
\echo :LAST_ERROR_SQLSTATE
SELECT jobq.get('bad name', 'x');                                         -- 22023
\echo :LAST_ERROR_SQLSTATE
SELECT jobq.exists('mail', 'nope');
SELECT count(*) FROM jobq.runs('mail', 'nope');
SELECT jobq.log('mail', 'b', 'warning', 'disk almost full', '{"free": "1%"}') > 0 AS logged;
SELECT jobq.log('mail', 'b', 'debug', 'x');                               -- 22023
\echo :LAST_ERROR_SQLSTATE
SELECT jobq.log('mail', 'nope', 'info', 'x');                             -- P0002
\echo :LAST_ERROR_SQLSTATE
SELECT level, message, detail FROM jobq.events('mail', 'b');
SELECT count(*) FROM jobq.events('mail', 'b', 'error');

------------------------------------------------------------------ search
SELECT id, status FROM jobq.search(queue => 'order', sort => 'id', direction => 'desc', lim => 3);
SELECT id FROM jobq.search(queue => 'order', sort => 'id', lim => 2, skip => 2);
SELECT count(*) FROM jobq.search(queue => 'retry', status => 'failed');
SELECT count(*) FROM jobq.search(from_date => now() + interval '1 day');
SELECT jobq.search(sort => 'payload; drop table x');                     -- 22023
\echo :LAST_ERROR_SQLSTATE
SELECT jobq.search(direction => 'sideways');                              -- 22023
\echo :LAST_ERROR_SQLSTATE
SELECT jobq.search(lim => -1);                                            -- 22023
\echo :LAST_ERROR_SQLSTATE
SELECT jobq.search(status => 'done');                                     -- 22023
\echo :LAST_ERROR_SQLSTATE

------------------------------------------------------------ observability
SELECT queue, pending, scheduled, running, finished, failed FROM jobq.queue_stats
WHERE queue IN ('mail', 'retry', 'order', 'fast') ORDER BY queue;
SELECT jsonb_typeof(s->'queues') AS queues, s->'totals' ? 'pending' AS totals,
	jsonb_typeof(s->'reaper') AS reaper
FROM jobq.stats() s;
-- metrics(): Prometheus text. The samples of a queue; every sample comes after its
-- family's HELP and TYPE lines; # EOF ends the OpenMetrics form only.
SELECT m.l FROM regexp_split_to_table(jobq.metrics(), E'\n') m(l)
WHERE m.l LIKE '%queue="mail"%' AND m.l NOT LIKE 'jobq_oldest%';
WITH m AS (SELECT l, n FROM regexp_split_to_table(jobq.metrics(), E'\n') WITH ORDINALITY AS x(l, n)),
s AS (SELECT l, n, substring(l FROM '^([a-z_]+)') AS name FROM m WHERE l ~ '^[a-z]')
SELECT count(*) AS samples,
	count(*) FILTER (WHERE NOT EXISTS (SELECT FROM m WHERE m.n < s.n AND m.l = '# TYPE ' || s.name || ' ' ||
		CASE WHEN s.name LIKE '%\_total' THEN 'counter' ELSE 'gauge' END)
		OR NOT EXISTS (SELECT FROM m WHERE m.n < s.n AND m.l LIKE '# HELP ' || s.name || ' %')) AS untyped
FROM s;
SELECT jobq.metrics() NOT LIKE '%# EOF%' AS text_has_no_eof,
	right(jobq.metrics(openmetrics => true), 6) = E'# EOF\n' AS openmetrics_ends_with_eof;

-------------------------------------------------------------- drop_queue
SELECT jobq.drop_queue('mail');                                           -- 55000: live jobs
\echo :LAST_ERROR_SQLSTATE
SELECT id AS mail_live FROM jobq.jobs WHERE queue = 'mail' ORDER BY id LIMIT 1 \gset
SELECT jobq._wake_count('mail', :'mail_live') AS mail_before \gset
SELECT jobq.drop_queue('mail', force => true);
-- its live jobs' waiters are woken (their wake-up slot moved at the commit)
SELECT jobq._wake_count('mail', :'mail_live') > :mail_before AS waiters_woken;
SELECT count(*) FROM jobq.queues WHERE queue = 'mail';
SELECT count(*) FROM jobq.history WHERE queue = 'mail';
SELECT jobq.drop_queue('mail');                                           -- P0002
\echo :LAST_ERROR_SQLSTATE
