/*-------------------------------------------------------------------------
 *
 * reply.c
 *	  Every response of jobq-http goes through jh_reply(): status, content
 *	  type, length, the request's extra headers, then the body. Errors are
 *	  {"error": "...", "sqlstate": "..."} with the status that DESIGN.md's
 *	  table gives for the SQLSTATE (jh_status_for_sqlstate).
 *
 *-------------------------------------------------------------------------
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "jobq_http.h"

/* Appends n bytes of s at *p; the caller sized the buffer. */
static inline char *
reply_put(char *p, const char *s, size_t n)
{
	memcpy(p, s, n);
	return p + n;
}

static inline char *
reply_put_str(char *p, const char *s)
{
	return reply_put(p, s, strlen(s));
}

/* jh_put_uint: appends v in decimal at p (at most 20 bytes); returns the end. */
char *
jh_put_uint(char *p, uint64_t v)
{
	char		digits[24];
	int			n = 0;

	do
	{
		digits[n++] = (char) ('0' + v % 10);
		v /= 10;
	} while (v > 0);
	while (n > 0)
		*p++ = digits[--n];
	return p;
}

/*
 * jh_reply: sends the one response of request r. A HEAD request gets the
 * headers only; 204 and 304 carry no Content-Length (RFC 9110). Status line,
 * headers and body go out in one write (with TCP_NODELAY, two writes are two
 * segments and two wake-ups of the client for every answer); the connection
 * stays open unless r->close.
 */
void
jh_reply(JhRequest *r, int status, const char *content_type, const char *body, size_t len)
{
	bool		with_body = len > 0 && status != 204 && status != 304 &&
		strcmp(r->method, "HEAD") != 0;
	const char *reason;
	size_t		cap;
	char		small[2048];	/* most answers: no malloc */
	char	   *buf;
	char	   *p;
	int			i;

	if (r->status != 0)
		return;					/* answered already */
	r->status = status;
	if (r->close)
		mg_disable_connection_keep_alive(r->conn);
	reason = mg_get_response_code_text(r->conn, status);
	/* the fixed lines take at most 120 bytes */
	cap = 160 + strlen(reason) + (content_type ? strlen(content_type) : 0) +
		(with_body ? len : 0);
	for (i = 0; i < r->nhdr; i++)
		cap += strlen(r->hdr_name[i]) + strlen(r->hdr_value[i]) + 4;
	buf = cap <= sizeof(small) ? small : malloc(cap);
	if (buf == NULL)
	{
		mg_disable_connection_keep_alive(r->conn);
		return;					/* nothing can be sent: the connection closes */
	}
	p = reply_put(buf, "HTTP/1.1 ", 9);
	p = jh_put_uint(p, (uint64_t) status);
	*p++ = ' ';
	p = reply_put_str(p, reason);
	p = reply_put(p, "\r\n", 2);
	if (content_type && len > 0)
	{
		p = reply_put(p, "Content-Type: ", 14);
		p = reply_put_str(p, content_type);
		p = reply_put(p, "\r\n", 2);
	}
	if (status != 204 && status != 304)
	{
		p = reply_put(p, "Content-Length: ", 16);
		p = jh_put_uint(p, (uint64_t) len);
		p = reply_put(p, "\r\n", 2);
	}
	p = reply_put(p, "Cache-Control: no-store\r\n", 25);
	if (r->close)
		p = reply_put(p, "Connection: close\r\n", 19);
	for (i = 0; i < r->nhdr; i++)
	{
		p = reply_put_str(p, r->hdr_name[i]);
		p = reply_put(p, ": ", 2);
		p = reply_put_str(p, r->hdr_value[i]);
		p = reply_put(p, "\r\n", 2);
	}
	p = reply_put(p, "\r\n", 2);
	if (with_body)
		p = reply_put(p, body, len);
	mg_write(r->conn, buf, (size_t) (p - buf));
	if (buf != small)
		free(buf);
}

void
jh_reply_json(JhRequest *r, int status, const char *json)
{
	jh_reply(r, status, "application/json", json, json ? strlen(json) : 0);
}

/*
 * jh_reply_error: answers {"error": message, "sqlstate": sqlstate}. A 429
 * tells the client when to retry; a 401 how to authenticate.
 */
void
jh_reply_error(JhRequest *r, int status, const char *sqlstate, const char *fmt,...)
{
	va_list		ap;
	char		msg[512];
	char		esc[1100];
	char		body[1200];

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	jh_json_escape(esc, sizeof(esc), msg);
	if (sqlstate && *sqlstate)
		snprintf(body, sizeof(body), "{\"error\": \"%s\", \"sqlstate\": \"%s\"}", esc, sqlstate);
	else
		snprintf(body, sizeof(body), "{\"error\": \"%s\"}", esc);
	if (status == 429 || status == 503)
	{
		bool		has = false;
		int			i;

		for (i = 0; i < r->nhdr; i++)
			has |= strcmp(r->hdr_name[i], "Retry-After") == 0;
		if (!has)
			jh_header(r, "Retry-After", "1");
	}
	if (status == 401)
		jh_header(r, "WWW-Authenticate", "Bearer realm=\"jobq\"");
	jh_reply_json(r, status, body);
}

void
jh_reply_pgerror(JhRequest *r, const JhError *e)
{
	jh_reply_error(r, e->status, e->sqlstate, "%s", e->message);
}

/*
 * jh_status_for_sqlstate: DESIGN.md's table. Additions: other data errors
 * of class 23 (NOT NULL, CHECK) are bad arguments too (422), and 57014
 * (statement cancelled by the request timeout) is 504.
 */
int
jh_status_for_sqlstate(const char *s)
{
	if (s == NULL || strlen(s) != 5)
		return 500;
	if (strcmp(s, "P0002") == 0)
		return 404;
	if (strcmp(s, "23505") == 0 || strcmp(s, "55000") == 0)
		return 409;
	if (strncmp(s, "22", 2) == 0 || strcmp(s, "23502") == 0 || strcmp(s, "23514") == 0)
		return 422;
	if (strcmp(s, "42501") == 0)
		return 403;
	if (strcmp(s, "40001") == 0 || strcmp(s, "40P01") == 0 || strcmp(s, "55P03") == 0 ||
		strncmp(s, "53", 2) == 0 || strncmp(s, "57P0", 4) == 0 || strncmp(s, "08", 2) == 0)
		return 429;
	if (strcmp(s, "57014") == 0)
		return 504;
	return 500;
}

void
jh_error_set(JhError *e, int status, const char *sqlstate, const char *fmt,...)
{
	va_list		ap;
	char		state[6];

	/* sqlstate may be e->sqlstate itself */
	snprintf(state, sizeof(state), "%s", sqlstate ? sqlstate : "");
	e->status = status;
	memcpy(e->sqlstate, state, sizeof(state));
	va_start(ap, fmt);
	vsnprintf(e->message, sizeof(e->message), fmt, ap);
	va_end(ap);
}

/*
 * jh_error_from_result: the error of a failed statement. A result without a
 * SQLSTATE means the connection broke (08006, retryable). Errors that map to
 * 500 are logged in full and answered without their text.
 */
void
jh_error_from_result(JhError *e, const PGresult *res, PGconn *pg)
{
	const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
	const char *msg = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
	char		buf[512];
	size_t		n;

	if (state == NULL || PQstatus(pg) != CONNECTION_OK)
	{
		snprintf(buf, sizeof(buf), "%s", PQerrorMessage(pg));
		n = strlen(buf);
		while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == ' '))
			buf[--n] = '\0';
		jh_error_set(e, 429, state && strncmp(state, "57P0", 4) == 0 ? state : "08006",
					 "database unavailable: %s", n ? buf : "connection lost");
		return;
	}
	e->status = jh_status_for_sqlstate(state);
	if (e->status == 500)
	{
		fprintf(stderr, "jobq-http: database error %s: %s\n", state, msg ? msg : "");
		jh_error_set(e, 500, state, "internal error (logged by jobq-http)");
		return;
	}
	jh_error_set(e, e->status, state, "%s", msg ? msg : "database error");
}
