/*-------------------------------------------------------------------------
 *
 * enqueue.c
 *	  jobq.enqueue: the common call without the executor, every other call
 *	  through the statements of jobq._enqueue_sql.
 *
 *	  An enqueue of one job through PL/pgSQL set up its INSERT's plan (a
 *	  result relation of the partitioned jobq.jobs, its routing to the
 *	  partition, projections of 28 columns) at every call: of 313 000
 *	  instructions per enqueue transaction, 102 000 were ExecutorStart
 *	  (bench/ W1, callgrind of single-user EXECUTEs). The common call
 *	  names a queue that exists and leaves the id, the timeout and persist
 *	  to their defaults: jobq_direct_enqueue (direct.c) inserts its row into
 *	  jobq.jobs_persistent and its index entries itself.
 *
 *	  Any other call runs jobq._enqueue_sql, which checks what it is given
 *	  in its order (a given id under its bucket's lock, a timeout, the
 *	  queue's name when it creates the queue) and inserts through the
 *	  partitioned table.
 *
 *	  jobq.enqueue_batch likewise: an array of jobs that only give payload,
 *	  state, priority and max_retries, into a queue that exists, is written
 *	  by jobq_direct_enqueue_batch, its rows a page at a time as COPY writes
 *	  them; any other call runs jobq._enqueue_batch_sql.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type_d.h"
#include "funcapi.h"
#include "nodes/makefuncs.h"
#include "nodes/value.h"
#include "parser/parse_func.h"
#include "utils/builtins.h"
#include "utils/tuplestore.h"

#include "jobq.h"

PG_FUNCTION_INFO_V1(jobq_enqueue);
PG_FUNCTION_INFO_V1(jobq_enqueue_batch);

#define ENQUEUE_NARGS	9
#define STATEMENTS_MAX_NARGS	ENQUEUE_NARGS

/*
 * The statements' way: calls jobq.NAME (PL/pgSQL, owner only) with fcinfo's
 * arguments, whose types are argtypes, and its result set (enqueue_batch
 * returns a set, filled by the callee), search_path pinned (plan.c); returns
 * its result.
 */
static Datum
call_statements(FunctionCallInfo fcinfo, const char *name, int nargs, const Oid *argtypes)
{
	FmgrInfo	flinfo;
	Datum		result;
	int			pinned;
	LOCAL_FCINFO(call, STATEMENTS_MAX_NARGS);

	Assert(nargs <= STATEMENTS_MAX_NARGS);
	pinned = jobq_pin_search_path();
	fmgr_info(LookupFuncName(list_make2(makeString("jobq"), makeString(pstrdup(name))),
							 nargs, argtypes, false),
			  &flinfo);
	InitFunctionCallInfoData(*call, &flinfo, nargs, PG_GET_COLLATION(), NULL,
							 fcinfo->resultinfo);
	for (int i = 0; i < nargs; i++)
		call->args[i] = fcinfo->args[i];
	result = FunctionCallInvoke(call);
	fcinfo->isnull = call->isnull;
	jobq_unpin_search_path(pinned);
	return result;
}

/*
 * jobq.enqueue(queue text, payload jsonb, id text, timeout interval,
 *				max_retries integer, persist boolean, run_at timestamptz,
 *				priority integer, state jsonb) returns jobq.job
 */
Datum
jobq_enqueue(PG_FUNCTION_ARGS)
{
	static const Oid argtypes[ENQUEUE_NARGS] = {TEXTOID, JSONBOID, TEXTOID, INTERVALOID,
	INT4OID, BOOLOID, TIMESTAMPTZOID, INT4OID, JSONBOID};
	TupleDesc	rdesc;
	Datum		result;

	if (!PG_ARGISNULL(0) && PG_ARGISNULL(2) && PG_ARGISNULL(3) &&
		(PG_ARGISNULL(5) || PG_GETARG_BOOL(5)))
	{
		if (get_call_result_type(fcinfo, NULL, &rdesc) != TYPEFUNC_COMPOSITE)
			elog(ERROR, "jobq: jobq.enqueue must return a row type");
		if (jobq_direct_enqueue(fcinfo, BlessTupleDesc(rdesc), &result))
		{
			jobq_notify(PG_GETARG_TEXT_PP(0));
			PG_RETURN_DATUM(result);
		}
	}

	return call_statements(fcinfo, "_enqueue_sql", ENQUEUE_NARGS, argtypes);
}

/*
 * jobq.enqueue_batch(queue text, jobs jsonb) returns setof text
 */
Datum
jobq_enqueue_batch(PG_FUNCTION_ARGS)
{
	static const Oid argtypes[2] = {TEXTOID, JSONBOID};
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	Datum	   *ids;
	int			n;

	if (!PG_ARGISNULL(0) && !PG_ARGISNULL(1) &&
		(n = jobq_direct_enqueue_batch(PG_GETARG_DATUM(0), PG_GETARG_JSONB_P(1), &ids)) >= 0)
	{
		InitMaterializedSRF(fcinfo, MAT_SRF_USE_EXPECTED_DESC);
		for (int i = 0; i < n; i++)
		{
			bool		isnull = false;

			tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, &ids[i], &isnull);
		}
		jobq_notify(PG_GETARG_TEXT_PP(0));
		return (Datum) 0;
	}

	return call_statements(fcinfo, "_enqueue_batch_sql", 2, argtypes);
}
