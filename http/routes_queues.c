/*-------------------------------------------------------------------------
 *
 * routes_queues.c
 *	  Queue management: GET /v1/queues, GET|PUT|DELETE /v1/queues/{queue},
 *	  POST /v1/queues/{queue}/_pause|_resume.
 *
 * A queue is answered as its settings (intervals in seconds) with its
 * counts from jobq.queue_stats under "stats".
 *
 *-------------------------------------------------------------------------
 */
#include <string.h>

#include "jobq_http.h"

#define EPOCH(X) "pg_catalog.date_part('epoch', " X ")"

/* A jobq.queues row Q with its jobq.queue_stats row S, as JSON. */
#define QUEUE_JSON(Q, S) \
	"(pg_catalog.to_jsonb(" Q ") || pg_catalog.jsonb_build_object(" \
	"'timeout', " EPOCH(Q ".timeout") ", 'retention', " EPOCH(Q ".retention") ", " \
	"'retry_base', " EPOCH(Q ".retry_base") ", 'retry_cap', " EPOCH(Q ".retry_cap") ", " \
	"'stats', pg_catalog.to_jsonb(" S ") - 'queue' - 'paused'))"

static const JhStmt list_stmt = {
	"queues_list",
	"SELECT COALESCE(pg_catalog.jsonb_agg(" QUEUE_JSON("q", "s") " ORDER BY q.queue), "
	"  '[]'::jsonb) "
	"FROM jobq.queues q LEFT JOIN jobq.queue_stats s ON s.queue = q.queue",
	0
};

/* GET /v1/queues: every queue with its settings and counts. */
void
jh_queues_list(JhRequest *r)
{
	jh_reply_value(r, 200, &list_stmt, NULL);
}

static const JhStmt get_stmt = {
	"queue_get",
	"SELECT " QUEUE_JSON("q", "s") " "
	"FROM jobq._queue($1, false) q LEFT JOIN jobq.queue_stats s ON s.queue = q.queue",
	1
};

/* GET /v1/queues/{queue}: 200, 404 when it does not exist, 422 for a bad name. */
void
jh_queue_get(JhRequest *r)
{
	const char *values[1] = {r->queue};

	jh_reply_value(r, 200, &get_stmt, values);
}

static const JhStmt exists_stmt = {
	"queue_exists",
	"SELECT EXISTS (SELECT 1 FROM jobq.queues q WHERE q.queue = jobq._valid_queue($1))",
	1
};

static const JhStmt create_stmt = {
	"queue_create",
	"SELECT 1 FROM jobq.create_queue(queue => $1)",
	1
};

static const JhStmt alter_stmt = {
	"queue_alter",
	"SELECT 1 FROM " JH_SQL_BODY("$2") ", LATERAL jobq.alter_queue(queue => $1, "
	"  timeout => " JH_SQL_INTERVAL("s.b -> 'timeout'") ", "
	"  max_retries => (s.b ->> 'max_retries')::integer, "
	"  retention => " JH_SQL_INTERVAL("s.b -> 'retention'") ", "
	"  retry_base => " JH_SQL_INTERVAL("s.b -> 'retry_base'") ", "
	"  retry_cap => " JH_SQL_INTERVAL("s.b -> 'retry_cap'") ", "
	"  max_running => (s.b ->> 'max_running')::integer) q",
	2
};

/* CASE runs only the branch taken: pause, resume, or neither. */
static const JhStmt paused_stmt = {
	"queue_paused",
	"SELECT CASE ($2::jsonb ->> 'paused')::boolean "
	"  WHEN true THEN (jobq.pause_queue($1)).queue "
	"  WHEN false THEN (jobq.resume_queue($1)).queue END",
	2
};

/*
 * PUT /v1/queues/{queue}: creates the queue (201) or changes it (200) with
 * the settings given in the body (all optional): timeout, retention,
 * retry_base, retry_cap (seconds or interval strings), max_retries,
 * max_running (0 removes the cap), paused. One transaction.
 */
void
jh_queue_put(JhRequest *r)
{
	const char *values[2];
	PGresult   *res;
	bool		existed;

	if (!jh_body_json(r, false, "o"))
		return;
	values[0] = r->queue;
	values[1] = r->body ? r->body : "{}";
	if (!jh_command(r, "BEGIN"))
		return;
	res = jh_query(r, &exists_stmt, values);
	if (res == NULL)
		return;
	existed = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
	PQclear(res);
	if (!existed)
	{
		if ((res = jh_query(r, &create_stmt, values)) == NULL)
			return;
		PQclear(res);
	}
	if ((res = jh_query(r, &alter_stmt, values)) == NULL)
		return;
	PQclear(res);
	if ((res = jh_query(r, &paused_stmt, values)) == NULL)
		return;
	PQclear(res);
	if ((res = jh_query(r, &get_stmt, values)) == NULL)
		return;
	if (!jh_command(r, "COMMIT"))
	{
		PQclear(res);
		return;
	}
	jh_reply_result(r, existed ? 200 : 201, res);
}

static const JhStmt drop_stmt = {
	"queue_drop",
	"SELECT pg_catalog.jsonb_build_object('queue', $1::text, 'dropped', true) "
	"FROM (SELECT jobq.drop_queue(queue => $1, force => COALESCE($2::boolean, false))) d",
	2
};

/*
 * DELETE /v1/queues/{queue}[?force=true]: drops the queue with its history;
 * 409 while it has live jobs unless force.
 */
void
jh_queue_delete(JhRequest *r)
{
	const char *values[2] = {r->queue, NULL};

	if (!jh_param_bool(r, "force", &values[1]))
		return;
	jh_reply_value(r, 200, &drop_stmt, values);
}

static const JhStmt pause_stmt = {
	"queue_pause",
	"SELECT " QUEUE_JSON("q", "s") " "
	"FROM jobq.pause_queue($1) q LEFT JOIN jobq.queue_stats s ON s.queue = q.queue",
	1
};

static const JhStmt resume_stmt = {
	"queue_resume",
	"SELECT " QUEUE_JSON("q", "s") " "
	"FROM jobq.resume_queue($1) q LEFT JOIN jobq.queue_stats s ON s.queue = q.queue",
	1
};

/* POST /v1/queues/{queue}/_pause: lease gives nothing until _resume. */
void
jh_queue_pause(JhRequest *r)
{
	const char *values[1] = {r->queue};

	jh_reply_value(r, 200, &pause_stmt, values);
}

/* POST /v1/queues/{queue}/_resume */
void
jh_queue_resume(JhRequest *r)
{
	const char *values[1] = {r->queue};

	jh_reply_value(r, 200, &resume_stmt, values);
}
