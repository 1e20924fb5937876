/*-------------------------------------------------------------------------
 *
 * reaper.h
 *	  The reaper's shared state, shared by bgworker/reaper.c (the worker)
 *	  and bgworker/reaper_state.c (shared memory and the SQL functions that
 *	  read or control it).
 *
 *	  Shared memory holds one slot per database a reaper has served since
 *	  the server (re)started. A slot is written by its reaper and read by
 *	  jobq._reaper_info(); every access holds the mutex, briefly.
 *
 *-------------------------------------------------------------------------
 */
#ifndef JOBQ_REAPER_H
#define JOBQ_REAPER_H

#include "datatype/timestamp.h"
#include "postmaster/bgworker.h"
#include "storage/latch.h"
#include "storage/spin.h"

#include "jobq.h"

#define REAPER_MAX_SLOTS	32	/* databases with a reaper at once */
#define REAPER_ERRLEN		256 /* last error message kept */
#define REAPER_RESTART_SECS 5	/* bgw_restart_time */
#define REAPER_CONNECT_TRIES 3	/* a dynamic reaper gives up after */
#define REAPER_NOTIFY_MAX	32	/* distinct queues a slot holds to notify */
#define REAPER_NOTIFY_LEN	(JOBQ_QUEUE_MAXLEN + 1)

typedef struct ReaperSlot
{
	Oid			dboid;			/* database served; InvalidOid: free slot */
	pid_t		pid;			/* the reaper's pid; 0 when none runs */
	bool		dynamic;		/* started by jobq.start_reaper() */
	bool		stop_requested; /* set by jobq.stop_reaper() */
	bool		ready;			/* the extension was found at the last tick */
	int			connect_tries;	/* failed or ongoing connection attempts */
	int			interval_ms;	/* settings in effect at the last tick */
	int			batch;
	TimestampTz started_at;
	TimestampTz last_run_at;	/* end of the last tick; 0 before the first */
	int64		last_reaped;	/* counts of the last tick */
	int64		last_purged;
	int64		last_errors;
	int64		ticks;			/* totals since the slot was taken */
	int64		total_reaped;
	int64		total_purged;
	int64		total_errors;
	TimestampTz last_error_at;
	char		last_error[REAPER_ERRLEN];

	/*
	 * Notifications the reaper sends for others (reaper_notify_push): the
	 * queues whose jobs became leasable in transactions that committed since
	 * its last round, or notify_all when more than REAPER_NOTIFY_MAX did.
	 * pumping: the reaper runs and is not in a long VACUUM or compaction, so
	 * it sends them at once; latch: its latch, set when the first one comes.
	 */
	bool		pumping;
	bool		notify_all;
	Latch	   *latch;
	int			npending;
	char		pending[REAPER_NOTIFY_MAX][REAPER_NOTIFY_LEN];
} ReaperSlot;

typedef struct ReaperShared
{
	slock_t		mutex;
	ReaperSlot	slots[REAPER_MAX_SLOTS];
} ReaperShared;

/* reaper.c */
extern bool reaper_preloaded;
extern char *jobq_reaper_databases;
extern int	jobq_reaper_interval;
extern int	jobq_reaper_batch;
extern int	jobq_compact_interval;
extern int	jobq_vacuum_interval;
extern char *jobq_reaper_role;
extern void reaper_fill_worker(BackgroundWorker *worker, const char *dbname, Oid dboid);

/* reaper_state.c */
extern Size reaper_shmem_size(void);
extern ReaperShared *reaper_attach(bool reset);
extern bool reaper_connect_attempt(Oid dboid);
extern ReaperSlot *reaper_claim_slot(bool dynamic, pid_t *other);
extern pid_t reaper_serving_pid(Oid dboid);
extern bool reaper_notify_ready(Oid dboid);
extern void reaper_notify_push(Oid dboid, char (*names)[REAPER_NOTIFY_LEN], int n, bool all);
extern int	reaper_notify_take(ReaperSlot *slot, char (*names)[REAPER_NOTIFY_LEN], bool *all);
extern bool reaper_notify_pending(ReaperSlot *slot);
extern void reaper_set_pumping(ReaperSlot *slot, bool on);

#endif							/* JOBQ_REAPER_H */
