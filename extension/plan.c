/*-------------------------------------------------------------------------
 *
 * plan.c
 *	  The per-backend cache of jobq's prepared hot-path statements, and the
 *	  diagnosis of a call that found no lease to act on.
 *
 *	  Each statement is prepared on first use with SPI_prepare and kept with
 *	  SPI_keepplan for the life of the backend. The plan cache revalidates
 *	  kept plans when the tables they use change (even when the extension is
 *	  dropped and created again), since statements are re-analysed by name.
 *
 *	  search_path: the C functions of the API (enqueue, enqueue_batch, lease,
 *	  heartbeat, complete, complete_batch, fail) are SECURITY DEFINER without
 *	  a search_path of their own, unlike the SQL ones (sql/src/90_privileges.sql):
 *	  the GUC set-up and roll-back that a function's SET clause costs at every
 *	  call (about 10 000 instructions, bench/callgrind.sh) is spent only where
 *	  a statement runs. Every statement they run, and every SQL function they
 *	  call, runs between jobq_spi_connect and jobq_spi_finish (or
 *	  jobq_pin_search_path and jobq_unpin_search_path), which pin search_path
 *	  to pg_catalog, pg_temp, so that its operators and functions resolve to
 *	  pg_catalog's whatever the caller's search_path (test/t/trojans.sh). What
 *	  runs without a statement (direct.c) names every relation by OID and
 *	  every function and operator by OID.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/relation.h"
#include "access/xlog.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "storage/bufmgr.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/uuid.h"

#include "jobq.h"

/*
 * jobq_pin_search_path: search_path = pg_catalog, pg_temp from here until
 * jobq_unpin_search_path(the level returned), as a function's SET clause
 * would set it for the whole call. An error in between needs no unpinning:
 * the (sub)transaction's abort undoes it.
 */
int
jobq_pin_search_path(void)
{
	int			level = NewGUCNestLevel();

	(void) set_config_option("search_path", "pg_catalog, pg_temp", PGC_USERSET,
							 PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);
	return level;
}

void
jobq_unpin_search_path(int level)
{
	AtEOXact_GUC(true, level);
}

/* SPI_connect with search_path pinned; returns the level for jobq_spi_finish. */
int
jobq_spi_connect(void)
{
	int			level = jobq_pin_search_path();

	SPI_connect();
	return level;
}

void
jobq_spi_finish(int level)
{
	SPI_finish();
	jobq_unpin_search_path(level);
}

/*
 * jobq_plan: the kept plan in *cache, preparing sql first if needed.
 * The caller is connected to SPI.
 *
 * The plan is generic from the first call: the plan cache would otherwise
 * plan each call anew (a "custom" plan, about 1 ms) for as long as the
 * generic plan looks dearer, which a LIMIT or an array parameter makes it
 * look forever. Every statement here is written to be planned well without
 * its parameters' values (key look-ups, TID scans, LIMIT on an index order).
 */
SPIPlanPtr
jobq_plan(SPIPlanPtr *cache, const char *sql, int nargs, Oid *argtypes)
{
	if (*cache == NULL)
	{
		SPIPlanPtr	plan = SPI_prepare_cursor(sql, nargs, argtypes,
											  CURSOR_OPT_GENERIC_PLAN);

		if (plan == NULL)
			elog(ERROR, "jobq: SPI_prepare failed: %s",
				 SPI_result_code_string(SPI_result));
		if (SPI_keepplan(plan) != 0)
			elog(ERROR, "jobq: SPI_keepplan failed");
		*cache = plan;
	}
	return *cache;
}

/*
 * jobq_retired_lease: whether lease is the token of a version of job
 * (queue, id) that jobq.update or a rollback retired (jobq.job_versions).
 * If so, sets *version and *status (the retired version's status, palloc'd
 * in the current SPI context). The lookup takes a fresh snapshot: the update
 * that retired the version may have committed while the caller waited for
 * the job's row. The caller is connected to SPI.
 */
bool
jobq_retired_lease(Datum queue, Datum id, Datum lease, int32 *version, char **status)
{
	static SPIPlanPtr plan = NULL;
	Oid			argtypes[3] = {TEXTOID, TEXTOID, UUIDOID};
	Datum		values[3] = {queue, id, lease};
	bool		isnull;

	jobq_plan(&plan,
			  "SELECT version, status FROM jobq.job_versions"
			  " WHERE queue OPERATOR(pg_catalog.=) $1 AND id OPERATOR(pg_catalog.=) $2"
			  " AND lease OPERATOR(pg_catalog.=) $3"
			  " ORDER BY run DESC, version DESC LIMIT 1",
			  3, argtypes);
	if (SPI_execute_plan(plan, values, NULL, false, 1) != SPI_OK_SELECT)
		elog(ERROR, "jobq: retired lease lookup failed");
	if (SPI_processed == 0)
		return false;
	*version = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0],
										   SPI_tuptable->tupdesc, 1, &isnull));
	*status = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2);
	return true;
}

/*
 * jobq_raise_not_leased: called when heartbeat/complete/fail/release found
 * no running job with the given token; raises the error that says why:
 * 55000 when the token belongs to a retired version, P0002 when the job is
 * not live, 55000 when it is not running or the token is stale. The caller
 * is connected to SPI.
 */
void
jobq_raise_not_leased(Datum queue, Datum id, Datum lease, bool lease_isnull)
{
	static SPIPlanPtr plan = NULL;
	Oid			argtypes[2] = {TEXTOID, TEXTOID};
	Datum		values[2] = {queue, id};
	char	   *q = TextDatumGetCString(queue);
	char	   *i = TextDatumGetCString(id);
	char	   *status;
	bool		isnull;
	Datum		current;
	int32		version;
	char	   *retired;

	if (!lease_isnull && jobq_retired_lease(queue, id, lease, &version, &retired))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("lease of job \"%s\" in queue \"%s\" belongs to retired version %d",
						i, q, version),
				 errdetail("The job was updated or rolled back to a new version; the work of this lease is not wanted.")));

	jobq_plan(&plan,
			  "SELECT status, lease FROM jobq.jobs"
			  " WHERE queue OPERATOR(pg_catalog.=) $1 AND id OPERATOR(pg_catalog.=) $2",
			  2, argtypes);
	/*
	 * Not read-only: a fresh snapshot (READ COMMITTED), so that a change that
	 * committed while the caller's statement waited for the row (the reaper
	 * expired the lease, a new lease was taken) is seen and reported as such
	 * (55000, P0002) rather than as a concurrent change.
	 */
	if (SPI_execute_plan(plan, values, NULL, false, 1) != SPI_OK_SELECT)
		elog(ERROR, "jobq: lease diagnosis failed");
	if (SPI_processed == 0)
		ereport(ERROR,
				(errcode(ERRCODE_NO_DATA_FOUND),
				 errmsg("job \"%s\" is not live in queue \"%s\"", i, q)));
	status = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
	if (strcmp(status, "running") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("job \"%s\" in queue \"%s\" is not running (status %s)", i, q, status)));
	current = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull);
	if (!lease_isnull &&
		(isnull || !DatumGetBool(DirectFunctionCall2(uuid_eq, current, lease))))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("stale lease for job \"%s\" in queue \"%s\"", i, q),
				 errdetail("The lease token is not the job's current one: the lease expired and the job was leased again, or it was released.")));
	/* Running with the right token, yet not updated: it changed under us. */
	ereport(ERROR,
			(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
			 errmsg("job \"%s\" in queue \"%s\" changed concurrently", i, q)));
}

/*
 * jobq_persistent_only: whether the unlogged partition, jobq.jobs_unlogged,
 * has no pages, so that no job of it exists, committed or not. The hot path
 * then names jobq.jobs_persistent instead of the partitioned jobq.jobs: one
 * index scan instead of an Append or MergeAppend over both partitions, and
 * one result relation, which roughly halves what the executor sets up per
 * statement (bench/callgrind.sh, W2 n = 1). A job enqueued with persist =>
 * false gives the partition its first page; VACUUM truncates it back to
 * none once its jobs are gone.
 *
 * A lease that checks just before an unlogged job's enqueue commits may
 * miss that job once, as it may miss any job committed after its snapshot;
 * a running job is always in a partition with pages.
 *
 * During recovery (a hot standby) an unlogged table cannot be read and
 * holds no job (it starts empty when recovery ends): true.
 */
bool
jobq_persistent_only(void)
{
	Relation	rel;
	bool		empty;

	if (RecoveryInProgress())
		return true;
	rel = relation_open(jobq_relid("jobs_unlogged"), AccessShareLock);
	empty = RelationGetNumberOfBlocks(rel) == 0;
	relation_close(rel, NoLock);	/* locked until the end of the transaction */
	return empty;
}

/*
 * jobq_live_plan: the kept plan of a hot-path statement that comes in two
 * forms, sqls[0] on the partitioned jobq.jobs and sqls[1] on
 * jobq.jobs_persistent: the second while no unlogged job exists. The caller
 * is connected to SPI.
 */
SPIPlanPtr
jobq_live_plan(SPIPlanPtr plans[2], const char *const sqls[2], int nargs, Oid *argtypes)
{
	int			which = jobq_persistent_only() ? 1 : 0;

	return jobq_plan(&plans[which], sqls[which], nargs, argtypes);
}
