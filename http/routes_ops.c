/*-------------------------------------------------------------------------
 *
 * routes_ops.c
 *	  Synchronous jobs (POST /v1/queues/{queue}/run) and HarperDB's
 *	  operations (POST /v1/operations: get_job, search_jobs_by_start_date).
 *
 * /run enqueues (committed at once: the pool runs in autocommit), then
 * CALLs jobq.wait, which sleeps inside PostgreSQL until the job's ending
 * commits (looking at least once a second) and commits before each sleep,
 * so it holds no long transaction; the request holds its pooled connection while it
 * waits, and statement_timeout is raised for that call. Past the timeout the
 * job is cancelled and the answer is 504 with the job.
 *
 *-------------------------------------------------------------------------
 */
#include <stdio.h>
#include <string.h>

#include "jobq_http.h"

#define RUN_TIMEOUT_MAX	3600	/* seconds a /run may wait */

static const JhStmt enqueue_stmt = {
	"run_enqueue",
	"SELECT (x.j).id FROM " JH_SQL_ENQUEUED("$1", "$2"),
	2
};

static const JhStmt wait_stmt = {
	"run_wait",
	"CALL jobq.wait(queue => $1, id => $2, timeout => pg_catalog.make_interval(secs => $3::float8))",
	3
};

static const JhStmt get_stmt = {
	"run_get",
	"SELECT " JH_SQL_JOB("j") " FROM jobq.get($1, $2) j",
	2
};

static const JhStmt cancel_stmt = {
	"run_cancel",
	"SELECT " JH_SQL_JOB("j") " FROM jobq.cancel($1, $2) j",
	2
};

/*
 * POST /v1/queues/{queue}/run[?timeout=30]: enqueues the job the body
 * describes (as POST .../jobs), waits until it has ended, and answers 200
 * with the job (its status says how it ended, its result what the worker
 * gave). Past timeout seconds the job is cancelled: 504 with the job.
 */
void
jh_ops_run(JhRequest *r)
{
	const char *values[3];
	PGresult   *res;
	long		timeout;
	char		tbuf[16];
	const char *status;
	bool		ended;
	JhError		err;

	if (jh_param_int(r, "timeout", 30, 0, RUN_TIMEOUT_MAX, &timeout) < 0 ||
		!jh_body_json(r, false, "o"))
		return;
	values[0] = r->queue;
	values[1] = r->body ? r->body : "{}";
	if ((res = jh_query(r, &enqueue_stmt, values)) == NULL)
		return;
	values[1] = jh_strdup(r, PQgetvalue(res, 0, 0));
	PQclear(res);

	snprintf(tbuf, sizeof(tbuf), "%ld", timeout);
	values[2] = tbuf;
	if (!jh_pool_set_timeout(r->db, (int) timeout + jh_config.timeout, &err))
	{
		jh_reply_pgerror(r, &err);
		return;
	}
	res = jh_query(r, &wait_stmt, values);
	if (res == NULL)
		return;
	status = PQntuples(res) > 0 ? PQgetvalue(res, 0, 0) : "";
	ended = strcmp(status, "finished") == 0 || strcmp(status, "failed") == 0 ||
		strcmp(status, "cancelled") == 0;
	PQclear(res);
	if (!jh_pool_set_timeout(r->db, jh_config.timeout, &err))
	{
		jh_reply_pgerror(r, &err);
		return;
	}

	if (!ended)
	{
		res = jh_query_quiet(r, &cancel_stmt, values, &err);
		if (res != NULL)
		{
			jh_reply_result(r, 504, res);
			return;
		}
		if (err.status != 409)	/* 409: it ended meanwhile */
		{
			jh_reply_pgerror(r, &err);
			return;
		}
	}
	jh_reply_value(r, 200, &get_stmt, values);
}

/* The first column names the operation, the second is its answer (NULL: unknown). */
static const JhStmt operation_stmt = {
	"operations",
	"SELECT o.op, CASE o.op "
	"  WHEN 'get_job' THEN (SELECT COALESCE(pg_catalog.jsonb_agg("
	"      pg_catalog.to_jsonb(h) - 'ordinality' ORDER BY h.ordinality), '[]'::jsonb) "
	"    FROM jobq.get_job(o.b ->> 'id') WITH ORDINALITY AS h) "
	"  WHEN 'search_jobs_by_start_date' THEN (SELECT COALESCE(pg_catalog.jsonb_agg("
	"      pg_catalog.to_jsonb(h) - 'ordinality' ORDER BY h.ordinality), '[]'::jsonb) "
	"    FROM jobq.search_jobs_by_start_date("
	"      " JH_SQL_TIMESTAMP("o.b -> 'from_date'") ", "
	"      " JH_SQL_TIMESTAMP("o.b -> 'to_date'") ") WITH ORDINALITY AS h) "
	"  END "
	"FROM (SELECT $1::jsonb AS b, $1::jsonb ->> 'operation' AS op) o",
	1
};

/*
 * POST /v1/operations: HarperDB's {"operation": "get_job", "id": ...} and
 * {"operation": "search_jobs_by_start_date", "from_date": ..., "to_date": ...}.
 * 200 with a JSON array of jobs in HarperDB's fields; 422 for another
 * operation.
 */
void
jh_ops_operations(JhRequest *r)
{
	const char *values[1];
	PGresult   *res;

	if (!jh_body_json(r, true, "o"))
		return;
	values[0] = r->body;
	if ((res = jh_query(r, &operation_stmt, values)) == NULL)
		return;
	if (PQgetisnull(res, 0, 1))
	{
		if (PQgetisnull(res, 0, 0))
			jh_reply_error(r, 422, "22023", "the body needs an \"operation\"");
		else
			jh_reply_error(r, 422, "22023",
						   "unknown operation \"%.100s\" (get_job, search_jobs_by_start_date)",
						   PQgetvalue(res, 0, 0));
		PQclear(res);
		return;
	}
	jh_reply(r, 200, "application/json", PQgetvalue(res, 0, 1),
			 (size_t) PQgetlength(res, 0, 1));
	PQclear(res);
}
