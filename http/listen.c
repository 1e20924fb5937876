/*-------------------------------------------------------------------------
 *
 * listen.c
 *	  The LISTEN connection and the long-poll waiters it wakes.
 *
 * jobq._notify sends NOTIFY jobq, '<queue>' when jobs of a queue become
 * leasable (enqueue, release, reschedule, resume). One thread holds one
 * connection, outside the pool, that LISTENs on channel "jobq" and wakes the
 * waiters registered for the notified queue. A waiting request
 * (GET /v1/next?wait=N) holds no pooled connection: it registers, tries to
 * lease, and sleeps on its own condition variable until woken, its deadline,
 * or shutdown; registering before the lease attempt means a notification
 * sent between the attempt and the sleep is not lost.
 *
 * While the LISTEN connection is down (PostgreSQL restarting) waiters
 * re-check once a second, and every waiter is woken when it comes back,
 * since notifications sent meanwhile are lost. The thread reconnects every
 * JH_LISTEN_RETRY_MS.
 *
 *-------------------------------------------------------------------------
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "jobq_http.h"

#define JH_LISTEN_RETRY_MS	500

static pthread_mutex_t wait_lock = PTHREAD_MUTEX_INITIALIZER;
static JhWaiter *waiters;		/* doubly linked, under wait_lock */
static int	nwaiting;
static bool listener_up;		/* under wait_lock */
static pthread_t listen_thread;
static bool listen_started;
static int	wake_pipe[2] = {-1, -1};	/* wakes the thread for shutdown */

/* Wakes the waiters of queue, or all waiters when queue is NULL. */
static void
wake(const char *queue)
{
	JhWaiter   *w;

	pthread_mutex_lock(&wait_lock);
	for (w = waiters; w != NULL; w = w->next)
		if (queue == NULL || strcmp(w->queue, queue) == 0)
		{
			w->woken = true;
			pthread_cond_signal(w->cond);
		}
	pthread_mutex_unlock(&wait_lock);
}

static void
set_up(bool up)
{
	pthread_mutex_lock(&wait_lock);
	listener_up = up;
	pthread_mutex_unlock(&wait_lock);
}

/* Sleeps ms milliseconds, or less when shutdown begins. */
static void
nap(int ms)
{
	struct pollfd pfd;

	pfd.fd = wake_pipe[0];
	pfd.events = POLLIN;
	pfd.revents = 0;
	(void) poll(&pfd, 1, ms);
}

static void *
listen_main(void *arg)
{
	PGconn	   *pg = NULL;
	JhError		err;
	bool		said_down = false;

	(void) arg;
	while (!jh_stopping)
	{
		struct pollfd pfd[2];
		PGnotify   *n;

		if (pg == NULL)
		{
			PGresult   *res;

			pg = jh_connect(&err);
			if (pg != NULL)
			{
				res = PQexecParams(pg, "LISTEN jobq", 0, NULL, NULL, NULL, NULL, 0);
				if (PQresultStatus(res) != PGRES_COMMAND_OK)
				{
					jh_error_from_result(&err, res, pg);
					PQfinish(pg);
					pg = NULL;
				}
				PQclear(res);
			}
			if (pg == NULL)
			{
				if (!said_down)
					fprintf(stderr, "jobq-http: LISTEN connection: %s\n", err.message);
				said_down = true;
				nap(JH_LISTEN_RETRY_MS);
				continue;
			}
			said_down = false;
			set_up(true);
			wake(NULL);			/* notifications may have been missed */
		}

		pfd[0].fd = PQsocket(pg);
		pfd[0].events = POLLIN;
		pfd[0].revents = 0;
		pfd[1].fd = wake_pipe[0];
		pfd[1].events = POLLIN;
		pfd[1].revents = 0;
		if (poll(pfd, 2, 1000) < 0 && errno != EINTR)
			nap(100);
		if (jh_stopping)
			break;
		if (!PQconsumeInput(pg) || PQstatus(pg) != CONNECTION_OK)
		{
			fprintf(stderr, "jobq-http: LISTEN connection lost, reconnecting\n");
			PQfinish(pg);
			pg = NULL;
			set_up(false);
			wake(NULL);
			continue;
		}
		while ((n = PQnotifies(pg)) != NULL)
		{
			wake(n->extra);
			PQfreemem(n);
		}
	}
	if (pg != NULL)
		PQfinish(pg);
	set_up(false);
	return NULL;
}

void
jh_listen_start(void)
{
	if (pipe(wake_pipe) != 0)
	{
		perror("jobq-http: pipe");
		exit(1);
	}
	fcntl(wake_pipe[0], F_SETFL, O_NONBLOCK);
	if (pthread_create(&listen_thread, NULL, listen_main, NULL) != 0)
	{
		fprintf(stderr, "jobq-http: cannot start the LISTEN thread\n");
		exit(1);
	}
	listen_started = true;
}

/* Stops the LISTEN thread; jh_stopping is set already. */
void
jh_listen_stop(void)
{
	if (listen_started)
	{
		if (write(wake_pipe[1], "x", 1) < 0)
			perror("jobq-http: write");
		pthread_join(listen_thread, NULL);
		listen_started = false;
	}
	if (wake_pipe[0] >= 0)
	{
		close(wake_pipe[0]);
		close(wake_pipe[1]);
		wake_pipe[0] = wake_pipe[1] = -1;
	}
}

/* jh_wait_register: w waits for jobs of queue from now on. */
void
jh_wait_register(JhWaiter *w, const char *queue)
{
	w->queue = queue;
	w->woken = false;
	w->prev = NULL;
	pthread_mutex_lock(&wait_lock);
	w->next = waiters;
	if (waiters)
		waiters->prev = w;
	waiters = w;
	nwaiting++;
	pthread_mutex_unlock(&wait_lock);
}

void
jh_wait_unregister(JhWaiter *w)
{
	pthread_mutex_lock(&wait_lock);
	if (w->prev)
		w->prev->next = w->next;
	else
		waiters = w->next;
	if (w->next)
		w->next->prev = w->prev;
	nwaiting--;
	pthread_mutex_unlock(&wait_lock);
}

/*
 * jh_wait_for: sleeps until w is woken (true: a job may have arrived), or
 * deadline passes or shutdown begins (false). Clears the wake-up.
 */
bool
jh_wait_for(JhWaiter *w, const struct timespec *deadline)
{
	bool		woken;

	pthread_mutex_lock(&wait_lock);
	while (!w->woken && !jh_stopping)
	{
		struct timespec until = *deadline;
		struct timespec now;
		int			rc;

		clock_gettime(CLOCK_MONOTONIC, &now);
		if (!listener_up && now.tv_sec + 1 < until.tv_sec)
		{
			/* no notifications while the LISTEN connection is down: re-check */
			until = now;
			until.tv_sec += 1;
		}
		rc = pthread_cond_timedwait(w->cond, &wait_lock, &until);
		if (rc == ETIMEDOUT)
		{
			clock_gettime(CLOCK_MONOTONIC, &now);
			if (now.tv_sec > deadline->tv_sec ||
				(now.tv_sec == deadline->tv_sec && now.tv_nsec >= deadline->tv_nsec))
				break;
			if (!listener_up)
				w->woken = true;
		}
	}
	woken = w->woken;
	w->woken = false;
	pthread_mutex_unlock(&wait_lock);
	return woken && !jh_stopping;
}

/* Wakes every waiter (shutdown). */
void
jh_wait_wake_all(void)
{
	wake(NULL);
}

void
jh_listen_stats(bool *up, int *waiting)
{
	pthread_mutex_lock(&wait_lock);
	*up = listener_up;
	*waiting = nwaiting;
	pthread_mutex_unlock(&wait_lock);
}
