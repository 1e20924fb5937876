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
#include "commands/async.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/builtins.h"
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
 * jobq_notify_later_text: true when the reaper will send this transaction's
 * NOTIFY jobq, queue once it commits (the queue is noted); false when the
 * caller must send it (no reaper, jobq.notify_via_reaper off, or the caller
 * is the reaper).
 */
bool
jobq_notify_later_text(text *queue)
{
	int			len = VARSIZE_ANY_EXHDR(queue);
	int			i;

	if (!notify_via_reaper || jobq_in_reaper || len >= REAPER_NOTIFY_LEN)
		return false;
	if (nlater == 0 && !later_all && !reaper_notify_ready(MyDatabaseId))
		return false;

	if (!callback_registered)
	{
		RegisterXactCallback(notify_xact_callback, NULL);
		callback_registered = true;
	}
	for (i = 0; i < nlater; i++)
		if (strncmp(later[i], VARDATA_ANY(queue), len) == 0 && later[i][len] == '\0')
			return true;
	if (nlater == REAPER_NOTIFY_MAX)
		later_all = true;
	else
	{
		memcpy(later[nlater], VARDATA_ANY(queue), len);
		later[nlater][len] = '\0';
		nlater++;
	}
	return true;
}

/* jobq._notify_later(queue) returns boolean: jobq_notify_later_text, from SQL. */
Datum
jobq_notify_later(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(!PG_ARGISNULL(0) && jobq_notify_later_text(PG_GETARG_TEXT_PP(0)));
}

/* pg_notification_queue_usage(), from C. */
double
jobq_notify_queue_usage(void)
{
	LOCAL_FCINFO(fcinfo, 0);

	InitFunctionCallInfoData(*fcinfo, NULL, 0, InvalidOid, NULL, NULL);
	return DatumGetFloat8(pg_notification_queue_usage(fcinfo));
}

/*
 * jobq_notify: what jobq._notify does in SQL, for C callers: the NOTIFY
 * jobq, queue of this transaction, left to the reaper when it can take it,
 * else sent now unless the notification queue is half full (a full queue
 * would fail the commit; the notification is only a hint).
 */
void
jobq_notify(text *queue)
{
	if (!jobq_notify_later_text(queue) && jobq_notify_queue_usage() < JOBQ_NOTIFY_MAX_USAGE)
		Async_Notify("jobq", text_to_cstring(queue));
}
