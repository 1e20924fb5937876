/*-------------------------------------------------------------------------
 *
 * httpload.c
 *	  The driver of benchmark W6 (bench/w6_sidecar.sh): the same job
 *	  operations through the sidecar (HTTP/1.1 keep-alive) or through libpq.
 *
 *	  httpload http OP QUEUE THREADS SECONDS PORT
 *	  httpload pq OP QUEUE THREADS SECONDS
 *
 * OP is one of:
 *	  enqueue	http: POST /v1/enqueue {"queue": QUEUE, "payload": {"i": N}} (202)
 *				pq:   SELECT FROM jobq.enqueue(QUEUE, '{"i": N}')
 *	  process	http: GET /v1/next?queue=QUEUE&num_jobs=1&worker=W (200), then
 *				      DELETE /v1/complete?queue=QUEUE&job_id=ID&lease=TOKEN (200)
 *				pq:   SELECT * FROM jobq.lease(QUEUE, W, 1) (every column,
 *				      as the sidecar answers them), then
 *				      SELECT jobq.complete(QUEUE, ID, NULL, TOKEN)
 *
 * THREADS threads (each with its own keep-alive connection to 127.0.0.1:PORT,
 * or its own libpq connection from libpq's environment, PGOPTIONS included;
 * every statement its own transaction) connect, then repeat OP for SECONDS
 * (counted from when all are connected). Prints one line:
 *	  JOBS_PER_SECOND JOBS EMPTY
 * where EMPTY counts the threads whose lease found no job (process only: the
 * backlog ran dry and the thread stopped, so the rate is too low). Any other
 * answer (an HTTP status or a libpq error) is printed on stderr and exits 1.
 *
 * The HTTP client is minimal: requests of one write, answers with a
 * Content-Length (every sidecar answer has one), reconnect when the sidecar
 * says Connection: close.
 *
 *-------------------------------------------------------------------------
 */
#define _POSIX_C_SOURCE 200809L

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>

#define HL_MAX_THREADS	64
#define HL_BUF			65536	/* largest answer (headers and body) */
#define HL_IO_TIMEOUT	30		/* seconds, socket reads and writes */

typedef struct HlConn
{
	int			fd;
	size_t		len;			/* bytes in buf */
	char		buf[HL_BUF + 1];
} HlConn;

typedef struct HlThread
{
	pthread_t	thread;
	int			no;
	int64_t		jobs;
	int64_t		empty;
} HlThread;

static bool use_http;
static bool op_process;
static const char *queue;
static int	port;
static int64_t deadline_us;		/* CLOCK_MONOTONIC; set between the two waits */
static pthread_barrier_t start_barrier;	/* every thread connected; then go */

static void
die(const char *what, const char *detail)
{
	fprintf(stderr, "httpload: %s: %s\n", what, detail);
	exit(1);
}

static int64_t
now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t) ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* ------------------------------------------------------------------ HTTP */

/* Opens the connection to 127.0.0.1:port, no Nagle, with I/O timeouts. */
static void
hl_connect(HlConn *c)
{
	struct sockaddr_in sa;
	struct timeval tv;
	int			one = 1;

	c->fd = socket(AF_INET, SOCK_STREAM, 0);
	if (c->fd < 0)
		die("socket", strerror(errno));
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	tv.tv_sec = HL_IO_TIMEOUT;
	tv.tv_usec = 0;
	setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_port = htons((uint16_t) port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(c->fd, (struct sockaddr *) &sa, sizeof(sa)) != 0)
		die("connect", strerror(errno));
	c->len = 0;
}

/* The value of header name in the header section hdr (NUL-terminated), or NULL. */
static const char *
hl_header(const char *hdr, const char *name)
{
	size_t		n = strlen(name);
	const char *p = strstr(hdr, "\r\n");

	while (p != NULL && p[2] != '\r')
	{
		p += 2;
		if (strncasecmp(p, name, n) == 0 && p[n] == ':')
		{
			p += n + 1;
			while (*p == ' ')
				p++;
			return p;
		}
		p = strstr(p, "\r\n");
	}
	return NULL;
}

/*
 * hl_request: one request on the keep-alive connection (opened on first use,
 * or again after a Connection: close). Returns the status; *body points at
 * the answer's body in c->buf (NUL-terminated), valid until the next call.
 */
static int
hl_request(HlConn *c, const char *method, const char *path, const char *body, char **out)
{
	char		req[2048];
	size_t		blen = body ? strlen(body) : 0;
	int			n;
	size_t		off = 0;
	char	   *end = NULL;
	const char *v;
	size_t		hlen = 0;
	size_t		clen = 0;
	int			status;

	if (c->fd < 0)
		hl_connect(c);
	n = snprintf(req, sizeof(req),
				 "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\n"
				 "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
				 method, path, blen, body ? body : "");
	if (n < 0 || (size_t) n >= sizeof(req))
		die("request", "too long");
	while (off < (size_t) n)
	{
		ssize_t		w = send(c->fd, req + off, n - off, MSG_NOSIGNAL);

		if (w < 0 && errno != EINTR)
			die("send", strerror(errno));
		if (w > 0)
			off += w;
	}

	/* the header section, then Content-Length bytes of body */
	c->len = 0;
	for (;;)
	{
		ssize_t		r;

		if (end == NULL)
		{
			c->buf[c->len] = '\0';
			end = strstr(c->buf, "\r\n\r\n");
			if (end != NULL)
			{
				hlen = end + 4 - c->buf;
				end[2] = '\0';	/* headers end with their last \r\n */
				v = hl_header(c->buf, "Content-Length");
				clen = v ? strtoul(v, NULL, 10) : 0;
				if (hlen + clen > HL_BUF)
					die("answer", "too large");
			}
		}
		if (end != NULL && c->len >= hlen + clen)
			break;
		if (c->len == HL_BUF)
			die("answer", "header section too large");
		r = recv(c->fd, c->buf + c->len, HL_BUF - c->len, 0);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			die("recv", strerror(errno));
		if (r == 0)
			die("recv", "the sidecar closed the connection");
		c->len += r;
	}
	if (sscanf(c->buf, "HTTP/1.%*d %d", &status) != 1)
		die("answer", "no status line");
	c->buf[hlen + clen] = '\0';
	*out = c->buf + hlen;
	v = hl_header(c->buf, "Connection");
	if (v != NULL && strncasecmp(v, "close", 5) == 0)
	{
		close(c->fd);
		c->fd = -1;
	}
	return status;
}

/* Copies the string value of "key": "..." found first in json into dst. */
static bool
hl_field(const char *json, const char *key, char *dst, size_t size)
{
	char		pat[64];
	const char *p;
	const char *q;

	snprintf(pat, sizeof(pat), "\"%s\": \"", key);
	p = strstr(json, pat);
	if (p == NULL)
		return false;
	p += strlen(pat);
	q = strchr(p, '"');
	if (q == NULL || (size_t) (q - p) >= size)
		return false;
	memcpy(dst, p, q - p);
	dst[q - p] = '\0';
	return true;
}

static void
hl_unexpected(int status, const char *what, const char *body)
{
	fprintf(stderr, "httpload: %s: HTTP %d: %s\n", what, status, body);
	exit(1);
}

static void *
http_main(void *arg)
{
	HlThread   *t = arg;
	HlConn	   *c = malloc(sizeof(HlConn));
	char		path[512];
	char		body[256];
	char		id[128];
	char		lease[64];
	char	   *out;
	int			status;

	if (c == NULL)
		die("malloc", "out of memory");
	hl_connect(c);
	pthread_barrier_wait(&start_barrier);
	pthread_barrier_wait(&start_barrier);
	while (now_us() < deadline_us)
	{
		if (!op_process)
		{
			snprintf(body, sizeof(body), "{\"queue\": \"%s\", \"payload\": {\"i\": %" PRId64 "}}",
					 queue, t->jobs);
			status = hl_request(c, "POST", "/v1/enqueue", body, &out);
			if (status != 202)
				hl_unexpected(status, "POST /v1/enqueue", out);
			t->jobs++;
			continue;
		}
		snprintf(path, sizeof(path), "/v1/next?queue=%s&num_jobs=1&worker=w6-%d", queue, t->no);
		status = hl_request(c, "GET", path, NULL, &out);
		if (status == 204)
		{
			t->empty++;			/* ran dry: stop rather than spin */
			break;
		}
		if (status != 200)
			hl_unexpected(status, "GET /v1/next", out);
		if (!hl_field(out, "id", id, sizeof(id)) || !hl_field(out, "lease", lease, sizeof(lease)))
			hl_unexpected(status, "GET /v1/next without id or lease", out);
		snprintf(path, sizeof(path), "/v1/complete?queue=%s&job_id=%s&lease=%s", queue, id, lease);
		status = hl_request(c, "DELETE", path, NULL, &out);
		if (status != 200)
			hl_unexpected(status, "DELETE /v1/complete", out);
		t->jobs++;
	}
	if (c->fd >= 0)
		close(c->fd);
	free(c);
	return NULL;
}

/* ------------------------------------------------------------------ libpq */

static PGresult *
pq_exec(PGconn *conn, const char *name, int nparams, const char *const *values)
{
	PGresult   *res = PQexecPrepared(conn, name, nparams, values, NULL, NULL, 0);

	if (PQresultStatus(res) != PGRES_TUPLES_OK)
		die(name, PQerrorMessage(conn));
	return res;
}

static void
pq_prepare(PGconn *conn, const char *name, const char *sql, int nparams)
{
	PGresult   *res = PQprepare(conn, name, sql, nparams, NULL);

	if (PQresultStatus(res) != PGRES_COMMAND_OK)
		die("prepare", PQerrorMessage(conn));
	PQclear(res);
}

static void *
pq_main(void *arg)
{
	HlThread   *t = arg;
	PGconn	   *conn = PQconnectdb("");
	PGresult   *res;
	char		payload[64];
	char		worker[32];
	const char *values[3];

	if (PQstatus(conn) != CONNECTION_OK)
		die("connect", PQerrorMessage(conn));
	pq_prepare(conn, "enqueue", "SELECT j.id FROM jobq.enqueue($1, $2::jsonb) j", 2);
	pq_prepare(conn, "lease", "SELECT l.id, l.lease, l.* FROM jobq.lease($1, $2, 1) l", 2);
	pq_prepare(conn, "complete", "SELECT jobq.complete($1, $2, NULL, $3::uuid)", 3);
	snprintf(worker, sizeof(worker), "w6-%d", t->no);
	values[0] = queue;
	pthread_barrier_wait(&start_barrier);
	pthread_barrier_wait(&start_barrier);
	while (now_us() < deadline_us)
	{
		if (!op_process)
		{
			snprintf(payload, sizeof(payload), "{\"i\": %" PRId64 "}", t->jobs);
			values[1] = payload;
			PQclear(pq_exec(conn, "enqueue", 2, values));
			t->jobs++;
			continue;
		}
		values[1] = worker;
		res = pq_exec(conn, "lease", 2, values);
		if (PQntuples(res) == 0)
		{
			PQclear(res);
			t->empty++;			/* ran dry: stop rather than spin */
			break;
		}
		values[1] = PQgetvalue(res, 0, 0);
		values[2] = PQgetvalue(res, 0, 1);
		PQclear(pq_exec(conn, "complete", 3, values));
		PQclear(res);
		t->jobs++;
	}
	PQfinish(conn);
	return NULL;
}

int
main(int argc, char **argv)
{
	HlThread	ts[HL_MAX_THREADS];
	int			nthreads;
	double		seconds;
	int64_t		t0;
	int64_t		jobs = 0;
	int64_t		empty = 0;
	int			i;

	if (argc < 6 || (strcmp(argv[1], "http") != 0 && strcmp(argv[1], "pq") != 0) ||
		(strcmp(argv[2], "enqueue") != 0 && strcmp(argv[2], "process") != 0) ||
		(strcmp(argv[1], "http") == 0 && argc < 7))
	{
		fprintf(stderr, "usage: httpload http enqueue|process QUEUE THREADS SECONDS PORT\n"
				"       httpload pq enqueue|process QUEUE THREADS SECONDS\n");
		return 2;
	}
	use_http = strcmp(argv[1], "http") == 0;
	op_process = strcmp(argv[2], "process") == 0;
	queue = argv[3];
	nthreads = atoi(argv[4]);
	seconds = atof(argv[5]);
	if (use_http)
		port = atoi(argv[6]);
	if (nthreads < 1 || nthreads > HL_MAX_THREADS || seconds <= 0 ||
		(use_http && (port < 1 || port > 65535)) || strlen(queue) > 100)
	{
		fprintf(stderr, "httpload: bad arguments\n");
		return 2;
	}

	memset(ts, 0, sizeof(ts));
	pthread_barrier_init(&start_barrier, NULL, nthreads + 1);
	for (i = 0; i < nthreads; i++)
	{
		ts[i].no = i;
		if (pthread_create(&ts[i].thread, NULL, use_http ? http_main : pq_main, &ts[i]) != 0)
			die("pthread_create", "cannot start a thread");
	}
	pthread_barrier_wait(&start_barrier);	/* connected */
	t0 = now_us();
	deadline_us = t0 + (int64_t) (seconds * 1000000);
	pthread_barrier_wait(&start_barrier);	/* go */
	for (i = 0; i < nthreads; i++)
	{
		pthread_join(ts[i].thread, NULL);
		jobs += ts[i].jobs;
		empty += ts[i].empty;
	}
	printf("%.1f %" PRId64 " %" PRId64 "\n", jobs / ((now_us() - t0) / 1e6), jobs, empty);
	return 0;
}
