-- direct: lease and complete without the executor (extension/direct.c), taken while no
-- unlogged job exists. They must write what the statements (the general path, which an
-- unlogged job or a trigger brings in) write, keep every index whole, and give way to the
-- statements when the tables have triggers.
\set VERBOSITY terse
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS jobq CASCADE;
CREATE EXTENSION jobq;
CREATE EXTENSION IF NOT EXISTS amcheck;
RESET client_min_messages;

SELECT queue FROM jobq.create_queue('dq', timeout => '1 minute');
SELECT pg_relation_size('jobq.jobs_unlogged') AS unlogged_pages;     -- 0: the direct path

------------------------------------------------------------ the same rows either way
SELECT count(*) FROM jobq.enqueue_batch('dq', '[{"id": "d1", "payload": {"n": 1}, "priority": 3},
	{"id": "s1", "payload": {"n": 1}, "priority": 3}]');
-- d1 leased and completed directly
CREATE TEMP TABLE ld AS SELECT * FROM jobq.lease('dq', 'wd', 1, timeout => '2 minutes');
CREATE TEMP TABLE jd AS SELECT * FROM jobq.jobs WHERE queue = 'dq' AND id = 'd1';
SELECT jobq.complete('dq', 'd1', '{"ok": true}', (SELECT lease FROM ld));
-- an unlogged job elsewhere: s1 goes the statements' way
SELECT (jobq.enqueue('dq_u', id => 'u', persist => false)).status;
SELECT pg_relation_size('jobq.jobs_unlogged') > 0 AS unlogged_pages;
CREATE TEMP TABLE ls AS SELECT * FROM jobq.lease('dq', 'ws', 1, timeout => '2 minutes');
CREATE TEMP TABLE js AS SELECT * FROM jobq.jobs WHERE queue = 'dq' AND id = 's1';
SELECT jobq.complete('dq', 's1', '{"ok": true}', (SELECT lease FROM ls));
SELECT jobq.complete('dq_u', 'u', NULL, (SELECT lease FROM jobq.lease('dq_u', 'w', 1)));
-- what lease returned, what it wrote to the live row, and the finished run in the history:
-- alike but for the id, the worker's name, the token and the times
SELECT ld.id, ls.id, (ld.queue, ld.version, ld.attempt, ld.payload, ld.state, ld.timeout,
		ld.max_retries, ld.priority, ld.persist, ld.lease_expires_at - ld.run_at > '1 minute')
	IS NOT DISTINCT FROM (ls.queue, ls.version, ls.attempt, ls.payload, ls.state, ls.timeout,
		ls.max_retries, ls.priority, ls.persist, ls.lease_expires_at - ls.run_at > '1 minute')
	AS same_answer FROM ld, ls;
SELECT (jd.status, jd.desired_status, jd.attempt, jd.timeout, jd.lease_expires_at - jd.started_at,
		jd.started_at = jd.updated_at, jd.worker, jd.lease IS NOT NULL, jd.progress, jd.result)
	IS NOT DISTINCT FROM (js.status, js.desired_status, js.attempt, js.timeout,
		js.lease_expires_at - js.started_at, js.started_at = js.updated_at,
		replace(js.worker, 'ws', 'wd'), js.lease IS NOT NULL, js.progress, js.result)
	AS same_live_row, jd.status, jd.worker, jd.lease = ld.lease AS token_returned
FROM jd, js, ld;
SELECT h.id, h.status, h.attempt, h.progress, h.result, h.worker, h.lease, h.lease_expires_at,
	h.finished_at = h.updated_at AS ended_at_once, h.started_at IS NOT NULL AS started,
	h.run = j.run AS same_run, h.deleted_at
FROM jobq.history h JOIN (SELECT * FROM jd UNION ALL SELECT * FROM js) j USING (queue, id)
ORDER BY h.id;
SELECT (SELECT row_to_json(x)::jsonb - '{id,run,worker,created_at,started_at,updated_at,finished_at,run_at}'::text[]
		FROM jobq.history x WHERE queue = 'dq' AND id = 'd1')
	= (SELECT row_to_json(x)::jsonb - '{id,run,worker,created_at,started_at,updated_at,finished_at,run_at}'::text[]
		FROM jobq.history x WHERE queue = 'dq' AND id = 's1') AS same_history_row;
SELECT jobq.drop_queue('dq_u', force => true);
VACUUM jobq.jobs_unlogged;
SELECT pg_relation_size('jobq.jobs_unlogged') AS unlogged_pages;

------------------------------------------------------------ fencing, as the statements do
SELECT count(*) FROM jobq.enqueue_batch('dq', '[{"id": "f1"}, {"id": "f2"}, {"id": "f3"}]');
CREATE TEMP TABLE lf AS SELECT id, lease FROM jobq.lease('dq', 'w', 3);
SELECT jobq.complete('dq', 'f1', NULL, gen_random_uuid());          -- 55000 stale
\echo :LAST_ERROR_SQLSTATE
SELECT jobq.complete('dq', 'nope', NULL, NULL);                      -- P0002
\echo :LAST_ERROR_SQLSTATE
SELECT jobq.complete('dq', 'f1', NULL, NULL);                        -- any token
-- f2 named twice is finished once; f1 is no longer running; f3 under a stale token
SELECT * FROM jobq.complete_batch('dq', ARRAY['f2', 'f2', 'f1', 'f3'],
	ARRAY[(SELECT lease FROM lf WHERE id = 'f2'), (SELECT lease FROM lf WHERE id = 'f2'),
		(SELECT lease FROM lf WHERE id = 'f1'), gen_random_uuid()]);
SELECT id, status FROM jobq.jobs WHERE queue = 'dq' ORDER BY id;
SELECT id, status FROM jobq.history WHERE queue = 'dq' AND id LIKE 'f%' ORDER BY id;

-- a row this transaction locked itself is leased (FOR UPDATE SKIP LOCKED skips only others')
SELECT count(*) FROM jobq.enqueue_batch('dq', '[{"id": "o1"}]');
BEGIN;
SELECT id FROM jobq.jobs WHERE queue = 'dq' AND id = 'o1' FOR UPDATE;
SELECT id, attempt FROM jobq.lease('dq', 'w', 5);
COMMIT;
-- a lease taken and completed in one transaction; a rolled back one leaves the job pending
BEGIN;
SELECT count(*) FROM jobq.enqueue_batch('dq', '[{"id": "t1"}]');
SELECT count(jobq.complete('dq', id, NULL, lease)) FROM jobq.lease('dq', 'w', 5);
COMMIT;
SELECT count(*) FROM jobq.enqueue_batch('dq', '[{"id": "r1"}]');
BEGIN;
SELECT id FROM jobq.lease('dq', 'w', 5);
ROLLBACK;
SELECT id, status, attempt FROM jobq.jobs WHERE queue = 'dq' ORDER BY id;

-- nothing is written in a read-only transaction (25006), as the statements refuse
SELECT (jobq.enqueue('dro', id => 'ro')).status;
BEGIN READ ONLY;
SELECT id FROM jobq.lease('dro', 'w', 5);
ROLLBACK;
CREATE TEMP TABLE lro AS SELECT id, lease FROM jobq.lease('dro', 'w', 5);
BEGIN READ ONLY;
SELECT jobq.complete('dro', 'ro', NULL, (SELECT lease FROM lro));
ROLLBACK;
BEGIN READ ONLY;
SELECT count(*) FROM jobq.complete_batch('dro', ARRAY['ro'], ARRAY[(SELECT lease FROM lro)]);
ROLLBACK;
SELECT jobq.complete('dro', 'ro', NULL, (SELECT lease FROM lro));
SELECT id, status FROM jobq.history WHERE queue = 'dro';
SELECT jobq.drop_queue('dro');

------------------------------------------------------------ triggers: the statements run
CREATE TABLE trig_log (tbl text, op text, id text);
CREATE FUNCTION log_row() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	INSERT INTO public.trig_log VALUES (TG_TABLE_NAME, TG_OP,
		CASE WHEN TG_OP = 'DELETE' THEN OLD.id ELSE NEW.id END);
	RETURN NULL;
END $$;
CREATE TRIGGER log_live AFTER UPDATE OR DELETE ON jobq.jobs_persistent
	FOR EACH ROW EXECUTE FUNCTION log_row();
SELECT count(jobq.complete('dq', id, NULL, lease)) FROM jobq.lease('dq', 'w', 5);
DROP TRIGGER log_live ON jobq.jobs_persistent;
CREATE TRIGGER log_history AFTER INSERT ON jobq.history
	FOR EACH ROW EXECUTE FUNCTION log_row();
SELECT count(*) FROM jobq.enqueue_batch('dq', '[{"id": "g1"}, {"id": "g2"}]');
WITH l AS (SELECT id, lease FROM jobq.lease('dq', 'w', 2))
SELECT count(*) FROM jobq.complete_batch('dq', (SELECT array_agg(id) FROM l),
	(SELECT array_agg(lease) FROM l));
DROP TRIGGER log_history ON jobq.history;
SELECT * FROM trig_log ORDER BY tbl, id, op;

------------------------------------------------------------ enqueue: the same row either way
-- The common call (the queue exists; no id, timeout or persist given) inserts its row
-- directly (extension/enqueue.c); jobq._enqueue_sql, the statements every other call takes,
-- must make the same row.
CREATE TEMP TABLE ed AS SELECT * FROM jobq.enqueue('dq', '{"n": 2}', max_retries => 5,
	run_at => '2030-01-01 00:00+00', priority => 4, state => '{"s": 1}');
CREATE TEMP TABLE es AS SELECT * FROM jobq._enqueue_sql('dq', '{"n": 2}', NULL, NULL, 5, true,
	'2030-01-01 00:00+00', 4, '{"s": 1}');
SELECT (SELECT to_jsonb(x) - '{id,run,created_at,updated_at}'::text[] FROM ed x)
	= (SELECT to_jsonb(x) - '{id,run,created_at,updated_at}'::text[] FROM es x) AS same_answer,
	(SELECT to_jsonb(x) - '{id,run,created_at,updated_at}'::text[] FROM jobq.jobs x
		WHERE x.id = (SELECT id FROM ed))
	= (SELECT to_jsonb(x) - '{id,run,created_at,updated_at}'::text[] FROM jobq.jobs x
		WHERE x.id = (SELECT id FROM es)) AS same_live_row,
	(SELECT to_jsonb(x) FROM ed x) = (SELECT to_jsonb(x) FROM jobq.jobs x
		WHERE x.id = (SELECT id FROM ed)) AS answer_is_the_row,
	(SELECT run FROM es) > (SELECT run FROM ed) AS runs_from_one_sequence;
-- the defaults: payload {} (also for NULL), the queue's timeout and max_retries, one clock
SELECT j.payload, j.timeout, j.max_retries, j.priority, j.state, j.status, j.desired_status,
	j.version, j.attempt, j.persist, j.rollback_enabled, j.created_by = current_user AS by_caller,
	j.run_at = j.created_at AND j.created_at = j.updated_at AS one_clock,
	j.id ~ '^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$' AS uuid7_id
FROM jobq.enqueue('dq') j UNION ALL
SELECT j.payload, j.timeout, j.max_retries, j.priority, j.state, j.status, j.desired_status,
	j.version, j.attempt, j.persist, j.rollback_enabled, j.created_by = current_user,
	j.run_at = j.created_at AND j.created_at = j.updated_at,
	j.id ~ '^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$'
FROM jobq.enqueue('dq', NULL, priority => NULL) j;
-- every other call takes the statements, and fails as they do
SELECT (jobq.enqueue('dq_new')).status;                              -- creates the queue
SELECT count(*) AS created FROM jobq.queues WHERE queue = 'dq_new';
SELECT (jobq.enqueue('dq', id => 'e1')).id;
SELECT jobq.enqueue('dq', id => 'e1');                                -- 23505 live
\echo :LAST_ERROR_SQLSTATE
SELECT jobq.enqueue('dq', timeout => '-1 s');                         -- 22023
\echo :LAST_ERROR_SQLSTATE
SELECT jobq.enqueue(NULL);                                            -- 22004
\echo :LAST_ERROR_SQLSTATE
SELECT jobq.enqueue(repeat('q', 200));                                -- 22023 name
\echo :LAST_ERROR_SQLSTATE
BEGIN READ ONLY;
SELECT jobq.enqueue('dq');                                            -- 25006
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;
BEGIN;
SELECT (jobq.enqueue('dq', '{"rolled": "back"}')).status;
ROLLBACK;
SELECT count(*) AS rolled_back_jobs FROM jobq.jobs WHERE payload ? 'rolled';
SELECT (jobq.enqueue('dq', persist => false)).persist;
SELECT count(*) AS unlogged_jobs FROM jobq.jobs_unlogged;
SELECT jobq.drop_queue('dq_new', force => true);
DELETE FROM jobq.jobs_unlogged;
VACUUM jobq.jobs_unlogged;
-- a trigger on the live table: the statements run, and it fires
CREATE TRIGGER log_ins AFTER INSERT ON jobq.jobs_persistent
	FOR EACH ROW EXECUTE FUNCTION log_row();
SELECT (jobq.enqueue('dq', '{"t": 1}')).status;
DROP TRIGGER log_ins ON jobq.jobs_persistent;
SELECT tbl, op FROM trig_log WHERE op = 'INSERT' AND tbl = 'jobs_persistent';
SELECT count(*) AS enqueued_here FROM jobq.jobs
WHERE queue = 'dq' AND created_at >= (SELECT created_at FROM ed);
DELETE FROM jobq.jobs WHERE queue = 'dq' AND created_at >= (SELECT created_at FROM ed);
-- a column this path does not know (here with a default): the statements run, and set it;
-- once it is dropped, the direct path again, past the dropped column
ALTER TABLE jobq.jobs ADD COLUMN extra integer DEFAULT 7;
SELECT (jobq.enqueue('dq', '{"extra": 1}')).status;
SELECT extra FROM jobq.jobs WHERE payload = '{"extra": 1}';
ALTER TABLE jobq.jobs DROP COLUMN extra;
SELECT (jobq.enqueue('dq', '{"extra": 2}')).status;
SELECT payload, status, max_retries FROM jobq.jobs WHERE payload ? 'extra' ORDER BY run;
DELETE FROM jobq.jobs WHERE payload ? 'extra';

------------------------------------------------------------ enqueue_batch: the same rows either way
-- An array of jobs that give only payload, state, priority and max_retries, into a queue
-- that exists, is written directly (extension/direct.c, a page at a time, as COPY writes);
-- jobq._enqueue_batch_sql, the statements every other call takes, must make the same rows.
SELECT queue FROM jobq.create_queue('dqb', timeout => '1 minute');
\set jobs '[{"payload": {"b": 1}, "state": {"s": 1}, "priority": 2, "max_retries": 9}, {"payload": null, "priority": "4", "max_retries": null, "other": "ignored"}, {}, {"payload": [1, "two"], "state": null}]'
CREATE TEMP TABLE bd AS SELECT b.id, b.ord FROM jobq.enqueue_batch('dqb', :'jobs') WITH ORDINALITY AS b(id, ord);
CREATE TEMP TABLE bs AS SELECT b.id, b.ord FROM jobq._enqueue_batch_sql('dqb', :'jobs') WITH ORDINALITY AS b(id, ord);
SELECT bd.ord, row_to_json(x)::jsonb - '{id,run,created_at,updated_at,run_at}'::text[]
		= row_to_json(y)::jsonb - '{id,run,created_at,updated_at,run_at}'::text[] AS same_row,
	x.payload, x.state, x.priority, x.max_retries, x.timeout, x.status,
	x.run_at = x.created_at AND x.created_at = x.updated_at AS one_clock_reading
FROM bd JOIN bs USING (ord)
	JOIN jobq.jobs x ON x.queue = 'dqb' AND x.id = bd.id
	JOIN jobq.jobs y ON y.queue = 'dqb' AND y.id = bs.id
ORDER BY bd.ord;
-- in the array's order, as the ids answered
SELECT array_agg(bd.ord ORDER BY x.run) AS by_run
FROM bd JOIN jobq.jobs x ON x.queue = 'dqb' AND x.id = bd.id;
SELECT count(*) FROM jobq.enqueue_batch('dqb', '[]') AS nothing;
-- an element this path does not take sends the whole array to the statements, which
-- check it first; bad values fail as they fail there
SELECT count(*) FROM jobq.enqueue_batch('dqb', '[{"payload": 1}, {"payload": 2, "timeout": 5}]');
SELECT jobq.enqueue_batch('dqb', '[{}, {"priority": 1.5}]');            -- 22P02
\echo :LAST_ERROR_SQLSTATE
SELECT jobq._enqueue_batch_sql('dqb', '[{}, {"priority": 1.5}]');
\echo :LAST_ERROR_SQLSTATE
SELECT jobq.enqueue_batch('dqb', '[{"max_retries": true}]');            -- 22P02
\echo :LAST_ERROR_SQLSTATE
SELECT jobq.enqueue_batch('dqb', '[{"priority": 99999999999}]');        -- 22003
\echo :LAST_ERROR_SQLSTATE
SELECT jobq.enqueue_batch('dqb', '[{}, 7]');                            -- 22023
\echo :LAST_ERROR_SQLSTATE
SELECT jobq.enqueue_batch('dqb', '{"payload": 1}');                     -- 22023
\echo :LAST_ERROR_SQLSTATE
BEGIN READ ONLY;
SELECT jobq.enqueue_batch('dqb', '[{}]');                               -- 25006
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;
BEGIN;
SELECT count(*) FROM jobq.enqueue_batch('dqb', '[{"payload": {"rolled": "back"}}]');
ROLLBACK;
SELECT count(*) AS rolled_back FROM jobq.jobs WHERE payload = '{"rolled": "back"}';
-- a column this path does not know: the statements run, and set it
ALTER TABLE jobq.jobs ADD COLUMN extra integer DEFAULT 7;
SELECT count(*) FROM jobq.enqueue_batch('dqb', '[{"payload": {"extra": 3}}]');
SELECT extra FROM jobq.jobs WHERE payload = '{"extra": 3}';
ALTER TABLE jobq.jobs DROP COLUMN extra;
SELECT jobq.drop_queue('dqb', force => true);

------------------------------------------------------------ every index whole
-- 2 000 jobs, 1 500 enqueued in a batch (the direct path writes 1 000 rows at a time) and
-- 500 one by one (the direct path), through the direct path in leases of 1 to 100, half
-- completed one by one, half in batches, with payloads big enough to be stored out of line
-- (TOAST)
SELECT count(*) FROM jobq.enqueue_batch('dq', (SELECT jsonb_agg(jsonb_build_object(
	'payload', jsonb_build_object('i', i, 'pad', CASE WHEN i % 100 = 0
		THEN (SELECT string_agg(md5(k::text), '') FROM generate_series(1, 400) k) END),
	'priority', i % 3)) FROM generate_series(1, 1500) i));
SELECT count(jobq.enqueue('dq', jsonb_build_object('i', i, 'pad', CASE WHEN i % 100 = 0
		THEN (SELECT string_agg(md5(k::text), '') FROM generate_series(1, 400) k) END),
	priority => i % 3)) FROM generate_series(1501, 2000) i;
DO $$
DECLARE
	k int := 0;
	ids text[];
	leases uuid[];
BEGIN
	WHILE EXISTS (SELECT FROM jobq.jobs WHERE queue = 'dq' AND status = 'pending') LOOP
		k := k + 1;
		IF k % 2 = 0 THEN
			PERFORM jobq.complete('dq', id, NULL, lease) FROM jobq.lease('dq', 'w', 1 + k % 100);
		ELSE
			SELECT array_agg(id), array_agg(lease) INTO ids, leases
			FROM jobq.lease('dq', 'w', 1 + k % 100);
			PERFORM count(*) FROM jobq.complete_batch('dq', ids, leases);
		END IF;
	END LOOP;
END $$;
SELECT count(*) AS live, (SELECT count(*) FROM jobq.history WHERE queue = 'dq') AS finished
FROM jobq.jobs WHERE queue = 'dq';
SELECT count(*) AS toasted_payloads_kept FROM jobq.history
WHERE queue = 'dq' AND length(payload ->> 'pad') = 12800;
-- amcheck: each B-tree is ordered and holds an entry for every row it should
SELECT c.relname, bt_index_parent_check(c.oid, heapallindexed => true)::text = '' AS whole
FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
WHERE i.indrelid IN ('jobq.jobs_persistent'::regclass, 'jobq.history'::regclass)
ORDER BY c.relname;

------------------------------------------------------------ an index made or dropped later
-- The direct path keeps a table's index set from one call to the next (extension/direct.c):
-- indexes made since, in this session, get their entries (amcheck: heapallindexed), the
-- hash index by the executor's way (a set with an index that is not a B-tree is not kept),
-- and dropped ones are no longer opened.
SELECT pg_relation_size('jobq.jobs_unlogged') = 0 AS direct;
SELECT count(*) FROM jobq.enqueue_batch('dq', '[{"payload": {"k": 0}}]');
SELECT count(jobq.complete('dq', id, NULL, lease)) FROM jobq.lease('dq', 'w', 1);
CREATE INDEX jobs_extra_idx ON jobq.jobs_persistent (created_by, run) WHERE priority = 0;
CREATE INDEX history_extra_idx ON jobq.history (lower(created_by), run);
SELECT count(*) FROM jobq.enqueue_batch('dq', '[{"payload": {"k": 1}}, {"payload": {"k": 2}}]');
SELECT count(jobq.enqueue('dq', '{"k": 3}'));
SELECT count(jobq.complete('dq', id, NULL, lease)) FROM jobq.lease('dq', 'w', 2);
SELECT c.relname, bt_index_parent_check(c.oid, heapallindexed => true)::text = '' AS whole
FROM pg_class c WHERE c.relname IN ('jobs_extra_idx', 'history_extra_idx') ORDER BY 1;
CREATE INDEX history_hash_idx ON jobq.history USING hash (created_by);
SELECT count(*) FROM jobq.enqueue_batch('dq', '[{"payload": {"k": 4}}, {"payload": {"k": 5}}, {"payload": {"k": 6}}]');
SELECT count(jobq.complete('dq', id, NULL, lease)) FROM jobq.lease('dq', 'w', 1);
SELECT count(jobq.complete('dq', id, NULL, lease)) FROM jobq.lease('dq', 'w', 1);
SET enable_seqscan = off;
SET enable_bitmapscan = off;
EXPLAIN (COSTS OFF) SELECT count(*) FROM jobq.history WHERE created_by = current_user::text COLLATE "default";
SELECT count(*) = (SELECT count(*) FROM jobq.history h WHERE h.created_by || '' = current_user)
	AS hash_whole
FROM jobq.history WHERE created_by = current_user::text COLLATE "default";
RESET enable_seqscan;
RESET enable_bitmapscan;
DROP INDEX jobq.jobs_extra_idx, jobq.history_extra_idx, jobq.history_hash_idx;
SELECT count(jobq.complete('dq', id, NULL, lease)) FROM jobq.lease('dq', 'w', 1);
SELECT count(*) AS live FROM jobq.jobs WHERE queue = 'dq';

-- It keeps the OIDs of the tables it names too, and forgets one when its table is renamed
-- or dropped: under another name, jobq.queues is missing.
SELECT (jobq.enqueue('dq', '{"k": 7}')).status;
BEGIN;
ALTER TABLE jobq.queues RENAME TO queues_renamed;
SELECT (jobq.enqueue('dq', '{"k": 8}')).status;
ROLLBACK;
SELECT (jobq.enqueue('dq', '{"k": 9}')).status;
-- and all of them when a schema changes: with schema jobq renamed, it has no tables
BEGIN;
ALTER SCHEMA jobq RENAME TO jobq_renamed;
SELECT (jobq_renamed.enqueue('dq', '{"k": 10}')).status;
ROLLBACK;
SELECT (jobq.enqueue('dq', '{"k": 11}')).status;
-- and the columns' places are checked again after a table changes: with a column renamed,
-- the direct path misses it
BEGIN;
ALTER TABLE jobq.jobs RENAME COLUMN worker TO worker_renamed;
SELECT count(*) FROM jobq.lease('dq', 'w', 1);
ROLLBACK;
SELECT count(*) FROM jobq.lease('dq', 'w', 1);

SELECT jobq.drop_queue('dq', force => true);

------------------------------------------------------------ remembered places
-- A lease remembers where it put each job, for its completion, and where it found the
-- queue's row (extension/direct.c: leased_at, kept_queues). What is there later is taken
-- only when it is still the row named.
SELECT count(*) AS live FROM jobq.jobs;
SELECT pg_relation_size('jobq.jobs_unlogged') AS unlogged_pages;     -- 0: the direct path
VACUUM jobq.jobs_persistent;

-- A lease tests the due time itself (its index scan has one key, the queue's hash): a job
-- not due yet ends its priority, and the scan goes on at the next one.
SELECT count(*) FROM jobq.enqueue_batch('dp', '[{"id": "p1-due-a", "priority": 1},
	{"id": "p1-due-b", "priority": 1}, {"id": "p3-due", "priority": 3},
	{"id": "p5-due", "priority": 5}]');
SELECT count(*) FROM (
	SELECT jobq.enqueue('dp', id => 'p1-later', priority => 1, run_at => now() + interval '1 hour')
	UNION ALL SELECT jobq.enqueue('dp', id => 'p3-later', priority => 3, run_at => now() + interval '1 hour')
	UNION ALL SELECT jobq.enqueue('dp', id => 'p3-later-2', priority => 3, run_at => now() + interval '2 hours')
	UNION ALL SELECT jobq.enqueue('dp', id => 'p4-later', priority => 4, run_at => now() + interval '1 hour')
	UNION ALL SELECT jobq.enqueue('dp', id => 'p0-earlier', run_at => now() - interval '1 minute')) s;
SELECT id, priority FROM jobq.lease('dp', 'w', 2);
SELECT id, priority FROM jobq.lease('dp', 'w', 10);
SELECT count(*) AS not_due FROM jobq.lease('dp', 'w', 10);
SELECT id, status FROM jobq.jobs WHERE queue = 'dp' AND status = 'pending' ORDER BY id;
SELECT jobq.drop_queue('dp', force => true);

SELECT queue FROM jobq.create_queue('dm');
SELECT count(*) FROM jobq.enqueue_batch('dm', '[{"id": "m1"}]');
CREATE TEMP TABLE lm AS SELECT id, lease FROM jobq.lease('dm', 'w', 1);
SELECT ctid AS m1_at FROM jobq.jobs_persistent WHERE id = 'm1' \gset
-- m1 moves (a heartbeat changes an index's key), and another job takes its old place
SELECT jobq.heartbeat('dm', 'm1', lease => (SELECT lease FROM lm));
SELECT ctid <> :'m1_at' AS moved FROM jobq.jobs_persistent WHERE id = 'm1';
VACUUM (INDEX_CLEANUP ON) jobq.jobs_persistent;
SELECT count(*) FROM jobq.enqueue_batch('dm', '[{"id": "m2"}, {"id": "m3"}, {"id": "m4"}]');
SELECT id AS at_m1s_old_place, status FROM jobq.jobs_persistent WHERE ctid = :'m1_at';
-- completing m1 finishes m1, found by its key, and leaves the other alone
SELECT jobq.complete('dm', 'm1', NULL, (SELECT lease FROM lm)) AS completed;
SELECT id, status FROM jobq.jobs WHERE queue = 'dm' ORDER BY id;
SELECT id, status FROM jobq.history WHERE queue = 'dm' ORDER BY id;

-- qa's row, found by a lease, is dropped, and another queue's row takes its place; qa made
-- again, paused, has nothing leased from it
SELECT queue FROM jobq.create_queue('qa');
SELECT count(*) FROM jobq.lease('qa', 'w', 1);
SELECT set_config('direct.qa_at', ctid::text, false) IS NOT NULL AS kept
	FROM jobq.queues WHERE queue = 'qa';
SELECT jobq.drop_queue('qa');
VACUUM (INDEX_CLEANUP ON) jobq.queues;
DO $$
BEGIN
	FOR i IN 1..50 LOOP
		PERFORM jobq.create_queue('qb' || i);
		EXIT WHEN EXISTS (SELECT FROM jobq.queues
			WHERE ctid = current_setting('direct.qa_at')::tid);
	END LOOP;
END
$$;
SELECT queue LIKE 'qb%' AS another_queue_there, paused FROM jobq.queues
	WHERE ctid = current_setting('direct.qa_at')::tid;
SELECT queue, paused FROM jobq.create_queue('qa', paused => true);
SELECT (jobq.enqueue('qa', '{}')).status;
SELECT count(*) AS leased FROM jobq.lease('qa', 'w', 1);
SELECT jobq.drop_queue(queue, force => true) FROM jobq.queues
	WHERE queue IN ('dm', 'qa') OR queue LIKE 'qb%';

------------------------------------------------------------ unique indexes
-- A lease's new version skips the check of a unique key it leaves alone (the job's key:
-- update_index_entries) and checks one it changes: here one running job per worker.
SELECT queue FROM jobq.create_queue('du');
SELECT count(*) FROM jobq.enqueue_batch('du', '[{"id": "u1"}, {"id": "u2"}]');
CREATE UNIQUE INDEX one_per_worker ON jobq.jobs_persistent (worker) WHERE status = 'running';
SELECT id FROM jobq.lease('du', 'solo', 1);
SELECT id FROM jobq.lease('du', 'solo', 1);     -- 23505
\echo :LAST_ERROR_SQLSTATE
SELECT id, status, worker FROM jobq.jobs WHERE queue = 'du' ORDER BY id;
SELECT id FROM jobq.lease('du', 'other', 1);
SELECT c.relname, bt_index_parent_check(c.oid, heapallindexed => true)::text = '' AS whole
FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
WHERE i.indrelid = 'jobq.jobs_persistent'::regclass ORDER BY 1;
DROP INDEX jobq.one_per_worker;
SELECT jobq.drop_queue('du', force => true);
DROP TABLE trig_log;
DROP FUNCTION log_row();
