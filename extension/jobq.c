/*-------------------------------------------------------------------------
 *
 * jobq.c
 *	  jobq: a durable, fast job queue inside PostgreSQL.
 *
 *	  This file holds the module magic and _PG_init, the one place where jobq
 *	  defines its GUCs and, when loaded by shared_preload_libraries, registers
 *	  its background workers (bgworker/). The SQL-callable functions live in
 *	  one file per concern: args.c (argument checks), plan.c (prepared plans),
 *	  lease.c (lease), finish.c (heartbeat, complete, fail), caller.c (the
 *	  calling role, for SECURITY DEFINER functions), stats.c (the planner's
 *	  view of the live tables), wake.c (jobq.wait's wake-ups).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"
#include "utils/guc.h"

#include "jobq.h"

PG_MODULE_MAGIC;

void		_PG_init(void);

void
_PG_init(void)
{
	jobq_reaper_init();
	jobq_stats_init();
	jobq_wake_init();
	jobq_notify_init();
	MarkGUCPrefixReserved("jobq");
}
