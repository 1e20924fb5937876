/*-------------------------------------------------------------------------
 *
 * routes_cluster.c
 *	  System routes: GET /v1 (versions, database, reaper), /v1/cluster/state,
 *	  /v1/cluster/stats (JSON, or Prometheus text when the client asks for
 *	  it with Accept), /metrics, and the OpenAPI document.
 *
 * Prometheus text comes from PostgreSQL (jobq.metrics) like every JSON;
 * only the sidecar's own lines of /metrics are formatted here, so that a
 * scrape still says jobq_http_database_up 0 while PostgreSQL is down.
 *
 *-------------------------------------------------------------------------
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "jobq_http.h"

#define CT_PROMETHEUS	"text/plain; version=0.0.4; charset=utf-8"
#define CT_OPENMETRICS	"application/openmetrics-text; version=1.0.0; charset=utf-8"

static const JhStmt info_stmt = {
	"cluster_info",
	"SELECT pg_catalog.jsonb_build_object("
	"  'name', 'jobq', 'sidecar_version', $1::text, "
	"  'extension_version', (SELECT e.extversion FROM pg_catalog.pg_extension e "
	"    WHERE e.extname = 'jobq'), "
	"  'server_version', pg_catalog.current_setting('server_version'), "
	"  'database', pg_catalog.current_database(), 'user', CURRENT_USER, "
	"  'reaper', jobq.stats() -> 'reaper')",
	1
};

/* GET /v1: versions, database, user, reaper. */
void
jh_cluster_info(JhRequest *r)
{
	const char *values[1] = {JH_VERSION};

	jh_reply_value(r, 200, &info_stmt, values);
}

static const JhStmt state_stmt = {
	"cluster_state",
	"SELECT pg_catalog.jsonb_build_object("
	"  'database', pg_catalog.current_database(), "
	"  'server', pg_catalog.jsonb_build_object("
	"    'version', pg_catalog.current_setting('server_version'), "
	"    'started_at', pg_catalog.pg_postmaster_start_time(), "
	"    'in_recovery', pg_catalog.pg_is_in_recovery(), "
	"    'max_connections', pg_catalog.current_setting('max_connections')::integer), "
	"  'sidecar', pg_catalog.jsonb_build_object("
	"    'version', $1::text, 'pid', $2::integer, 'listen', $3::text, "
	"    'started_at', pg_catalog.to_timestamp($4::float8), "
	"    'threads', $5::integer, 'pool_size', $6::integer, 'pool_in_use', $7::integer, "
	"    'pool_connected', $8::integer, 'listener_connected', $9::boolean, "
	"    'waiting_requests', $10::integer, 'requests', $11::bigint), "
	"  'reaper', jobq.stats() -> 'reaper')",
	11
};

/* GET /v1/cluster/state: the database server, this sidecar, the reaper. */
void
jh_cluster_state(JhRequest *r)
{
	char		num[9][32];
	const char *values[11];
	int			size,
				in_use,
				connected,
				waiting;
	bool		db_up,
				listening;

	jh_pool_stats(&size, &in_use, &connected, &db_up);
	jh_listen_stats(&listening, &waiting);
	snprintf(num[0], 32, "%d", (int) getpid());
	snprintf(num[1], 32, "%lld", (long long) jh_started_at);
	snprintf(num[2], 32, "%d", jh_config.threads);
	snprintf(num[3], 32, "%d", size);
	snprintf(num[4], 32, "%d", in_use);
	snprintf(num[5], 32, "%d", connected);
	snprintf(num[6], 32, "%s", listening ? "true" : "false");
	snprintf(num[7], 32, "%d", waiting);
	snprintf(num[8], 32, "%llu", (unsigned long long) jh_requests_total());
	values[0] = JH_VERSION;
	values[1] = num[0];
	values[2] = jh_config.listen;
	values[3] = num[1];
	values[4] = num[2];
	values[5] = num[3];
	values[6] = num[4];
	values[7] = num[5];
	values[8] = num[6];
	values[9] = num[7];
	values[10] = num[8];
	jh_reply_value(r, 200, &state_stmt, values);
}

static const JhStmt stats_stmt = {
	"cluster_stats",
	"SELECT jobq.stats()",
	0
};

/* Prometheus text (or OpenMetrics, $1) of the queues and the reaper. */
static const JhStmt metrics_stmt = {
	"cluster_metrics",
	"SELECT jobq.metrics($1::boolean)",
	1
};

/* Which exposition the client asked for with Accept: 'o' OpenMetrics, 't' text, 'j' JSON. */
static char
wanted_format(JhRequest *r)
{
	const char *accept = mg_get_header(r->conn, "Accept");

	if (accept == NULL)
		return 'j';
	if (strstr(accept, "application/openmetrics-text"))
		return 'o';
	if (strstr(accept, "text/plain") && !strstr(accept, "application/json"))
		return 't';
	return 'j';
}

/*
 * Answers text (may be NULL) followed by the queue metrics, if they can be
 * had, in the format asked for.
 */
static void
reply_metrics(JhRequest *r, const char *text, char format)
{
	JhError		err;
	const char *values[1] = {format == 'o' ? "true" : "false"};
	PGresult   *res = jh_query_quiet(r, &metrics_stmt, values, &err);
	const char *queues = res && !PQgetisnull(res, 0, 0) ? PQgetvalue(res, 0, 0) : NULL;
	size_t		len = (text ? strlen(text) : 0) + (queues ? strlen(queues) : 0) + 8;
	char	   *body = jh_alloc(r, len);

	if (res == NULL)
		fprintf(stderr, "jobq-http: metrics: %s\n", err.message);
	/* jobq.metrics(true) ends with # EOF; without it, the sidecar's own lines end here */
	snprintf(body, len, "%s%s%s", text ? text : "", queues ? queues : "",
			 format == 'o' && queues == NULL ? "# EOF\n" : "");
	if (res)
		PQclear(res);
	jh_reply(r, 200, format == 'o' ? CT_OPENMETRICS : CT_PROMETHEUS, body, strlen(body));
}

/* GET /v1/cluster/stats: jobq.stats() as JSON, or Prometheus text. */
void
jh_cluster_stats(JhRequest *r)
{
	char		format = wanted_format(r);

	if (format == 'j')
		jh_reply_value(r, 200, &stats_stmt, NULL);
	else
		reply_metrics(r, NULL, format);
}

/* GET /metrics: the sidecar's own metrics, then the queues'. */
void
jh_cluster_metrics(JhRequest *r)
{
	char		text[3072];
	int			size,
				in_use,
				connected,
				waiting;
	bool		db_up,
				listening;
	uint64_t	groups,
				grouped;
	char		format = wanted_format(r) == 'o' ? 'o' : 't';
	const char *total = format == 'o' ? "" : "_total";

	jh_pool_stats(&size, &in_use, &connected, &db_up);
	jh_listen_stats(&listening, &waiting);
	jh_group_stats(&groups, &grouped);
	snprintf(text, sizeof(text),
			 "# HELP jobq_http_requests%s HTTP requests received.\n"
			 "# TYPE jobq_http_requests%s counter\n"
			 "jobq_http_requests_total %llu\n"
			 "# HELP jobq_http_pool_connections Pooled PostgreSQL connections by state.\n"
			 "# TYPE jobq_http_pool_connections gauge\n"
			 "jobq_http_pool_connections{state=\"size\"} %d\n"
			 "jobq_http_pool_connections{state=\"connected\"} %d\n"
			 "jobq_http_pool_connections{state=\"in_use\"} %d\n"
			 "# HELP jobq_http_database_up 1 when the last connection attempt succeeded.\n"
			 "# TYPE jobq_http_database_up gauge\n"
			 "jobq_http_database_up %d\n"
			 "# HELP jobq_http_listener_up 1 while the LISTEN connection is up.\n"
			 "# TYPE jobq_http_listener_up gauge\n"
			 "jobq_http_listener_up %d\n"
			 "# HELP jobq_http_waiting_requests Long-poll requests waiting for a job.\n"
			 "# TYPE jobq_http_waiting_requests gauge\n"
			 "jobq_http_waiting_requests %d\n"
			 "# HELP jobq_http_enqueue_groups%s Groups of plain enqueues run as one statement (two jobs or more).\n"
			 "# TYPE jobq_http_enqueue_groups%s counter\n"
			 "jobq_http_enqueue_groups_total %llu\n"
			 "# HELP jobq_http_enqueue_grouped_jobs%s Jobs in those groups.\n"
			 "# TYPE jobq_http_enqueue_grouped_jobs%s counter\n"
			 "jobq_http_enqueue_grouped_jobs_total %llu\n",
			 total, total, (unsigned long long) jh_requests_total(), size, connected, in_use,
			 db_up ? 1 : 0, listening ? 1 : 0, waiting,
			 total, total, (unsigned long long) groups, total, total, (unsigned long long) grouped);
	reply_metrics(r, text, format);
}

/* GET /v1/openapi.yaml: the OpenAPI document, compiled in from http/openapi.yaml. */
void
jh_cluster_openapi(JhRequest *r)
{
	jh_reply(r, 200, "application/yaml", jh_openapi_yaml, jh_openapi_yaml_len);
}
