/*-------------------------------------------------------------------------
 *
 * parse.c
 *	  The pure part of jobq-http's request handling: the route table and route
 *	  matching, path splitting and percent-decoding, query parameters, JSON
 *	  body checks, the request's limits and framing (request line, header
 *	  section, Content-Length / Transfer-Encoding), the lines of the tokens
 *	  file, and per-request allocation.
 *
 * Nothing here touches a socket or PostgreSQL: answers go through
 * jh_header (here) and jh_reply_error only, so http/fuzz.c links this file
 * with a stand-in for the latter and for the route handlers and runs it under
 * libFuzzer (test/http/fuzz.sh).
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

const JhRoute jh_routes[] = {
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

const size_t jh_nroutes = sizeof(jh_routes) / sizeof(jh_routes[0]);

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

/* jh_strndup: a NUL-terminated copy of the n bytes at s, for the request's life. */
char *
jh_strndup(JhRequest *r, const char *s, size_t n)
{
	char	   *d = jh_alloc(r, n + 1);

	memcpy(d, s, n);
	d[n] = '\0';
	return d;
}

char *
jh_strdup(JhRequest *r, const char *s)
{
	return jh_strndup(r, s, strlen(s));
}

/* Adds a header to the response about to be sent; value is copied. */
void
jh_header(JhRequest *r, const char *name, const char *value)
{
	if (r->nhdr >= JH_MAX_HEADERS)
		return;
	r->hdr_name[r->nhdr] = name;
	r->hdr_value[r->nhdr] = jh_strdup(r, value);
	r->nhdr++;
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

/* jh_free_allocs: frees what jh_alloc gave request r. */
void
jh_free_allocs(JhRequest *r)
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
 * jh_split_path: r->seg[] from the raw path, each segment percent-decoded.
 * A trailing "/" is ignored. Answers 400 for a malformed escape, 422 for an
 * escaped NUL, 404 for a path with too many segments.
 */
bool
jh_split_path(JhRequest *r)
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
 * jh_find_route: the route for r's method and path. HEAD is served by a GET
 * route when there is no HEAD route. Answers 404 or 405 (with Allow) and
 * returns NULL when there is none.
 */
const JhRoute *
jh_find_route(JhRequest *r)
{
	char		allow[128] = "";
	const JhRoute *get = NULL;
	size_t		i;

	for (i = 0; i < jh_nroutes; i++)
	{
		if (!path_matches(r, jh_routes[i].pattern))
			continue;
		if (strcmp(jh_routes[i].method, r->method) == 0)
			return &jh_routes[i];
		if (strcmp(jh_routes[i].method, "GET") == 0)
			get = &jh_routes[i];
		if (strstr(allow, jh_routes[i].method) == NULL)
		{
			if (allow[0])
				strcat(allow, ", ");
			strcat(allow, jh_routes[i].method);
			if (strcmp(jh_routes[i].method, "GET") == 0 && strstr(allow, "HEAD") == NULL)
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

/*
 * jh_plain_job: true when the body, a JSON object jh_body_json accepted (or
 * none), gives only a job's payload and, when queue is not NULL, its queue: a
 * string written without escapes (required then). Each key once, written
 * without escapes. *queue gets the queue, *payload the payload's text, or {}
 * without one. Such a job needs none of JH_SQL_ENQUEUE_ARGS' taking apart of
 * the body in SQL.
 */
bool
jh_plain_job(JhRequest *r, const char **queue, const char **payload)
{
	JhMember	m[2];
	int			n = 0;
	int			i;
	const char *q = NULL;
	const char *p = NULL;

	if (r->body != NULL && (n = jh_json_members(r->body, r->body_len, m, 2)) < 0)
		return false;
	for (i = 0; i < n; i++)
	{
		const JhMember *e = &m[i];

		if (queue != NULL && q == NULL && e->key_len == 5 && memcmp(e->key, "queue", 5) == 0)
		{
			if (e->value[0] != '"' || memchr(e->value, '\\', e->value_len) != NULL)
				return false;
			q = jh_strndup(r, e->value + 1, e->value_len - 2);
		}
		else if (p == NULL && e->key_len == 7 && memcmp(e->key, "payload", 7) == 0)
			p = jh_strndup(r, e->value, e->value_len);
		else
			return false;
	}
	if (queue != NULL)
	{
		if (q == NULL)
			return false;
		*queue = q;
	}
	*payload = p != NULL ? p : "{}";
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
		/* a decoded value is never longer than the query string */
		size_t		qlen = strlen(qs);
		size_t		cap = (qlen < JH_MAX_PARAM_LEN ? qlen : JH_MAX_PARAM_LEN) + 1;

		buf = jh_alloc(r, cap);
		n = mg_get_var2(qs, qlen, name, buf, cap, 0);
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

/* ------------------------------------------------------ limits and framing */

/* Is s one to nineteen decimal digits and nothing else (no sign, no space)? */
static bool
all_digits(const char *s)
{
	size_t		n = strspn(s, "0123456789");

	return n > 0 && n <= 18 && s[n] == '\0';
}

/*
 * jh_check_request: the request's size and body framing, checked before
 * anything else. 414 for a request line over JH_MAX_REQUEST_LINE, 431 for a
 * header section over JH_MAX_HEADER_BYTES; 400 when the body's length is
 * ambiguous, the ground of request smuggling: Content-Length together with
 * Transfer-Encoding, Content-Length twice, a Content-Length that is not only
 * digits ("+5", "-1", "5, 5"), a Transfer-Encoding other than one "chunked".
 * Each refusal closes the connection, so bytes after it are never read as
 * a next request.
 */
bool
jh_check_request(JhRequest *r)
{
	const struct mg_request_info *ri = r->ri;
	size_t		line;
	size_t		hdr = 0;
	int			ncl = 0;
	int			nte = 0;
	const char *cl = NULL;
	const char *te = NULL;
	int			i;

	line = strlen(r->method) + 1 + (r->path ? strlen(r->path) : 0) +
		(ri->query_string ? strlen(ri->query_string) + 1 : 0) +
		strlen(" HTTP/") + (ri->http_version ? strlen(ri->http_version) : 0);
	if (line > JH_MAX_REQUEST_LINE)
	{
		r->close = true;
		jh_reply_error(r, 414, NULL, "request line longer than %d bytes", JH_MAX_REQUEST_LINE);
		return false;
	}
	for (i = 0; i < ri->num_headers; i++)
	{
		const char *name = ri->http_headers[i].name;
		const char *value = ri->http_headers[i].value;

		if (name == NULL || value == NULL)
			continue;
		hdr += strlen(name) + strlen(value) + 4;
		if (strcasecmp(name, "Content-Length") == 0)
		{
			ncl++;
			cl = value;
		}
		else if (strcasecmp(name, "Transfer-Encoding") == 0)
		{
			nte++;
			te = value;
		}
	}
	if (hdr > JH_MAX_HEADER_BYTES)
	{
		r->close = true;
		jh_reply_error(r, 431, NULL, "header section larger than %d bytes", JH_MAX_HEADER_BYTES);
		return false;
	}
	if (nte > 0 && ncl > 0)
	{
		r->close = true;
		jh_reply_error(r, 400, NULL, "both Content-Length and Transfer-Encoding");
		return false;
	}
	if (nte > 1 || (te != NULL && strcasecmp(te, "chunked") != 0))
	{
		r->close = true;
		jh_reply_error(r, 400, NULL, "only one Transfer-Encoding: chunked is accepted");
		return false;
	}
	if (ncl > 1 || (cl != NULL && !all_digits(cl)))
	{
		r->close = true;
		jh_reply_error(r, 400, NULL, "one Content-Length of digits only is accepted");
		return false;
	}
	return true;
}

/* ------------------------------------------------------------ tokens file */

/*
 * jh_token_line: splits one line of the tokens file in place: "TOKEN [ROLE]",
 * "#" starts a comment. *token is NULL for a blank line. Returns NULL, or
 * what is wrong with the line.
 */
const char *
jh_token_line(char *line, char **token, char **role)
{
	char	   *save = NULL;
	char	   *hash = strchr(line, '#');

	if (hash)
		*hash = '\0';
	*token = strtok_r(line, " \t\r\n", &save);
	*role = NULL;
	if (*token == NULL)
		return NULL;
	*role = strtok_r(NULL, " \t\r\n", &save);
	if (strtok_r(NULL, " \t\r\n", &save) != NULL)
		return "expected \"TOKEN ROLE\"";
	if (strncmp(*token, "sha256:", 7) == 0 && strlen(*token + 7) != 2 * JH_DIGEST_LEN)
		return "a sha256: token needs 64 hexadecimal digits";
	return NULL;
}

/* jh_token_hex: 2 * JH_DIGEST_LEN hexadecimal digits into digest; false if not that. */
bool
jh_token_hex(const char *hex, unsigned char *digest)
{
	int			i;

	if (strlen(hex) != 2 * JH_DIGEST_LEN)
		return false;
	for (i = 0; i < JH_DIGEST_LEN; i++)
	{
		int			hi = hexval(hex[2 * i]);
		int			lo = hexval(hex[2 * i + 1]);

		if (hi < 0 || lo < 0)
			return false;
		digest[i] = (unsigned char) (hi * 16 + lo);
	}
	return true;
}
