/*-------------------------------------------------------------------------
 *
 * routes_jobs.c
 *	  Job management: POST /v1/queues/{queue}/jobs, GET /v1/jobs,
 *	  GET|PUT|DELETE /v1/queues/{queue}/jobs/{id}, the actions
 *	  _stop|_resume|_cancel|_recover, and the views of a job: versions,
 *	  events, errors, progress, info, data.
 *
 * A job is answered as jobq.job's fields (timeout in seconds, the lease
 * token left out). Unknown jobs are 404 (jobq.get's P0002); actions that do
 * not fit the job's state are 409 (55000).
 *
 *-------------------------------------------------------------------------
 */
#include <stdio.h>
#include <string.h>

#include "jobq_http.h"

#define MAX_PAGE	1000		/* largest ?size= of a listing */

static const JhStmt create_stmt = {
	"job_create",
	"SELECT " JH_SQL_JOB("(x.j)") ", (x.j).id FROM " JH_SQL_ENQUEUED("$1", "$2"),
	2
};

/* create_stmt for a job that gives only its payload (jh_plain_job) */
static const JhStmt create_plain_stmt = {
	"job_create_plain",
	"SELECT " JH_SQL_JOB("(x.j)") ", (x.j).id FROM " JH_SQL_ENQUEUED_PLAIN("$1", "$2"),
	2
};

/*
 * POST /v1/queues/{queue}/jobs: enqueues the job described by the body
 * (payload, id, timeout, max_retries, persist, run_at, priority, state; all
 * optional). 202 with the job and its Location; 409 when the id is live.
 */
void
jh_job_create(JhRequest *r)
{
	const char *values[2];
	PGresult   *res;
	char	   *location;
	const char *qpart;
	const char *idpart;

	if (!jh_body_json(r, false, "o"))
		return;
	values[0] = r->queue;
	if (jh_plain_job(r, NULL, &values[1]))
		res = jh_query(r, &create_plain_stmt, values);
	else
	{
		values[1] = r->body ? r->body : "{}";
		res = jh_query(r, &create_stmt, values);
	}
	if (res == NULL)
		return;
	qpart = jh_path_escape(r, r->queue);
	idpart = jh_path_escape(r, PQgetvalue(res, 0, 1));
	location = jh_alloc(r, strlen(qpart) + strlen(idpart) + 32);
	sprintf(location, "/v1/queues/%s/jobs/%s", qpart, idpart);
	jh_header(r, "Location", location);
	jh_reply_result(r, 202, res);
}

static const JhStmt list_stmt = {
	"jobs_list",
	"WITH o AS (SELECT COALESCE($7, 'created_at:desc') AS s) "
	"SELECT COALESCE(pg_catalog.jsonb_agg(" JH_SQL_JOB("j") " - 'ordinality' "
	"  ORDER BY j.ordinality), '[]'::jsonb) "
	"FROM o, LATERAL jobq.search(from_date => $1::timestamptz, to_date => $2::timestamptz, "
	"  queue => $3, status => $4, lim => $5::integer, skip => $6::integer, "
	"  sort => CASE pg_catalog.split_part(o.s, ':', 1) WHEN '_created' THEN 'created_at' "
	"    WHEN '_updated' THEN 'updated_at' ELSE pg_catalog.split_part(o.s, ':', 1) END, "
	"  direction => COALESCE(NULLIF(pg_catalog.split_part(o.s, ':', 2), ''), 'asc')) "
	"  WITH ORDINALITY AS j",
	7
};

/*
 * GET /v1/jobs?queue=&status=&from=&size=&sort=&from_date=&to_date= (and
 * GET /v1/queues/{queue}/jobs): jobs and ended runs created in
 * [from_date, to_date), newest first unless sort=FIELD[:asc|desc] (created_at,
 * updated_at, started_at, finished_at, run_at, priority, status, queue, id;
 * Teraslice's _created and _updated too); size at most 1000 (default 100).
 */
void
jh_jobs_list(JhRequest *r)
{
	const char *values[7];
	long		from;
	long		size;
	char		frombuf[24];
	char		sizebuf[24];

	if (jh_param(r, "from_date", false, &values[0]) < 0 ||
		jh_param(r, "to_date", false, &values[1]) < 0 ||
		jh_param(r, "status", false, &values[3]) < 0 ||
		jh_param(r, "sort", false, &values[6]) < 0 ||
		jh_param_int(r, "from", 0, 0, 1000000000, &from) < 0 ||
		jh_param_int(r, "size", 100, 0, MAX_PAGE, &size) < 0)
		return;
	if (r->queue)
		values[2] = r->queue;
	else if (jh_param(r, "queue", false, &values[2]) < 0)
		return;
	snprintf(frombuf, sizeof(frombuf), "%ld", from);
	snprintf(sizebuf, sizeof(sizebuf), "%ld", size);
	values[4] = sizebuf;
	values[5] = frombuf;
	jh_reply_value(r, 200, &list_stmt, values);
}

static const JhStmt get_stmt = {
	"job_get",
	"SELECT " JH_SQL_JOB("j") " FROM jobq.get($1, $2) j",
	2
};

/* GET /v1/queues/{queue}/jobs/{id}: the live job, else its latest run. */
void
jh_job_get(JhRequest *r)
{
	const char *values[2] = {r->queue, r->id};

	jh_reply_value(r, 200, &get_stmt, values);
}

static const JhStmt update_stmt = {
	"job_update",
	"SELECT " JH_SQL_JOB("j") " "
	"FROM " JH_SQL_BODY("$3") ", "
	"LATERAL jobq.update(queue => $1, id => $2, payload => s.b -> 'payload', "
	"  rollback_enabled => COALESCE((s.b ->> 'rollback_enabled')::boolean, "
	"    (s.b ->> 'rollbackEnabled')::boolean, $4::boolean, false)) j",
	4
};

/*
 * PUT /v1/queues/{queue}/jobs/{id}: versioned update (Grepr). Body
 * {"payload": ..., "rollback_enabled": bool} (or ?rollback_enabled=true).
 * 202 with the job at its new version; 409 for an ended job.
 */
void
jh_job_update(JhRequest *r)
{
	const char *values[4] = {r->queue, r->id, NULL, NULL};

	if (!jh_body_json(r, true, "o") || !jh_param_bool(r, "rollback_enabled", &values[3]))
		return;
	values[2] = r->body;
	jh_reply_value(r, 202, &update_stmt, values);
}

static const JhStmt delete_stmt = {
	"job_delete",
	"SELECT " JH_SQL_JOB("j") " FROM jobq.delete($1, $2) j",
	2
};

/* DELETE /v1/queues/{queue}/jobs/{id}: deletes an ended job; 409 while live. */
void
jh_job_delete(JhRequest *r)
{
	const char *values[2] = {r->queue, r->id};

	jh_reply_value(r, 200, &delete_stmt, values);
}

static const JhStmt stop_stmt = {
	"job_stop", "SELECT " JH_SQL_JOB("j") " FROM jobq.stop($1, $2) j", 2
};
static const JhStmt resume_stmt = {
	"job_resume", "SELECT " JH_SQL_JOB("j") " FROM jobq.resume($1, $2) j", 2
};
static const JhStmt cancel_stmt = {
	"job_cancel", "SELECT " JH_SQL_JOB("j") " FROM jobq.cancel($1, $2) j", 2
};
static const JhStmt recover_stmt = {
	"job_recover", "SELECT " JH_SQL_JOB("j") " FROM jobq.retry($1, $2) j", 2
};

/* POST .../jobs/{id}/_stop: a pending job stops; a running one is asked to. */
void
jh_job_stop(JhRequest *r)
{
	const char *values[2] = {r->queue, r->id};

	jh_reply_value(r, 200, &stop_stmt, values);
}

/* POST .../jobs/{id}/_resume: a stopped job goes back to pending. */
void
jh_job_resume(JhRequest *r)
{
	const char *values[2] = {r->queue, r->id};

	jh_reply_value(r, 200, &resume_stmt, values);
}

/* POST .../jobs/{id}/_cancel: ends a pending or stopped job, asks a running one. */
void
jh_job_cancel(JhRequest *r)
{
	const char *values[2] = {r->queue, r->id};

	jh_reply_value(r, 200, &cancel_stmt, values);
}

/* POST .../jobs/{id}/_recover: a failed job goes back to pending (jobq.retry). */
void
jh_job_recover(JhRequest *r)
{
	const char *values[2] = {r->queue, r->id};

	jh_reply_value(r, 200, &recover_stmt, values);
}

static const JhStmt versions_stmt = {
	"job_versions",
	"SELECT COALESCE(pg_catalog.jsonb_agg(pg_catalog.to_jsonb(v) ORDER BY v.version), "
	"  '[]'::jsonb) FROM jobq.versions($1, $2) v",
	2
};

/* GET .../jobs/{id}/versions: the job's versions, oldest first. */
void
jh_job_versions(JhRequest *r)
{
	const char *values[2] = {r->queue, r->id};

	jh_reply_value(r, 200, &versions_stmt, values);
}

/* jobq.get first, so that an unknown job is 404 rather than an empty list. */
static const JhStmt events_stmt = {
	"job_events",
	"SELECT (SELECT COALESCE(pg_catalog.jsonb_agg(pg_catalog.to_jsonb(e) ORDER BY e.eid), "
	"  '[]'::jsonb) FROM jobq.events($1, $2, $3) e) FROM jobq.get($1, $2) g",
	3
};

/* GET .../jobs/{id}/events[?level=]: the job's event log, oldest first. */
void
jh_job_events(JhRequest *r)
{
	const char *values[3] = {r->queue, r->id, NULL};

	if (jh_param(r, "level", false, &values[2]) < 0)
		return;
	jh_reply_value(r, 200, &events_stmt, values);
}

/* GET .../jobs/{id}/errors: the job's error events, oldest first. */
void
jh_job_errors(JhRequest *r)
{
	const char *values[3] = {r->queue, r->id, "error"};

	jh_reply_value(r, 200, &events_stmt, values);
}

static const JhStmt progress_stmt = {
	"job_progress",
	"SELECT pg_catalog.to_jsonb(p) FROM jobq.progress($1, $2) p",
	2
};

/* GET .../jobs/{id}/progress: status, progress, result_code (-1 while not ended). */
void
jh_job_progress(JhRequest *r)
{
	const char *values[2] = {r->queue, r->id};

	jh_reply_value(r, 200, &progress_stmt, values);
}

static const JhStmt info_stmt = {
	"job_info",
	"SELECT pg_catalog.jsonb_build_object('queue', g.queue, 'id', g.id, "
	"  'status', g.status, 'desired_status', g.desired_status, "
	"  'progress', p.progress, 'result_code', p.result_code, 'message', g.message, "
	"  'version', g.version, 'attempt', g.attempt, "
	"  'events', COALESCE(e.events, '[]'::jsonb), "
	"  'errors', COALESCE(e.errors, '[]'::jsonb), "
	"  'warnings', COALESCE(e.warnings, '[]'::jsonb)) "
	"FROM jobq.get($1, $2) g, jobq.progress($1, $2) p, "
	"LATERAL (SELECT pg_catalog.jsonb_agg(pg_catalog.to_jsonb(x) ORDER BY x.eid) AS events, "
	"    pg_catalog.jsonb_agg(pg_catalog.to_jsonb(x) ORDER BY x.eid) "
	"      FILTER (WHERE x.level = 'error') AS errors, "
	"    pg_catalog.jsonb_agg(pg_catalog.to_jsonb(x) ORDER BY x.eid) "
	"      FILTER (WHERE x.level = 'warning') AS warnings "
	"  FROM jobq.events($1, $2) x) e",
	2
};

/* GET .../jobs/{id}/info: status and progress with events, errors, warnings (ZeroG). */
void
jh_job_info(JhRequest *r)
{
	const char *values[2] = {r->queue, r->id};

	jh_reply_value(r, 200, &info_stmt, values);
}

static const JhStmt data_stmt = {
	"job_data",
	"SELECT COALESCE(jobq.result($1, $2), 'null'::jsonb)",
	2
};

/* GET .../jobs/{id}/data: the job's result as its worker gave it (null before). */
void
jh_job_data(JhRequest *r)
{
	const char *values[2] = {r->queue, r->id};

	jh_reply_value(r, 200, &data_stmt, values);
}
