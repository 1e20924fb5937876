/*-------------------------------------------------------------------------
 *
 * jobq_http.h
 *	  Declarations shared by the files of jobq-http, jobq's REST sidecar.
 *
 * jobq-http maps HTTP onto jobq's SQL functions and adds no job logic of its
 * own. It is split by concern:
 *
 *	main.c			start, signals, drain on SIGTERM
 *	config.c		flags, JOBQ_HTTP_* environment variables, --help, tokens file
 *	pool.c			the fixed-size libpq pool: prepared statements per connection,
 *					health check and reconnect, fail-fast while PostgreSQL is down
 *	listen.c		the one LISTEN connection (channel "jobq") and the long-poll
 *					waiters it wakes
 *	router.c		civetweb's begin_request callback: limits, auth, rate limit,
 *					request bodies, access log; runs statements for the handlers
 *	parse.c			the pure part: route table and matching, path, query
 *					parameters, JSON bodies, request framing, tokens file lines
 *					(also linked into http/fuzz.c, the libFuzzer target)
 *	reply.c			the one response helper, errors, SQLSTATE -> HTTP mapping
 *	json.c			JSON syntax check of request bodies, string escaping for
 *					error bodies (every other JSON is built by PostgreSQL)
 *	routes_*.c		one file per route family: relay, cluster, queues, jobs,
 *					ops (/run and /operations)
 *
 * Threads: civetweb's worker threads run the handlers; each handler holds at
 * most one pooled connection at a time (JhRequest.db), never while it waits
 * for a job to arrive. One more thread owns the LISTEN connection.
 *
 *-------------------------------------------------------------------------
 */
#ifndef JOBQ_HTTP_H
#define JOBQ_HTTP_H

#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <civetweb.h>
#include <libpq-fe.h>

#define JH_VERSION			"0.1.0"
#define JH_MAX_SEGS			8		/* path segments a route may have */
#define JH_MAX_HEADERS		4		/* extra response headers */
#define JH_MAX_PARAM_LEN	4096	/* longest query parameter, decoded */
#define JH_MAX_REQUEST_LINE	8192	/* longest request line: else 414 */
#define JH_MAX_HEADER_BYTES	16384	/* largest header section: else 431 */
#define JH_DIGEST_LEN		32		/* SHA-256 */

/* ---------------------------------------------------------------- config.c */

typedef struct JhToken
{
	unsigned char digest[JH_DIGEST_LEN];	/* SHA-256 of the token */
	char	   *role;			/* PostgreSQL role for SET ROLE, or NULL */
} JhToken;

typedef struct JhConfig
{
	char	   *listen;			/* civetweb listening_ports: HOST:PORT[,HOST:PORT] */
	char	   *db;				/* libpq connection string; "" = libpq's environment */
	int			pool;			/* connections in the pool */
	int			threads;		/* civetweb worker threads */
	long long	max_body;		/* largest request body accepted, in bytes */
	int			timeout;		/* request timeout, seconds */
	char	   *tokens_file;	/* NULL: only loopback clients are served */
	JhToken    *tokens;
	int			ntokens;
	double		rate;			/* requests per second per token; 0 = no limit */
	char	   *tls_cert;		/* PEM file (certificate and key): HTTPS */
	bool		insecure;		/* allow plain HTTP on a non-loopback address */
	int			enqueue_streams;	/* grouped plain enqueues running at once; 0 = no grouping */
} JhConfig;

extern JhConfig jh_config;

extern int	jh_config_load(int argc, char **argv);
extern void jh_config_free(void);
extern void jh_sha256(const void *data, size_t len, unsigned char *digest);

/* ------------------------------------------------------------------ main.c */

extern volatile sig_atomic_t jh_stopping;
extern time_t jh_started_at;

extern int64_t jh_now_us(void);
extern void jh_deadline(struct timespec *ts, int64_t from_now_us);
extern void jh_cond_init(pthread_cond_t *cond);

/* ------------------------------------------------------------------ pool.c */

/* A statement prepared once per pooled connection, on first use there. */
typedef struct JhStmt
{
	const char *name;			/* prepared statement name, unique */
	const char *sql;			/* parameters are text; the SQL casts them */
	int			nparams;
} JhStmt;

/* An error to answer with: HTTP status, SQLSTATE and message. */
typedef struct JhError
{
	int			status;
	char		sqlstate[6];
	char		message[512];
} JhError;

typedef struct JhConn JhConn;

extern void jh_pool_init(void);
extern void jh_pool_close(void);
extern JhConn *jh_pool_acquire(const char *role, JhError *err);
extern void jh_pool_release(JhConn *c);
extern PGresult *jh_pool_exec(JhConn *c, const JhStmt *st, const char *const *values,
							  JhError *err);
extern bool jh_pool_connected(JhConn *c);
extern bool jh_pool_command(JhConn *c, const char *sql, JhError *err);
extern bool jh_pool_set_timeout(JhConn *c, int seconds, JhError *err);
extern void jh_pool_stats(int *size, int *in_use, int *connected, bool *db_up);
extern PGconn *jh_connect(JhError *err);

/* ---------------------------------------------------------------- listen.c */

typedef struct JhWaiter
{
	const char *queue;
	bool		woken;
	pthread_cond_t *cond;
	struct JhWaiter *prev;
	struct JhWaiter *next;
} JhWaiter;

extern void jh_listen_start(void);
extern void jh_listen_stop(void);
extern void jh_wait_register(JhWaiter *w, const char *queue);
extern bool jh_wait_for(JhWaiter *w, const struct timespec *deadline);
extern void jh_wait_unregister(JhWaiter *w);
extern void jh_wait_wake_all(void);
extern void jh_listen_stats(bool *up, int *waiting);

/* ---------------------------------------------------------------- router.c */

typedef struct JhAlloc JhAlloc;

/* One HTTP request, from its arrival to its one response. */
typedef struct JhRequest
{
	struct mg_connection *conn;
	const struct mg_request_info *ri;
	const char *method;
	const char *path;			/* the raw path, for the log */
	char	   *seg[JH_MAX_SEGS];	/* decoded path segments */
	int			nseg;
	const char *queue;			/* the path's {queue}, or NULL */
	const char *id;				/* the path's {id}, or NULL */
	char	   *body;			/* NUL-terminated, or NULL when empty */
	size_t		body_len;
	char		body_type;		/* JSON kind of the body: see jh_json_check */
	const char *role;			/* from the bearer token, or NULL */
	JhConn	   *db;				/* pooled connection held, or NULL */
	int			status;			/* status sent, 0 before */
	const char *hdr_name[JH_MAX_HEADERS];
	char	   *hdr_value[JH_MAX_HEADERS];
	int			nhdr;
	JhAlloc    *allocs;			/* freed when the request ends */
	bool		close;			/* close the connection after the response */
} JhRequest;

typedef void (*JhHandler) (JhRequest *r);

typedef struct JhRoute
{
	const char *method;
	const char *pattern;		/* "{queue}" and "{id}" match one segment */
	JhHandler	handler;
} JhRoute;

extern int	jh_begin_request(struct mg_connection *conn);
extern void jh_router_init(void);
extern int	jh_router_drain(int max_ms);
extern uint64_t jh_requests_total(void);

/* ----------------------------------------------------------------- group.c */

extern bool jh_group_enqueue(JhRequest *r, const char *queue, const char *payload,
							 const char *answer[3]);
extern void jh_group_stats(uint64_t *groups, uint64_t *jobs);

/* ----------------------------------------------------------------- parse.c */

extern const JhRoute jh_routes[];
extern const size_t jh_nroutes;
extern char *jh_strdup(JhRequest *r, const char *s);
extern char *jh_strndup(JhRequest *r, const char *s, size_t n);
extern char *jh_path_escape(JhRequest *r, const char *s);
extern void *jh_alloc(JhRequest *r, size_t n);
extern void jh_free_allocs(JhRequest *r);
extern bool jh_check_request(JhRequest *r);
extern bool jh_split_path(JhRequest *r);
extern const JhRoute *jh_find_route(JhRequest *r);
extern int	jh_param(JhRequest *r, const char *name, bool required, const char **out);
extern int	jh_param_int(JhRequest *r, const char *name, long def, long min, long max,
						 long *out);
extern bool jh_param_bool(JhRequest *r, const char *name, const char **out);
extern int	jh_param_num(JhRequest *r, const char *name, const char **out);
extern bool jh_body_json(JhRequest *r, bool required, const char *kinds);
extern bool jh_plain_job(JhRequest *r, const char **queue, const char **payload);
extern const char *jh_token_line(char *line, char **token, char **role);
extern bool jh_token_hex(const char *hex, unsigned char *digest);
extern PGresult *jh_query(JhRequest *r, const JhStmt *st, const char *const *values);
extern PGresult *jh_query_quiet(JhRequest *r, const JhStmt *st, const char *const *values,
								JhError *err);
extern bool jh_command(JhRequest *r, const char *sql);
extern void jh_release_db(JhRequest *r);
extern void jh_reply_value(JhRequest *r, int status, const JhStmt *st,
						   const char *const *values);
extern void jh_reply_result(JhRequest *r, int status, PGresult *res);

/* ----------------------------------------------------------------- reply.c */

extern void jh_header(JhRequest *r, const char *name, const char *value);
extern void jh_reply(JhRequest *r, int status, const char *content_type,
					 const char *body, size_t len);
extern void jh_reply_json(JhRequest *r, int status, const char *json);
extern char *jh_put_uint(char *p, uint64_t v);
extern void jh_reply_error(JhRequest *r, int status, const char *sqlstate,
						   const char *fmt,...) __attribute__((format(printf, 4, 5)));
extern void jh_reply_pgerror(JhRequest *r, const JhError *e);
extern int	jh_status_for_sqlstate(const char *sqlstate);
extern void jh_error_from_result(JhError *e, const PGresult *res, PGconn *pg);
extern void jh_error_set(JhError *e, int status, const char *sqlstate, const char *fmt,...)
			__attribute__((format(printf, 4, 5)));

/* ------------------------------------------------------------------ json.c */

/* A member of a JSON object: its key as written (no quotes), its value's text. */
typedef struct JhMember
{
	const char *key;
	size_t		key_len;
	const char *value;
	size_t		value_len;
} JhMember;

extern int	jh_json_check(const char *s, size_t len, char *kind);
extern int	jh_json_members(const char *s, size_t len, JhMember *m, int max);
extern size_t jh_json_escape(char *dst, size_t cap, const char *src);

/* ---------------------------------------------------------------- routes_* */

/* routes_relay.c: relay-rs's worker API */
extern void jh_relay_enqueue(JhRequest *r);
extern void jh_relay_enqueue_batch(JhRequest *r);
extern void jh_relay_next(JhRequest *r);
extern void jh_relay_heartbeat(JhRequest *r);
extern void jh_relay_reschedule(JhRequest *r);
extern void jh_relay_complete(JhRequest *r);
extern void jh_relay_exists(JhRequest *r);
extern void jh_relay_get(JhRequest *r);

/* routes_cluster.c: system information, stats, metrics, the OpenAPI document */
extern void jh_cluster_info(JhRequest *r);
extern void jh_cluster_state(JhRequest *r);
extern void jh_cluster_stats(JhRequest *r);
extern void jh_cluster_metrics(JhRequest *r);
extern void jh_cluster_openapi(JhRequest *r);

/* routes_queues.c */
extern void jh_queues_list(JhRequest *r);
extern void jh_queue_get(JhRequest *r);
extern void jh_queue_put(JhRequest *r);
extern void jh_queue_delete(JhRequest *r);
extern void jh_queue_pause(JhRequest *r);
extern void jh_queue_resume(JhRequest *r);

/* routes_jobs.c */
extern void jh_job_create(JhRequest *r);
extern void jh_jobs_list(JhRequest *r);
extern void jh_job_get(JhRequest *r);
extern void jh_job_update(JhRequest *r);
extern void jh_job_delete(JhRequest *r);
extern void jh_job_stop(JhRequest *r);
extern void jh_job_resume(JhRequest *r);
extern void jh_job_cancel(JhRequest *r);
extern void jh_job_recover(JhRequest *r);
extern void jh_job_versions(JhRequest *r);
extern void jh_job_events(JhRequest *r);
extern void jh_job_errors(JhRequest *r);
extern void jh_job_progress(JhRequest *r);
extern void jh_job_info(JhRequest *r);
extern void jh_job_data(JhRequest *r);

/* routes_ops.c */
extern void jh_ops_run(JhRequest *r);
extern void jh_ops_operations(JhRequest *r);

/* openapi.c, generated from openapi.yaml */
extern const char jh_openapi_yaml[];
extern const size_t jh_openapi_yaml_len;

/*
 * SQL fragments shared by the route files. J is a jobq.job row; V a jsonb
 * value that is a number of seconds or an interval string (relay's timeout);
 * T a jsonb value that is an epoch number or a timestamp string.
 */
#define JH_SQL_JOB(J) \
	"(pg_catalog.to_jsonb(" J ") - 'lease' - 'timeout' || pg_catalog.jsonb_build_object(" \
	"'timeout', pg_catalog.date_part('epoch', " J ".timeout), " \
	"'persist_data', " J ".persist))"
#define JH_SQL_INTERVAL(V) \
	"(CASE pg_catalog.jsonb_typeof(" V ") WHEN 'number' THEN " \
	"pg_catalog.make_interval(secs => (" V ")::float8) " \
	"ELSE (" V " #>> '{}')::interval END)"
#define JH_SQL_TIMESTAMP(V) \
	"(CASE pg_catalog.jsonb_typeof(" V ") WHEN 'number' THEN " \
	"pg_catalog.to_timestamp((" V ")::float8) " \
	"ELSE (" V " #>> '{}')::timestamptz END)"

/*
 * JH_SQL_BODY(P): "FROM" item s with column b, parameter P (a JSON text) as
 * jsonb, parsed once per execution. OFFSET 0 keeps the planner from pulling
 * the subquery up: that would put a copy of P::jsonb in place of every s.b,
 * and a generic plan (a prepared statement's, from its sixth execution on)
 * would parse the body again for each of them.
 */
#define JH_SQL_BODY(P) "(SELECT " P "::jsonb AS b OFFSET 0) s"

/*
 * The arguments of jobq.enqueue from job object B (jsonb), queue from
 * expression Q: relay's fields (id, timeout, persist_data, max_retries,
 * payload, state, run_at) and jobq's (persist, priority).
 */
#define JH_SQL_ENQUEUE_ARGS(Q, B) \
	"queue => " Q ", " \
	"payload => COALESCE(" B " -> 'payload', '{}'), " \
	"id => " B " ->> 'id', " \
	"timeout => " JH_SQL_INTERVAL(B " -> 'timeout'") ", " \
	"max_retries => (" B " ->> 'max_retries')::integer, " \
	"persist => COALESCE((" B " ->> 'persist_data')::boolean, (" B " ->> 'persist')::boolean, true), " \
	"run_at => " JH_SQL_TIMESTAMP(B " -> 'run_at'") ", " \
	"priority => COALESCE((" B " ->> 'priority')::integer, 0), " \
	"state => " B " -> 'state'"

/*
 * JH_SQL_ENQUEUED(Q, P): "FROM" item x with column j, the job jobq.enqueue made of the job
 * object in parameter P (JH_SQL_BODY; its queue from expression Q of s.b). enqueue is
 * called in a select list, not as a function in FROM, which would store its row in a
 * tuplestore first: 10% fewer instructions per statement (callgrind: 233 700 -> 211 300).
 * OFFSET 0 keeps the planner from putting a call in place of each (x.j).field.
 */
#define JH_SQL_ENQUEUED(Q, P) \
	"(SELECT jobq.enqueue(" JH_SQL_ENQUEUE_ARGS(Q, "s.b") ") AS j FROM " JH_SQL_BODY(P) \
	" OFFSET 0) x"

/*
 * JH_SQL_ENQUEUED_PLAIN(Q, P): JH_SQL_ENQUEUED for a job that gives only its payload (jsonb
 * text P; jh_plain_job), with queue Q: passed to enqueue as they are, 20% fewer
 * instructions per statement than taking the job object apart (callgrind, single-user
 * EXECUTEs: 223 000-229 000 -> 176 000).
 */
#define JH_SQL_ENQUEUED_PLAIN(Q, P) \
	"(SELECT jobq.enqueue(" Q ", " P "::jsonb) AS j OFFSET 0) x"

#endif							/* JOBQ_HTTP_H */
