/*-------------------------------------------------------------------------
 *
 * finish.c
 *	  The calls a worker makes on a leased job: jobq.heartbeat, jobq.complete
 *	  and jobq.fail.
 *
 *	  Each is one prepared statement keyed by (queue, id) that acts only on a
 *	  running job whose lease token matches (any token when none is given).
 *	  While no unlogged job exists, complete and complete_batch do the same
 *	  without the executor (direct.c) unless the tables have triggers.
 *	  When it touches no row, jobq_raise_not_leased says why (P0002 or 55000)
 *	  and nothing has changed; a heartbeat carrying the token of a version
 *	  retired by jobq.update or a rollback gets that version's status instead,
 *	  which tells its worker to stop. The row lock taken by the UPDATE/DELETE is what
 *	  fences a late call against the reaper or a new lease: the statement
 *	  re-checks status and token after waiting for a concurrent writer.
 *
 *	  The status they look for, 'running', is a parameter, not a literal: with
 *	  the literal the planner may prove the partial index of running jobs
 *	  usable and, in a generic plan made while few jobs run, walk all the
 *	  running jobs of every queue instead of looking the job up by its key.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "funcapi.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"
#include "utils/uuid.h"

#include "jobq.h"

PG_FUNCTION_INFO_V1(jobq_heartbeat);
PG_FUNCTION_INFO_V1(jobq_complete);
PG_FUNCTION_INFO_V1(jobq_complete_batch);
PG_FUNCTION_INFO_V1(jobq_fail);

/* Fills values/nulls [0..1] with queue and id, [at] with the token. */
static void
fin_key_args(FunctionCallInfo fcinfo, int leasearg, Datum *values, char *nulls, int at)
{
	jobq_queue_arg(fcinfo, 0);
	jobq_id_arg(fcinfo, 1);
	values[0] = PG_GETARG_DATUM(0);
	values[1] = PG_GETARG_DATUM(1);
	nulls[0] = nulls[1] = ' ';
	values[at] = PG_ARGISNULL(leasearg) ? (Datum) 0 : PG_GETARG_DATUM(leasearg);
	nulls[at] = PG_ARGISNULL(leasearg) ? 'n' : ' ';
}

/* An optional argument into values/nulls[at]. */
static void
fin_opt_arg(FunctionCallInfo fcinfo, int argno, Datum *values, char *nulls, int at)
{
	values[at] = PG_ARGISNULL(argno) ? (Datum) 0 : PG_GETARG_DATUM(argno);
	nulls[at] = PG_ARGISNULL(argno) ? 'n' : ' ';
}

/* The status the statements look for, as a parameter value (see the head). */
static Datum
running_status(void)
{
	return CStringGetTextDatum("running");
}

/*
 * jobq.heartbeat(queue, id, state jsonb, progress real, message text,
 *				  lease uuid) returns text
 *
 * Extends the lease by the job's timeout, saves state, progress and message
 * (NULL keeps them) and returns the job's desired_status, which tells the
 * worker to go on ("running") or to stop. The worker of a retired version
 * (its token is in jobq.job_versions) changes nothing and gets that version's
 * status ("finished", or "failed" after a rollback): stop, do not complete.
 */
#define HEARTBEAT_SQL(rel) \
"UPDATE " rel " j SET lease_expires_at = $7 + j.timeout," \
" state = COALESCE($3, j.state)," \
" progress = COALESCE($4, j.progress)," \
" message = COALESCE($5, j.message), updated_at = $7" \
" WHERE j.queue = $1 AND j.id = $2 AND j.status = $8" \
" AND ($6::uuid IS NULL OR j.lease = $6)" \
" RETURNING j.desired_status"

/*
 * Each statement comes in two forms, for jobq_live_plan: [0] on the
 * partitioned jobq.jobs, [1] on jobq.jobs_persistent.
 */
#define LIVE_FORMS(sql) {sql("jobq.jobs"), sql("jobq.jobs_persistent")}

static const char *const heartbeat_sql[2] = LIVE_FORMS(HEARTBEAT_SQL);

Datum
jobq_heartbeat(PG_FUNCTION_ARGS)
{
	static SPIPlanPtr plans[2] = {NULL, NULL};
	Oid			argtypes[8] = {TEXTOID, TEXTOID, JSONBOID, FLOAT4OID, TEXTOID, UUIDOID,
	TIMESTAMPTZOID, TEXTOID};
	Datum		values[8];
	char		nulls[8];
	text	   *desired;
	int			pinned;			/* jobq_spi_connect's level */

	fin_key_args(fcinfo, 5, values, nulls, 5);
	fin_opt_arg(fcinfo, 2, values, nulls, 2);
	fin_opt_arg(fcinfo, 3, values, nulls, 3);
	fin_opt_arg(fcinfo, 4, values, nulls, 4);
	if (!PG_ARGISNULL(3))
	{
		float4		progress = PG_GETARG_FLOAT4(3);

		if (!(progress >= 0 && progress <= 100))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("progress must be between 0 and 100, got %g", progress)));
	}
	values[6] = TimestampTzGetDatum(GetCurrentTimestamp());
	nulls[6] = ' ';
	values[7] = running_status();
	nulls[7] = ' ';

	pinned = jobq_spi_connect();
	if (SPI_execute_plan(jobq_live_plan(plans, heartbeat_sql, 8, argtypes),
						 values, nulls, false, 0) != SPI_OK_UPDATE_RETURNING)
		elog(ERROR, "jobq: heartbeat failed");
	if (SPI_processed == 0)
	{
		int32		version;
		char	   *retired = NULL;

		if (nulls[5] == 'n' ||
			!jobq_retired_lease(values[0], values[1], values[5], &version, &retired))
			jobq_raise_not_leased(values[0], values[1], values[5], nulls[5] == 'n');
		desired = cstring_to_text(retired);
	}
	else
		desired = cstring_to_text(SPI_getvalue(SPI_tuptable->vals[0],
											   SPI_tuptable->tupdesc, 1));
	desired = (text *) SPI_datumTransfer(PointerGetDatum(desired), false, -1);
	jobq_spi_finish(pinned);
	PG_RETURN_TEXT_P(desired);
}

/*
 * Moves the rows deleted by CTE d (the job's columns plus new_result) to the
 * history as finished runs; $5 is the time of the call.
 */
#define FINISHED_INSERT \
" INSERT INTO jobq.history (queue, id, run, version, status, desired_status," \
"  payload, state, result, priority, run_at, timeout, max_retries, attempt," \
"  worker, progress, message, persist, rollback_enabled, created_by," \
"  created_at, started_at, updated_at, finished_at)" \
" SELECT d.queue, d.id, d.run, d.version, 'finished', d.desired_status," \
"  d.payload, d.state, d.new_result, d.priority, d.run_at, d.timeout, d.max_retries," \
"  d.attempt, d.worker, 100, d.message, d.persist, d.rollback_enabled," \
"  d.created_by, d.created_at, d.started_at, $5, $5 FROM d"

/*
 * jobq.complete(queue, id, result jsonb, lease uuid) returns void
 *
 * Ends the running job as finished with its result: the run moves from the
 * live set to jobq.history in one statement.
 */
#define COMPLETE_SQL(rel) \
"WITH d AS (DELETE FROM " rel " j" \
"  WHERE j.queue = $1 AND j.id = $2 AND j.status = $6" \
"  AND ($4::uuid IS NULL OR j.lease = $4) RETURNING j.*, $3::jsonb AS new_result)" \
FINISHED_INSERT

static const char *const complete_sql[2] = LIVE_FORMS(COMPLETE_SQL);

Datum
jobq_complete(PG_FUNCTION_ARGS)
{
	static SPIPlanPtr plans[2] = {NULL, NULL};
	Oid			argtypes[6] = {TEXTOID, TEXTOID, JSONBOID, UUIDOID, TIMESTAMPTZOID, TEXTOID};
	Datum		values[6];
	char		nulls[6];
	int			persistent;		/* jobq_live_plan's choice: 1 when no unlogged job exists */
	int			pinned;			/* jobq_spi_connect's level */

	fin_key_args(fcinfo, 3, values, nulls, 3);
	fin_opt_arg(fcinfo, 2, values, nulls, 2);
	values[4] = TimestampTzGetDatum(GetCurrentTimestamp());
	nulls[4] = ' ';
	values[5] = running_status();
	nulls[5] = ' ';
	persistent = jobq_persistent_only();

	if (persistent)
	{
		bool		lease_null = nulls[3] == 'n';
		bool		result_null = nulls[2] == 'n';
		bool		done;

		if (jobq_direct_complete(values[0], 1, &values[1], &values[3], &lease_null,
								 &values[2], &result_null,
								 DatumGetTimestampTz(values[4]), &done) >= 0)
		{
			if (!done)
			{
				(void) jobq_spi_connect();
				jobq_raise_not_leased(values[0], values[1], values[3], lease_null);
			}
			jobq_wake_note(values[0], values[1]);
			PG_RETURN_VOID();
		}
	}

	pinned = jobq_spi_connect();
	if (SPI_execute_plan(jobq_plan(&plans[persistent], complete_sql[persistent], 6, argtypes),
						 values, nulls, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "jobq: complete failed");
	if (SPI_processed == 0)
		jobq_raise_not_leased(values[0], values[1], values[3], nulls[3] == 'n');
	jobq_wake_note(values[0], values[1]);
	jobq_spi_finish(pinned);
	PG_RETURN_VOID();
}

/* The length of a one-dimensional array argument that must not be null. */
static int
batch_len(FunctionCallInfo fcinfo, int argno, const char *argname)
{
	ArrayType  *a;

	if (PG_ARGISNULL(argno))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s must not be null", argname)));
	a = PG_GETARG_ARRAYTYPE_P(argno);
	if (ARR_NDIM(a) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must be a one-dimensional array", argname)));
	if (array_contains_nulls(a))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s must not contain nulls", argname)));
	return ARR_NDIM(a) == 0 ? 0 : ARR_DIMS(a)[0];
}

/*
 * complete_batch by direct.c, when it can: the ids completed, in the order
 * given, into rsinfo. False when the statement must do it.
 */
static bool
complete_batch_direct(FunctionCallInfo fcinfo, int n, Datum now, ReturnSetInfo *rsinfo)
{
	Datum	   *ids;
	Datum	   *leases;
	Datum	   *results;
	bool	   *result_nulls;
	bool	   *lease_nulls = palloc0(sizeof(bool) * n);
	bool	   *done = palloc(sizeof(bool) * n);
	int			count;

	deconstruct_array(PG_GETARG_ARRAYTYPE_P(1), TEXTOID, -1, false, TYPALIGN_INT,
					  &ids, NULL, &count);
	deconstruct_array(PG_GETARG_ARRAYTYPE_P(2), UUIDOID, UUID_LEN, false, TYPALIGN_CHAR,
					  &leases, NULL, &count);
	if (PG_ARGISNULL(3))
	{
		results = palloc0(sizeof(Datum) * n);
		result_nulls = palloc(sizeof(bool) * n);
		memset(result_nulls, true, sizeof(bool) * n);
	}
	else
		deconstruct_array(PG_GETARG_ARRAYTYPE_P(3), JSONBOID, -1, false, TYPALIGN_INT,
						  &results, &result_nulls, &count);
	if (jobq_direct_complete(PG_GETARG_DATUM(0), n, ids, leases, lease_nulls, results,
							 result_nulls, DatumGetTimestampTz(now), done) < 0)
		return false;
	for (int i = 0; i < n; i++)
	{
		bool		isnull = false;

		if (!done[i])
			continue;
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, &ids[i], &isnull);
		jobq_wake_note(PG_GETARG_DATUM(0), ids[i]);
	}
	return true;
}

/*
 * jobq.complete_batch(queue, ids text[], leases uuid[], results jsonb[])
 * returns setof text
 *
 * jobq.complete for many jobs in one statement: ids[i] is finished with
 * results[i] (no results: null) when it is running under lease leases[i].
 * Each job is fenced by its own token; a job that is not running, or whose
 * lease is stale, is left untouched and missing from the answer, which is the
 * ids completed.
 */
#define COMPLETE_BATCH_SQL(rel) \
"WITH k AS (SELECT k.id, k.lease, k.result" \
"  FROM ROWS FROM (pg_catalog.unnest($2), pg_catalog.unnest($3), pg_catalog.unnest($4))" \
"  AS k(id, lease, result))," \
" d AS (DELETE FROM " rel " j USING k" \
"  WHERE j.queue = $1 AND j.id = k.id AND j.status = $6" \
"  AND j.lease = k.lease RETURNING j.*, k.result AS new_result)" \
FINISHED_INSERT " RETURNING id"

static const char *const complete_batch_sql[2] = LIVE_FORMS(COMPLETE_BATCH_SQL);

Datum
jobq_complete_batch(PG_FUNCTION_ARGS)
{
	static SPIPlanPtr plans[2] = {NULL, NULL};
	Oid			argtypes[6] = {TEXTOID, TEXTARRAYOID, UUIDARRAYOID, JSONBARRAYOID,
	TIMESTAMPTZOID, TEXTOID};
	Datum		values[6];
	char		nulls[6] = {' ', ' ', ' ', ' ', ' ', ' '};
	int			persistent;		/* as in jobq_complete */
	int			pinned;
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	int			n;
	uint64		i;

	jobq_queue_arg(fcinfo, 0);
	n = batch_len(fcinfo, 1, "ids");
	if (batch_len(fcinfo, 2, "leases") != n)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("leases must have one token per id (%d ids)", n)));
	if (n > JOBQ_LEASE_MAX)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("at most %d jobs per batch, got %d", JOBQ_LEASE_MAX, n)));
	if (!PG_ARGISNULL(3))
	{
		ArrayType  *r = PG_GETARG_ARRAYTYPE_P(3);

		if (ARR_NDIM(r) > 1 || (ARR_NDIM(r) == 0 ? 0 : ARR_DIMS(r)[0]) != n)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("results must have one element per id (%d ids)", n)));
	}

	InitMaterializedSRF(fcinfo, MAT_SRF_USE_EXPECTED_DESC);
	if (n == 0)
		return (Datum) 0;

	values[0] = PG_GETARG_DATUM(0);
	values[1] = PG_GETARG_DATUM(1);
	values[2] = PG_GETARG_DATUM(2);
	values[3] = PG_ARGISNULL(3) ? (Datum) 0 : PG_GETARG_DATUM(3);
	nulls[3] = PG_ARGISNULL(3) ? 'n' : ' ';
	values[4] = TimestampTzGetDatum(GetCurrentTimestamp());
	values[5] = running_status();

	persistent = jobq_persistent_only();
	if (persistent && complete_batch_direct(fcinfo, n, values[4], rsinfo))
		return (Datum) 0;

	pinned = jobq_spi_connect();
	if (SPI_execute_plan(jobq_plan(&plans[persistent], complete_batch_sql[persistent], 6,
								   argtypes),
						 values, nulls, false, 0) != SPI_OK_INSERT_RETURNING)
		elog(ERROR, "jobq: complete_batch failed");
	for (i = 0; i < SPI_processed; i++)
	{
		bool		isnull;
		Datum		id = SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1,
									   &isnull);

		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, &id, &isnull);
		jobq_wake_note(values[0], id);
	}
	jobq_spi_finish(pinned);
	return (Datum) 0;
}

/*
 * jobq.fail(queue, id, error text, retry bool, lease uuid) returns text
 *
 * Records the failure as an error event with the attempt number. The fast
 * path (one statement) puts a job that may retry back to pending with
 * exponential backoff: run_at = now + least(retry_cap, retry_base *
 * 2^(attempt-1)). Everything else (no retry, attempts spent, a stop or
 * cancel request, rollback, errors) is jobq._fail_final's. Returns the new
 * status.
 */
#define FAIL_SQL(rel) \
"WITH u AS (UPDATE " rel " j SET status = 'pending'," \
"  run_at = $6 + LEAST(q.retry_cap, q.retry_base" \
"    * pg_catalog.power(2, LEAST(j.attempt - 1, 30)))," \
"  lease = NULL, lease_expires_at = NULL, worker = NULL, updated_at = $6" \
"  FROM jobq.queues q" \
"  WHERE j.queue = $1 AND j.id = $2 AND j.status = $7" \
"  AND ($5::uuid IS NULL OR j.lease = $5) AND q.queue = j.queue AND $4" \
"  AND j.desired_status = 'running'" \
"  AND (j.max_retries < 0 OR j.attempt <= j.max_retries)" \
"  RETURNING j.queue, j.id, j.run, j.version, j.attempt, j.run_at)" \
" INSERT INTO jobq.job_events (queue, id, run, version, attempt, level," \
"  message, detail)" \
" SELECT u.queue, u.id, u.run, u.version, u.attempt, 'error'," \
"  COALESCE($3, 'failed'), pg_catalog.jsonb_build_object(" \
"  'attempt', u.attempt, 'retry', true, 'next_run_at', u.run_at) FROM u"

static const char *const fail_sql[2] = LIVE_FORMS(FAIL_SQL);

Datum
jobq_fail(PG_FUNCTION_ARGS)
{
	static SPIPlanPtr plans[2] = {NULL, NULL};
	static SPIPlanPtr final_plan = NULL;
	Oid			argtypes[7] = {TEXTOID, TEXTOID, TEXTOID, BOOLOID, UUIDOID, TIMESTAMPTZOID,
	TEXTOID};
	Datum		values[7];
	char		nulls[7];
	text	   *status;
	int			pinned;

	fin_key_args(fcinfo, 4, values, nulls, 4);
	fin_opt_arg(fcinfo, 2, values, nulls, 2);
	values[3] = BoolGetDatum(PG_ARGISNULL(3) ? true : PG_GETARG_BOOL(3));
	nulls[3] = ' ';
	values[5] = TimestampTzGetDatum(GetCurrentTimestamp());
	nulls[5] = ' ';
	values[6] = running_status();
	nulls[6] = ' ';

	pinned = jobq_spi_connect();
	if (SPI_execute_plan(jobq_live_plan(plans, fail_sql, 7, argtypes),
						 values, nulls, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "jobq: fail failed");
	if (SPI_processed == 1)
		status = cstring_to_text("pending");
	else
	{
		jobq_plan(&final_plan, "SELECT jobq._fail_final($1, $2, $3, $4, $5)", 5, argtypes);
		if (SPI_execute_plan(final_plan, values, nulls, false, 1) != SPI_OK_SELECT ||
			SPI_processed != 1)
			elog(ERROR, "jobq: _fail_final failed");
		status = cstring_to_text(SPI_getvalue(SPI_tuptable->vals[0],
											  SPI_tuptable->tupdesc, 1));
	}
	status = (text *) SPI_datumTransfer(PointerGetDatum(status), false, -1);
	jobq_spi_finish(pinned);
	PG_RETURN_TEXT_P(status);
}
