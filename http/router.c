/*-------------------------------------------------------------------------
 *
 * router.c
 *	  From an HTTP request to one route handler, and the helpers handlers use.
 *
 * civetweb calls jh_dispatch for every request (one handler registered on
 * "/"). It authenticates the client, splits and percent-decodes the path
 * (civetweb's own decoding is off, so "%2F" stays inside a segment), finds
 * the route (404 unknown path, 405 with Allow for a wrong method), reads the
 * body (413 past --max-body), calls the route's handler, gives its pooled
 * connection back, and writes the access log line: method, path, status,
 * microseconds. On SIGTERM, jh_router_drain waits for the requests in flight
 * while new ones get 503.
 *
 * Auth: with a tokens file, "Authorization: Bearer TOKEN" must name one of
 * its tokens (else 401) and the token's role is used for the request's
 * statements (SET ROLE), so PostgreSQL's GRANTs decide the rest (42501 ->
 * 403). Without one, only loopback clients are served (others get 403).
 *
 *-------------------------------------------------------------------------
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "jobq_http.h"

struct JhAlloc
{
	struct JhAlloc *next;
	char		data[];
};

typedef struct JhRoute
{
	const char *method;
	const char *pattern;		/* "{queue}" and "{id}" match one segment */
	JhHandler	handler;
} JhRoute;

static const JhRoute routes[] = {
	/* system (routes_cluster.c) */
	{"GET", "/v1", jh_cluster_info},
	{"GET", "/v1/openapi.yaml", jh_cluster_openapi},
	{"GET", "/v1/cluster/state", jh_cluster_state},
	{"GET", "/v1/cluster/stats", jh_cluster_stats},
	{"GET", "/metrics", jh_cluster_metrics},
	/* relay-rs worker API (routes_relay.c) */
	{"POST", "/v1/enqueue", jh_relay_enqueue},
	{"POST", "/v1/enqueue/batch", jh_relay_enqueue_batch},
	{"GET", "/v1/next", jh_relay_next},
	{"PATCH", "/v1/heartbeat", jh_relay_heartbeat},
	{"POST", "/v1/reschedule", jh_relay_reschedule},
	{"DELETE", "/v1/complete", jh_relay_complete},
	{"HEAD", "/v1/exists", jh_relay_exists},
	{"GET", "/v1/get", jh_relay_get},
	/* queues (routes_queues.c) */
	{"GET", "/v1/queues", jh_queues_list},
	{"GET", "/v1/queues/{queue}", jh_queue_get},
	{"PUT", "/v1/queues/{queue}", jh_queue_put},
	{"DELETE", "/v1/queues/{queue}", jh_queue_delete},
	{"POST", "/v1/queues/{queue}/_pause", jh_queue_pause},
	{"POST", "/v1/queues/{queue}/_resume", jh_queue_resume},
	/* jobs (routes_jobs.c) */
	{"GET", "/v1/jobs", jh_jobs_list},
	{"GET", "/v1/queues/{queue}/jobs", jh_jobs_list},
	{"POST", "/v1/queues/{queue}/jobs", jh_job_create},
	{"GET", "/v1/queues/{queue}/jobs/{id}", jh_job_get},
	{"PUT", "/v1/queues/{queue}/jobs/{id}", jh_job_update},
	{"DELETE", "/v1/queues/{queue}/jobs/{id}", jh_job_delete},
	{"POST", "/v1/queues/{queue}/jobs/{id}/_stop", jh_job_stop},
	{"POST", "/v1/queues/{queue}/jobs/{id}/_resume", jh_job_resume},
	{"POST", "/v1/queues/{queue}/jobs/{id}/_cancel", jh_job_cancel},
	{"POST", "/v1/queues/{queue}/jobs/{id}/_recover", jh_job_recover},
	{"GET", "/v1/queues/{queue}/jobs/{id}/versions", jh_job_versions},
	{"GET", "/v1/queues/{queue}/jobs/{id}/events", jh_job_events},
	{"GET", "/v1/queues/{queue}/jobs/{id}/errors", jh_job_errors},
	{"GET", "/v1/queues/{queue}/jobs/{id}/progress", jh_job_progress},
	{"GET", "/v1/queues/{queue}/jobs/{id}/info", jh_job_info},
	{"GET", "/v1/queues/{queue}/jobs/{id}/data", jh_job_data},
	/* synchronous jobs, HarperDB operations (routes_ops.c) */
	{"POST", "/v1/queues/{queue}/run", jh_ops_run},
	{"POST", "/v1/operations", jh_ops_operations},
};

static uint64_t requests_total;
static int	inflight;			/* requests being served, for the drain */

uint64_t
jh_requests_total(void)
{
	return __atomic_load_n(&requests_total, __ATOMIC_RELAXED);
}

/* ------------------------------------------------------------ allocation */

/* jh_alloc: n bytes that live until the request ends. */
void *
jh_alloc(JhRequest *r, size_t n)
{
	JhAlloc    *a = malloc(sizeof(JhAlloc) + n);

	if (a == NULL)
	{
		fprintf(stderr, "jobq-http: out of memory\n");
		abort();
	}
	a->next = r->allocs;
	r->allocs = a;
	return a->data;
}

char *
jh_strdup(JhRequest *r, const char *s)
{
	size_t		n = strlen(s);
	char	   *d = jh_alloc(r, n + 1);

	memcpy(d, s, n + 1);
	return d;
}

/* jh_path_escape: s percent-encoded for one path segment (RFC 3986 unreserved kept). */
char *
jh_path_escape(JhRequest *r, const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	char	   *out = jh_alloc(r, strlen(s) * 3 + 1);
	char	   *o = out;

	for (; *s; s++)
	{
		unsigned char c = (unsigned char) *s;

		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
			c == '-' || c == '.' || c == '_' || c == '~' || c == ':')
			*o++ = (char) c;
		else
		{
			*o++ = '%';
			*o++ = hex[c >> 4];
			*o++ = hex[c & 15];
		}
	}
	*o = '\0';
	return out;
}

static void
free_allocs(JhRequest *r)
{
	while (r->allocs)
	{
		JhAlloc    *next = r->allocs->next;

		free(r->allocs);
		r->allocs = next;
	}
}

/* --------------------------------------------------------------- the path */

static int
hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/*
 * split_path: r->seg[] from the raw path, each segment percent-decoded.
 * A trailing "/" is ignored. Answers 400 for a malformed escape, 422 for an
 * escaped NUL, 404 for a path with too many segments.
 */
static bool
split_path(JhRequest *r)
{
	const char *p = r->path;

	if (p == NULL || *p != '/')
	{
		jh_reply_error(r, 400, NULL, "malformed request path");
		return false;
	}
	while (*p == '/' && p[1] != '\0')
	{
		const char *start = ++p;
		const char *end = strchr(start, '/');
		size_t		len;
		char	   *seg;
		size_t		n = 0;

		if (end == NULL)
			end = start + strlen(start);
		len = (size_t) (end - start);
		if (r->nseg == JH_MAX_SEGS)
		{
			jh_reply_error(r, 404, NULL, "no such route");
			return false;
		}
		seg = jh_alloc(r, len + 1);
		for (p = start; p < end; p++)
		{
			if (*p == '%')
			{
				int			hi = p + 1 < end ? hexval(p[1]) : -1;
				int			lo = p + 2 < end ? hexval(p[2]) : -1;

				if (hi < 0 || lo < 0)
				{
					jh_reply_error(r, 400, NULL, "malformed percent-escape in the path");
					return false;
				}
				if (hi == 0 && lo == 0)
				{
					jh_reply_error(r, 422, "22021", "the path contains a NUL character");
					return false;
				}
				seg[n++] = (char) (hi * 16 + lo);
				p += 2;
			}
			else
				seg[n++] = *p;
		}
		seg[n] = '\0';
		r->seg[r->nseg++] = seg;
		p = end;
	}
	return true;
}

/* Does route's pattern match r's path? Sets r->queue and r->id when so. */
static bool
path_matches(JhRequest *r, const char *pattern)
{
	const char *p = pattern;
	int			i = 0;
	const char *queue = NULL;
	const char *id = NULL;

	while (*p == '/')
	{
		const char *start = ++p;
		const char *end = strchr(start, '/');
		size_t		len;

		if (end == NULL)
			end = start + strlen(start);
		len = (size_t) (end - start);
		if (i >= r->nseg)
			return false;
		if (len == 7 && strncmp(start, "{queue}", 7) == 0)
			queue = r->seg[i];
		else if (len == 4 && strncmp(start, "{id}", 4) == 0)
			id = r->seg[i];
		else if (strlen(r->seg[i]) != len || strncmp(start, r->seg[i], len) != 0)
			return false;
		i++;
		p = end;
	}
	if (i != r->nseg)
		return false;
	r->queue = queue;
	r->id = id;
	return true;
}

/*
 * find_route: the route for r's method and path. HEAD is served by a GET
 * route when there is no HEAD route. Answers 404 or 405 (with Allow) and
 * returns NULL when there is none.
 */
static const JhRoute *
find_route(JhRequest *r)
{
	char		allow[128] = "";
	const JhRoute *get = NULL;
	size_t		i;

	for (i = 0; i < sizeof(routes) / sizeof(routes[0]); i++)
	{
		if (!path_matches(r, routes[i].pattern))
			continue;
		if (strcmp(routes[i].method, r->method) == 0)
			return &routes[i];
		if (strcmp(routes[i].method, "GET") == 0)
			get = &routes[i];
		if (strstr(allow, routes[i].method) == NULL)
		{
			if (allow[0])
				strcat(allow, ", ");
			strcat(allow, routes[i].method);
			if (strcmp(routes[i].method, "GET") == 0 && strstr(allow, "HEAD") == NULL)
				strcat(allow, ", HEAD");
		}
	}
	if (get != NULL && strcmp(r->method, "HEAD") == 0)
	{
		path_matches(r, get->pattern);
		return get;
	}
	if (allow[0] == '\0')
	{
		jh_reply_error(r, 404, NULL, "no such route: %s", r->path);
		return NULL;
	}
	jh_header(r, "Allow", allow);
	jh_reply_error(r, 405, NULL, "method %s not allowed here; allowed: %s", r->method, allow);
	return NULL;
}

/* ------------------------------------------------------------------- auth */

static bool
is_loopback(const char *addr)
{
	return strncmp(addr, "127.", 4) == 0 || strcmp(addr, "::1") == 0 ||
		strncmp(addr, "::ffff:127.", 11) == 0;
}

/* Compares without an early exit, so timing does not tell the prefix. */
static bool
token_equal(const char *a, size_t alen, const char *b)
{
	size_t		blen = strlen(b);
	unsigned char diff = alen != blen;
	size_t		i;

	for (i = 0; i < alen; i++)
		diff |= (unsigned char) a[i] ^ (unsigned char) b[i % (blen ? blen : 1)];
	return diff == 0;
}

static bool
authenticate(JhRequest *r)
{
	const char *h;
	size_t		len;
	int			i;
	const JhToken *found = NULL;

	if (jh_config.ntokens == 0)
	{
		if (is_loopback(r->ri->remote_addr))
			return true;
		jh_reply_error(r, 403, NULL, "only loopback clients are served without --tokens");
		return false;
	}
	h = mg_get_header(r->conn, "Authorization");
	if (h == NULL || strncasecmp(h, "Bearer ", 7) != 0)
	{
		jh_reply_error(r, 401, NULL, "a bearer token is required");
		return false;
	}
	h += 7;
	while (*h == ' ')
		h++;
	len = strlen(h);
	while (len > 0 && h[len - 1] == ' ')
		len--;
	for (i = 0; i < jh_config.ntokens; i++)
		if (token_equal(h, len, jh_config.tokens[i].token) && found == NULL)
			found = &jh_config.tokens[i];
	if (found == NULL || len == 0)
	{
		jh_reply_error(r, 401, NULL, "invalid bearer token");
		return false;
	}
	r->role = found->role;
	return true;
}

/* ------------------------------------------------------------------ body */

/*
 * read_body: the request body into r->body (NUL-terminated). Answers 413
 * when it is larger than --max-body, 400 when it ends early.
 */
static bool
read_body(JhRequest *r)
{
	long long	cl = r->ri->content_length;
	const char *te = mg_get_header(r->conn, "Transfer-Encoding");
	size_t		cap;
	size_t		len = 0;
	char	   *buf;

	if (cl == 0 || (cl < 0 && (te == NULL || strcasestr(te, "chunked") == NULL)))
		return true;
	if (cl > jh_config.max_body)
	{
		mg_disable_connection_keep_alive(r->conn);
		jh_reply_error(r, 413, NULL, "request body larger than %lld bytes", jh_config.max_body);
		return false;
	}
	cap = cl > 0 ? (size_t) cl : 65536;
	buf = malloc(cap + 1);
	if (buf == NULL)
	{
		jh_reply_error(r, 500, NULL, "out of memory");
		return false;
	}
	for (;;)
	{
		int			n;

		if (len == cap)
		{
			char	   *bigger;

			if (cl > 0)
				break;
			if ((long long) cap > jh_config.max_body)
			{
				free(buf);
				mg_disable_connection_keep_alive(r->conn);
				jh_reply_error(r, 413, NULL, "request body larger than %lld bytes",
							   jh_config.max_body);
				return false;
			}
			cap *= 2;
			bigger = realloc(buf, cap + 1);
			if (bigger == NULL)
			{
				free(buf);
				jh_reply_error(r, 500, NULL, "out of memory");
				return false;
			}
			buf = bigger;
		}
		n = mg_read(r->conn, buf + len, cap - len);
		if (n <= 0)
			break;
		len += (size_t) n;
	}
	if ((cl > 0 && (long long) len < cl) || (long long) len > jh_config.max_body)
	{
		free(buf);
		if ((long long) len > jh_config.max_body)
		{
			mg_disable_connection_keep_alive(r->conn);
			jh_reply_error(r, 413, NULL, "request body larger than %lld bytes",
						   jh_config.max_body);
		}
		else
			jh_reply_error(r, 400, NULL, "request body ended early");
		return false;
	}
	buf[len] = '\0';
	if (len == 0)
	{
		free(buf);
		return true;
	}
	r->body = jh_alloc(r, len + 1);
	memcpy(r->body, buf, len + 1);
	r->body_len = len;
	free(buf);
	return true;
}

/*
 * jh_body_json: checks that the body is well-formed JSON (else 400) of one
 * of kinds (see jh_json_check; else 422). An empty body is refused with 400
 * when required, else accepted (r->body stays NULL).
 */
bool
jh_body_json(JhRequest *r, bool required, const char *kinds)
{
	if (r->body == NULL)
	{
		if (required)
			jh_reply_error(r, 400, NULL, "a JSON request body is required");
		return !required;
	}
	if (jh_json_check(r->body, r->body_len, &r->body_type) != 0)
	{
		jh_reply_error(r, 400, NULL, "malformed JSON in the request body");
		return false;
	}
	if (kinds != NULL && strchr(kinds, r->body_type) == NULL)
	{
		jh_reply_error(r, 422, "22023", "the request body must be a JSON %s",
					   strcmp(kinds, "a") == 0 ? "array" : "object");
		return false;
	}
	return true;
}

/* ------------------------------------------------------ query parameters */

/*
 * jh_param: query parameter name, decoded, in *out. Returns 1 when present,
 * 0 when absent (400 when required), -1 when refused (answered: 400 too
 * long or missing, 422 with a NUL character).
 */
int
jh_param(JhRequest *r, const char *name, bool required, const char **out)
{
	const char *qs = r->ri->query_string;
	char	   *buf = NULL;
	int			n;

	*out = NULL;
	if (qs == NULL)
		n = -1;
	else
	{
		buf = jh_alloc(r, JH_MAX_PARAM_LEN + 1);
		n = mg_get_var2(qs, strlen(qs), name, buf, JH_MAX_PARAM_LEN + 1, 0);
	}
	if (n == -1)
	{
		if (required)
		{
			jh_reply_error(r, 400, NULL, "query parameter %s is required", name);
			return -1;
		}
		return 0;
	}
	if (n < 0)
	{
		jh_reply_error(r, 400, NULL, "query parameter %s is too long", name);
		return -1;
	}
	if ((int) strlen(buf) != n)
	{
		jh_reply_error(r, 422, "22021", "query parameter %s contains a NUL character", name);
		return -1;
	}
	*out = buf;
	return 1;
}

/*
 * jh_param_int: integer query parameter name in [min, max], def when
 * absent. Returns 0, or -1 when answered (400 not an integer, 422 out of
 * range).
 */
int
jh_param_int(JhRequest *r, const char *name, long def, long min, long max, long *out)
{
	const char *s;
	char	   *end;
	long		v;
	int			rc = jh_param(r, name, false, &s);

	*out = def;
	if (rc <= 0)
		return rc;
	v = strtol(s, &end, 10);
	if (*s == '\0' || *end != '\0')
	{
		jh_reply_error(r, 400, NULL, "query parameter %s must be an integer", name);
		return -1;
	}
	if (v < min || v > max)
	{
		jh_reply_error(r, 422, "22023", "query parameter %s must be between %ld and %ld",
					   name, min, max);
		return -1;
	}
	*out = v;
	return 0;
}

/*
 * jh_param_num: numeric query parameter name as text in *out (NULL when
 * absent), for PostgreSQL to convert and range-check. -1 when answered (400
 * not a number).
 */
int
jh_param_num(JhRequest *r, const char *name, const char **out)
{
	char	   *end;
	int			rc = jh_param(r, name, false, out);

	if (rc <= 0)
		return rc;
	(void) strtod(*out, &end);
	if (**out == '\0' || *end != '\0')
	{
		jh_reply_error(r, 400, NULL, "query parameter %s must be a number", name);
		return -1;
	}
	return 1;
}

/*
 * jh_param_bool: boolean query parameter name as "true"/"false" in *out
 * (NULL when absent; "" counts as true). False when answered (400).
 */
bool
jh_param_bool(JhRequest *r, const char *name, const char **out)
{
	const char *s;
	int			rc = jh_param(r, name, false, &s);

	*out = NULL;
	if (rc < 0)
		return false;
	if (rc == 0)
		return true;
	if (*s == '\0' || strcasecmp(s, "true") == 0 || strcmp(s, "1") == 0)
		*out = "true";
	else if (strcasecmp(s, "false") == 0 || strcmp(s, "0") == 0)
		*out = "false";
	else
	{
		jh_reply_error(r, 400, NULL, "query parameter %s must be true or false", name);
		return false;
	}
	return true;
}

/* --------------------------------------------------------------- database */

/*
 * jh_query: runs st with values on the request's pooled connection (taken
 * on first use). NULL when answered with the error.
 */
PGresult *
jh_query(JhRequest *r, const JhStmt *st, const char *const *values)
{
	JhError		err;
	PGresult   *res = jh_query_quiet(r, st, values, &err);

	if (res == NULL)
		jh_reply_pgerror(r, &err);
	return res;
}

/* jh_query_quiet: jh_query that leaves the answer to the caller (err). */
PGresult *
jh_query_quiet(JhRequest *r, const JhStmt *st, const char *const *values, JhError *err)
{
	if (r->db == NULL)
	{
		r->db = jh_pool_acquire(r->role, err);
		if (r->db == NULL)
			return NULL;
	}
	return jh_pool_exec(r->db, st, values, err);
}

/* jh_command: a constant command (BEGIN, COMMIT); false when answered. */
bool
jh_command(JhRequest *r, const char *sql)
{
	JhError		err;

	if (r->db == NULL)
	{
		r->db = jh_pool_acquire(r->role, &err);
		if (r->db == NULL)
		{
			jh_reply_pgerror(r, &err);
			return false;
		}
	}
	if (!jh_pool_command(r->db, sql, &err))
	{
		jh_reply_pgerror(r, &err);
		return false;
	}
	return true;
}

/* Gives the request's pooled connection back (before it waits, and at its end). */
void
jh_release_db(JhRequest *r)
{
	if (r->db != NULL)
	{
		jh_pool_release(r->db);
		r->db = NULL;
	}
}

/*
 * jh_reply_result: answers the JSON in the first column of res's first row
 * with status, or 404 when there is no row or it is NULL. Clears res.
 */
void
jh_reply_result(JhRequest *r, int status, PGresult *res)
{
	if (PQntuples(res) == 0 || PQgetisnull(res, 0, 0))
		jh_reply_error(r, 404, "P0002", "not found");
	else
		jh_reply(r, status, "application/json", PQgetvalue(res, 0, 0),
				 (size_t) PQgetlength(res, 0, 0));
	PQclear(res);
}

/* jh_reply_value: runs st and answers its JSON value with status. */
void
jh_reply_value(JhRequest *r, int status, const JhStmt *st, const char *const *values)
{
	PGresult   *res = jh_query(r, st, values);

	if (res != NULL)
		jh_reply_result(r, status, res);
}

/* --------------------------------------------------------------- dispatch */

/* The access log line: method, path, status, microseconds. */
static void
access_log(const JhRequest *r, int64_t us)
{
	char		path[512];
	size_t		i;

	snprintf(path, sizeof(path), "%s", r->path ? r->path : "-");
	for (i = 0; path[i]; i++)
		if ((unsigned char) path[i] <= ' ' || path[i] == 0x7f)
			path[i] = '?';
	fprintf(stderr, "%s %s %d %lld\n", r->method, path, r->status, (long long) us);
}

static int
jh_dispatch(struct mg_connection *conn, void *cbdata)
{
	JhRequest	r;
	int64_t		start = jh_now_us();
	const JhRoute *route;

	(void) cbdata;
	memset(&r, 0, sizeof(r));
	r.conn = conn;
	r.ri = mg_get_request_info(conn);
	r.method = r.ri->request_method;
	r.path = r.ri->local_uri_raw ? r.ri->local_uri_raw : r.ri->local_uri;
	__atomic_fetch_add(&requests_total, 1, __ATOMIC_RELAXED);

	/* counted before jh_stopping is read: the drain either waits for it or it backs off */
	__atomic_fetch_add(&inflight, 1, __ATOMIC_SEQ_CST);
	if (__atomic_load_n(&jh_stopping, __ATOMIC_SEQ_CST))
	{
		mg_disable_connection_keep_alive(conn);
		jh_reply_error(&r, 503, NULL, "shutting down");
	}
	else if (authenticate(&r) && split_path(&r) && (route = find_route(&r)) != NULL &&
			 read_body(&r))
		route->handler(&r);
	if (r.status == 0)
		jh_reply_error(&r, 500, NULL, "the route gave no answer");
	jh_release_db(&r);
	access_log(&r, jh_now_us() - start);
	free_allocs(&r);
	__atomic_fetch_sub(&inflight, 1, __ATOMIC_SEQ_CST);
	return r.status;
}

/*
 * jh_router_drain: called once jh_stopping is set; waits until no request is
 * being served, or max_ms. New requests meanwhile get 503. (mg_stop alone
 * would not do: civetweb stops writing responses once it is stopping.)
 * Returns the requests still in flight.
 */
int
jh_router_drain(int max_ms)
{
	int64_t		until = jh_now_us() + (int64_t) max_ms * 1000;
	int			n;

	while ((n = __atomic_load_n(&inflight, __ATOMIC_SEQ_CST)) > 0 && jh_now_us() < until)
	{
		struct timespec ts = {0, 5 * 1000 * 1000};

		nanosleep(&ts, NULL);
	}
	return n;
}

void
jh_router_register(struct mg_context *ctx)
{
	mg_set_request_handler(ctx, "/", jh_dispatch, NULL);
}
