/*-------------------------------------------------------------------------
 *
 * jobq.h
 *	  Declarations shared by jobq's C files: the SQL-callable hot path
 *	  (lease.c, finish.c; direct.c without the executor), argument checks
 *	  (args.c), prepared-plan cache (plan.c), GUCs and _PG_init (jobq.c), and
 *	  the background worker (bgworker/).
 *
 *-------------------------------------------------------------------------
 */
#ifndef JOBQ_H
#define JOBQ_H

#include "postgres.h"

#include "executor/spi.h"
#include "fmgr.h"
#include "datatype/timestamp.h"
#include "nodes/execnodes.h"
#include "utils/jsonb.h"

#define JOBQ_QUEUE_MAXLEN	128
#define JOBQ_LEASE_MAX		10000
/* No NOTIFY once PostgreSQL's notification queue is this full (jobq._notify says so too). */
#define JOBQ_NOTIFY_MAX_USAGE	0.5

/* args.c */
extern char *jobq_queue_arg(FunctionCallInfo fcinfo, int argno);
extern char *jobq_id_arg(FunctionCallInfo fcinfo, int argno);
extern void jobq_check_queue_name(const char *queue);
extern void jobq_check_positive_interval(Datum interval, const char *argname);

/* lease.c */
extern Datum jobq_token_datum(void);
extern Datum jobq_new_id_datum(void);

/* caller.c */
extern Datum jobq_caller_datum(void);

/* direct.c: lease, complete and enqueue without the executor */
extern int	jobq_direct_lease(Datum queue, Datum worker, bool worker_null, int n,
							  Datum timeout, bool timeout_null, TimestampTz now,
							  ReturnSetInfo *rsinfo);
extern int	jobq_direct_complete(Datum queue, int n, Datum *ids, Datum *leases,
								 bool *lease_nulls, Datum *results, bool *result_nulls,
								 TimestampTz now, bool *done);
extern bool jobq_direct_enqueue(FunctionCallInfo fcinfo, TupleDesc rdesc, Datum *result);
extern int	jobq_direct_enqueue_batch(Datum queue, Jsonb *jobs, Datum **ids);
extern Oid	jobq_relid(const char *name);

/* plan.c */
extern int	jobq_pin_search_path(void);
extern void jobq_unpin_search_path(int level);
extern int	jobq_spi_connect(void);
extern void jobq_spi_finish(int level);
extern SPIPlanPtr jobq_plan(SPIPlanPtr *cache, const char *sql, int nargs, Oid *argtypes);
extern void jobq_raise_not_leased(Datum queue, Datum id, Datum lease, bool lease_isnull);
extern bool jobq_retired_lease(Datum queue, Datum id, Datum lease, int32 *version,
							   char **status);
extern bool jobq_persistent_only(void);
extern SPIPlanPtr jobq_live_plan(SPIPlanPtr plans[2], const char *const sqls[2], int nargs,
								 Oid *argtypes);

/* stats.c: a planner hook for the live tables */
extern void jobq_stats_init(void);

/* wake.c: wake-ups for jobq.wait when jobs end */
extern void jobq_wake_init(void);
extern void jobq_wake_note(Datum queue, Datum id);

/* bgworker/reaper.c: GUCs, shared memory and registration; the worker */
extern void jobq_reaper_init(void);
extern bool jobq_in_reaper;
extern PGDLLEXPORT void jobq_reaper_main(Datum main_arg);

/* bgworker/notify.c: NOTIFYs left to the reaper */
extern void jobq_notify_init(void);
extern bool jobq_notify_later_text(text *queue);
extern double jobq_notify_queue_usage(void);
extern void jobq_notify(text *queue);

#endif							/* JOBQ_H */
