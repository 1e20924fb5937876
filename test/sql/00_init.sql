-- 00_init: jobq installs, and its objects are where DESIGN.md puts them.
\set VERBOSITY terse
CREATE EXTENSION jobq;
SELECT extversion FROM pg_extension WHERE extname = 'jobq';
-- The core API of DESIGN.md: each name exists in schema jobq.
SELECT f AS missing FROM unnest(ARRAY['create_queue', 'alter_queue', 'drop_queue', 'pause_queue',
	'resume_queue', 'enqueue', 'enqueue_batch', 'lease', 'heartbeat', 'complete', 'fail',
	'release', 'reschedule', 'get', 'exists', 'runs', 'search', 'events', 'log', 'stats']) f
WHERE NOT EXISTS (SELECT 1 FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
	WHERE n.nspname = 'jobq' AND p.proname = f);
SELECT c.relname, c.relkind, c.relpersistence
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = 'jobq' AND c.relkind IN ('r', 'p', 'u')
	AND c.relname IN ('queues', 'jobs', 'jobs_persistent', 'jobs_unlogged', 'history', 'job_events')
ORDER BY 1;
