/*-------------------------------------------------------------------------
 *
 * router.c
 *	  From an HTTP request to one route handler, and the helpers handlers use.
 *
 * civetweb calls jh_begin_request for every request, before any processing
 * of its own (so civetweb serves no file, no CGI, no websocket, parses no
 * form: everything is answered here). It checks the request's limits and
 * framing (jh_check_request: 414, 431, 400 for an ambiguous body length),
 * authenticates the client, applies the token's rate limit (429 with
 * Retry-After), splits and percent-decodes the path (civetweb's own
 * decoding is off, so "%2F" stays inside a segment), finds the route (404
 * unknown path, 405 with Allow for a wrong method; parse.c), reads the body
 * (413 past --max-body), calls the route's handler, gives its pooled
 * connection back, and writes the access log line: method, path, status,
 * microseconds. On SIGTERM, jh_router_drain waits for the requests in flight
 * while new ones get 503.
 *
 * Auth: with a tokens file, "Authorization: Bearer TOKEN" must name one of
 * its tokens (else 401): the SHA-256 of the presented token is compared with
 * every configured digest, in constant time and without an early exit, so
 * neither a token's prefix nor its position shows in the timing. The
 * token's role is used for the request's statements (SET ROLE), so
 * PostgreSQL's GRANTs decide the rest (42501 -> 403). Without one, only loopback clients are served (others get 403).
 *
 *-------------------------------------------------------------------------
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "jobq_http.h"

/*
 * A token bucket per token (one more for tokenless loopback clients):
 * --rate requests per second, bursts up to max(--rate, 1).
 */
typedef struct JhBucket
{
	pthread_mutex_t lock;
	double		level;			/* requests that may be made now */
	int64_t		at_us;			/* when level was computed */
} JhBucket;

static JhBucket *buckets;
static uint64_t requests_total;
static int	inflight;			/* requests being served, for the drain */
static pthread_mutex_t drain_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t drained;	/* inflight hit 0 while stopping (jh_router_init) */

uint64_t
jh_requests_total(void)
{
	return __atomic_load_n(&requests_total, __ATOMIC_RELAXED);
}


/* ------------------------------------------------------------------- auth */

static bool
is_loopback(const char *addr)
{
	return strncmp(addr, "127.", 4) == 0 || strcmp(addr, "::1") == 0 ||
		strncmp(addr, "::ffff:127.", 11) == 0;
}

/*
 * authenticate: sets r->role and *which (the token's index, or
 * jh_config.ntokens without tokens); answers 401 or 403 and returns false
 * when the client may not be served.
 */
static bool
authenticate(JhRequest *r, int *which)
{
	const char *h;
	size_t		len;
	int			i;
	int			found = -1;
	unsigned char digest[JH_DIGEST_LEN];

	*which = jh_config.ntokens;
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
	jh_sha256(h, len, digest);
	for (i = 0; i < jh_config.ntokens; i++)
	{
		int			differs = CRYPTO_memcmp(digest, jh_config.tokens[i].digest, JH_DIGEST_LEN);

		/* no branch on the outcome but the first match's index */
		found = (differs == 0 && found < 0) ? i : found;
	}
	if (found < 0 || len == 0)
	{
		jh_reply_error(r, 401, NULL, "invalid bearer token");
		return false;
	}
	r->role = jh_config.tokens[found].role;
	*which = found;
	return true;
}

/*
 * rate_limit: takes one request from bucket which; answers 429 with
 * Retry-After (whole seconds until a request is allowed) when it is empty.
 */
static bool
rate_limit(JhRequest *r, int which)
{
	JhBucket   *b;
	double		burst = jh_config.rate > 1 ? jh_config.rate : 1;
	int64_t		now = jh_now_us();
	bool		allowed;
	double		wait_s = 0;

	if (jh_config.rate <= 0 || buckets == NULL)
		return true;
	b = &buckets[which];
	pthread_mutex_lock(&b->lock);
	if (b->at_us == 0)
		b->level = burst;
	else
		b->level += (double) (now - b->at_us) / 1e6 * jh_config.rate;
	if (b->level > burst)
		b->level = burst;
	b->at_us = now;
	allowed = b->level >= 1;
	if (allowed)
		b->level -= 1;
	else
		wait_s = (1 - b->level) / jh_config.rate;
	pthread_mutex_unlock(&b->lock);
	if (!allowed)
	{
		char		secs[32];
		long		whole = (long) wait_s;

		if ((double) whole < wait_s)
			whole++;
		snprintf(secs, sizeof(secs), "%ld", whole > 0 ? whole : 1);
		jh_header(r, "Retry-After", secs);
		jh_reply_error(r, 429, NULL, "rate limit of %g requests per second exceeded",
					   jh_config.rate);
	}
	return allowed;
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
		r->close = true;
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
				r->close = true;
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
			r->close = true;
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

/*
 * The access log line: method, path (its first 511 bytes, control characters
 * and spaces as '?'), status, microseconds. Formatted by hand and written
 * with one write(2) (one line, so never interleaved with another thread's or
 * with stdio's lines): this runs for every request.
 */
static void
access_log(const JhRequest *r, int64_t us)
{
	const char *path = r->path ? r->path : "-";
	size_t		mlen = strlen(r->method);
	char		small[1024];
	char	   *line;
	char	   *p;
	char	   *q;
	int			i;

	line = mlen + 512 + 64 <= sizeof(small) ? small : malloc(mlen + 512 + 64);
	if (line == NULL)
		return;
	p = line;
	memcpy(p, r->method, mlen);
	p += mlen;
	*p++ = ' ';
	for (i = 0; i < 511 && path[i]; i++)
		*p++ = ((unsigned char) path[i] <= ' ' || path[i] == 0x7f) ? '?' : path[i];
	*p++ = ' ';
	p = jh_put_uint(p, (uint64_t) (r->status > 0 ? r->status : 0));
	*p++ = ' ';
	p = jh_put_uint(p, (uint64_t) (us > 0 ? us : 0));
	*p++ = '\n';
	/* write(2), not stdio: stderr's lock would be held across the system call */
	for (q = line; q < p;)
	{
		ssize_t		n = write(STDERR_FILENO, q, (size_t) (p - q));

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		q += n;
	}
	if (line != small)
		free(line);
}

/*
 * jh_begin_request: civetweb's begin_request callback, called for every
 * request before civetweb looks at it; answers it and returns its status,
 * so civetweb does nothing more with it.
 */
int
jh_begin_request(struct mg_connection *conn)
{
	JhRequest	r;
	int64_t		start = jh_now_us();
	const JhRoute *route;
	int			which = 0;

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
		r.close = true;
		jh_reply_error(&r, 503, NULL, "shutting down");
	}
	else if (jh_check_request(&r) && authenticate(&r, &which) && rate_limit(&r, which) &&
			 jh_split_path(&r) && (route = jh_find_route(&r)) != NULL && read_body(&r))
		route->handler(&r);
	if (r.status == 0)
		jh_reply_error(&r, 500, NULL, "the route gave no answer");
	jh_release_db(&r);
	access_log(&r, jh_now_us() - start);
	jh_free_allocs(&r);
	if (__atomic_sub_fetch(&inflight, 1, __ATOMIC_SEQ_CST) == 0 &&
		__atomic_load_n(&jh_stopping, __ATOMIC_SEQ_CST))
	{
		pthread_mutex_lock(&drain_lock);
		pthread_cond_broadcast(&drained);
		pthread_mutex_unlock(&drain_lock);
	}
	return r.status;
}

/*
 * jh_router_drain: called once jh_stopping is set; waits until no request is
 * being served, or max_ms. New requests meanwhile get 503. (mg_stop alone
 * would not do: civetweb stops writing responses once it is stopping.) The
 * last request to end signals drained: no polling. Returns the requests
 * still in flight.
 */
int
jh_router_drain(int max_ms)
{
	struct timespec until;
	int			n;

	jh_deadline(&until, (int64_t) max_ms * 1000);
	pthread_mutex_lock(&drain_lock);
	while ((n = __atomic_load_n(&inflight, __ATOMIC_SEQ_CST)) > 0)
		if (pthread_cond_timedwait(&drained, &drain_lock, &until) == ETIMEDOUT)
		{
			n = __atomic_load_n(&inflight, __ATOMIC_SEQ_CST);
			break;
		}
	pthread_mutex_unlock(&drain_lock);
	return n;
}

/* jh_router_init: the drain's signal and the rate limit's buckets, once the configuration is loaded. */
void
jh_router_init(void)
{
	int			i;

	jh_cond_init(&drained);
	if (jh_config.rate <= 0)
		return;
	buckets = calloc(jh_config.ntokens + 1, sizeof(JhBucket));
	if (buckets == NULL)
	{
		fprintf(stderr, "jobq-http: out of memory\n");
		exit(1);
	}
	for (i = 0; i <= jh_config.ntokens; i++)
		pthread_mutex_init(&buckets[i].lock, NULL);
}
