/*-------------------------------------------------------------------------
 *
 * routes_relay.c
 *	  relay-rs's worker API: enqueue, enqueue/batch, next, heartbeat,
 *	  reschedule, complete, exists, get.
 *
 * Bodies take relay's fields exactly: id, queue, timeout (seconds, or an
 * interval string), persist_data, max_retries, payload, state, run_at (a
 * timestamp string or epoch seconds); jobq's priority and persist are
 * accepted too. Status codes are relay's: enqueue 202/409/422/429/500, next
 * 200 (a JSON array)/204, heartbeat 202/404, complete 200/404. relay has no
 * lease token; a worker may pass jobq's as ?lease= to heartbeat and
 * complete to be fenced.
 *
 *-------------------------------------------------------------------------
 */
#include <stdio.h>
#include <string.h>

#include "jobq_http.h"

#define JH_LONGPOLL_MAX	300		/* seconds a next?wait= may wait */

static const JhStmt enqueue_stmt = {
	"relay_enqueue",
	"SELECT pg_catalog.jsonb_build_object('id', (x.j).id, 'queue', (x.j).queue, "
	"  'status', (x.j).status) "
	"FROM " JH_SQL_ENQUEUED("s.b ->> 'queue'", "$1"),
	1
};

/*
 * reply_job_status: answers {"id", "queue", "status"} with code, as jsonb
 * prints it (keys in jsonb's order), without a jsonb_build_object in the
 * statement.
 */
static void
reply_job_status(JhRequest *r, int code, const char *id, const char *queue, const char *status)
{
	static const char *const keys[] = {"{\"id\": \"", "\", \"queue\": \"", "\", \"status\": \""};
	const char *const values[] = {id, queue, status};
	size_t		cap = 64;
	char	   *json;
	size_t		n = 0;
	int			i;

	for (i = 0; i < 3; i++)
		cap += 6 * strlen(values[i]);
	json = jh_alloc(r, cap);
	for (i = 0; i < 3; i++)
	{
		memcpy(json + n, keys[i], strlen(keys[i]));
		n += strlen(keys[i]);
		n += jh_json_escape(json + n, cap - n, values[i]);
	}
	memcpy(json + n, "\"}", 3);
	jh_reply_json(r, code, json);
}

/* POST /v1/enqueue: 202 {"id", "queue", "status"}; 409 when the id is live. */
void
jh_relay_enqueue(JhRequest *r)
{
	const char *values[2];

	if (!jh_body_json(r, true, "o"))
		return;
	if (jh_plain_job(r, &values[0], &values[1]))
	{
		const char *answer[3];

		/* group.c: with the plain enqueues that arrive with it */
		if (jh_group_enqueue(r, values[0], values[1], answer))
			reply_job_status(r, 202, answer[0], answer[1], answer[2]);
	}
	else
	{
		values[0] = r->body;
		jh_reply_value(r, 202, &enqueue_stmt, values);
	}
}

/* Groups the jobs by queue; each group is one jobq.enqueue_batch call. */
static const JhStmt enqueue_batch_stmt = {
	"relay_enqueue_batch",
	"WITH b AS (SELECT x.e ->> 'queue' AS queue, x.e, x.ord "
	"  FROM pg_catalog.jsonb_array_elements($1::jsonb) WITH ORDINALITY AS x(e, ord)), "
	"g AS (SELECT b.queue, pg_catalog.jsonb_agg(b.e ORDER BY b.ord) AS jobs "
	"  FROM b GROUP BY b.queue ORDER BY b.queue) "
	"SELECT pg_catalog.jsonb_build_object('enqueued', "
	"  COALESCE(pg_catalog.jsonb_agg(i.id), '[]'::jsonb)) "
	"FROM g, LATERAL jobq.enqueue_batch(g.queue, g.jobs) AS i(id)",
	1
};

/*
 * POST /v1/enqueue/batch: a JSON array of relay job objects; ids already
 * live are skipped. 202 {"enqueued": [ids]}.
 */
void
jh_relay_enqueue_batch(JhRequest *r)
{
	const char *values[1];

	if (!jh_body_json(r, true, "a"))
		return;
	values[0] = r->body;
	jh_reply_value(r, 202, &enqueue_batch_stmt, values);
}

/*
 * One row per leased job, its JSON object, in lease order (the function
 * scan's ordinality: no sort). jh_relay_next joins them into the array that
 * jsonb_agg would print, without building it in the server a second time.
 */
static const JhStmt next_stmt = {
	"relay_next",
	"SELECT pg_catalog.jsonb_build_object("
	"  'id', l.id, 'queue', l.queue, "
	"  'timeout', pg_catalog.date_part('epoch', l.timeout), "
	"  'persist_data', l.persist, 'max_retries', l.max_retries, "
	"  'payload', l.payload, 'state', l.state, 'run_at', l.run_at, "
	"  'lease', l.lease, 'attempt', l.attempt, 'version', l.version, "
	"  'priority', l.priority, 'lease_expires_at', l.lease_expires_at, "
	"  'created_at', l.created_at) "
	"FROM jobq.lease(queue => $1, worker => $2, n => $3::integer, "
	"  timeout => pg_catalog.make_interval(secs => $4::float8)) WITH ORDINALITY AS l "
	"ORDER BY l.ordinality",
	4
};

/*
 * reply_jobs: answers the jobs of res (one JSON object per row) as a JSON
 * array printed as jsonb prints one ("[a, b]"): 200, or 204 when there is
 * none. Clears res.
 */
static void
reply_jobs(JhRequest *r, PGresult *res)
{
	int			n = PQntuples(res);
	size_t		len = 2;
	char	   *buf;
	char	   *p;
	int			i;

	if (n == 0)
	{
		PQclear(res);
		jh_reply(r, 204, NULL, NULL, 0);
		return;
	}
	for (i = 0; i < n; i++)
		len += (size_t) PQgetlength(res, i, 0) + 2;
	buf = jh_alloc(r, len);
	p = buf;
	*p++ = '[';
	for (i = 0; i < n; i++)
	{
		size_t		l = (size_t) PQgetlength(res, i, 0);

		if (i > 0)
		{
			*p++ = ',';
			*p++ = ' ';
		}
		memcpy(p, PQgetvalue(res, i, 0), l);
		p += l;
	}
	*p++ = ']';
	PQclear(res);
	jh_reply(r, 200, "application/json", buf, (size_t) (p - buf));
}

/*
 * GET /v1/next?queue=&num_jobs=[&wait=SECONDS][&timeout=SECONDS][&worker=]:
 * leases up to num_jobs jobs: 200 with a JSON array, 204 when there is none.
 * With wait, a request that finds none waits (holding no pooled connection)
 * until the LISTEN thread says a job of the queue arrived, or wait passes.
 */
void
jh_relay_next(JhRequest *r)
{
	const char *queue;
	const char *worker;
	const char *timeout;
	long		n;
	long		wait;
	char		nbuf[16];
	char		workerbuf[80];
	const char *values[4];
	struct timespec deadline;
	pthread_cond_t cond;
	JhWaiter	w;

	if (jh_param(r, "queue", true, &queue) < 0 ||
		jh_param_int(r, "num_jobs", 1, 1, 10000, &n) < 0 ||
		jh_param_int(r, "wait", 0, 0, JH_LONGPOLL_MAX, &wait) < 0 ||
		jh_param(r, "worker", false, &worker) < 0 ||
		jh_param_num(r, "timeout", &timeout) < 0)
		return;
	if (worker == NULL)
	{
		snprintf(workerbuf, sizeof(workerbuf), "http:%s", r->ri->remote_addr);
		worker = workerbuf;
	}
	snprintf(nbuf, sizeof(nbuf), "%ld", n);
	values[0] = queue;
	values[1] = worker;
	values[2] = nbuf;
	values[3] = timeout;

	if (wait == 0)
	{
		PGresult   *res = jh_query(r, &next_stmt, values);

		if (res != NULL)
			reply_jobs(r, res);
		return;
	}

	/* long-poll: register first, so no notification slips between try and sleep */
	jh_cond_init(&cond);
	w.cond = &cond;
	jh_deadline(&deadline, (int64_t) wait * 1000000);
	jh_wait_register(&w, queue);
	for (;;)
	{
		PGresult   *res = jh_query(r, &next_stmt, values);

		jh_release_db(r);
		if (res == NULL)
			break;
		if (PQntuples(res) > 0)
		{
			reply_jobs(r, res);
			break;
		}
		PQclear(res);
		if (!jh_wait_for(&w, &deadline))
		{
			jh_reply(r, 204, NULL, NULL, 0);
			break;
		}
	}
	jh_wait_unregister(&w);
	pthread_cond_destroy(&cond);
}

static const JhStmt heartbeat_stmt = {
	"relay_heartbeat",
	"SELECT pg_catalog.jsonb_build_object('desired_status', "
	"  jobq.heartbeat(queue => $1, id => $2, state => $3::jsonb, progress => $4::real, "
	"  message => $5, lease => $6::uuid))",
	6
};

/*
 * PATCH /v1/heartbeat?queue=&job_id=[&progress=][&message=][&lease=]: the
 * body (any JSON, optional) is the job's new state. 202 {"desired_status"};
 * 404 when the job is not live.
 */
void
jh_relay_heartbeat(JhRequest *r)
{
	const char *values[6];

	if (jh_param(r, "queue", true, &values[0]) < 0 ||
		jh_param(r, "job_id", true, &values[1]) < 0 ||
		jh_param_num(r, "progress", &values[3]) < 0 ||
		jh_param(r, "message", false, &values[4]) < 0 ||
		jh_param(r, "lease", false, &values[5]) < 0 ||
		!jh_body_json(r, false, NULL))
		return;
	values[2] = r->body;
	jh_reply_value(r, 202, &heartbeat_stmt, values);
}

static const JhStmt reschedule_stmt = {
	"relay_reschedule",
	"SELECT " JH_SQL_JOB("j") " "
	"FROM " JH_SQL_BODY("$1") ", "
	"LATERAL jobq.reschedule(queue => s.b ->> 'queue', id => s.b ->> 'id', "
	"  run_at => " JH_SQL_TIMESTAMP("s.b -> 'run_at'") ", "
	"  payload => s.b -> 'payload', state => s.b -> 'state', "
	"  timeout => " JH_SQL_INTERVAL("s.b -> 'timeout'") ", "
	"  max_retries => (s.b ->> 'max_retries')::integer) j",
	1
};

/*
 * POST /v1/reschedule: relay's job object; the live job goes back to pending
 * at run_at (default now) with the fields given. 202 with the job; 404.
 */
void
jh_relay_reschedule(JhRequest *r)
{
	const char *values[1];

	if (!jh_body_json(r, true, "o"))
		return;
	values[0] = r->body;
	jh_reply_value(r, 202, &reschedule_stmt, values);
}

static const JhStmt complete_stmt = {
	"relay_complete",
	"SELECT jobq.complete(queue => $1, id => $2, result => $3::jsonb, lease => $4::uuid)",
	4
};

/*
 * DELETE /v1/complete?queue=&job_id=[&lease=]: finishes the running job; an
 * optional JSON body is its result. 200; 404 when the job is not live; 409
 * when it is not running or the lease is stale.
 */
void
jh_relay_complete(JhRequest *r)
{
	const char *values[4];
	PGresult   *res;

	if (jh_param(r, "queue", true, &values[0]) < 0 ||
		jh_param(r, "job_id", true, &values[1]) < 0 ||
		jh_param(r, "lease", false, &values[3]) < 0 ||
		!jh_body_json(r, false, NULL))
		return;
	values[2] = r->body;
	res = jh_query(r, &complete_stmt, values);
	if (res == NULL)
		return;
	PQclear(res);
	reply_job_status(r, 200, values[1], values[0], "finished");
}

static const JhStmt exists_stmt = {
	"relay_exists",
	"SELECT CASE WHEN jobq.exists($1, $2) THEN '{}'::jsonb END",
	2
};

/* HEAD /v1/exists?queue=&job_id=: 200 when the job is live, else 404. */
void
jh_relay_exists(JhRequest *r)
{
	const char *values[2];

	if (jh_param(r, "queue", true, &values[0]) < 0 ||
		jh_param(r, "job_id", true, &values[1]) < 0)
		return;
	jh_reply_value(r, 200, &exists_stmt, values);
}

static const JhStmt get_stmt = {
	"relay_get",
	"SELECT " JH_SQL_JOB("j") " FROM jobq.get($1, $2) j",
	2
};

/* GET /v1/get?queue=&job_id=: the live job, else its latest run; 404. */
void
jh_relay_get(JhRequest *r)
{
	const char *values[2];

	if (jh_param(r, "queue", true, &values[0]) < 0 ||
		jh_param(r, "job_id", true, &values[1]) < 0)
		return;
	jh_reply_value(r, 200, &get_stmt, values);
}
