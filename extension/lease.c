/*-------------------------------------------------------------------------
 *
 * lease.c
 *	  jobq.lease: hand out up to n due pending jobs of a queue to a worker.
 *
 *	  One prepared statement does the whole lease: it picks the jobs through
 *	  the partial index over pending rows (queue, priority, run_at, run) with
 *	  FOR UPDATE SKIP LOCKED, in a MATERIALIZED CTE so that the LIMIT is
 *	  applied exactly once whatever join plan is chosen, and marks them
 *	  running with a fresh lease token. Paused queues yield nothing; a queue
 *	  with max_running yields at most the free slots (its leases are
 *	  serialised, see below). The time is passed in
 *	  as a parameter (the clock at the call), so run_at is an index bound.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "funcapi.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "jobq.h"

PG_FUNCTION_INFO_V1(jobq_lease);

static const char *lease_sql =
"WITH q AS ("
"  SELECT CASE WHEN q.max_running IS NULL THEN $3"
"    ELSE LEAST($3, GREATEST(0, q.max_running - ("
"      SELECT pg_catalog.count(*)::integer FROM jobq.jobs r"
"      WHERE r.queue = $1 AND r.status = 'running'))) END AS n"
"  FROM jobq.queues q WHERE q.queue = $1 AND NOT q.paused),"
" c AS MATERIALIZED ("
"  SELECT j.queue, j.id, j.persist FROM jobq.jobs j"
"  WHERE j.queue = $1 AND j.status = 'pending' AND j.run_at <= $5"
"  ORDER BY j.priority, j.run_at, j.run"
"  LIMIT COALESCE((SELECT q.n FROM q), 0)"
"  FOR UPDATE OF j SKIP LOCKED),"
" u AS ("
"  UPDATE jobq.jobs j SET status = 'running', attempt = j.attempt + 1,"
"    lease = pg_catalog.gen_random_uuid(), worker = $2,"
"    timeout = COALESCE($4, j.timeout),"
"    lease_expires_at = $5 + COALESCE($4, j.timeout),"
"    started_at = $5, updated_at = $5"
"  FROM c WHERE j.queue = c.queue AND j.id = c.id AND j.persist = c.persist"
"  RETURNING j.queue, j.id, j.run, j.version, j.attempt, j.lease, j.payload, j.state,"
"    j.timeout, j.lease_expires_at, j.max_retries, j.priority, j.persist, j.run_at,"
"    j.created_at)"
" SELECT * FROM u ORDER BY u.priority, u.run_at, u.run";

/*
 * jobq.lease(queue text, worker text, n int, timeout interval)
 * returns table(queue, id, run, version, attempt, lease, payload, state,
 *				 timeout, lease_expires_at, max_retries, priority, persist,
 *				 run_at, created_at)
 */
Datum
jobq_lease(PG_FUNCTION_ARGS)
{
	static SPIPlanPtr plan = NULL;
	static SPIPlanPtr cap_plan = NULL;
	Oid			argtypes[5] = {TEXTOID, TEXTOID, INT4OID, INTERVALOID, TIMESTAMPTZOID};
	Datum		values[5];
	char		nulls[5] = {' ', ' ', ' ', ' ', ' '};
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	int32		n;
	uint64		i;

	jobq_queue_arg(fcinfo, 0);
	if (PG_ARGISNULL(2))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("n must not be null")));
	n = PG_GETARG_INT32(2);
	if (n < 1 || n > JOBQ_LEASE_MAX)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("n must be between 1 and %d, got %d", JOBQ_LEASE_MAX, n)));
	if (!PG_ARGISNULL(3))
		jobq_check_positive_interval(PG_GETARG_DATUM(3), "timeout");

	InitMaterializedSRF(fcinfo, 0);

	values[0] = PG_GETARG_DATUM(0);
	values[1] = PG_ARGISNULL(1) ? (Datum) 0 : PG_GETARG_DATUM(1);
	nulls[1] = PG_ARGISNULL(1) ? 'n' : ' ';
	values[2] = Int32GetDatum(n);
	values[3] = PG_ARGISNULL(3) ? (Datum) 0 : PG_GETARG_DATUM(3);
	nulls[3] = PG_ARGISNULL(3) ? 'n' : ' ';
	values[4] = TimestampTzGetDatum(GetCurrentTimestamp());

	SPI_connect();

	/*
	 * A queue capped by max_running: leases of it are serialised by a
	 * transaction advisory lock on the queue, taken before the lease
	 * statement, which then counts the running jobs in a fresh snapshot
	 * (READ COMMITTED) that sees every lease committed before. Without it,
	 * concurrent leases each count in their own snapshot, blind to the
	 * others' uncommitted leases, and together exceed the cap.
	 */
	jobq_plan(&cap_plan,
			  "SELECT pg_catalog.pg_advisory_xact_lock(1785684594, pg_catalog.hashtext(q.queue))"
			  " FROM jobq.queues q WHERE q.queue OPERATOR(pg_catalog.=) $1"
			  " AND q.max_running IS NOT NULL AND NOT q.paused",
			  1, argtypes);
	if (SPI_execute_plan(cap_plan, values, nulls, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "jobq: lease cap lock failed");

	jobq_plan(&plan, lease_sql, 5, argtypes);
	if (SPI_execute_plan(plan, values, nulls, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "jobq: lease failed");

	for (i = 0; i < SPI_processed; i++)
	{
		Datum		row[15];
		bool		rownulls[15];

		heap_deform_tuple(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, row, rownulls);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, row, rownulls);
	}
	SPI_finish();
	return (Datum) 0;
}
