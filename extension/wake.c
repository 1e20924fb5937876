/*-------------------------------------------------------------------------
 *
 * wake.c
 *	  Wake-ups for jobq.wait: a transaction that ends jobs wakes, once it has
 *	  committed, the sessions waiting for those jobs, so jobq.wait sleeps
 *	  until then instead of polling.
 *
 *	  Jobs hash to one of WAKE_SLOTS slots of shared memory, each a counter
 *	  and a condition variable. Whatever ends a job (jobq.complete and
 *	  complete_batch here in C, jobq._end for the rest) marks the job's slot
 *	  in this backend; when the transaction commits (and is visible to new
 *	  snapshots), the transaction callback adds one to each marked slot's
 *	  counter and broadcasts its condition variable. An abort forgets the
 *	  marks. A waiter reads its slot's counter before it looks at the job,
 *	  and sleeps only while the counter still has that value: a commit that
 *	  lands between the look and the sleep has moved the counter, so no
 *	  wake-up is lost. Two jobs that share a slot wake each other's waiters,
 *	  who look again and go back to sleep.
 *
 *	  The slots live in shared memory, so they exist only when jobq is in
 *	  shared_preload_libraries; without it, jobq._wake_count returns NULL and
 *	  jobq.wait falls back to sleeping with backoff.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "common/hashfn.h"
#include "miscadmin.h"
#include "port/atomics.h"
#include "storage/condition_variable.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"

#include "jobq.h"

#define WAKE_SLOTS 64

typedef struct WakeSlot
{
	pg_atomic_uint64 ended;		/* commits that ended a job of this slot */
	ConditionVariable cv;
} WakeSlot;

/* NULL unless jobq is preloaded (set in the postmaster, inherited by fork). */
static WakeSlot *wake_slots = NULL;

/* The slots this backend's transaction has ended jobs of (bit i: slot i). */
static uint64 wake_marked = 0;

static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

PG_FUNCTION_INFO_V1(jobq_ended);
PG_FUNCTION_INFO_V1(jobq_wake_count);
PG_FUNCTION_INFO_V1(jobq_wake_wait);

static int
wake_slot(text *queue, text *id)
{
	uint32		h = hash_bytes((unsigned char *) VARDATA_ANY(queue), VARSIZE_ANY_EXHDR(queue));

	h = hash_combine(h, hash_bytes((unsigned char *) VARDATA_ANY(id), VARSIZE_ANY_EXHDR(id)));
	return h % WAKE_SLOTS;
}

/* jobq_wake_note: the job (queue, id) ends in this transaction. */
void
jobq_wake_note(Datum queue, Datum id)
{
	if (wake_slots == NULL)
		return;
	wake_marked |= UINT64CONST(1) << wake_slot(DatumGetTextPP(queue), DatumGetTextPP(id));
}

static void
wake_xact_callback(XactEvent event, void *arg)
{
	uint64		marked = wake_marked;
	int			i;

	if (marked == 0)
		return;
	if (event != XACT_EVENT_COMMIT && event != XACT_EVENT_ABORT &&
		event != XACT_EVENT_PREPARE)
		return;
	wake_marked = 0;
	/* A prepared transaction commits later, elsewhere: its waiters time out. */
	if (event != XACT_EVENT_COMMIT)
		return;
	for (i = 0; i < WAKE_SLOTS; i++)
	{
		if ((marked & (UINT64CONST(1) << i)) == 0)
			continue;
		pg_atomic_fetch_add_u64(&wake_slots[i].ended, 1);
		ConditionVariableBroadcast(&wake_slots[i].cv);
	}
}

static Size
wake_shmem_size(void)
{
	return MAXALIGN(sizeof(WakeSlot) * WAKE_SLOTS);
}

static void
wake_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(wake_shmem_size());
}

static void
wake_shmem_startup(void)
{
	bool		found;
	int			i;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();
	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	wake_slots = ShmemInitStruct("jobq wake", wake_shmem_size(), &found);
	if (!found)
	{
		for (i = 0; i < WAKE_SLOTS; i++)
		{
			pg_atomic_init_u64(&wake_slots[i].ended, 0);
			ConditionVariableInit(&wake_slots[i].cv);
		}
	}
	LWLockRelease(AddinShmemInitLock);
}

/* jobq_wake_init: called from _PG_init. */
void
jobq_wake_init(void)
{
	RegisterXactCallback(wake_xact_callback, NULL);
	if (!process_shared_preload_libraries_in_progress)
		return;
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = wake_shmem_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = wake_shmem_startup;
}

/* jobq._ended(queue, id) returns void: jobq_wake_note for SQL (jobq._end). */
Datum
jobq_ended(PG_FUNCTION_ARGS)
{
	if (!PG_ARGISNULL(0) && !PG_ARGISNULL(1))
		jobq_wake_note(PG_GETARG_DATUM(0), PG_GETARG_DATUM(1));
	PG_RETURN_VOID();
}

/*
 * jobq._wake_count(queue, id) returns bigint: the counter of the job's slot,
 * to pass to jobq._wake_wait; NULL when there are no slots (not preloaded).
 */
Datum
jobq_wake_count(PG_FUNCTION_ARGS)
{
	if (wake_slots == NULL || PG_ARGISNULL(0) || PG_ARGISNULL(1))
		PG_RETURN_NULL();
	PG_RETURN_INT64((int64) pg_atomic_read_u64(
		&wake_slots[wake_slot(PG_GETARG_TEXT_PP(0), PG_GETARG_TEXT_PP(1))].ended));
}

/*
 * jobq._wake_wait(queue, id, seen bigint, timeout float8) returns boolean:
 * sleeps until the counter of the job's slot is no longer seen (a job of the
 * slot has ended since the caller read it: true) or timeout seconds have
 * passed (false). Interrupts (cancel, statement_timeout, shutdown) are
 * served while it sleeps. Without slots it sleeps the whole timeout.
 */
Datum
jobq_wake_wait(PG_FUNCTION_ARGS)
{
	double		timeout = PG_ARGISNULL(3) ? 0 : PG_GETARG_FLOAT8(3);
	TimestampTz deadline;
	WakeSlot   *slot;
	uint64		seen;
	bool		woken = false;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1) || PG_ARGISNULL(2))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("queue, id and seen must not be null")));
	if (!(timeout >= 0 && timeout <= 3600))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("timeout must be between 0 and 3600 seconds, got %g", timeout)));
	deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), (int64) (timeout * 1000));
	if (wake_slots == NULL)
	{
		(void) WaitLatch(MyLatch, WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 (long) (timeout * 1000), PG_WAIT_EXTENSION);
		CHECK_FOR_INTERRUPTS();
		PG_RETURN_BOOL(false);
	}
	slot = &wake_slots[wake_slot(PG_GETARG_TEXT_PP(0), PG_GETARG_TEXT_PP(1))];
	seen = (uint64) PG_GETARG_INT64(2);
	ConditionVariablePrepareToSleep(&slot->cv);
	for (;;)
	{
		long		left;

		if (pg_atomic_read_u64(&slot->ended) != seen)
		{
			woken = true;
			break;
		}
		left = TimestampDifferenceMilliseconds(GetCurrentTimestamp(), deadline);
		if (left <= 0)
			break;
		(void) ConditionVariableTimedSleep(&slot->cv, left, PG_WAIT_EXTENSION);
	}
	ConditionVariableCancelSleep();
	PG_RETURN_BOOL(woken);
}
