/*-------------------------------------------------------------------------
 *
 * wake.c
 *	  The driver of benchmark W3 (bench/w3_latency.sh): producers and
 *	  LISTENing workers at once; throughput and enqueue-to-lease latency.
 *
 *	  wake QUEUE SECONDS [PRODUCERS [INTERVAL_US [WORKERS [BATCH]]]]
 *
 * Connects with libpq's environment (PGHOST, PGPORT, PGOPTIONS...), one
 * connection per thread, every call its own transaction (autocommit).
 *
 * Workers (default 4) LISTEN jobq, then loop: lease up to BATCH (default 10)
 * jobs with jobq.lease until it returns none (complete each with
 * jobq.complete), then wait for a notification naming QUEUE: poll() on the
 * connection's socket with a 1 s timeout (the issue: no polling loop faster
 * than once a second), PQconsumeInput, PQnotifies. A notification that came
 * in during a lease is still queued in libpq afterwards, so the worker
 * leases again instead of sleeping: nothing committed after a lease's
 * snapshot waits for the 1 s timeout.
 *
 * Producers (default 2) each enqueue one job every INTERVAL_US (default
 * 2000) microseconds on an absolute schedule (staggered between producers);
 * the payload {"t": MICROSECONDS} is the client's CLOCK_REALTIME taken just
 * before the enqueue call. A worker's latency sample is its CLOCK_REALTIME
 * right after jobq.lease returned minus that stamp: enqueue, commit, notify,
 * wake-up and lease.
 *
 * Producers run for SECONDS; the workers then drain what is left (at most
 * 10 s) and stop. Prints one line:
 *	  THROUGHPUT P50_MS P99_MS ENQUEUED COMPLETED LATE
 * THROUGHPUT is the jobs completed per second while the producers ran; LATE
 * counts the ticks a producer skipped because an enqueue took longer than
 * its interval. Exits 1 on any error (the message on stderr).
 *
 *-------------------------------------------------------------------------
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>

#define WAKE_POLL_MS		1000	/* longest sleep of an idle worker; >= 1 s */
#define WAKE_DRAIN_SECONDS	10		/* most time the workers get to drain */
#define WAKE_MAX_THREADS	64

typedef struct WakeWorker
{
	pthread_t	thread;
	int			no;
	int64_t		completed;		/* under state_lock */
	int64_t    *lat;			/* latency samples, microseconds */
	size_t		nlat;
	size_t		maxlat;
} WakeWorker;

typedef struct WakeProducer
{
	pthread_t	thread;
	int			no;
	int64_t		enqueued;		/* under state_lock */
	int64_t		late;
} WakeProducer;

static const char *queue;
static int	nproducers = 2;
static int	nworkers = 4;
static long interval_us = 2000;
static int	batch = 10;

static pthread_mutex_t state_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t progress;	/* a worker completed jobs; CLOCK_MONOTONIC */
static bool producing = true;	/* under state_lock */
static bool working = true;		/* under state_lock */
static int	stop_pipe[2] = {-1, -1};	/* readable once the workers must stop */
static pthread_barrier_t listening;	/* every worker has LISTENed */

static void
die(const char *fmt, const char *detail)
{
	fprintf(stderr, "wake: ");
	fprintf(stderr, fmt, detail);
	fputc('\n', stderr);
	exit(1);
}

static int64_t
clock_us(clockid_t clock)
{
	struct timespec ts;

	clock_gettime(clock, &ts);
	return (int64_t) ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static bool
get_flag(bool *flag)
{
	bool		v;

	pthread_mutex_lock(&state_lock);
	v = *flag;
	pthread_mutex_unlock(&state_lock);
	return v;
}

/* A connection from libpq's environment, with the statements prepared. */
static PGconn *
wake_connect(const char *const *names, const char *const *sqls, const int *nparams, int nstmts)
{
	PGconn	   *conn = PQconnectdb("");
	int			i;

	if (PQstatus(conn) != CONNECTION_OK)
		die("cannot connect: %s", PQerrorMessage(conn));
	for (i = 0; i < nstmts; i++)
	{
		PGresult   *res = PQprepare(conn, names[i], sqls[i], nparams[i], NULL);

		if (PQresultStatus(res) != PGRES_COMMAND_OK)
			die("prepare failed: %s", PQerrorMessage(conn));
		PQclear(res);
	}
	return conn;
}

/* Runs a prepared statement that returns rows; dies on an error. */
static PGresult *
wake_exec(PGconn *conn, const char *name, int nparams, const char *const *values)
{
	PGresult   *res = PQexecPrepared(conn, name, nparams, values, NULL, NULL, 0);

	if (PQresultStatus(res) != PGRES_TUPLES_OK)
		die("query failed: %s", PQerrorMessage(conn));
	return res;
}

/*
 * A producer: one enqueue per tick of its absolute schedule. A tick missed
 * by more than a whole interval (a slow enqueue) is skipped and counted, so
 * a stall is not followed by a burst.
 */
static void *
producer_main(void *arg)
{
	WakeProducer *p = arg;
	const char *names[] = {"enqueue"};
	const char *sqls[] = {"SELECT j.id FROM jobq.enqueue($1, $2::jsonb) j"};
	const int	nparams[] = {2};
	PGconn	   *conn = wake_connect(names, sqls, nparams, 1);
	struct timespec next;
	int64_t		next_us;
	char		payload[64];
	const char *values[2];

	values[0] = queue;
	values[1] = payload;
	next_us = clock_us(CLOCK_MONOTONIC) + interval_us * p->no / nproducers;
	while (get_flag(&producing))
	{
		PGresult   *res;
		int64_t		now;

		next.tv_sec = next_us / 1000000;
		next.tv_nsec = (next_us % 1000000) * 1000;
		while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL) == EINTR)
			;
		snprintf(payload, sizeof(payload), "{\"t\": %" PRId64 "}", clock_us(CLOCK_REALTIME));
		res = wake_exec(conn, "enqueue", 2, values);
		PQclear(res);

		now = clock_us(CLOCK_MONOTONIC);
		next_us += interval_us;
		pthread_mutex_lock(&state_lock);
		p->enqueued++;
		while (next_us < now - interval_us)
		{
			next_us += interval_us;
			p->late++;
		}
		pthread_mutex_unlock(&state_lock);
	}
	PQfinish(conn);
	return NULL;
}

/* Takes every queued notification; true when one of them names our queue. */
static bool
take_notifies(PGconn *conn)
{
	PGnotify   *n;
	bool		ours = false;

	while ((n = PQnotifies(conn)) != NULL)
	{
		if (strcmp(n->relname, "jobq") == 0 && strcmp(n->extra, queue) == 0)
			ours = true;
		PQfreemem(n);
	}
	return ours;
}

/* Keeps a latency sample; the array grows by doubling. */
static void
add_sample(WakeWorker *w, int64_t us)
{
	if (w->nlat == w->maxlat)
	{
		w->maxlat = w->maxlat ? w->maxlat * 2 : 4096;
		w->lat = realloc(w->lat, w->maxlat * sizeof(int64_t));
		if (w->lat == NULL)
			die("%s", "out of memory");
	}
	w->lat[w->nlat++] = us;
}

/*
 * A worker: drain the queue (lease BATCH, complete each, until a lease
 * returns none), then sleep until a notification for the queue, the 1 s
 * timeout, or the stop pipe.
 */
static void *
worker_main(void *arg)
{
	WakeWorker *w = arg;
	const char *names[] = {"lease", "complete"};
	const char *sqls[] = {
		"SELECT l.id, l.lease, (l.payload ->> 't')::bigint "
		"FROM jobq.lease($1, $2, $3::integer) l",
		"SELECT jobq.complete($1, $2, NULL, $3::uuid)"
	};
	const int	nparams[] = {3, 3};
	PGconn	   *conn = wake_connect(names, sqls, nparams, 2);
	PGresult   *res;
	char		worker[32];
	char		nbuf[16];
	const char *values[3];

	res = PQexec(conn, "LISTEN jobq");
	if (PQresultStatus(res) != PGRES_COMMAND_OK)
		die("LISTEN failed: %s", PQerrorMessage(conn));
	PQclear(res);
	snprintf(worker, sizeof(worker), "w3-%d", w->no);
	snprintf(nbuf, sizeof(nbuf), "%d", batch);
	pthread_barrier_wait(&listening);

	for (;;)
	{
		int			n;
		struct pollfd fds[2];

		do
		{
			int			i;
			int64_t		now;

			values[0] = queue;
			values[1] = worker;
			values[2] = nbuf;
			res = wake_exec(conn, "lease", 3, values);
			now = clock_us(CLOCK_REALTIME);
			n = PQntuples(res);
			for (i = 0; i < n; i++)
				add_sample(w, now - strtoll(PQgetvalue(res, i, 2), NULL, 10));
			for (i = 0; i < n; i++)
			{
				PGresult   *c;

				values[1] = PQgetvalue(res, i, 0);
				values[2] = PQgetvalue(res, i, 1);
				c = wake_exec(conn, "complete", 3, values);
				PQclear(c);
			}
			PQclear(res);
			pthread_mutex_lock(&state_lock);
			w->completed += n;
			if (n > 0)
				pthread_cond_signal(&progress);
			pthread_mutex_unlock(&state_lock);
		} while (n > 0);

		if (!get_flag(&working))
			break;
		if (take_notifies(conn))
			continue;			/* came in during the lease: lease again */

		fds[0].fd = PQsocket(conn);
		fds[0].events = POLLIN;
		fds[1].fd = stop_pipe[0];
		fds[1].events = POLLIN;
		if (poll(fds, 2, WAKE_POLL_MS) < 0 && errno != EINTR)
			die("poll: %s", strerror(errno));
		if (!PQconsumeInput(conn))
			die("connection lost: %s", PQerrorMessage(conn));
		take_notifies(conn);	/* woken or timed out, lease once more */
	}
	PQfinish(conn);
	return NULL;
}

static int
cmp_int64(const void *a, const void *b)
{
	int64_t		x = *(const int64_t *) a;
	int64_t		y = *(const int64_t *) b;

	return (x > y) - (x < y);
}

/* The nearest-rank percentile pct of the n sorted samples, in ms. */
static double
percentile_ms(const int64_t *v, size_t n, int pct)
{
	size_t		k;

	if (n == 0)
		return 0;
	k = (n * pct + 99) / 100;
	if (k == 0)
		k = 1;
	return v[k - 1] / 1000.0;
}

/* Sums the workers' completions and the producers' counters. */
static void
totals(WakeWorker *ws, WakeProducer *ps, int64_t *completed, int64_t *enqueued, int64_t *late)
{
	int			i;

	*completed = *enqueued = 0;
	if (late)
		*late = 0;
	pthread_mutex_lock(&state_lock);
	for (i = 0; i < nworkers; i++)
		*completed += ws[i].completed;
	for (i = 0; i < nproducers; i++)
	{
		*enqueued += ps[i].enqueued;
		if (late)
			*late += ps[i].late;
	}
	pthread_mutex_unlock(&state_lock);
}

static void
sleep_us(int64_t us)
{
	struct timespec ts;

	ts.tv_sec = us / 1000000;
	ts.tv_nsec = (us % 1000000) * 1000;
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

int
main(int argc, char **argv)
{
	WakeWorker	ws[WAKE_MAX_THREADS];
	WakeProducer ps[WAKE_MAX_THREADS];
	double		seconds;
	int64_t		t0, t1, c0, c1, e, l, done, drain_end;
	int64_t    *all;
	size_t		nall = 0;
	pthread_condattr_t attr;
	struct timespec deadline;
	int			i;

	if (argc < 3)
	{
		fprintf(stderr, "usage: wake QUEUE SECONDS [PRODUCERS [INTERVAL_US [WORKERS [BATCH]]]]\n");
		return 2;
	}
	queue = argv[1];
	seconds = atof(argv[2]);
	if (argc > 3)
		nproducers = atoi(argv[3]);
	if (argc > 4)
		interval_us = atol(argv[4]);
	if (argc > 5)
		nworkers = atoi(argv[5]);
	if (argc > 6)
		batch = atoi(argv[6]);
	if (seconds <= 0 || nproducers < 1 || nproducers > WAKE_MAX_THREADS ||
		interval_us < 1 || nworkers < 1 || nworkers > WAKE_MAX_THREADS || batch < 1)
	{
		fprintf(stderr, "wake: bad arguments\n");
		return 2;
	}
	if (pipe(stop_pipe) != 0)
		die("pipe: %s", strerror(errno));
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&progress, &attr);
	pthread_condattr_destroy(&attr);

	pthread_barrier_init(&listening, NULL, nworkers + 1);
	memset(ws, 0, sizeof(ws));
	memset(ps, 0, sizeof(ps));
	for (i = 0; i < nworkers; i++)
	{
		ws[i].no = i;
		if (pthread_create(&ws[i].thread, NULL, worker_main, &ws[i]) != 0)
			die("%s", "cannot start a worker");
	}
	pthread_barrier_wait(&listening);

	totals(ws, ps, &c0, &e, NULL);
	t0 = clock_us(CLOCK_MONOTONIC);
	for (i = 0; i < nproducers; i++)
	{
		ps[i].no = i;
		if (pthread_create(&ps[i].thread, NULL, producer_main, &ps[i]) != 0)
			die("%s", "cannot start a producer");
	}
	sleep_us((int64_t) (seconds * 1000000));
	pthread_mutex_lock(&state_lock);
	producing = false;
	pthread_mutex_unlock(&state_lock);
	for (i = 0; i < nproducers; i++)
		pthread_join(ps[i].thread, NULL);
	t1 = clock_us(CLOCK_MONOTONIC);
	totals(ws, ps, &c1, &e, &l);

	/* let the workers finish what was enqueued (woken by each completion), then stop them */
	drain_end = t1 + (int64_t) WAKE_DRAIN_SECONDS * 1000000;
	deadline.tv_sec = drain_end / 1000000;
	deadline.tv_nsec = (drain_end % 1000000) * 1000;
	pthread_mutex_lock(&state_lock);
	for (;;)
	{
		int64_t		c = 0;

		for (i = 0; i < nworkers; i++)
			c += ws[i].completed;
		if (c >= e || pthread_cond_timedwait(&progress, &state_lock, &deadline) == ETIMEDOUT)
			break;
	}
	working = false;
	pthread_mutex_unlock(&state_lock);
	if (write(stop_pipe[1], "x", 1) != 1)
		die("write: %s", strerror(errno));
	for (i = 0; i < nworkers; i++)
	{
		pthread_join(ws[i].thread, NULL);
		nall += ws[i].nlat;
	}

	all = malloc((nall ? nall : 1) * sizeof(int64_t));
	if (all == NULL)
		die("%s", "out of memory");
	nall = 0;
	for (i = 0; i < nworkers; i++)
	{
		memcpy(all + nall, ws[i].lat, ws[i].nlat * sizeof(int64_t));
		nall += ws[i].nlat;
		free(ws[i].lat);
	}
	qsort(all, nall, sizeof(int64_t), cmp_int64);
	totals(ws, ps, &done, &e, NULL);
	printf("%.1f %.3f %.3f %" PRId64 " %" PRId64 " %" PRId64 "\n",
		   (c1 - c0) / ((t1 - t0) / 1e6),
		   percentile_ms(all, nall, 50), percentile_ms(all, nall, 99),
		   e, done, l);
	free(all);
	if (done < e)
	{
		fprintf(stderr, "wake: %" PRId64 " of %" PRId64 " jobs were not completed\n",
				e - done, e);
		return 1;
	}
	return 0;
}
