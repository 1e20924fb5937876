/*-------------------------------------------------------------------------
 *
 * args.c
 *	  Checks of the arguments of jobq's SQL functions: queue names, job ids,
 *	  intervals. Every refusal is a class 22 error naming the argument.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "jobq.h"

PG_FUNCTION_INFO_V1(jobq_valid_queue);

/*
 * jobq_check_queue_name: a queue name is 1-128 characters among letters,
 * digits and "_ - . :", and not "." or "..": the sidecar's routes carry the
 * name as a path segment, which HTTP clients and servers resolve away.
 */
void
jobq_check_queue_name(const char *queue)
{
	size_t		len = strlen(queue);
	const char *p;

	if (len == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("queue must not be empty")));
	if (len > JOBQ_QUEUE_MAXLEN)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("queue name is longer than %d characters", JOBQ_QUEUE_MAXLEN)));
	for (p = queue; *p; p++)
	{
		char		c = *p;

		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			(c >= '0' && c <= '9') || c == '_' || c == '-' || c == '.' || c == ':')
			continue;
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("queue name \"%s\" contains an invalid character", queue),
				 errdetail("A queue name may contain only letters, digits and \"_\", \"-\", \".\", \":\".")));
	}
	if (strcmp(queue, ".") == 0 || strcmp(queue, "..") == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("queue name \"%s\" is reserved", queue),
				 errdetail("\".\" and \"..\" are path segments in the sidecar's URLs.")));
}

/* The queue argument number argno, checked: never NULL, a valid name. */
char *
jobq_queue_arg(FunctionCallInfo fcinfo, int argno)
{
	char	   *queue;

	if (PG_ARGISNULL(argno))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("queue must not be null")));
	queue = text_to_cstring(PG_GETARG_TEXT_PP(argno));
	jobq_check_queue_name(queue);
	return queue;
}

/* The job id argument number argno: never NULL or empty. */
char *
jobq_id_arg(FunctionCallInfo fcinfo, int argno)
{
	char	   *id;

	if (PG_ARGISNULL(argno))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("id must not be null")));
	id = text_to_cstring(PG_GETARG_TEXT_PP(argno));
	if (id[0] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("id must not be empty")));
	return id;
}

/* Raises 22023 unless the interval datum is greater than zero. */
void
jobq_check_positive_interval(Datum interval, const char *argname)
{
	Interval   *iv = DatumGetIntervalP(interval);
	Interval	zero;

	memset(&zero, 0, sizeof(zero));
	if (DatumGetInt32(DirectFunctionCall2(interval_cmp, interval,
										  IntervalPGetDatum(&zero))) <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must be positive, got %s", argname,
						DatumGetCString(DirectFunctionCall1(interval_out,
															IntervalPGetDatum(iv))))));
}

/*
 * jobq._valid_queue(queue text) returns text: the queue name if valid,
 * else an error.
 */
Datum
jobq_valid_queue(PG_FUNCTION_ARGS)
{
	jobq_queue_arg(fcinfo, 0);
	PG_RETURN_DATUM(PG_GETARG_DATUM(0));
}
