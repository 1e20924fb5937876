/*-------------------------------------------------------------------------
 *
 * direct.c
 *	  The hot path without the executor: lease, complete and enqueue of
 *	  persistent jobs (jobq.jobs_persistent) through the table and index
 *	  access methods, as PostgreSQL's logical replication applies rows.
 *
 *	  A statement run by SPI sets up its plan's every node, expression and
 *	  tuple descriptor at each call, then tears them down: for a lease or a
 *	  completion of one job that is most of its cost (bench/callgrind.sh,
 *	  W2 n = 1: jobq_lease 278 000 and jobq_complete 192 000 instructions per
 *	  job). Here a lease is one scan of jobs_pending_idx, an update of each
 *	  row it takes and that row's index entries; a completion is a read of
 *	  the job where this backend's lease put it (leased_at) or else a look-up
 *	  by key, a delete, and the history row with its index entries.
 *
 *	  What it does is what the statements in lease.c and finish.c do:
 *	  - lease: the queue's due pending jobs in lease order (priority, run_at,
 *	    run), each taken by an update that does not wait (heap_update with
 *	    wait = false, as FOR UPDATE SKIP LOCKED): a job locked or changed by
 *	    another transaction since the scan's snapshot is skipped, so no job
 *	    is leased twice, and none is lost (it stays pending, or was leased).
 *	  - complete: the running job under the given token, deleted (waiting
 *	    for a concurrent writer, as DELETE does; under READ COMMITTED the
 *	    job is then looked up again in a fresh snapshot, as DELETE
 *	    re-checks the row's newest version), and its finished run inserted
 *	    into jobq.history with the same columns as FINISHED_INSERT.
 *	  - enqueue: the row jobq._enqueue_sql's INSERT makes of a job with a
 *	    generated id into a queue that exists (see enqueue.c).
 *
 *	  Each gives way to the statements when a table has triggers that these
 *	  calls would have fired: they would not fire here. Lease and complete
 *	  run only while no unlogged job exists (jobq_persistent_only), so every
 *	  live job is in jobq.jobs_persistent; enqueue only for a persistent job.
 *	  Row security does not apply here, as it does not to the statements:
 *	  the API functions run as the extension's owner, a superuser
 *	  (jobq.control).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/relation.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/index.h"
#include "catalog/namespace.h"
#include "catalog/partition.h"
#include "catalog/pg_am_d.h"
#include "catalog/pg_collation_d.h"
#include "common/hashfn.h"
#include "commands/sequence.h"
#include "funcapi.h"
#include "executor/executor.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "storage/bufmgr.h"
#include "storage/procarray.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/fmgroids.h"
#include "utils/inval.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"
#include "utils/uuid.h"

#include "jobq.h"

/* Rows of an enqueue_batch written together (as COPY's MAX_BUFFERED_TUPLES). */
#define BATCH_SLOTS		1000

/* The columns of jobq.jobs the hot path reads or writes. */
typedef enum JobCol
{
	C_QUEUE, C_ID, C_RUN, C_VERSION, C_STATUS, C_PAYLOAD, C_STATE, C_RESULT,
	C_PRIORITY, C_RUN_AT, C_TIMEOUT, C_MAX_RETRIES, C_ATTEMPT, C_LEASE,
	C_LEASE_EXPIRES_AT, C_WORKER, C_PROGRESS, C_PERSIST, C_CREATED_AT,
	C_STARTED_AT, C_UPDATED_AT, C_FINISHED_AT, C_DESIRED_STATUS, C_MESSAGE,
	C_ROLLBACK_ENABLED, C_CREATED_BY, C_NCOLS
} JobCol;

static const char *const job_col_names[C_NCOLS] = {
	"queue", "id", "run", "version", "status", "payload", "state", "result",
	"priority", "run_at", "timeout", "max_retries", "attempt", "lease",
	"lease_expires_at", "worker", "progress", "persist", "created_at",
	"started_at", "updated_at", "finished_at", "desired_status", "message",
	"rollback_enabled", "created_by"
};

/* jobq.leased, the row lease returns, column by column. */
static const JobCol leased_cols[15] = {
	C_QUEUE, C_ID, C_RUN, C_VERSION, C_ATTEMPT, C_LEASE, C_PAYLOAD, C_STATE,
	C_TIMEOUT, C_LEASE_EXPIRES_AT, C_MAX_RETRIES, C_PRIORITY, C_PERSIST,
	C_RUN_AT, C_CREATED_AT
};

/* The attribute number of column name in desc, or 0. */
static AttrNumber
find_col(TupleDesc desc, const char *name)
{
	for (int i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);

		if (!att->attisdropped && strcmp(NameStr(att->attname), name) == 0)
			return i + 1;
	}
	return 0;
}

/* Whether cached attribute number a still names column name in desc. */
static bool
col_is(TupleDesc desc, AttrNumber a, const char *name)
{
	return a > 0 && a <= desc->natts && !TupleDescAttr(desc, a - 1)->attisdropped &&
		strcmp(NameStr(TupleDescAttr(desc, a - 1)->attname), name) == 0;
}

/*
 * Counts the relcache invalidations this backend has taken (kept_invalidate)
 * and schema changes: a table's columns change only with an invalidation of
 * the table, so what was checked against its descriptor at one count holds
 * while the count stays. Starts at 1: 0 is "never checked".
 */
static uint64 kept_generation = 1;

/*
 * find_cols: the attribute numbers of columns names[0..n) of desc, a table
 * of schema jobq (named table in errors), in cache: looked up once per
 * backend and checked by name again after each invalidation
 * (kept_generation, as of *checked): a column keeps its number for its life.
 */
static void
find_cols(TupleDesc desc, const char *table, int n, const char *const *names,
		  AttrNumber *cache, uint64 *checked)
{
	if (*checked == kept_generation)
		return;
	for (int i = 0; i < n; i++)
	{
		if (!col_is(desc, cache[i], names[i]))
			cache[i] = find_col(desc, names[i]);
		if (cache[i] == 0)
			elog(ERROR, "jobq: jobq.%s has no column \"%s\"", table, names[i]);
	}
	*checked = kept_generation;
}

/* The jobq.jobs_persistent columns, as 0-based positions into a slot's values. */
static void
job_columns(TupleDesc desc, int *pos)
{
	static AttrNumber cached[C_NCOLS];
	static uint64 checked;

	find_cols(desc, "jobs", C_NCOLS, job_col_names, cached, &checked);
	for (int c = 0; c < C_NCOLS; c++)
		pos[c] = cached[c] - 1;
}

/*
 * The OIDs jobq_relid found, by name (a string constant of this file's
 * callers): two syscache look-ups a name and a call saved (about 1 000
 * instructions each, a call takes 2 to 4). Forgotten when their relation is
 * invalidated (dropped, renamed: kept_invalidate) or a schema changes
 * (kept_namespace_changed).
 */
#define KEPT_RELIDS		8

static struct
{
	const char *name;
	Oid			relid;
}			kept_relids[KEPT_RELIDS];

static void kept_register_callbacks(void);

/* jobq_relid: a relation of schema jobq, by name (a string constant). */
Oid
jobq_relid(const char *name)
{
	Oid			relid;
	int			free_slot = -1;

	for (int i = 0; i < KEPT_RELIDS; i++)
	{
		if (kept_relids[i].name == NULL || !OidIsValid(kept_relids[i].relid))
			free_slot = free_slot < 0 ? i : free_slot;
		else if (strcmp(kept_relids[i].name, name) == 0)
			return kept_relids[i].relid;
	}
	relid = get_relname_relid(name, get_namespace_oid("jobq", false));
	if (!OidIsValid(relid))
		elog(ERROR, "jobq: relation jobq.%s is missing", name);
	kept_register_callbacks();
	if (free_slot >= 0)
	{
		kept_relids[free_slot].name = name;
		kept_relids[free_slot].relid = relid;
	}
	return relid;
}

/* Whether text datum t is the ASCII string s. */
static bool
text_is(Datum t, const char *s)
{
	text	   *v = DatumGetTextPP(t);
	size_t		len = strlen(s);

	return VARSIZE_ANY_EXHDR(v) == len && memcmp(VARDATA_ANY(v), s, len) == 0;
}

static bool
text_eq(Datum a, Datum b)
{
	text	   *x = DatumGetTextPP(a);
	text	   *y = DatumGetTextPP(b);

	return VARSIZE_ANY_EXHDR(x) == VARSIZE_ANY_EXHDR(y) &&
		memcmp(VARDATA_ANY(x), VARDATA_ANY(y), VARSIZE_ANY_EXHDR(x)) == 0;
}

/*
 * The indexes of a relation this file writes, kept from one call to the
 * next: each index's IndexInfo with its predicate and expressions compiled,
 * which ExecOpenIndices and ExecInsertIndexTuples would otherwise build at
 * every call: BuildIndexInfo about 1 000 instructions an index, a partial
 * index's predicate 3 700 (bench/callgrind.sh: W2 n = 1 414 400 -> 396 100
 * instructions per job, W1 b1 191 100 -> 175 200). Only when every index is
 * a B-tree, whose access method keeps nothing of its own in an IndexInfo
 * (ii_AmCache).
 *
 * A relcache invalidation of the relation or of one of its indexes (an index
 * created, dropped, made ready or valid) marks the set stale; the next
 * target_open builds it again, after it has locked the relation, which keeps
 * its index set as it is until the transaction ends (CREATE INDEX
 * CONCURRENTLY waits for the transaction before it makes an index ready for
 * inserts). A set in use is never freed: a call that finds its set stale
 * while another call uses it opens the indexes the executor's way.
 */
#define KEPT_SETS	4

typedef struct KeptIndexes
{
	Oid			relid;			/* InvalidOid: a free slot */
	bool		valid;
	bool		keepable;		/* false: an index is not a B-tree (n is 0) */
	bool		immediate;		/* no index checks a constraint at commit or by exclusion */
	int			users;			/* targets open with it, reset at transaction end */
	int			n;
	Oid		   *oids;
	IndexInfo **infos;
	MemoryContext cxt;			/* of all of the above, and estate */
	EState	   *estate;			/* where the predicates and expressions were compiled */
} KeptIndexes;

static KeptIndexes kept[KEPT_SETS];
static bool kept_callbacks;

static void
kept_invalidate(Datum arg, Oid relid)
{
	kept_generation++;
	for (int i = 0; i < KEPT_RELIDS; i++)
		if (!OidIsValid(relid) || kept_relids[i].relid == relid)
			kept_relids[i].relid = InvalidOid;
	for (int i = 0; i < KEPT_SETS; i++)
	{
		KeptIndexes *k = &kept[i];

		if (!OidIsValid(relid) || k->relid == relid)
			k->valid = false;
		for (int j = 0; k->valid && j < k->n; j++)
			if (k->oids[j] == relid)
				k->valid = false;
	}
}

static void
kept_namespace_changed(Datum arg, int cacheid, uint32 hashvalue)
{
	kept_generation++;
	for (int i = 0; i < KEPT_RELIDS; i++)
		kept_relids[i].relid = InvalidOid;
}

static void
kept_xact_end(XactEvent event, void *arg)
{
	for (int i = 0; i < KEPT_SETS; i++)
		kept[i].users = 0;
}

static void
kept_free(KeptIndexes *k)
{
	if (k->cxt != NULL)
	{
		FreeExecutorState(k->estate);
		MemoryContextDelete(k->cxt);
	}
	memset(k, 0, sizeof(KeptIndexes));
}

static void
kept_register_callbacks(void)
{
	if (kept_callbacks)
		return;
	CacheRegisterRelcacheCallback(kept_invalidate, (Datum) 0);
	CacheRegisterSyscacheCallback(NAMESPACEOID, kept_namespace_changed, (Datum) 0);
	RegisterXactCallback(kept_xact_end, NULL);
	kept_callbacks = true;
}

/*
 * kept_build: k filled with rel's indexes, rel locked by the caller; false
 * when one of them is not a B-tree (k then says so until the next
 * invalidation, and keeps none).
 */
static bool
kept_build(KeptIndexes *k, Relation rel)
{
	List	   *oids = RelationGetIndexList(rel);
	MemoryContext old;
	ListCell   *lc;

	kept_free(k);
	k->cxt = AllocSetContextCreate(TopMemoryContext, "jobq kept indexes",
								   ALLOCSET_SMALL_SIZES);
	old = MemoryContextSwitchTo(k->cxt);
	k->estate = CreateExecutorState();
	k->n = list_length(oids);
	k->oids = palloc(sizeof(Oid) * Max(k->n, 1));
	k->infos = palloc(sizeof(IndexInfo *) * Max(k->n, 1));
	k->n = 0;
	k->immediate = true;
	foreach(lc, oids)
	{
		Relation	index = index_open(lfirst_oid(lc), AccessShareLock);
		IndexInfo  *ii = BuildIndexInfo(index);
		bool		btree = index->rd_rel->relam == BTREE_AM_OID;

		if (ii->ii_ExclusionOps != NULL || !index->rd_index->indimmediate)
			k->immediate = false;
		index_close(index, AccessShareLock);
		if (!btree)
		{
			MemoryContextSwitchTo(old);
			kept_free(k);
			k->relid = RelationGetRelid(rel);
			k->valid = true;
			return false;
		}
		if (ii->ii_Predicate != NIL)
			ii->ii_PredicateState = ExecPrepareQual(ii->ii_Predicate, k->estate);
		if (ii->ii_Expressions != NIL)
			ii->ii_ExpressionsState = ExecPrepareExprList(ii->ii_Expressions, k->estate);
		k->oids[k->n] = lfirst_oid(lc);
		k->infos[k->n++] = ii;
	}
	MemoryContextSwitchTo(old);
	list_free(oids);
	k->relid = RelationGetRelid(rel);
	k->valid = true;
	k->keepable = true;
	return true;
}

/*
 * open_kept_indices: rri's indexes opened as ExecOpenIndices opens them, with
 * the kept IndexInfos of the set it returns (in use until target_close); NULL
 * when the executor's way must do it.
 */
static KeptIndexes *
open_kept_indices(ResultRelInfo *rri)
{
	Relation	rel = rri->ri_RelationDesc;
	Oid			relid = RelationGetRelid(rel);
	KeptIndexes *k = NULL;

	kept_register_callbacks();
	for (int i = 0; i < KEPT_SETS && k == NULL; i++)
		if (kept[i].relid == relid)
			k = &kept[i];
	for (int i = 0; i < KEPT_SETS && k == NULL; i++)
		if (kept[i].users == 0 && (!OidIsValid(kept[i].relid) || !kept[i].valid))
			k = &kept[i];
	if (k == NULL || (!k->valid && (k->users > 0 || !kept_build(k, rel))) || !k->keepable)
		return NULL;

	rri->ri_NumIndices = k->n;
	rri->ri_IndexRelationDescs = palloc(sizeof(Relation) * Max(k->n, 1));
	rri->ri_IndexRelationInfo = palloc(sizeof(IndexInfo *) * Max(k->n, 1));
	for (int i = 0; i < k->n; i++)
	{
		rri->ri_IndexRelationDescs[i] = index_open(k->oids[i], RowExclusiveLock);
		/* what index_unchanged_by_update found is for one statement's columns */
		k->infos[i]->ii_CheckedUnchanged = false;
		rri->ri_IndexRelationInfo[i] = k->infos[i];
	}
	k->users++;
	return k;
}

/*
 * A relation rows are written to, with what ExecInsertIndexTuples needs: a
 * result relation with its indexes open, in an executor state of its own.
 * updated lists the columns an update changes (attribute numbers offset by
 * FirstLowInvalidHeapAttributeNumber, as a range table entry has them): an
 * index whose key they leave alone gets the "unchanged" hint, which lets
 * the B-tree delete the old versions' entries bottom-up, as for an UPDATE.
 */
typedef struct Target
{
	Relation	rel;
	EState	   *estate;
	ResultRelInfo *rri;
	TupleTableSlot *slot;
	KeptIndexes *kept;			/* the IndexInfos' set, or NULL */
	Bitmapset  *updated;
} Target;

static void
target_open(Target *t, Relation rel, Bitmapset *updated)
{
	RangeTblEntry *rte = makeNode(RangeTblEntry);

	t->rel = rel;
	t->updated = updated;
	t->estate = CreateExecutorState();
	rte->rtekind = RTE_RELATION;
	rte->relid = RelationGetRelid(rel);
	rte->relkind = rel->rd_rel->relkind;
	rte->rellockmode = RowExclusiveLock;
	rte->updatedCols = updated;
	ExecInitRangeTable(t->estate, list_make1(rte));
	t->rri = makeNode(ResultRelInfo);
	InitResultRelInfo(t->rri, rel, 1, NULL, 0);
	t->estate->es_output_cid = GetCurrentCommandId(true);
	t->kept = open_kept_indices(t->rri);
	if (t->kept == NULL)
		ExecOpenIndices(t->rri, false);
	t->slot = MakeSingleTupleTableSlot(RelationGetDescr(rel), &TTSOpsHeapTuple);
}

static void
target_close(Target *t)
{
	ExecDropSingleTupleTableSlot(t->slot);
	if (t->kept == NULL)
		ExecCloseIndices(t->rri);
	else
	{
		/* locked until the transaction ends, as the table is */
		for (int i = 0; i < t->rri->ri_NumIndices; i++)
			index_close(t->rri->ri_IndexRelationDescs[i], NoLock);
		if (t->kept->users > 0)
			t->kept->users--;
	}
	FreeExecutorState(t->estate);
}

/*
 * update_index_entries: the entries of slot, the new version of a row that
 * t's update did not make HOT, as ExecInsertIndexTuples(update = true) makes
 * them, but for one check: a unique index whose key the update leaves alone
 * (none of its columns in t->updated) is not checked for a duplicate. Its
 * only other entries with that key are the row's own older versions, and a
 * transaction inserting the key meanwhile finds the row's old version,
 * locked by this update, and waits for it, then finds this entry (bench/
 * callgrind.sh: 4 300 instructions a job at W2 n = 100, 6 700 at n = 1). With indexes
 * not kept, or one checked at commit or by exclusion, ExecInsertIndexTuples
 * does it.
 */
static void
update_index_entries(Target *t, TupleTableSlot *slot)
{
	ExprContext *econtext;

	if (t->kept == NULL || !t->kept->immediate)
	{
		ExecInsertIndexTuples(t->rri, slot, t->estate, true, false, NULL, NIL);
		return;
	}
	econtext = GetPerTupleExprContext(t->estate);
	econtext->ecxt_scantuple = slot;
	for (int i = 0; i < t->rri->ri_NumIndices; i++)
	{
		Relation	index = t->rri->ri_IndexRelationDescs[i];
		IndexInfo  *ii = t->rri->ri_IndexRelationInfo[i];
		Datum		values[INDEX_MAX_KEYS];
		bool		isnull[INDEX_MAX_KEYS];
		bool		unchanged = ii->ii_Expressions == NIL;

		if (!ii->ii_ReadyForInserts ||
			(ii->ii_Predicate != NIL && !ExecQual(ii->ii_PredicateState, econtext)))
			continue;
		for (int k = 0; unchanged && k < ii->ii_NumIndexAttrs; k++)
			unchanged = !bms_is_member(ii->ii_IndexAttrNumbers[k] -
									   FirstLowInvalidHeapAttributeNumber, t->updated);
		FormIndexDatum(ii, slot, t->estate, values, isnull);
		index_insert(index, values, isnull, &slot->tts_tid, t->rel,
					 index->rd_index->indisunique && !unchanged ? UNIQUE_CHECK_YES :
					 UNIQUE_CHECK_NO, unchanged, ii);
	}
}

/*
 * fetch_at: whether slot now holds the row that snapshot sees at the
 * remembered place *tid of fetch's relation, found as an index entry's row
 * is found (the version of its HOT chain the snapshot sees). The place is a
 * hint, perhaps invalid, past the relation's end since a VACUUM truncated
 * it, or reused by another row: callers check what they find. *nblocks is
 * the relation's size, InvalidBlockNumber until this finds it out; the
 * relation is locked, so its blocks stay.
 */
static bool
fetch_at(IndexFetchTableData *fetch, ItemPointer tid, BlockNumber *nblocks,
		 Snapshot snapshot, TupleTableSlot *slot)
{
	bool		call_again = false;

	if (!ItemPointerIsValid(tid))
		return false;
	if (*nblocks == InvalidBlockNumber)
		*nblocks = RelationGetNumberOfBlocks(fetch->rel);
	return ItemPointerGetBlockNumber(tid) < *nblocks &&
		table_index_fetch_tuple(fetch, tid, snapshot, slot, &call_again, NULL);
}

/*
 * Where queue_row last found the rows of a few queues, by name (the root of
 * the row's HOT chain, as its index entry has it): a row read at its
 * remembered place (fetch_at), when the snapshot sees one there with the
 * name looked for, is the row the key would find (a key has one visible
 * row), for the cost of one page's read instead of an index scan (bench/
 * callgrind.sh: about 9 000 instructions a lease and an enqueue). A row
 * updated since (pause_queue, alter_queue) is found along its HOT chain, or
 * else by its key again.
 */
#define KEPT_QUEUES		8

static struct
{
	text	   *queue;			/* in TopMemoryContext; NULL: a free slot */
	ItemPointerData tid;
}			kept_queues[KEPT_QUEUES];
static int	kept_queues_next;

/* The remembered place of queue's row: a slot of kept_queues, taken if need be. */
static ItemPointer
kept_queue_tid(Datum queue)
{
	text	   *q = DatumGetTextPP(queue);
	int			i;

	for (i = 0; i < KEPT_QUEUES; i++)
		if (kept_queues[i].queue != NULL &&
			text_eq(PointerGetDatum(kept_queues[i].queue), PointerGetDatum(q)))
			return &kept_queues[i].tid;
	i = kept_queues_next;
	kept_queues_next = (kept_queues_next + 1) % KEPT_QUEUES;
	if (kept_queues[i].queue != NULL)
		pfree(kept_queues[i].queue);
	kept_queues[i].queue = MemoryContextAlloc(TopMemoryContext, VARSIZE_ANY(q));
	memcpy(kept_queues[i].queue, q, VARSIZE_ANY(q));
	ItemPointerSetInvalid(&kept_queues[i].tid);
	return &kept_queues[i].tid;
}

/*
 * queue_row: columns names[0..n) of the queue's row of jobq.queues as
 * snapshot sees it, into values and nulls (copied into the current memory
 * context); false when the queue does not exist. names[0] is "queue"; cache
 * and *checked keep the columns' attribute numbers for the caller
 * (find_cols).
 */
static bool
queue_row(Datum queue, Snapshot snapshot, int n, const char *const *names,
		  AttrNumber *cache, uint64 *checked, Datum *values, bool *nulls)
{
	Relation	rel = table_open(jobq_relid("queues"), AccessShareLock);
	TupleDesc	desc = RelationGetDescr(rel);
	TupleTableSlot *slot = table_slot_create(rel, NULL);
	IndexFetchTableData *fetch = table_index_fetch_begin(rel);
	BlockNumber nblocks = InvalidBlockNumber;
	ItemPointer tid = kept_queue_tid(queue);
	bool		isnull;
	bool		found;

	Assert(n > 0 && strcmp(names[0], "queue") == 0);
	find_cols(desc, "queues", n, names, cache, checked);
	found = fetch_at(fetch, tid, &nblocks, snapshot, slot) &&
		text_eq(slot_getattr(slot, cache[0], &isnull), queue);
	table_index_fetch_end(fetch);
	if (!found)
	{
		Relation	idx = index_open(RelationGetPrimaryKeyIndex(rel), AccessShareLock);
		IndexScanDesc scan;
		ScanKeyData key;

		ScanKeyInit(&key, 1, BTEqualStrategyNumber, F_TEXTEQ, queue);
		scan = index_beginscan(rel, idx, snapshot, 1, 0);
		index_rescan(scan, &key, 1, NULL, 0);
		found = index_getnext_slot(scan, ForwardScanDirection, slot);
		if (found)
			*tid = scan->xs_heaptid;	/* the index entry's: its HOT chain's root */
		else
			ItemPointerSetInvalid(tid);
		index_endscan(scan);
		index_close(idx, NoLock);
	}
	for (int i = 0; found && i < n; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, cache[i] - 1);

		values[i] = slot_getattr(slot, cache[i], &nulls[i]);
		if (!nulls[i])
			values[i] = datumCopy(values[i], att->attbyval, att->attlen);
	}
	ExecDropSingleTupleTableSlot(slot);
	table_close(rel, NoLock);	/* locked until the transaction ends, as by a SELECT */
	return found;
}

/*
 * Whether the queue may be leased from here: true with *paused, when
 * jobq.queues has the queue and it is not capped by max_running; false
 * when it is capped or missing (the statements' path says which).
 */
static bool
queue_uncapped(Datum queue, Snapshot snapshot, bool *paused)
{
	static const char *const names[3] = {"queue", "paused", "max_running"};
	static AttrNumber cache[3];
	static uint64 checked;
	Datum		values[3];
	bool		nulls[3];

	if (!queue_row(queue, snapshot, 3, names, cache, &checked, values, nulls))
		return false;
	*paused = DatumGetBool(values[1]);
	return nulls[2];
}

/*
 * jobs_persistent's partition of jobq.jobs_pending_idx: found through
 * pg_inherits once per backend, then checked to still be one of the table's
 * indexes (a REINDEX CONCURRENTLY or a new extension replaces it).
 */
static Oid
pending_index(Relation rel)
{
	static Oid	cached = InvalidOid;
	List	   *indexes = RelationGetIndexList(rel);

	if (!list_member_oid(indexes, cached))
		cached = index_get_partition(rel, jobq_relid("jobs_pending_idx"));
	list_free(indexes);
	return cached;
}

/*
 * Whether the row in slot (just fetched through the index) is being leased
 * or changed by another transaction still in progress: a concurrent lease
 * that took it after this scan's snapshot. Skipping it here spares building
 * its new version for an update that would not wait for it anyway. The
 * header is read without the buffer's content lock, so this is a hint only:
 * whatever it misses, the update finds out.
 */
static bool
taken_by_other(TupleTableSlot *slot)
{
	HeapTupleHeader h;
	TransactionId xmax;

	Assert(TTS_IS_BUFFERTUPLE(slot));
	h = ((BufferHeapTupleTableSlot *) slot)->base.tuple->t_data;
	xmax = HeapTupleHeaderGetRawXmax(h);

	return !(h->t_infomask & (HEAP_XMAX_INVALID | HEAP_XMAX_IS_MULTI)) &&
		TransactionIdIsNormal(xmax) && !TransactionIdIsCurrentTransactionId(xmax) &&
		TransactionIdIsInProgress(xmax);
}

/*
 * Where this backend's leases put the jobs they took, for their completion:
 * slots by a hash of the job's id, each the place of the leased version,
 * overwritten by the next job of the same slot. A completion reads the job
 * there (fetch_at) when its snapshot sees a row of that id and queue there,
 * which is then the row the key would find, for the cost of a page's read
 * instead of a look-up by key (bench/callgrind.sh: about 16 000
 * instructions a job). A job completed by another backend, moved by a
 * non-HOT update since (a heartbeat), or a place reused by another row
 * after a VACUUM is looked up by its key, as always.
 */
#define LEASED_SLOTS	2048

static ItemPointerData leased_at[LEASED_SLOTS];

static ItemPointer
leased_slot(Datum id)
{
	text	   *t = DatumGetTextPP(id);

	return &leased_at[hash_bytes((const unsigned char *) VARDATA_ANY(t),
								 VARSIZE_ANY_EXHDR(t)) % LEASED_SLOTS];
}

/*
 * jobq_direct_lease: leases up to n due jobs of queue from
 * jobq.jobs_persistent to worker, with timeout (NULL: each job's own) at
 * time now, into rsinfo's tuple store in lease order. Returns how many it
 * leased (0 as well for a paused or missing queue), or -1 when the
 * statements must do it: the queue is capped by max_running, or the table
 * has triggers.
 */
int
jobq_direct_lease(Datum queue, Datum worker, bool worker_null, int n, Datum timeout,
				  bool timeout_null, TimestampTz now, ReturnSetInfo *rsinfo)
{
	Relation	rel;
	Oid			pending;
	Relation	idx;
	Target		t;
	Snapshot	snapshot;
	TupleTableSlot *old;
	IndexScanDesc scan;
	ScanKeyData keys[2];
	Bitmapset  *updated = NULL;
	int			pos[C_NCOLS];
	int			natts;
	Datum	   *values;
	bool	   *nulls;
	bool		paused = false;
	int			leased = 0;
	static const JobCol changed[] = {C_STATUS, C_ATTEMPT, C_LEASE, C_WORKER, C_TIMEOUT,
	C_LEASE_EXPIRES_AT, C_STARTED_AT, C_UPDATED_AT};

	/* what the executor checks before an UPDATE, the statements' way */
	PreventCommandIfReadOnly("UPDATE");
	PushActiveSnapshot(GetTransactionSnapshot());
	snapshot = GetActiveSnapshot();
	if (!queue_uncapped(queue, snapshot, &paused) || paused)
	{
		PopActiveSnapshot();
		return paused ? 0 : -1;
	}

	rel = table_open(jobq_relid("jobs_persistent"), RowExclusiveLock);
	pending = rel->trigdesc == NULL ? pending_index(rel) : InvalidOid;
	if (!OidIsValid(pending))
	{
		table_close(rel, RowExclusiveLock);
		PopActiveSnapshot();
		return -1;
	}
	natts = RelationGetDescr(rel)->natts;
	job_columns(RelationGetDescr(rel), pos);
	for (size_t c = 0; c < lengthof(changed); c++)
		updated = bms_add_member(updated,
								 pos[changed[c]] + 1 - FirstLowInvalidHeapAttributeNumber);
	target_open(&t, rel, updated);
	idx = index_open(pending, AccessShareLock);
	old = table_slot_create(rel, NULL);

	/*
	 * jobs_pending_idx: (hashtext(queue), priority, run_at, run) WHERE
	 * pending, scanned with one key, the queue's hash. A B-tree scan reads a
	 * whole leaf page of entries at once and tests every key on each (about
	 * 200 entries, 70 instructions a key), so the due test is made here, on
	 * the jobs the scan returns: the first job of a priority that is not
	 * due yet means none after it in that priority is (they come in run_at
	 * order), and the scan goes on from the next priority (keys[1]).
	 */
	ScanKeyInit(&keys[0], 1, BTEqualStrategyNumber, F_INT4EQ,
				DirectFunctionCall1Coll(hashtext, C_COLLATION_OID, queue));
	scan = index_beginscan(rel, idx, snapshot, 1, 0);
	index_rescan(scan, keys, 1, NULL, 0);
	while (leased < n && index_getnext_slot(scan, ForwardScanDirection, old))
	{
		TM_FailureData tmfd;
		TM_Result	r;
		LockTupleMode lockmode;
		bool		update_indexes;
		Datum		row[lengthof(leased_cols)];
		bool		rownulls[lengthof(leased_cols)];

		slot_getallattrs(old);
		/* a queue whose name hashes alike shares the range */
		if (!text_eq(old->tts_values[pos[C_QUEUE]], queue) ||
			!text_is(old->tts_values[pos[C_STATUS]], "pending"))
			continue;
		if (DatumGetTimestampTz(old->tts_values[pos[C_RUN_AT]]) > now)
		{
			ScanKeyInit(&keys[1], 2, BTGreaterStrategyNumber, F_INT4GT,
						old->tts_values[pos[C_PRIORITY]]);
			index_endscan(scan);	/* a scan keeps its number of keys */
			scan = index_beginscan(rel, idx, snapshot, 2, 0);
			index_rescan(scan, keys, 2, NULL, 0);
			continue;
		}
		if (taken_by_other(old))
			continue;

		ExecClearTuple(t.slot);
		values = t.slot->tts_values;
		nulls = t.slot->tts_isnull;
		memcpy(values, old->tts_values, sizeof(Datum) * natts);
		memcpy(nulls, old->tts_isnull, sizeof(bool) * natts);
		values[pos[C_STATUS]] = CStringGetTextDatum("running");
		values[pos[C_ATTEMPT]] = Int32GetDatum(DatumGetInt32(values[pos[C_ATTEMPT]]) + 1);
		values[pos[C_LEASE]] = jobq_token_datum();
		nulls[pos[C_LEASE]] = false;
		values[pos[C_WORKER]] = worker;
		nulls[pos[C_WORKER]] = worker_null;
		if (!timeout_null)
			values[pos[C_TIMEOUT]] = timeout;
		values[pos[C_LEASE_EXPIRES_AT]] =
			DirectFunctionCall2(timestamptz_pl_interval, TimestampTzGetDatum(now),
								values[pos[C_TIMEOUT]]);
		nulls[pos[C_LEASE_EXPIRES_AT]] = false;
		values[pos[C_STARTED_AT]] = values[pos[C_UPDATED_AT]] = TimestampTzGetDatum(now);
		nulls[pos[C_STARTED_AT]] = nulls[pos[C_UPDATED_AT]] = false;
		/* the answer, taken before the update materialises the slot */
		for (size_t c = 0; c < lengthof(leased_cols); c++)
		{
			row[c] = values[pos[leased_cols[c]]];
			rownulls[c] = nulls[pos[leased_cols[c]]];
		}
		ExecStoreVirtualTuple(t.slot);
		r = table_tuple_update(rel, &old->tts_tid, t.slot, t.estate->es_output_cid,
							   snapshot, InvalidSnapshot, false, &tmfd, &lockmode,
							   &update_indexes);
		if (r == TM_BeingModified && TransactionIdIsCurrentTransactionId(tmfd.xmax))
		{
			/* locked by this transaction (SELECT ... FOR UPDATE): ours to take */
			r = table_tuple_update(rel, &old->tts_tid, t.slot, t.estate->es_output_cid,
								   snapshot, InvalidSnapshot, true, &tmfd, &lockmode,
								   &update_indexes);
		}
		if (r != TM_Ok)
			continue;			/* locked or changed by another: SKIP LOCKED */
		if (update_indexes)
			update_index_entries(&t, t.slot);
		*leased_slot(old->tts_values[pos[C_ID]]) = t.slot->tts_tid;
		ResetPerTupleExprContext(t.estate);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, row, rownulls);
		leased++;
	}
	index_endscan(scan);
	ExecDropSingleTupleTableSlot(old);
	index_close(idx, AccessShareLock);
	target_close(&t);
	table_close(rel, NoLock);	/* locked until the end of the transaction */
	PopActiveSnapshot();
	CommandCounterIncrement();
	return leased;
}

/*
 * A map from the columns of one row type (to) to the columns of the same
 * names in another (from): map[i] is the 0-based position in from of to's
 * column i, or -1 (dropped in to, or no such column in from). Kept for the
 * backend and checked by name at each use.
 */
typedef struct ColMap
{
	int		   *map;
	int			natts;
	uint64		checked;		/* kept_generation when last checked */
} ColMap;

/*
 * col_map: makes m map to onto from (the same two row types at every call
 * with m); returns whether it had to be built anew. Checked again after an
 * invalidation (kept_generation).
 */
static bool
col_map(ColMap *m, TupleDesc to, TupleDesc from)
{
	bool		ok = m->map != NULL && m->natts == to->natts;

	if (ok && m->checked == kept_generation)
		return false;
	for (int i = 0; ok && i < to->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(to, i);

		if (m->map[i] >= 0)
			ok = !att->attisdropped && col_is(from, m->map[i] + 1, NameStr(att->attname));
		else
			ok = att->attisdropped || find_col(from, NameStr(att->attname)) == 0;
	}
	if (ok)
	{
		m->checked = kept_generation;
		return false;
	}
	if (m->map)
		pfree(m->map);
	m->map = MemoryContextAlloc(TopMemoryContext, sizeof(int) * to->natts);
	m->natts = to->natts;
	for (int i = 0; i < to->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(to, i);

		m->map[i] = att->attisdropped ? -1 : find_col(from, NameStr(att->attname)) - 1;
	}
	m->checked = kept_generation;
	return true;
}

/* col_map_copy: the values of a row of from, as a row of to (NULL where m has none). */
static void
col_map_copy(const ColMap *m, const Datum *values, const bool *nulls,
			 Datum *to_values, bool *to_nulls)
{
	for (int i = 0; i < m->natts; i++)
	{
		int			from = m->map[i];

		to_values[i] = from >= 0 ? values[from] : (Datum) 0;
		to_nulls[i] = from < 0 || nulls[from];
	}
}

/*
 * What a finished run takes from the job: each column of jobq.history from
 * the jobq.jobs column of its name, or NULL (deleted_at); and the positions
 * of the history columns a finished run sets itself.
 */
typedef struct HistoryCols
{
	ColMap		cols;
	int			status,
				result,
				progress,
				updated,
				finished,
				lease,
				expires;
} HistoryCols;

static const HistoryCols *
history_cols(TupleDesc hdesc, TupleDesc jdesc)
{
	static HistoryCols hc;

	if (col_map(&hc.cols, hdesc, jdesc))
	{
		hc.status = find_col(hdesc, "status") - 1;
		hc.result = find_col(hdesc, "result") - 1;
		hc.progress = find_col(hdesc, "progress") - 1;
		hc.updated = find_col(hdesc, "updated_at") - 1;
		hc.finished = find_col(hdesc, "finished_at") - 1;
		hc.lease = find_col(hdesc, "lease") - 1;
		hc.expires = find_col(hdesc, "lease_expires_at") - 1;
		if (hc.status < 0 || hc.result < 0 || hc.progress < 0 || hc.updated < 0 ||
			hc.finished < 0 || hc.lease < 0 || hc.expires < 0)
		{
			hc.cols.natts = 0;	/* not valid: look again next time */
			elog(ERROR, "jobq: jobq.history lacks a column of a finished run");
		}
	}
	return &hc;
}

/* Whether inserts into rel fire triggers. */
static bool
insert_triggers(Relation rel)
{
	TriggerDesc *td = rel->trigdesc;

	return td != NULL &&
		(td->trig_insert_before_row || td->trig_insert_after_row ||
		 td->trig_insert_instead_row || td->trig_insert_before_statement ||
		 td->trig_insert_after_statement || td->trig_insert_new_table);
}

/*
 * The scan keys that find a job of queue by jobs_persistent's primary key,
 * whose columns are queue, id and persist in some order. Returns the key
 * whose argument is the id, for the caller to set.
 */
static int
key_scankeys(Relation pkey, const int *pos, Datum queue, ScanKey keys)
{
	int			id_key = -1;

	if (pkey->rd_index->indnkeyatts != 3)
		elog(ERROR, "jobq: unexpected primary key of jobq.jobs");
	for (int k = 0; k < 3; k++)
	{
		int			col = pkey->rd_index->indkey.values[k] - 1;

		if (col == pos[C_QUEUE] || col == pos[C_ID])
			ScanKeyInit(&keys[k], k + 1, BTEqualStrategyNumber, F_TEXTEQ, queue);
		else if (col == pos[C_PERSIST])
			ScanKeyInit(&keys[k], k + 1, BTEqualStrategyNumber, F_BOOLEQ, BoolGetDatum(true));
		else
			elog(ERROR, "jobq: unexpected primary key of jobq.jobs");
		if (col == pos[C_ID])
			id_key = k;
	}
	return id_key;
}

/*
 * jobq_direct_complete: finishes each of the n jobs ids[i] of queue that is
 * running under lease leases[i] (any lease when lease_nulls[i]) with result
 * results[i]: deletes it from jobq.jobs_persistent and inserts its finished
 * run into jobq.history, at time now. Sets done[i] for each job finished
 * (a job named twice is finished once). Returns how many it finished, or -1
 * when the statements must do it (triggers).
 */
int
jobq_direct_complete(Datum queue, int n, Datum *ids, Datum *leases, bool *lease_nulls,
					 Datum *results, bool *result_nulls, TimestampTz now, bool *done)
{
	Relation	rel;
	Relation	hrel;
	Relation	pkey = NULL;	/* opened at the first look-up by key */
	Target		h;
	TupleTableSlot *old;
	IndexScanDesc scan = NULL;
	IndexFetchTableData *fetch;
	BlockNumber nblocks = InvalidBlockNumber;
	ScanKeyData keys[3];
	int			pos[C_NCOLS];
	const HistoryCols *hc;
	int			finished = 0;
	int			id_key = -1;

	PreventCommandIfReadOnly("INSERT");	/* as the statement (WITH ... DELETE) INSERT */
	rel = table_open(jobq_relid("jobs_persistent"), RowExclusiveLock);
	hrel = table_open(jobq_relid("history"), RowExclusiveLock);
	if (rel->trigdesc != NULL || insert_triggers(hrel))
	{
		table_close(hrel, RowExclusiveLock);
		table_close(rel, RowExclusiveLock);
		return -1;
	}
	job_columns(RelationGetDescr(rel), pos);
	hc = history_cols(RelationGetDescr(hrel), RelationGetDescr(rel));

	target_open(&h, hrel, NULL);
	old = table_slot_create(rel, NULL);
	PushActiveSnapshot(GetTransactionSnapshot());

	fetch = table_index_fetch_begin(rel);
	for (int i = 0; i < n; i++)
	{
		TM_FailureData tmfd;
		TM_Result	r;

		done[i] = false;
		/* where this backend leased it, if it is still there (leased_at) */
		if (fetch_at(fetch, leased_slot(ids[i]), &nblocks, GetActiveSnapshot(), old))
		{
			slot_getallattrs(old);
			if (text_eq(old->tts_values[pos[C_ID]], ids[i]) &&
				text_eq(old->tts_values[pos[C_QUEUE]], queue))
				goto found;
		}
again:
		if (scan == NULL)
		{
			pkey = index_open(RelationGetPrimaryKeyIndex(rel), AccessShareLock);
			id_key = key_scankeys(pkey, pos, queue, keys);
			scan = index_beginscan(rel, pkey, GetActiveSnapshot(), 3, 0);
		}
		keys[id_key].sk_argument = ids[i];
		index_rescan(scan, keys, 3, NULL, 0);
		if (!index_getnext_slot(scan, ForwardScanDirection, old))
			continue;
		slot_getallattrs(old);
found:
		if (!text_is(old->tts_values[pos[C_STATUS]], "running") ||
			(!lease_nulls[i] &&
			 (old->tts_isnull[pos[C_LEASE]] ||
			  !DatumGetBool(DirectFunctionCall2(uuid_eq, old->tts_values[pos[C_LEASE]],
												leases[i])))))
			continue;
		r = table_tuple_delete(rel, &old->tts_tid, h.estate->es_output_cid,
							   GetActiveSnapshot(), InvalidSnapshot, true, &tmfd, false);
		if (r == TM_Updated || r == TM_Deleted)
		{
			/*
			 * Changed by a transaction that committed while we waited for it
			 * (a heartbeat, the reaper, a new lease): look again, in a
			 * snapshot that sees the change, as DELETE re-checks the newest
			 * version under READ COMMITTED.
			 */
			if (IsolationUsesXactSnapshot())
				ereport(ERROR,
						(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
						 errmsg("could not serialize access due to concurrent update")));
			if (scan != NULL)
				index_endscan(scan);
			PopActiveSnapshot();
			PushActiveSnapshot(GetLatestSnapshot());
			scan = pkey ? index_beginscan(rel, pkey, GetActiveSnapshot(), 3, 0) : NULL;
			goto again;
		}
		if (r != TM_Ok)
			continue;			/* deleted by this very call: named twice */

		ExecClearTuple(h.slot);
		col_map_copy(&hc->cols, old->tts_values, old->tts_isnull,
					 h.slot->tts_values, h.slot->tts_isnull);
		h.slot->tts_values[hc->status] = CStringGetTextDatum("finished");
		h.slot->tts_isnull[hc->status] = false;
		h.slot->tts_values[hc->result] = results[i];
		h.slot->tts_isnull[hc->result] = result_nulls[i];
		h.slot->tts_values[hc->progress] = Float4GetDatum(100);
		h.slot->tts_isnull[hc->progress] = false;
		h.slot->tts_values[hc->updated] = h.slot->tts_values[hc->finished] =
			TimestampTzGetDatum(now);
		h.slot->tts_isnull[hc->updated] = h.slot->tts_isnull[hc->finished] = false;
		h.slot->tts_isnull[hc->lease] = h.slot->tts_isnull[hc->expires] = true;
		ExecStoreVirtualTuple(h.slot);
		table_tuple_insert(hrel, h.slot, h.estate->es_output_cid, 0, NULL);
		ExecInsertIndexTuples(h.rri, h.slot, h.estate, false, false, NULL, NIL);
		ResetPerTupleExprContext(h.estate);
		done[i] = true;
		finished++;
	}
	if (scan != NULL)
	{
		index_endscan(scan);
		index_close(pkey, NoLock);
	}
	table_index_fetch_end(fetch);
	PopActiveSnapshot();
	ExecDropSingleTupleTableSlot(old);
	target_close(&h);
	table_close(hrel, NoLock);
	table_close(rel, NoLock);
	CommandCounterIncrement();
	return finished;
}

/*
 * What an enqueue writes: rows of jobq.jobs_persistent made as
 * jobq._enqueue_sql's INSERT makes them, with the queue's timeout and
 * max_retries.
 */
typedef struct EnqueueTarget
{
	Relation	parent;			/* jobq.jobs, locked as an INSERT locks it */
	Relation	rel;			/* jobq.jobs_persistent */
	Target		t;
	int			pos[C_NCOLS];
	Datum		timeout;		/* the queue's */
	Datum		max_retries;	/* the queue's; NULL: none */
	bool		max_retries_null;
	Datum		created_by;
} EnqueueTarget;

/* One job: what enqueue's arguments, or a job object of enqueue_batch, give. */
typedef struct EnqueueJob
{
	Datum		payload;
	Datum		state;			/* or NULL */
	bool		state_null;
	Datum		priority;
	Datum		run_at;			/* or NULL: now */
	bool		run_at_null;
	Datum		max_retries;	/* or NULL: the queue's */
	bool		max_retries_null;
} EnqueueJob;

/*
 * enqueue_open: e ready to take jobs of the queue. False, with nothing
 * opened, when the statements must do it: the queue does not exist yet
 * (they create it), it has no timeout, or no max_retries while a job needs
 * the queue's (need_max_retries), or a table has triggers (which would not
 * fire here) or a column this path does not know.
 */
static bool
enqueue_open(Datum queue, bool need_max_retries, EnqueueTarget *e)
{
	static const char *const qnames[3] = {"queue", "timeout", "max_retries"};
	static AttrNumber qcache[3];
	static uint64 qchecked;
	Datum		q[3];
	bool		qnulls[3];
	TupleDesc	desc;
	int			known = 0;

	/* what the executor checks before an INSERT, the statements' way */
	PreventCommandIfReadOnly("INSERT");
	PushActiveSnapshot(GetTransactionSnapshot());
	if (!queue_row(queue, GetActiveSnapshot(), 3, qnames, qcache, &qchecked, q, qnulls) ||
		qnulls[1] || (qnulls[2] && need_max_retries))
	{
		PopActiveSnapshot();
		return false;
	}
	e->timeout = q[1];
	e->max_retries = q[2];
	e->max_retries_null = qnulls[2];
	e->parent = table_open(jobq_relid("jobs"), RowExclusiveLock);
	e->rel = table_open(jobq_relid("jobs_persistent"), RowExclusiveLock);
	desc = RelationGetDescr(e->rel);

	/*
	 * Every column must be one this path sets or leaves NULL (JobCol): a
	 * column added to the table later, perhaps with a default, takes the
	 * statements, which know its default.
	 */
	for (int i = 0; i < desc->natts; i++)
		known += !TupleDescAttr(desc, i)->attisdropped;
	if (e->parent->trigdesc != NULL || e->rel->trigdesc != NULL || known != C_NCOLS)
	{
		table_close(e->rel, RowExclusiveLock);
		table_close(e->parent, RowExclusiveLock);
		PopActiveSnapshot();
		return false;
	}
	job_columns(desc, e->pos);
	target_open(&e->t, e->rel, NULL);
	e->created_by = jobq_caller_datum();
	return true;
}

/* A job's payload when none is given: {} (the column's default). */
static Datum
empty_payload(void)
{
	return DirectFunctionCall1(jsonb_in, CStringGetDatum("{}"));
}

/*
 * enqueue_fill: slot (of e->rel's row type) as the pending job j with a
 * generated id, the table's defaults elsewhere, and one clock reading for
 * run_at (unless given), created_at and updated_at; its constraints checked.
 */
static void
enqueue_fill(EnqueueTarget *e, Datum queue, const EnqueueJob *j, TupleTableSlot *slot)
{
	Datum	   *values = slot->tts_values;
	bool	   *nulls = slot->tts_isnull;
	const int  *pos = e->pos;
	TimestampTz now = GetCurrentTimestamp();

	ExecClearTuple(slot);
	memset(nulls, true, sizeof(bool) * slot->tts_tupleDescriptor->natts);
#define SET(col, v) (values[pos[col]] = (v), nulls[pos[col]] = false)
	SET(C_QUEUE, queue);
	SET(C_ID, jobq_new_id_datum());
	SET(C_RUN, Int64GetDatum(nextval_internal(jobq_relid("run_seq"), false)));
	SET(C_VERSION, Int32GetDatum(0));
	SET(C_STATUS, CStringGetTextDatum("pending"));
	SET(C_DESIRED_STATUS, CStringGetTextDatum("running"));
	SET(C_PAYLOAD, j->payload);
	if (!j->state_null)
		SET(C_STATE, j->state);
	SET(C_PRIORITY, j->priority);
	SET(C_RUN_AT, j->run_at_null ? TimestampTzGetDatum(now) : j->run_at);
	SET(C_TIMEOUT, e->timeout);
	if (!j->max_retries_null)
		SET(C_MAX_RETRIES, j->max_retries);
	else if (!e->max_retries_null)
		SET(C_MAX_RETRIES, e->max_retries);
	SET(C_ATTEMPT, Int32GetDatum(0));
	SET(C_PERSIST, BoolGetDatum(true));
	SET(C_ROLLBACK_ENABLED, BoolGetDatum(false));
	SET(C_CREATED_BY, e->created_by);
	SET(C_CREATED_AT, TimestampTzGetDatum(now));
	SET(C_UPDATED_AT, TimestampTzGetDatum(now));
#undef SET
	ExecStoreVirtualTuple(slot);
	if (RelationGetDescr(e->rel)->constr != NULL)
		ExecConstraints(e->t.rri, slot, e->t.estate);
}

/* enqueue_close: e done with; the tables stay locked until the transaction ends. */
static void
enqueue_close(EnqueueTarget *e)
{
	target_close(&e->t);
	table_close(e->rel, NoLock);
	table_close(e->parent, NoLock);
	PopActiveSnapshot();
	CommandCounterIncrement();
}

/*
 * jobq_direct_enqueue: the common jobq.enqueue (fcinfo's arguments: queue,
 * payload, id, timeout, max_retries, persist, run_at, priority, state) of a
 * job with a generated id (id NULL), the queue's timeout (timeout NULL) and
 * persist, into jobq.jobs_persistent, as jobq._enqueue_sql's INSERT makes
 * it (enqueue_fill). Puts the job, as the row type rdesc (blessed), in
 * *result and returns true; returns false when the statements must do it
 * (enqueue_open). The caller sends the notification.
 */
bool
jobq_direct_enqueue(FunctionCallInfo fcinfo, TupleDesc rdesc, Datum *result)
{
	static ColMap answer;
	EnqueueTarget e;
	EnqueueJob	j;
	TupleTableSlot *slot;
	Datum	   *rvalues;
	bool	   *rnulls;

	if (!enqueue_open(PG_GETARG_DATUM(0), PG_ARGISNULL(4), &e))
		return false;
	j.payload = PG_ARGISNULL(1) ? empty_payload() : PG_GETARG_DATUM(1);
	j.state = PG_GETARG_DATUM(8);
	j.state_null = PG_ARGISNULL(8);
	j.priority = PG_ARGISNULL(7) ? Int32GetDatum(0) : PG_GETARG_DATUM(7);
	j.run_at = PG_GETARG_DATUM(6);
	j.run_at_null = PG_ARGISNULL(6);
	j.max_retries = PG_GETARG_DATUM(4);
	j.max_retries_null = PG_ARGISNULL(4);
	slot = e.t.slot;
	enqueue_fill(&e, PG_GETARG_DATUM(0), &j, slot);

	/* the answer, taken before the insert materialises the slot */
	col_map(&answer, rdesc, RelationGetDescr(e.rel));
	rvalues = palloc(sizeof(Datum) * rdesc->natts);
	rnulls = palloc(sizeof(bool) * rdesc->natts);
	col_map_copy(&answer, slot->tts_values, slot->tts_isnull, rvalues, rnulls);

	table_tuple_insert(e.rel, slot, e.t.estate->es_output_cid, 0, NULL);
	ExecInsertIndexTuples(e.t.rri, slot, e.t.estate, false, false, NULL, NIL);
	*result = HeapTupleGetDatum(heap_form_tuple(rdesc, rvalues, rnulls));
	enqueue_close(&e);
	return true;
}

/* Whether o's value of key (an integer column) is absent, JSON null, a number or a string. */
static bool
batch_int_kind(JsonbContainer *o, const char *key)
{
	JsonbValue *v = getKeyJsonValueFromContainer(o, key, strlen(key), NULL);

	return v == NULL || v->type == jbvNull || v->type == jbvNumeric || v->type == jbvString;
}

/*
 * The integer o's value of key (batch_int_kind) gives as ->> and a cast to
 * integer give it, with their errors: *isnull when absent or JSON null.
 */
static Datum
batch_int(JsonbContainer *o, const char *key, bool *isnull)
{
	JsonbValue *v = getKeyJsonValueFromContainer(o, key, strlen(key), NULL);
	char	   *text;

	*isnull = v == NULL || v->type == jbvNull;
	if (*isnull)
		return (Datum) 0;
	if (v->type == jbvNumeric)
		text = DatumGetCString(DirectFunctionCall1(numeric_out,
												   NumericGetDatum(v->val.numeric)));
	else
		text = pnstrdup(v->val.string.val, v->val.string.len);
	return DirectFunctionCall1(int4in, CStringGetDatum(text));
}

/*
 * Whether elem, an element of enqueue_batch's array, is a job this path
 * makes as jobq._batch_rows does: an object whose keys, among those
 * _batch_rows reads, are only payload, state, and priority and max_retries
 * given as numbers or strings. An id (a duplicate is skipped), a timeout,
 * persist or run_at takes the statements.
 */
static bool
batch_job_simple(JsonbValue *elem)
{
	static const char *const others[] = {"id", "timeout", "persist", "persist_data",
	"run_at"};
	JsonbContainer *o;

	if (elem->type != jbvBinary || !JsonContainerIsObject(elem->val.binary.data))
		return false;
	o = elem->val.binary.data;
	for (int k = 0; k < lengthof(others); k++)
		if (getKeyJsonValueFromContainer(o, others[k], strlen(others[k]), NULL) != NULL)
			return false;
	return batch_int_kind(o, "priority") && batch_int_kind(o, "max_retries");
}

/*
 * jobq_direct_enqueue_batch: jobq.enqueue_batch(queue, jobs) of simple jobs
 * (batch_job_simple) into a queue that exists, without the executor: the
 * rows as jobq._batch_rows and the generated-ids INSERT of
 * jobq._enqueue_batch_sql make them, in the array's order, written with
 * table_multi_insert (a WAL record per page, not per row, as COPY) and then
 * their index entries. Returns the number of jobs and their ids in *ids;
 * -1, having done nothing, when the statements must do it (an element that
 * is not simple, or see enqueue_open). The caller sends the notification.
 */
int
jobq_direct_enqueue_batch(Datum queue, Jsonb *jobs, Datum **ids)
{
	EnqueueTarget e;
	JsonbContainer *root = &jobs->root;
	int			n;
	int			done = 0;
	TupleTableSlot **slots;
	MemoryContext rows;			/* what the rows being written need */

	if (!JsonContainerIsArray(root) || JsonContainerIsScalar(root))
		return -1;
	n = JsonContainerSize(root);
	for (int i = 0; i < n; i++)
		if (!batch_job_simple(getIthJsonbValueFromContainer(root, i)))
			return -1;
	if (!enqueue_open(queue, true, &e))
		return -1;

	*ids = palloc(sizeof(Datum) * Max(n, 1));
	slots = palloc(sizeof(TupleTableSlot *) * Min(n, BATCH_SLOTS));
	for (int i = 0; i < Min(n, BATCH_SLOTS); i++)
		slots[i] = table_slot_create(e.rel, NULL);
	rows = AllocSetContextCreate(CurrentMemoryContext, "jobq enqueue_batch rows",
								 ALLOCSET_DEFAULT_SIZES);
	while (done < n)
	{
		int			k = Min(n - done, BATCH_SLOTS);
		MemoryContext outer = MemoryContextSwitchTo(rows);

		for (int i = 0; i < k; i++)
		{
			JsonbContainer *o = getIthJsonbValueFromContainer(root, done + i)->val.binary.data;
			JsonbValue *v;
			EnqueueJob	j;
			bool		isnull;

			v = getKeyJsonValueFromContainer(o, "payload", 7, NULL);
			j.payload = v ? JsonbPGetDatum(JsonbValueToJsonb(v)) : empty_payload();
			v = getKeyJsonValueFromContainer(o, "state", 5, NULL);
			j.state_null = v == NULL;
			j.state = v ? JsonbPGetDatum(JsonbValueToJsonb(v)) : (Datum) 0;
			j.max_retries = batch_int(o, "max_retries", &j.max_retries_null);
			j.priority = batch_int(o, "priority", &isnull);
			if (isnull)
				j.priority = Int32GetDatum(0);
			j.run_at_null = true;
			enqueue_fill(&e, queue, &j, slots[i]);
			/* the id, read before the insert materialises the slot */
			MemoryContextSwitchTo(outer);
			(*ids)[done + i] = datumCopy(slots[i]->tts_values[e.pos[C_ID]], false, -1);
			MemoryContextSwitchTo(rows);
		}
		table_multi_insert(e.rel, slots, k, e.t.estate->es_output_cid, 0, NULL);
		for (int i = 0; i < k; i++)
		{
			ExecInsertIndexTuples(e.t.rri, slots[i], e.t.estate, false, false, NULL, NIL);
			ResetPerTupleExprContext(e.t.estate);
		}
		MemoryContextSwitchTo(outer);
		for (int i = 0; i < k; i++)
			ExecClearTuple(slots[i]);
		MemoryContextReset(rows);
		done += k;
	}
	MemoryContextDelete(rows);
	for (int i = 0; i < Min(n, BATCH_SLOTS); i++)
		ExecDropSingleTupleTableSlot(slots[i]);
	enqueue_close(&e);
	return n;
}
