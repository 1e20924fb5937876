-- 00_init: jobq installs, and its objects are where DESIGN.md puts them.
\set VERBOSITY terse
CREATE EXTENSION jobq;
SELECT extversion FROM pg_extension WHERE extname = 'jobq';
SELECT p.proname
FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
WHERE n.nspname = 'jobq' AND p.proname !~ '^_'
ORDER BY 1;
SELECT c.relname, c.relkind, c.relpersistence
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = 'jobq' AND c.relkind IN ('r', 'p', 'v', 'u')
ORDER BY 1;
