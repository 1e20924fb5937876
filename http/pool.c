/*-------------------------------------------------------------------------
 *
 * pool.c
 *	  A fixed-size pool of libpq connections.
 *
 * jh_config.pool slots, each connected lazily. A request takes one slot
 * (jh_pool_acquire), runs prepared statements on it (jh_pool_exec) and gives
 * it back (jh_pool_release). Statements are prepared on a connection the
 * first time they run there, and forgotten when the connection is replaced.
 *
 * Health: before a slot is handed out its connection is checked without a
 * round trip (a readable idle socket means the server said something, such
 * as "terminating connection" during a shutdown, or closed it); a broken
 * connection is replaced. When connecting fails, every request fails fast
 * with 429 (Retry-After) for JH_DOWN_MS instead of trying again, so a
 * stopped PostgreSQL costs neither a hang nor a connection storm; after a
 * restart the next request reconnects.
 *
 * Roles: with a bearer token mapped to a role, the slot runs
 * set_config('role', ...) when acquired and RESET ROLE when released; a
 * connection whose reset fails is closed, never reused with another role.
 *
 * Locking: a slot is taken by setting its in_use flag with a compare-and-swap
 * and given back by clearing it, without a lock, so that requests do not
 * queue on one mutex; each thread tries the slot it used last first. Only a
 * request that finds every slot taken takes pool_lock and sleeps on
 * pool_freed, counted in nwaiting; a release that sees a waiter signals it
 * under pool_lock (the waiter counts itself, then looks at the slots again
 * before it sleeps, so no release is missed). pool_lock also guards the down
 * state. A slot's connection is used only by the thread holding the slot;
 * its connected flag is a hint for the others ("prefer a connected slot").
 *
 *-------------------------------------------------------------------------
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jobq_http.h"

#define JH_MAX_STMTS	96
#define JH_DOWN_MS		250

struct JhConn
{
	PGconn	   *pg;
	bool		in_use;			/* atomic: taken by a request */
	bool		connected;		/* atomic hint: pg != NULL */
	bool		role_set;
	int			nprepared;
	const JhStmt *prepared[JH_MAX_STMTS];
};

static JhConn *slots;
static int	nslots;
static int	nbusy;				/* atomic */
static int	nconnected;			/* atomic */
static int	nwaiting;			/* atomic; changed under pool_lock */
static pthread_mutex_t pool_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t pool_freed;
static __thread int pool_hint;	/* the slot this thread took last */
static int64_t down_until_us;	/* connecting failed: fail fast until then */
static char down_reason[512];
static bool db_up;

void
jh_pool_init(void)
{
	jh_cond_init(&pool_freed);
	nslots = jh_config.pool;
	slots = calloc(nslots, sizeof(JhConn));
	if (slots == NULL)
	{
		fprintf(stderr, "jobq-http: out of memory\n");
		exit(1);
	}
}

/* Closes every connection; called once no request runs any more. */
void
jh_pool_close(void)
{
	int			i;

	for (i = 0; i < nslots; i++)
		if (slots[i].pg)
			PQfinish(slots[i].pg);
	free(slots);
	slots = NULL;
	nslots = 0;
	pthread_cond_destroy(&pool_freed);
}

/*
 * jh_connect: a new connection to jh_config.db, or NULL with err set (429).
 * The defaults before the user's connection string (which overrides them)
 * bound the time a connection attempt can take.
 */
PGconn *
jh_connect(JhError *err)
{
	const char *const keys[] = {"fallback_application_name", "connect_timeout",
	"client_encoding", "dbname", NULL};
	const char *const vals[] = {"jobq-http", "5", "UTF8", jh_config.db, NULL};
	PGconn	   *pg;
	char		msg[256];
	size_t		n;

	pg = PQconnectdbParams(keys, vals, 1);
	if (pg != NULL && PQstatus(pg) == CONNECTION_OK)
		return pg;
	snprintf(msg, sizeof(msg), "%s", pg ? PQerrorMessage(pg) : "out of memory");
	n = strlen(msg);
	while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == ' '))
		msg[--n] = '\0';
	jh_error_set(err, 429, "08001", "database unavailable: %s", msg);
	if (pg)
		PQfinish(pg);
	return NULL;
}

/* True when an idle connection is still usable, judged without a round trip. */
static bool
pool_alive(PGconn *pg)
{
	struct pollfd pfd;
	PGnotify   *n;

	if (PQstatus(pg) != CONNECTION_OK || PQtransactionStatus(pg) != PQTRANS_IDLE)
		return false;
	pfd.fd = PQsocket(pg);
	pfd.events = POLLIN;
	pfd.revents = 0;
	if (pfd.fd < 0)
		return false;
	if (poll(&pfd, 1, 0) > 0)
	{
		if (pfd.revents & (POLLERR | POLLHUP | POLLNVAL))
			return false;
		if (!PQconsumeInput(pg) || PQstatus(pg) != CONNECTION_OK)
			return false;
		while ((n = PQnotifies(pg)) != NULL)
			PQfreemem(n);
	}
	return true;
}

static void
pool_drop(JhConn *c)
{
	if (c->pg)
	{
		PQfinish(c->pg);
		__atomic_fetch_sub(&nconnected, 1, __ATOMIC_RELAXED);
	}
	__atomic_store_n(&c->connected, false, __ATOMIC_RELAXED);
	c->pg = NULL;
	c->nprepared = 0;
	c->role_set = false;
}

/* Makes sure slot c has a healthy connection; else err is set (429). */
static bool
pool_connect(JhConn *c, JhError *err)
{
	int64_t		now = jh_now_us();
	PGconn	   *pg;
	char		timeout[32];
	const char *values[1];
	PGresult   *res;

	if (c->pg && pool_alive(c->pg))
		return true;
	pool_drop(c);

	pthread_mutex_lock(&pool_lock);
	if (now < down_until_us)
	{
		jh_error_set(err, 429, "08001", "%s", down_reason);
		pthread_mutex_unlock(&pool_lock);
		return false;
	}
	pthread_mutex_unlock(&pool_lock);

	pg = jh_connect(err);
	if (pg != NULL)
	{
		/* the request timeout bounds every statement */
		snprintf(timeout, sizeof(timeout), "%ds", jh_config.timeout);
		values[0] = timeout;
		res = PQexecParams(pg, "SELECT pg_catalog.set_config('statement_timeout', $1, false)",
						   1, NULL, values, NULL, NULL, 0);
		if (PQresultStatus(res) != PGRES_TUPLES_OK)
		{
			jh_error_from_result(err, res, pg);
			PQfinish(pg);
			pg = NULL;
		}
		PQclear(res);
	}

	pthread_mutex_lock(&pool_lock);
	if (pg == NULL)
	{
		if (db_up || down_until_us == 0)
			fprintf(stderr, "jobq-http: %s\n", err->message);
		db_up = false;
		down_until_us = jh_now_us() + JH_DOWN_MS * 1000;
		snprintf(down_reason, sizeof(down_reason), "%s", err->message);
	}
	else
	{
		if (!db_up)
			fprintf(stderr, "jobq-http: connected to the database\n");
		db_up = true;
		__atomic_fetch_add(&nconnected, 1, __ATOMIC_RELAXED);
		down_until_us = 0;
	}
	pthread_mutex_unlock(&pool_lock);
	if (pg == NULL)
		return false;
	c->pg = pg;
	__atomic_store_n(&c->connected, true, __ATOMIC_RELAXED);
	return true;
}

/*
 * pool_take: takes a free slot, a connected one if any is free, trying the
 * slot this thread had last first; NULL when every slot is taken.
 */
static JhConn *
pool_take(void)
{
	int			pass;
	int			k;

	for (pass = 0; pass < 2; pass++)
		for (k = 0; k < nslots; k++)
		{
			int			i = (pool_hint + k) % nslots;
			JhConn	   *c = &slots[i];
			bool		expected = false;

			if (pass == 0 && !__atomic_load_n(&c->connected, __ATOMIC_RELAXED))
				continue;
			if (__atomic_load_n(&c->in_use, __ATOMIC_RELAXED))
				continue;
			if (__atomic_compare_exchange_n(&c->in_use, &expected, true, false,
											__ATOMIC_SEQ_CST, __ATOMIC_RELAXED))
			{
				pool_hint = i;
				__atomic_fetch_add(&nbusy, 1, __ATOMIC_RELAXED);
				return c;
			}
		}
	return NULL;
}

/*
 * jh_pool_acquire: a slot with a healthy connection, switched to role when
 * role is not NULL. Waits up to the request timeout for a free slot. NULL
 * with err set when none is free (429), the database is unreachable (429),
 * or the role cannot be set (403 when not a member, as PostgreSQL says).
 */
JhConn *
jh_pool_acquire(const char *role, JhError *err)
{
	JhConn	   *c;
	struct timespec deadline;

	c = pool_take();
	if (c == NULL)
	{
		jh_deadline(&deadline, (int64_t) jh_config.timeout * 1000000);
		pthread_mutex_lock(&pool_lock);
		__atomic_fetch_add(&nwaiting, 1, __ATOMIC_SEQ_CST);
		while ((c = pool_take()) == NULL)
		{
			if (pthread_cond_timedwait(&pool_freed, &pool_lock, &deadline) == ETIMEDOUT)
			{
				c = pool_take();
				break;
			}
		}
		__atomic_fetch_sub(&nwaiting, 1, __ATOMIC_SEQ_CST);
		pthread_mutex_unlock(&pool_lock);
		if (c == NULL)
		{
			jh_error_set(err, 429, "53300", "all %d database connections are busy", nslots);
			return NULL;
		}
	}

	if (!pool_connect(c, err))
	{
		jh_pool_release(c);
		return NULL;
	}
	if (role != NULL)
	{
		PGresult   *res;
		const char *values[1] = {role};

		res = PQexecParams(c->pg, "SELECT pg_catalog.set_config('role', $1, false)",
						   1, NULL, values, NULL, NULL, 0);
		c->role_set = true;
		if (PQresultStatus(res) != PGRES_TUPLES_OK)
		{
			jh_error_from_result(err, res, c->pg);
			if (err->status != 429)
			{
				fprintf(stderr, "jobq-http: cannot set role \"%s\": %s\n", role, err->message);
				if (err->status != 403)
					jh_error_set(err, 500, err->sqlstate, "the token's role cannot be used");
			}
			PQclear(res);
			jh_pool_release(c);
			return NULL;
		}
		PQclear(res);
	}
	return c;
}

/*
 * jh_pool_release: gives slot c back, rolled back to idle and reset to the
 * login role; a connection that cannot be reset is closed.
 */
void
jh_pool_release(JhConn *c)
{
	bool		ok = c->pg != NULL && PQstatus(c->pg) == CONNECTION_OK;
	PGresult   *res;

	if (ok && PQtransactionStatus(c->pg) != PQTRANS_IDLE)
	{
		res = PQexecParams(c->pg, "ROLLBACK", 0, NULL, NULL, NULL, NULL, 0);
		ok = PQresultStatus(res) == PGRES_COMMAND_OK;
		PQclear(res);
	}
	if (ok && c->role_set)
	{
		res = PQexecParams(c->pg, "RESET ROLE", 0, NULL, NULL, NULL, NULL, 0);
		ok = PQresultStatus(res) == PGRES_COMMAND_OK;
		PQclear(res);
	}
	c->role_set = false;
	if (!ok)
		pool_drop(c);

	__atomic_fetch_sub(&nbusy, 1, __ATOMIC_RELAXED);
	__atomic_store_n(&c->in_use, false, __ATOMIC_SEQ_CST);
	if (__atomic_load_n(&nwaiting, __ATOMIC_SEQ_CST) > 0)
	{
		pthread_mutex_lock(&pool_lock);
		pthread_cond_signal(&pool_freed);
		pthread_mutex_unlock(&pool_lock);
	}
}

/*
 * jh_pool_exec: runs statement st with text parameters on c, preparing it
 * there first if needed. Returns the result (the caller clears it), or NULL
 * with err set.
 */
PGresult *
jh_pool_exec(JhConn *c, const JhStmt *st, const char *const *values, JhError *err)
{
	PGresult   *res;
	int			i;
	bool		prepared = false;

	for (i = 0; i < c->nprepared; i++)
		if (c->prepared[i] == st)
			prepared = true;
	if (!prepared)
	{
		res = PQprepare(c->pg, st->name, st->sql, st->nparams, NULL);
		if (PQresultStatus(res) != PGRES_COMMAND_OK)
		{
			jh_error_from_result(err, res, c->pg);
			PQclear(res);
			return NULL;
		}
		PQclear(res);
		if (c->nprepared < JH_MAX_STMTS)
			c->prepared[c->nprepared++] = st;
	}
	res = PQexecPrepared(c->pg, st->name, st->nparams, values, NULL, NULL, 0);
	if (PQresultStatus(res) == PGRES_TUPLES_OK || PQresultStatus(res) == PGRES_COMMAND_OK)
		return res;
	jh_error_from_result(err, res, c->pg);
	PQclear(res);
	return NULL;
}

/* jh_pool_connected: whether c's connection is still up (after a failed statement). */
bool
jh_pool_connected(JhConn *c)
{
	return c->pg != NULL && PQstatus(c->pg) == CONNECTION_OK;
}

/* jh_pool_command: runs a constant command without parameters (BEGIN, COMMIT). */
bool
jh_pool_command(JhConn *c, const char *sql, JhError *err)
{
	PGresult   *res = PQexecParams(c->pg, sql, 0, NULL, NULL, NULL, NULL, 0);
	bool		ok = PQresultStatus(res) == PGRES_COMMAND_OK ||
		PQresultStatus(res) == PGRES_TUPLES_OK;

	if (!ok)
		jh_error_from_result(err, res, c->pg);
	PQclear(res);
	return ok;
}

/* jh_pool_set_timeout: sets c's statement_timeout for the statements to come. */
bool
jh_pool_set_timeout(JhConn *c, int seconds, JhError *err)
{
	char		timeout[32];
	const char *values[1] = {timeout};
	PGresult   *res;
	bool		ok;

	snprintf(timeout, sizeof(timeout), "%ds", seconds);
	res = PQexecParams(c->pg, "SELECT pg_catalog.set_config('statement_timeout', $1, false)",
					   1, NULL, values, NULL, NULL, 0);
	ok = PQresultStatus(res) == PGRES_TUPLES_OK;
	if (!ok)
		jh_error_from_result(err, res, c->pg);
	PQclear(res);
	return ok;
}

void
jh_pool_stats(int *size, int *in_use, int *connected, bool *up)
{
	pthread_mutex_lock(&pool_lock);
	*size = nslots;
	*in_use = __atomic_load_n(&nbusy, __ATOMIC_RELAXED);
	*connected = __atomic_load_n(&nconnected, __ATOMIC_RELAXED);
	*up = db_up;
	pthread_mutex_unlock(&pool_lock);
}
