/*-------------------------------------------------------------------------
 *
 * notify.c
 *	  jobq._notify_later(queue): leaves the NOTIFY jobq, '<queue>' of this
 *	  transaction to the reaper of the database.
 *
 *	  PostgreSQL serialises the commits of transactions that NOTIFY: each
 *	  takes one cluster-wide lock from just before its commit until its end
 *	  (so that notifications are queued in commit order), and with
 *	  synchronous_commit each holds it across its own WAL flush. A queue whose
 *	  every enqueue notifies commits its enqueues one at a time.
 *
 *	  So while a reaper serves the database (and is not busy with a VACUUM),
 *	  jobq._notify_later notes the queue in this backend and returns true;
 *	  once the transaction has committed (and its jobs are visible), the
 *	  transaction callback hands the noted queues to the reaper's slot in
 *	  shared memory (reaper_notify_push, reaper_state.c), which wakes the
 *	  reaper; it sends the NOTIFYs of every transaction that committed since
 *	  its last round in one transaction of its own (reaper.c). An abort
 *	  forgets them, as PostgreSQL forgets an aborted transaction's NOTIFY.
 *	  Otherwise it returns false and the caller (jobq._notify, jobq.enqueue)
 *	  sends its NOTIFY itself, as jobq.notify_via_reaper = off asks.
 *
 *	  Listeners see the same channel and payload, from the reaper's PID; a
 *	  notification still comes only after the jobs it announces are visible.
 *	  It is a hint either way: workers find jobs by leasing.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/guc.h"

#include "jobq.h"
#include "reaper.h"

PG_FUNCTION_INFO_V1(jobq_notify_later);

static bool notify_via_reaper = true;	/* jobq.notify_via_reaper */

/* The queues this transaction left to the reaper. */
static char later[REAPER_NOTIFY_MAX][REAPER_NOTIFY_LEN];
static int	nlater = 0;
static bool later_all = false;	/* more queues than later holds */
static bool callback_registered = false;

static void
notify_xact_callback(XactEvent event, void *arg)
{
	if (nlater == 0 && !later_all)
		return;
	switch (event)
	{
		case XACT_EVENT_COMMIT:
			reaper_notify_push(MyDatabaseId, later, nlater, later_all);
			break;
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PREPARE:
		case XACT_EVENT_PARALLEL_ABORT:
			/* a prepared transaction commits later, elsewhere: no notification */
			break;
		default:
			return;
	}
	nlater = 0;
	later_all = false;
}

void
jobq_notify_init(void)
{
	DefineCustomBoolVariable("jobq.notify_via_reaper",
							 "Leave a transaction's NOTIFY jobq to the reaper.",
							 "On: while a reaper serves the database, it sends the notifications of committed transactions, which then do not queue behind one another's NOTIFY at commit. Off: each transaction sends its own.",
							 &notify_via_reaper,
							 true,
							 PGC_USERSET,
							 0,
							 NULL, NULL, NULL);
}

/*
 * jobq._notify_later(queue) returns boolean: true when the reaper will send
 * this transaction's NOTIFY jobq, queue once it commits; false when the
 * caller must send it (no reaper, jobq.notify_via_reaper off, or the caller
 * is the reaper).
 */
Datum
jobq_notify_later(PG_FUNCTION_ARGS)
{
	text	   *queue;
	int			len;
	int			i;

	if (PG_ARGISNULL(0) || !notify_via_reaper || jobq_in_reaper)
		PG_RETURN_BOOL(false);
	queue = PG_GETARG_TEXT_PP(0);
	len = VARSIZE_ANY_EXHDR(queue);
	if (len >= REAPER_NOTIFY_LEN)
		PG_RETURN_BOOL(false);
	if (nlater == 0 && !later_all && !reaper_notify_ready(MyDatabaseId))
		PG_RETURN_BOOL(false);

	if (!callback_registered)
	{
		RegisterXactCallback(notify_xact_callback, NULL);
		callback_registered = true;
	}
	for (i = 0; i < nlater; i++)
		if (strncmp(later[i], VARDATA_ANY(queue), len) == 0 && later[i][len] == '\0')
			PG_RETURN_BOOL(true);
	if (nlater == REAPER_NOTIFY_MAX)
		later_all = true;
	else
	{
		memcpy(later[nlater], VARDATA_ANY(queue), len);
		later[nlater][len] = '\0';
		nlater++;
	}
	PG_RETURN_BOOL(true);
}
