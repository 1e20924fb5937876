/*-------------------------------------------------------------------------
 *
 * reaper_state.c
 *	  The reaper's shared memory, and the SQL functions that read or control
 *	  it: jobq._reaper_info(), jobq.start_reaper(), jobq.stop_reaper().
 *
 *	  With jobq in shared_preload_libraries the space is requested in
 *	  shmem_request_hook and set up in shmem_startup_hook (reaper.c installs
 *	  both). Without preload there are no hooks: the first backend or worker
 *	  that needs the state creates it with ShmemInitStruct from the spare
 *	  shared memory the server keeps for add-ins (it is small), under
 *	  AddinShmemInitLock; later ones find it by name.
 *
 *	  A reaper claims the slot of its database once connected and gives it
 *	  back (pid 0) when it exits; the slot's counters survive its restarts.
 *	  A crash of any backend reinitialises shared memory, and with it every
 *	  slot. The mutex is a spinlock: it is held only to copy a few fields.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <signal.h>

#include "access/xlog.h"
#include "catalog/pg_type.h"
#include "commands/dbcommands.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "postmaster/bgworker.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lwlock.h"
#include "storage/proc.h"
#include "storage/procarray.h"
#include "storage/shmem.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/timestamp.h"

#include "jobq.h"
#include "reaper.h"

PG_FUNCTION_INFO_V1(jobq_reaper_info);
PG_FUNCTION_INFO_V1(jobq_start_reaper);
PG_FUNCTION_INFO_V1(jobq_stop_reaper);

/* This process's pointer to the shared state; NULL until attached. */
static ReaperShared *reaper_shared = NULL;

static void rs_release_slot(int code, Datum arg);

Size
reaper_shmem_size(void)
{
	return MAXALIGN(sizeof(ReaperShared));
}

/*
 * reaper_attach: the shared state, created (zeroed) by the first caller.
 * reset forgets this process's pointer first: the postmaster passes true
 * from shmem_startup_hook, since after a crash the segment is a new one.
 */
ReaperShared *
reaper_attach(bool reset)
{
	bool		found;

	if (reset)
		reaper_shared = NULL;
	if (reaper_shared != NULL)
		return reaper_shared;

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	reaper_shared = ShmemInitStruct("jobq reaper", reaper_shmem_size(), &found);
	if (!found)
	{
		memset(reaper_shared, 0, reaper_shmem_size());
		SpinLockInit(&reaper_shared->mutex);
	}
	LWLockRelease(AddinShmemInitLock);
	return reaper_shared;
}

/* True when pid is set and that process still exists. */
static bool
rs_alive(pid_t pid)
{
	return pid != 0 && (kill(pid, 0) == 0 || errno != ESRCH);
}

/*
 * reaper_connect_attempt: called by a dynamic reaper before it connects to
 * database dboid; false when REAPER_CONNECT_TRIES attempts have failed
 * since the last success. A dynamic reaper connects by OID, and an OID
 * does not come back once its database is dropped, so then it should give
 * up instead of being restarted for ever. The count lives in the slot of
 * dboid (taken if need be); reaper_claim_slot resets it.
 */
bool
reaper_connect_attempt(Oid dboid)
{
	ReaperShared *rs = reaper_attach(false);
	ReaperSlot *slot = NULL;
	ReaperSlot *spare = NULL;
	bool		ok = true;
	int			i;

	SpinLockAcquire(&rs->mutex);
	for (i = 0; i < REAPER_MAX_SLOTS && slot == NULL; i++)
	{
		if (rs->slots[i].dboid == dboid)
			slot = &rs->slots[i];
		else if (spare == NULL && !OidIsValid(rs->slots[i].dboid))
			spare = &rs->slots[i];
	}
	if (slot == NULL && spare != NULL)
	{
		slot = spare;
		memset(slot, 0, sizeof(ReaperSlot));
		slot->dboid = dboid;
	}
	if (slot != NULL)
	{
		if (slot->connect_tries >= REAPER_CONNECT_TRIES)
			ok = false;
		else
			slot->connect_tries++;
	}
	SpinLockRelease(&rs->mutex);
	return ok;
}

/*
 * reaper_claim_slot: called by a reaper once connected to its database.
 * Takes the slot of MyDatabaseId (keeping its totals), else a free one,
 * else one whose reaper is gone, and arranges to give it back at exit.
 * Returns NULL when another live reaper already serves the database (its
 * pid in *other) or when every slot is in use (*other = 0).
 */
ReaperSlot *
reaper_claim_slot(bool dynamic, pid_t *other)
{
	ReaperShared *rs = reaper_attach(false);
	ReaperSlot *mine = NULL;
	ReaperSlot *spare = NULL;
	TimestampTz now = GetCurrentTimestamp();
	pid_t		seen = 0;
	int			i;

	/* Whether a recorded reaper still lives is checked outside the spinlock. */
	SpinLockAcquire(&rs->mutex);
	for (i = 0; i < REAPER_MAX_SLOTS; i++)
		if (rs->slots[i].dboid == MyDatabaseId)
			seen = rs->slots[i].pid;
	SpinLockRelease(&rs->mutex);
	if (seen != 0 && seen != MyProcPid && rs_alive(seen))
	{
		*other = seen;
		return NULL;
	}

	*other = 0;
	SpinLockAcquire(&rs->mutex);
	for (i = 0; i < REAPER_MAX_SLOTS; i++)
	{
		ReaperSlot *s = &rs->slots[i];

		if (s->dboid == MyDatabaseId)
		{
			mine = s;
			break;
		}
		/* prefer a never-used slot, else one whose reaper has exited */
		if (!OidIsValid(s->dboid) && (spare == NULL || OidIsValid(spare->dboid)))
			spare = s;
		else if (spare == NULL && s->pid == 0)
			spare = s;
	}
	if (mine != NULL && mine->pid != 0 && mine->pid != MyProcPid && mine->pid != seen)
	{
		/* another reaper claimed it meanwhile */
		*other = mine->pid;
		SpinLockRelease(&rs->mutex);
		return NULL;
	}
	if (mine == NULL && spare != NULL)
	{
		mine = spare;
		memset(mine, 0, sizeof(ReaperSlot));
		mine->dboid = MyDatabaseId;
	}
	if (mine != NULL)
	{
		mine->pid = MyProcPid;
		mine->dynamic = dynamic;
		mine->stop_requested = false;
		mine->ready = false;
		mine->connect_tries = 0;
		mine->started_at = now;
		mine->last_run_at = 0;
	}
	SpinLockRelease(&rs->mutex);

	if (mine != NULL)
		before_shmem_exit(rs_release_slot, PointerGetDatum(mine));
	return mine;
}

/* before_shmem_exit callback: the reaper gives its slot back. */
static void
rs_release_slot(int code, Datum arg)
{
	ReaperSlot *slot = (ReaperSlot *) DatumGetPointer(arg);

	SpinLockAcquire(&reaper_shared->mutex);
	if (slot->pid == MyProcPid)
	{
		slot->pid = 0;
		slot->pumping = false;
		slot->latch = NULL;
		slot->npending = 0;
		slot->notify_all = false;
	}
	SpinLockRelease(&reaper_shared->mutex);
}

/* The live slot of dboid, or NULL; the caller holds the mutex. */
static ReaperSlot *
rs_slot_locked(ReaperShared *rs, Oid dboid)
{
	for (int i = 0; i < REAPER_MAX_SLOTS; i++)
		if (rs->slots[i].dboid == dboid && rs->slots[i].pid != 0)
			return &rs->slots[i];
	return NULL;
}

/* Copies the slot of a live reaper of dboid into *copy; false if none. */
static bool
rs_find(Oid dboid, ReaperSlot *copy)
{
	ReaperShared *rs = reaper_attach(false);
	ReaperSlot *slot;

	SpinLockAcquire(&rs->mutex);
	slot = rs_slot_locked(rs, dboid);
	if (slot != NULL)
		memcpy(copy, slot, sizeof(ReaperSlot));
	SpinLockRelease(&rs->mutex);
	return slot != NULL && rs_alive(copy->pid);
}

/* ---------------------------------------------------------- notifications */

/*
 * The reaper sends the NOTIFY jobq, '<queue>' of other transactions
 * (jobq._notify_later, bgworker/notify.c): a transaction that sends its own
 * NOTIFY takes, from its commit to its end, a lock that every transaction
 * with a NOTIFY in the cluster takes, so those commits happen one at a time
 * (and with synchronous_commit, each waits for its own WAL flush). A
 * transaction that leaves its notifications to the reaper only adds the
 * queues' names to its database's slot once it has committed, and sets the
 * reaper's latch when the slot had none; the reaper sends them all in one
 * transaction of its own (reaper.c).
 */

/* True when a reaper serves dboid and sends notifications at once. */
bool
reaper_notify_ready(Oid dboid)
{
	ReaperShared *rs;
	ReaperSlot *slot;
	bool		ready;

	if (!reaper_preloaded)
		return false;
	rs = reaper_attach(false);
	SpinLockAcquire(&rs->mutex);
	slot = rs_slot_locked(rs, dboid);
	ready = slot != NULL && slot->pumping && slot->latch != NULL;
	SpinLockRelease(&rs->mutex);
	return ready;
}

/*
 * reaper_notify_push: hands the queues names[0..n) (and every queue, when
 * all) to the reaper of dboid, from a transaction that has committed. When
 * no reaper serves the database any more, the notifications are lost: they
 * are hints, and workers find the jobs at their next lease.
 */
void
reaper_notify_push(Oid dboid, char (*names)[REAPER_NOTIFY_LEN], int n, bool all)
{
	ReaperShared *rs = reaper_attach(false);
	ReaperSlot *slot;
	Latch	   *wake = NULL;

	SpinLockAcquire(&rs->mutex);
	slot = rs_slot_locked(rs, dboid);
	if (slot != NULL)
	{
		bool		idle = slot->npending == 0 && !slot->notify_all;

		for (int i = 0; i < n && !slot->notify_all; i++)
		{
			int			k;

			for (k = 0; k < slot->npending; k++)
				if (strcmp(slot->pending[k], names[i]) == 0)
					break;
			if (k < slot->npending)
				continue;
			if (slot->npending == REAPER_NOTIFY_MAX)
				slot->notify_all = true;
			else
				strlcpy(slot->pending[slot->npending++], names[i], REAPER_NOTIFY_LEN);
		}
		if (all)
			slot->notify_all = true;
		if (idle && (slot->npending > 0 || slot->notify_all))
			wake = slot->latch;
	}
	SpinLockRelease(&rs->mutex);
	if (wake != NULL)
		SetLatch(wake);
}

/*
 * reaper_notify_take: in the reaper, moves its slot's queues to names
 * (REAPER_NOTIFY_MAX of them) and returns how many; *all tells to notify
 * every queue instead.
 */
int
reaper_notify_take(ReaperSlot *slot, char (*names)[REAPER_NOTIFY_LEN], bool *all)
{
	int			n;

	SpinLockAcquire(&reaper_shared->mutex);
	n = slot->npending;
	memcpy(names, slot->pending, sizeof(slot->pending[0]) * n);
	*all = slot->notify_all;
	slot->npending = 0;
	slot->notify_all = false;
	SpinLockRelease(&reaper_shared->mutex);
	return n;
}

/*
 * reaper_notify_pending: in the reaper, whether notifications wait in its
 * slot. Its latch alone does not say so: a lock wait in between (as for
 * NOTIFY's own lock at commit) sleeps on the same latch and resets it.
 */
bool
reaper_notify_pending(ReaperSlot *slot)
{
	bool		pending;

	SpinLockAcquire(&reaper_shared->mutex);
	pending = slot->npending > 0 || slot->notify_all;
	SpinLockRelease(&reaper_shared->mutex);
	return pending;
}

/*
 * reaper_set_pumping: in the reaper, whether transactions may leave their
 * notifications to it (off during a VACUUM or compaction, which can take a
 * while); on also publishes its latch.
 */
void
reaper_set_pumping(ReaperSlot *slot, bool on)
{
	SpinLockAcquire(&reaper_shared->mutex);
	slot->latch = MyLatch;
	slot->pumping = on;
	SpinLockRelease(&reaper_shared->mutex);
}

/* The pid of the reaper serving dboid, or 0. */
pid_t
reaper_serving_pid(Oid dboid)
{
	ReaperSlot	slot;

	return rs_find(dboid, &slot) ? slot.pid : 0;
}

/*
 * JSON helpers for jobq._reaper_info: each appends sep, then "key": value.
 * Times are written as jsonb writes timestamptz values.
 */
static void
rs_json_time(StringInfo buf, const char *sep, const char *key, TimestampTz t)
{
	char		out[MAXDATELEN + 1];

	appendStringInfo(buf, "%s\"%s\": ", sep, key);
	if (t == 0)
		appendStringInfoString(buf, "null");
	else
		appendStringInfo(buf, "\"%s\"",
						 JsonEncodeDateTime(out, TimestampTzGetDatum(t), TIMESTAMPTZOID, NULL));
}

static void
rs_json_int(StringInfo buf, const char *sep, const char *key, int64 v)
{
	appendStringInfo(buf, "%s\"%s\": " INT64_FORMAT, sep, key, v);
}

/*
 * jobq._reaper_info() returns jsonb
 *
 * The state of the reaper serving the current database, as jobq.stats()
 * shows it under "reaper": {"present": true, "pid", "database", "dynamic",
 * "status" ("starting", "running" or "waiting for extension"),
 * "interval_ms", "batch", "started_at", "last_run": {"at", "reaped",
 * "purged", "errors"}, "totals": {"ticks", "reaped", "purged", "errors"},
 * "last_error": {"message", "at"} or null}. Without one: {"present": false,
 * "preloaded", "databases"} (jobq.database, when preloaded).
 */
Datum
jobq_reaper_info(PG_FUNCTION_ARGS)
{
	ReaperSlot	s;
	StringInfoData buf;

	initStringInfo(&buf);
	if (!rs_find(MyDatabaseId, &s))
	{
		appendStringInfo(&buf, "{\"present\": false, \"preloaded\": %s, \"databases\": ",
						 reaper_preloaded ? "true" : "false");
		if (reaper_preloaded && jobq_reaper_databases != NULL)
			escape_json(&buf, jobq_reaper_databases);
		else
			appendStringInfoString(&buf, "null");
		appendStringInfoChar(&buf, '}');
	}
	else
	{
		char	   *dbname = get_database_name(s.dboid);

		appendStringInfo(&buf, "{\"present\": true, \"pid\": %d, \"database\": ", (int) s.pid);
		escape_json(&buf, dbname ? dbname : "");
		appendStringInfo(&buf, ", \"dynamic\": %s, \"status\": \"%s\"",
						 s.dynamic ? "true" : "false",
						 s.last_run_at == 0 ? "starting" :
						 s.ready ? "running" : "waiting for extension");
		appendStringInfo(&buf, ", \"interval_ms\": %d, \"batch\": %d", s.interval_ms, s.batch);
		rs_json_time(&buf, ", ", "started_at", s.started_at);
		rs_json_time(&buf, ", \"last_run\": {", "at", s.last_run_at);
		rs_json_int(&buf, ", ", "reaped", s.last_reaped);
		rs_json_int(&buf, ", ", "purged", s.last_purged);
		rs_json_int(&buf, ", ", "errors", s.last_errors);
		rs_json_int(&buf, "}, \"totals\": {", "ticks", s.ticks);
		rs_json_int(&buf, ", ", "reaped", s.total_reaped);
		rs_json_int(&buf, ", ", "purged", s.total_purged);
		rs_json_int(&buf, ", ", "errors", s.total_errors);
		appendStringInfoString(&buf, "}, \"last_error\": ");
		if (s.last_error_at == 0)
			appendStringInfoString(&buf, "null");
		else
		{
			appendStringInfoString(&buf, "{\"message\": ");
			escape_json(&buf, s.last_error);
			rs_json_time(&buf, ", ", "at", s.last_error_at);
			appendStringInfoChar(&buf, '}');
		}
		appendStringInfoChar(&buf, '}');
	}
	PG_RETURN_DATUM(DirectFunctionCall1(jsonb_in, CStringGetDatum(buf.data)));
}

/*
 * jobq.start_reaper() returns integer
 *
 * Launches a reaper for the current database as a dynamic background
 * worker and returns its pid once it has started; when a reaper already
 * serves the database, returns its pid with a notice. The worker restarts
 * after a crash like the preloaded ones, and holds a connection to the
 * database until jobq.stop_reaper() (DROP DATABASE needs WITH (FORCE)).
 */
Datum
jobq_start_reaper(PG_FUNCTION_ARGS)
{
	BackgroundWorker worker;
	BackgroundWorkerHandle *handle;
	BgwHandleStatus status;
	char	   *dbname = get_database_name(MyDatabaseId);
	pid_t		pid;

	if (RecoveryInProgress())
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("cannot start a jobq reaper during recovery"),
				 errhint("The reaper works on a primary only.")));

	pid = reaper_serving_pid(MyDatabaseId);
	if (pid != 0)
	{
		ereport(NOTICE,
				(errmsg("a jobq reaper already serves database \"%s\"", dbname),
				 errdetail("Its process ID is %d.", (int) pid)));
		PG_RETURN_INT32(pid);
	}

	reaper_fill_worker(&worker, dbname, MyDatabaseId);
	worker.bgw_notify_pid = MyProcPid;
	if (!RegisterDynamicBackgroundWorker(&worker, &handle))
		ereport(ERROR,
				(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
				 errmsg("could not start a jobq reaper for database \"%s\": no background worker slot is free",
						dbname),
				 errhint("Raise max_worker_processes (now %d) and restart the server, or add jobq to shared_preload_libraries and the database to jobq.database.",
						 max_worker_processes)));

	status = WaitForBackgroundWorkerStartup(handle, &pid);
	if (status == BGWH_POSTMASTER_DIED)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_RESOURCES),
				 errmsg("cannot start background processes without postmaster"),
				 errhint("Kill all remaining database processes and restart the database.")));
	if (status != BGWH_STARTED)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_RESOURCES),
				 errmsg("could not start a jobq reaper for database \"%s\"", dbname),
				 errhint("More details may be available in the server log.")));
	PG_RETURN_INT32(pid);
}

/*
 * jobq.stop_reaper() returns boolean
 *
 * Asks the reaper serving the current database to exit for good: it is
 * unregistered, so it comes back only with a server restart (preloaded) or
 * jobq.start_reaper(). Returns false when no reaper serves the database.
 * Does not wait for it to exit.
 */
Datum
jobq_stop_reaper(PG_FUNCTION_ARGS)
{
	ReaperShared *rs = reaper_attach(false);
	pid_t		pid = 0;
	PGPROC	   *proc;
	int			i;

	SpinLockAcquire(&rs->mutex);
	for (i = 0; i < REAPER_MAX_SLOTS; i++)
	{
		if (rs->slots[i].dboid == MyDatabaseId && rs->slots[i].pid != 0)
		{
			rs->slots[i].stop_requested = true;
			pid = rs->slots[i].pid;
			break;
		}
	}
	SpinLockRelease(&rs->mutex);

	if (pid == 0 || !rs_alive(pid))
		PG_RETURN_BOOL(false);
	proc = BackendPidGetProc(pid);
	if (proc != NULL)
		SetLatch(&proc->procLatch);
	PG_RETURN_BOOL(true);
}
