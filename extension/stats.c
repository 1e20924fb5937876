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
 *	  On a hot standby the planner refuses any statement that reaches an
 *	  unlogged table ("cannot access temporary or unlogged relations during
 *	  recovery"), so every read of jobq.jobs, whose partition
 *	  jobq.jobs_unlogged is one, failed there. During recovery an unlogged
 *	  table holds nothing that can be read (it starts empty when recovery
 *	  ends), so the planner is given jobq.jobs_persistent in place of
 *	  jobq.jobs: the same rows. Such a plan is transient: a cached one is made
 *	  again in the next transaction, so that after a promotion the unlogged
 *	  jobs are seen again.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/relation.h"
#include "access/xlog.h"
#include "catalog/namespace.h"
#include "catalog/pg_class_d.h"
#include "nodes/nodeFuncs.h"
#include "nodes/pathnodes.h"
#include "optimizer/plancat.h"
#include "optimizer/planner.h"
#include "storage/lmgr.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"

#include "jobq.h"

#define JOBQ_LIVE_MIN_TUPLES	100000.0
#define JOBQ_LIVE_MIN_PAGES		1000

static get_relation_info_hook_type prev_relation_info_hook = NULL;
static planner_hook_type prev_planner_hook = NULL;

/* What standby_swap replaces: jobq.jobs by jobq.jobs_persistent. */
typedef struct StandbySwap
{
	Oid			jobs;
	Oid			persistent;
	int			same;			/* same_columns(jobs, persistent); -1: not yet known */
	bool		swapped;
} StandbySwap;

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

/* Whether rel a and rel b have the same columns at the same attribute numbers. */
static bool
same_columns(Oid a, Oid b)
{
	Relation	ra = relation_open(a, AccessShareLock);
	Relation	rb = relation_open(b, AccessShareLock);
	TupleDesc	da = RelationGetDescr(ra);
	TupleDesc	db = RelationGetDescr(rb);
	bool		same = da->natts == db->natts;

	for (int i = 0; same && i < da->natts; i++)
	{
		Form_pg_attribute x = TupleDescAttr(da, i);
		Form_pg_attribute y = TupleDescAttr(db, i);

		same = x->attisdropped == y->attisdropped &&
			(x->attisdropped ||
			 (x->atttypid == y->atttypid && strcmp(NameStr(x->attname), NameStr(y->attname)) == 0));
	}
	relation_close(rb, NoLock);
	relation_close(ra, NoLock);
	return same;
}

/* Puts jobq.jobs_persistent in place of every range table entry of jobq.jobs. */
static bool
standby_swap(Node *node, void *context)
{
	StandbySwap *swap = (StandbySwap *) context;

	if (node == NULL)
		return false;
	if (IsA(node, RangeTblEntry))
	{
		RangeTblEntry *rte = (RangeTblEntry *) node;

		if (rte->rtekind == RTE_RELATION && rte->relid == swap->jobs &&
			(swap->same >= 0 ? swap->same :
			 (swap->same = same_columns(swap->jobs, swap->persistent))))
		{
			LockRelationOid(swap->persistent, rte->rellockmode);
			rte->relid = swap->persistent;
			rte->relkind = RELKIND_RELATION;
			rte->inh = false;
			swap->swapped = true;
		}
		return false;
	}
	if (IsA(node, Query))
		return query_tree_walker((Query *) node, standby_swap, context,
								 QTW_EXAMINE_RTES_BEFORE);
	return expression_tree_walker(node, standby_swap, context);
}

static PlannedStmt *
jobq_planner(Query *parse, const char *query_string, int cursor_options,
			 ParamListInfo bound_params)
{
	StandbySwap swap = {InvalidOid, InvalidOid, -1, false};
	PlannedStmt *result;

	if (RecoveryInProgress())
	{
		Oid			nsp = get_namespace_oid("jobq", true);

		if (OidIsValid(nsp))
		{
			swap.jobs = get_relname_relid("jobs", nsp);
			swap.persistent = get_relname_relid("jobs_persistent", nsp);
		}
		if (OidIsValid(swap.jobs) && OidIsValid(swap.persistent))
			(void) standby_swap((Node *) parse, &swap);
	}
	if (prev_planner_hook)
		result = prev_planner_hook(parse, query_string, cursor_options, bound_params);
	else
		result = standard_planner(parse, query_string, cursor_options, bound_params);
	if (swap.swapped)
		result->transientPlan = true;
	return result;
}

/* jobq_stats_init: called from _PG_init. */
void
jobq_stats_init(void)
{
	prev_relation_info_hook = get_relation_info_hook;
	get_relation_info_hook = jobq_relation_info;
	prev_planner_hook = planner_hook;
	planner_hook = jobq_planner;
}
