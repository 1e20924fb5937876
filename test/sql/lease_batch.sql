-- batch: jobq.complete_batch (each job fenced by its own token) and jobq.lease across both
-- partitions (persistent and unlogged jobs in one lease, in lease order), and under a
-- capped queue (max_running).
\set VERBOSITY terse
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS jobq;
RESET client_min_messages;
\i test/sql/include/try.sql

SELECT queue FROM jobq.create_queue('bq', timeout => '1 minute');
SELECT count(*) FROM jobq.enqueue_batch('bq',
	(SELECT jsonb_agg(jsonb_build_object('id', 'b' || i, 'priority', i % 2,
		'persist', i % 3 <> 0, 'payload', jsonb_build_object('i', i)))
	 FROM generate_series(1, 12) i));

-- one lease takes jobs of both partitions, in priority then enqueue order
CREATE TEMP TABLE l AS SELECT * FROM jobq.lease('bq', 'w1', 6);
SELECT l.id, l.priority, l.persist, j.status FROM l JOIN jobq.jobs j USING (queue, id) ORDER BY l.priority, l.run;
SELECT count(*) AS leased_twice FROM jobq.lease('bq', 'w2', 12) x JOIN l USING (id);

-- complete_batch: right tokens complete; a stale token, a pending job and an unknown id
-- are skipped and left as they were
SELECT (SELECT array_agg(id ORDER BY id) FROM l) AS ids,
	(SELECT array_agg(lease ORDER BY id) FROM l) AS leases \gset
SELECT array_agg(x ORDER BY x) AS completed FROM jobq.complete_batch('bq',
	:'ids'::text[] || '{nope}'::text[],
	(:'leases'::uuid[])[1:5] || '{00000000-0000-0000-0000-000000000000,00000000-0000-0000-0000-000000000000}'::uuid[],
	(SELECT array_agg(jsonb_build_object('ok', id) ORDER BY id) FROM l) || '{null}'::jsonb[]) x;
SELECT id, status, result FROM jobq.history WHERE queue = 'bq' ORDER BY id;
SELECT id, status FROM jobq.jobs WHERE queue = 'bq' AND id = (SELECT max(id) FROM l);
-- the whole batch again, all tokens right: only b8, whose token was withheld, completes
SELECT x FROM jobq.complete_batch('bq', :'ids', :'leases') x;
-- no results: null results; an empty batch completes nothing
SELECT count(*) FROM jobq.complete_batch('bq', '{}', '{}');

-- bad input: 22004 / 22023, and nothing changes
SELECT pg_temp.try($$SELECT jobq.complete_batch('bq', NULL, '{}')$$);
SELECT pg_temp.try($$SELECT jobq.complete_batch('bq', '{}', NULL)$$);
SELECT pg_temp.try($$SELECT jobq.complete_batch('bq', '{a,b}', '{00000000-0000-0000-0000-000000000000}')$$);
SELECT pg_temp.try($$SELECT jobq.complete_batch('bq', '{a,NULL}', '{00000000-0000-0000-0000-000000000000,00000000-0000-0000-0000-000000000000}')$$);
SELECT pg_temp.try($$SELECT jobq.complete_batch('bq', '{a}', '{NULL}')$$);
SELECT pg_temp.try($$SELECT jobq.complete_batch('bq', '{a}', '{00000000-0000-0000-0000-000000000000}', '{}')$$);
SELECT pg_temp.try($$SELECT jobq.complete_batch('bq', '{{a}}', '{{00000000-0000-0000-0000-000000000000}}')$$);
SELECT pg_temp.try($$SELECT jobq.complete_batch('bad name', '{a}', '{00000000-0000-0000-0000-000000000000}')$$);
SELECT pg_temp.try($$SELECT jobq.complete_batch('bq', (SELECT array_agg(i::text) FROM generate_series(1, 10001) i),
	(SELECT array_agg('00000000-0000-0000-0000-000000000000'::uuid) FROM generate_series(1, 10001) i))$$);
SELECT status, count(*) FROM jobq.jobs WHERE queue = 'bq' GROUP BY 1 ORDER BY 1;

-- a capped queue leases at most its free slots; a paused one nothing
SELECT queue FROM jobq.create_queue('capq', max_running => 3);
SELECT count(*) FROM jobq.enqueue_batch('capq', '[{}, {}, {}, {}, {}]');
SELECT count(*) FROM jobq.lease('capq', 'w', 2);
SELECT count(*) FROM jobq.lease('capq', 'w', 5);
SELECT count(*) FROM jobq.lease('capq', 'w', 5);
SELECT queue FROM jobq.alter_queue('capq', max_running => 0);  -- uncapped
SELECT queue FROM jobq.pause_queue('capq');
SELECT count(*) FROM jobq.lease('capq', 'w', 5);
SELECT queue FROM jobq.resume_queue('capq');
SELECT count(*) FROM jobq.lease('capq', 'w', 5);
SELECT count(*) FROM jobq.lease('nosuchq', 'w', 5);

-- Two queues whose names hash alike share a range of jobs_pending_idx (hashtext(queue), ...):
-- each leases only its own jobs, in its own order, by the direct lease and by the general one
-- (which an unlogged job brings in).
SELECT a.n AS qa, b.n AS qb
FROM (SELECT 'h' || i AS n, hashtext('h' || i) AS h FROM generate_series(1, 300000) i) a
JOIN (SELECT 'h' || i AS n, hashtext('h' || i) AS h FROM generate_series(1, 300000) i) b
	ON a.h = b.h AND a.n < b.n
ORDER BY a.n, b.n LIMIT 1 \gset
SELECT hashtext(:'qa') = hashtext(:'qb') AS same_hash, :'qa' <> :'qb' AS other_name;
SELECT count(*) FROM jobq.enqueue_batch(:'qa', '[{"id": "a1", "priority": 2}, {"id": "a2"}, {"id": "a3", "priority": 2}]');
SELECT count(*) FROM jobq.enqueue_batch(:'qb', '[{"id": "b1", "priority": 1}, {"id": "b2"}, {"id": "b3", "priority": -1}]');
SELECT queue = :'qb' AS own, id FROM jobq.lease(:'qb', 'w', 2);
SELECT queue = :'qa' AS own, id FROM jobq.lease(:'qa', 'w', 2);
SELECT count(*) FROM jobq.enqueue_batch(:'qb', '[{"id": "b4", "persist": false}]');
SELECT queue = :'qa' AS own, id FROM jobq.lease(:'qa', 'w', 10);
SELECT queue = :'qb' AS own, id, persist FROM jobq.lease(:'qb', 'w', 10);
SELECT count(*) FROM jobq.lease(:'qa', 'w', 10);
SELECT queue = :'qa' AS qa, status, count(*) FROM jobq.jobs WHERE queue IN (:'qa', :'qb') GROUP BY 1, 2 ORDER BY 1, 2;

-- leave nothing behind for the files that follow
SELECT jobq.drop_queue('bq', force => true), jobq.drop_queue('capq', force => true),
	jobq.drop_queue(:'qa', force => true), jobq.drop_queue(:'qb', force => true);
