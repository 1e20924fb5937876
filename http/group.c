/*-------------------------------------------------------------------------
 *
 * group.c
 *	  Plain enqueues (POST /v1/enqueue with only queue and payload) that
 *	  arrive together are enqueued together: one statement, one transaction.
 *
 * Each plain enqueue joins a list, and its request leads when fewer groups
 * run than group_streams() allows: any number while the plain enqueues in
 * flight fit in the pool, or with --enqueue-streams 0 (each runs at once,
 * alone, as without grouping), jh_config.enqueue_streams past that. A leader takes
 * the jobs waiting in the list (the oldest job's role decides which: a
 * group runs under one role, so created_by and the GRANTs are each job's
 * own), up to JH_GROUP_MAX jobs and JH_GROUP_BYTES of payload, runs them on
 * one pooled connection, puts each job's answer in it, and wakes its
 * request. Requests that arrive while the streams are busy wait, and go
 * together in the next group: under load a group is as large as the
 * requests that came during the previous statement, so the statements,
 * round trips and commits per job fall, as under a group commit.
 *
 * A group of one runs the single statement (enqueue_one_stmt). A larger
 * group runs enqueue_group_stmt, which calls jobq.enqueue for each job in
 * one transaction. When that statement fails, nothing was enqueued (the
 * transaction rolled back). If the error can be one job's own (an empty
 * queue name, a payload jsonb refuses: group_error_is_jobs), the leader runs
 * each job alone, so it is that job's answer only, exactly as without
 * grouping. An error of the group's circumstances (a statement timeout, a
 * lock not available, the role's privileges, a read-only server) is every
 * job's answer, without running each into it again. When the connection is
 * lost, whether the group committed is unknown: every job gets the error,
 * none is run again (a job is never enqueued twice).
 *
 * Locking: group_lock guards the list, nleading and every waiting job's
 * state. A leader writes a job's answer into the job's request (jh_strndup)
 * while its owner sleeps, then sets the state and signals it under
 * group_lock. A leader that ends with jobs still waiting signals the oldest,
 * whose request then leads, so a waiting job never lacks a leader. A job
 * waits in the list at most --timeout, as a request waits for a pooled
 * connection, then leaves it with 429 (passing on a signal it may have
 * taken); a job in a group waits for its leader, whose statement the
 * statement_timeout bounds.
 *
 *-------------------------------------------------------------------------
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jobq_http.h"

#define JH_GROUP_MAX	64			/* jobs in one group */
#define JH_GROUP_BYTES	(1 << 20)	/* payload bytes in one group (one job may be larger) */

typedef enum JhGroupState
{
	JH_GROUP_WAITING,			/* in the waiting list */
	JH_GROUP_TAKEN,				/* in a leader's group */
	JH_GROUP_DONE,
	JH_GROUP_FAILED
} JhGroupState;

typedef struct JhGroupJob
{
	struct JhGroupJob *next;
	JhRequest  *r;
	const char *queue;
	const char *payload;
	size_t		size;			/* queue and payload bytes */
	JhGroupState state;			/* changed under group_lock only */
	JhGroupState outcome;		/* the leader's, until it sets state */
	const char *answer[3];		/* id, queue, status (JH_GROUP_DONE) */
	JhError		err;			/* JH_GROUP_FAILED */
	pthread_cond_t wake;
} JhGroupJob;

/* One plain job: jobq.enqueue(queue, payload), its id, queue and status. */
static const JhStmt enqueue_one_stmt = {
	"relay_enqueue_plain",
	"SELECT (x.j).id, (x.j).queue, (x.j).status FROM " JH_SQL_ENQUEUED_PLAIN("$1", "$2"),
	2
};

/*
 * A group: $1 is a JSON array of [queue, payload] pairs; a row per job, with
 * its place in the array (ordinality) to find its request by.
 */
static const JhStmt enqueue_group_stmt = {
	"relay_enqueue_group",
	"SELECT e.o, (x.j).id, (x.j).queue, (x.j).status "
	"FROM pg_catalog.jsonb_array_elements($1::jsonb) WITH ORDINALITY AS e(v, o), "
	"LATERAL (SELECT jobq.enqueue(e.v ->> 0, e.v -> 1) AS j OFFSET 0) x",
	1
};

static pthread_mutex_t group_lock = PTHREAD_MUTEX_INITIALIZER;
static JhGroupJob *waiting;		/* oldest first */
static int	nleading;			/* groups running */
static int	ninflight;			/* plain enqueues in jh_group_enqueue */
static uint64_t ngroups;		/* groups of two jobs or more run */
static uint64_t ngrouped;		/* jobs in them */

/*
 * How many groups may run at once now: while the plain enqueues in flight fit
 * in the pool, or with --enqueue-streams 0, no limit, so each request leads
 * (and runs alone, as without grouping: a group costs its jobs the parallel
 * statements that a lightly loaded sidecar has connections for); past that
 * they would wait for a connection anyway, and wait to go together instead,
 * jh_config.enqueue_streams groups at a time.
 */
static int
group_streams(void)
{
	if (jh_config.enqueue_streams == 0 || ninflight <= jh_config.pool)
		return INT_MAX;
	return jh_config.enqueue_streams;
}

static bool
same_role(const char *a, const char *b)
{
	return a == b || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

/* Copies row of res (columns from col: id, queue, status) into job's answer. */
static void
group_answer(JhGroupJob *job, const PGresult *res, int row, int col)
{
	int			i;

	for (i = 0; i < 3; i++)
		job->answer[i] = jh_strndup(job->r, PQgetvalue(res, row, col + i),
									(size_t) PQgetlength(res, row, col + i));
	job->outcome = JH_GROUP_DONE;
}

/* Gives every job of jobs[0..n-1] the error err. */
static void
group_fail(JhGroupJob **jobs, int n, const JhError *err)
{
	int			i;

	for (i = 0; i < n; i++)
	{
		jobs[i]->err = *err;
		jobs[i]->outcome = JH_GROUP_FAILED;
	}
}

/*
 * Whether a group's error (SQLSTATE state) may be one of its jobs' own, so
 * that each should run alone: not when it comes from the connection, the
 * server's state or resources (08, 25, 53, 57, 58, XX), a lock wait that
 * gave up (55P03) or the role's privileges (42501), which every job of the
 * group would meet again.
 */
static bool
group_error_is_jobs(const char *state)
{
	static const char *const classes[] = {"08", "25", "53", "57", "58", "XX"};
	size_t		i;

	if (strcmp(state, "42501") == 0 || strcmp(state, "55P03") == 0)
		return false;
	for (i = 0; i < sizeof(classes) / sizeof(classes[0]); i++)
		if (strncmp(state, classes[i], 2) == 0)
			return false;
	return true;
}

/* Runs job alone on c: its own statement and transaction. */
static void
group_run_one(JhConn *c, JhGroupJob *job)
{
	const char *values[2] = {job->queue, job->payload};
	PGresult   *res = jh_pool_exec(c, &enqueue_one_stmt, values, &job->err);

	if (res == NULL)
		job->outcome = JH_GROUP_FAILED;
	else
	{
		group_answer(job, res, 0, 0);
		PQclear(res);
	}
}

/*
 * Runs jobs[0..n-1] (n >= 2) as one statement on c. False when they should
 * run alone: the statement failed with an error that may be one job's own
 * (nothing was enqueued), or its parameter could not be allocated.
 * Otherwise every job is answered: its row, or the group's error.
 */
static bool
group_run_many(JhConn *c, JhGroupJob **jobs, int n, JhError *err)
{
	size_t		cap = 3;
	char	   *array;
	char	   *p;
	const char *values[1];
	PGresult   *res;
	int			i;

	for (i = 0; i < n; i++)
		cap += jobs[i]->size + 6;
	array = malloc(cap);
	if (array == NULL)
		return false;
	/* a plain job's queue holds no backslash or quote, and its payload is JSON */
	p = array;
	*p++ = '[';
	for (i = 0; i < n; i++)
		p += sprintf(p, "%s[\"%s\",%s]", i ? "," : "", jobs[i]->queue, jobs[i]->payload);
	*p++ = ']';
	*p = '\0';
	values[0] = array;
	res = jh_pool_exec(c, &enqueue_group_stmt, values, err);
	free(array);
	if (res == NULL)
	{
		if (jh_pool_connected(c) && group_error_is_jobs(err->sqlstate))
			return false;
		group_fail(jobs, n, err);
		return true;
	}
	for (i = 0; i < PQntuples(res); i++)
	{
		long		o = strtol(PQgetvalue(res, i, 0), NULL, 10);

		if (o >= 1 && o <= n)
			group_answer(jobs[o - 1], res, i, 1);
	}
	PQclear(res);
	for (i = 0; i < n; i++)
		if (jobs[i]->outcome == JH_GROUP_TAKEN)
		{
			/* cannot happen: jobq.enqueue returns a row per call */
			jh_error_set(&jobs[i]->err, 500, "XX000", "internal error (no row for a grouped job)");
			jobs[i]->outcome = JH_GROUP_FAILED;
		}
	return true;
}

/*
 * group_lead: called with group_lock held and a stream free; takes a group
 * from the waiting list, runs it without the lock, and answers its jobs.
 * Returns with group_lock held.
 */
static void
group_lead(void)
{
	JhGroupJob *jobs[JH_GROUP_MAX];
	JhGroupJob **link = &waiting;
	const char *role = waiting->r->role;
	size_t		bytes = 0;
	int			n = 0;
	int			i;
	JhConn	   *c;
	JhError		err;

	while (*link != NULL && n < JH_GROUP_MAX)
	{
		JhGroupJob *job = *link;

		if (same_role(job->r->role, role) && (n == 0 || bytes + job->size <= JH_GROUP_BYTES))
		{
			*link = job->next;
			job->state = JH_GROUP_TAKEN;
			job->outcome = JH_GROUP_TAKEN;
			jobs[n++] = job;
			bytes += job->size;
		}
		else
			link = &job->next;
	}
	nleading++;
	if (n > 1)
	{
		ngroups++;
		ngrouped += (uint64_t) n;
	}
	pthread_mutex_unlock(&group_lock);

	c = jh_pool_acquire(role, &err);
	if (c == NULL)
		group_fail(jobs, n, &err);
	else
	{
		if (n == 1 || !group_run_many(c, jobs, n, &err))
			for (i = 0; i < n; i++)
				group_run_one(c, jobs[i]);
		jh_pool_release(c);
	}

	pthread_mutex_lock(&group_lock);
	nleading--;
	/* under group_lock: a job's owner returns (and its job is gone) once it sees its state */
	for (i = 0; i < n; i++)
	{
		jobs[i]->state = jobs[i]->outcome;
		pthread_cond_signal(&jobs[i]->wake);
	}
	if (waiting != NULL)
		pthread_cond_signal(&waiting->wake);
}

/*
 * jh_group_enqueue: enqueues a plain job (jh_plain_job's queue and payload)
 * for r, grouped with those that arrive with it; answer gets its id, queue
 * and status. False when r was answered with the error.
 */
bool
jh_group_enqueue(JhRequest *r, const char *queue, const char *payload, const char *answer[3])
{
	JhGroupJob	job;
	JhGroupJob **link;
	struct timespec deadline;
	int			i;

	memset(&job, 0, sizeof(job));
	job.r = r;
	job.queue = queue;
	job.payload = payload;
	job.size = strlen(queue) + strlen(payload);
	job.state = JH_GROUP_WAITING;
	jh_cond_init(&job.wake);
	/* a job waits for a group as a request waits for a pooled connection */
	jh_deadline(&deadline, (int64_t) jh_config.timeout * 1000000);

	pthread_mutex_lock(&group_lock);
	ninflight++;
	for (link = &waiting; *link != NULL; link = &(*link)->next)
		;
	*link = &job;
	while (job.state == JH_GROUP_WAITING || job.state == JH_GROUP_TAKEN)
	{
		if (job.state == JH_GROUP_TAKEN)
			pthread_cond_wait(&job.wake, &group_lock);
		else if (nleading < group_streams())
			group_lead();
		else if (pthread_cond_timedwait(&job.wake, &group_lock, &deadline) == ETIMEDOUT &&
				 job.state == JH_GROUP_WAITING && nleading >= group_streams())
		{
			for (link = &waiting; *link != &job; link = &(*link)->next)
				;
			*link = job.next;
			jh_error_set(&job.err, 429, "53300", "all %d database connections are busy",
						 jh_config.pool);
			job.state = JH_GROUP_FAILED;
			/* a hand-off this job took with its timeout goes to the next */
			if (waiting != NULL)
				pthread_cond_signal(&waiting->wake);
		}
	}
	ninflight--;
	pthread_mutex_unlock(&group_lock);
	pthread_cond_destroy(&job.wake);

	if (job.state == JH_GROUP_FAILED)
	{
		jh_reply_pgerror(r, &job.err);
		return false;
	}
	for (i = 0; i < 3; i++)
		answer[i] = job.answer[i];
	return true;
}

/* jh_group_stats: the groups of two jobs or more run so far, and the jobs in them. */
void
jh_group_stats(uint64_t *groups, uint64_t *jobs)
{
	pthread_mutex_lock(&group_lock);
	*groups = ngroups;
	*jobs = ngrouped;
	pthread_mutex_unlock(&group_lock);
}
