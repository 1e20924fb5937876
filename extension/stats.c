/*-------------------------------------------------------------------------
 *
 * stats.c
 *	  The planner's view of jobq's live tables.
 *
 *	  The hot path runs generic plans, made once per backend with the
 *	  statistics of that moment (plan.c). A live table is often nearly empty:
 *	  the queue was drained and vacuumed, or the database is new. With those
 *	  statistics the planner takes a sequential scan for a key look-up, or a
 *	  scan of a whole partial index to find rows by TID, and the backend keeps
 *	  that plan while the queue fills up again (W3 of bench/ saw lease
 *	  latencies of seconds). So, for jobq.jobs_persistent and
 *	  jobq.jobs_unlogged only, the planner is told that a table holds at least
 *	  JOBQ_LIVE_MIN_TUPLES rows: every plan is then one that stays good at any
 *	  size (indexes, TID scans), and a plan made for a full queue is no worse
 *	  for an empty one.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/namespace.h"
#include "nodes/pathnodes.h"
#include "optimizer/plancat.h"
#include "utils/lsyscache.h"

#include "jobq.h"

#define JOBQ_LIVE_MIN_TUPLES	100000.0
#define JOBQ_LIVE_MIN_PAGES		1000

static get_relation_info_hook_type prev_relation_info_hook = NULL;

/* Whether relid is one of the partitions of jobq.jobs. */
static bool
is_live_table(Oid relid)
{
	Oid			nsp = get_rel_namespace(relid);
	char	   *name;
	bool		live;

	if (!OidIsValid(nsp) || nsp != get_namespace_oid("jobq", true))
		return false;
	name = get_rel_name(relid);
	live = name != NULL &&
		(strcmp(name, "jobs_persistent") == 0 || strcmp(name, "jobs_unlogged") == 0);
	if (name)
		pfree(name);
	return live;
}

static void
jobq_relation_info(PlannerInfo *root, Oid relid, bool inhparent, RelOptInfo *rel)
{
	ListCell   *lc;

	if (prev_relation_info_hook)
		prev_relation_info_hook(root, relid, inhparent, rel);
	if (inhparent || rel->tuples >= JOBQ_LIVE_MIN_TUPLES || !is_live_table(relid))
		return;

	rel->tuples = JOBQ_LIVE_MIN_TUPLES;
	rel->pages = Max(rel->pages, JOBQ_LIVE_MIN_PAGES);
	foreach(lc, rel->indexlist)
	{
		IndexOptInfo *index = (IndexOptInfo *) lfirst(lc);

		/* as get_relation_info does: a full index has the table's rows */
		if (index->indpred == NIL)
			index->tuples = rel->tuples;
		index->pages = Max(index->pages, JOBQ_LIVE_MIN_PAGES / 4);
	}
}

/* jobq_stats_init: called from _PG_init. */
void
jobq_stats_init(void)
{
	prev_relation_info_hook = get_relation_info_hook;
	get_relation_info_hook = jobq_relation_info;
}
