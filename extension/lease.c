/*-------------------------------------------------------------------------
 *
 * lease.c
 *	  jobq.lease: hand out up to n due pending jobs of a queue to a worker.
 *
 *	  While no unlogged job exists (jobq_persistent_only), a lease of an
 *	  uncapped queue is direct.c's: one index scan and an update per job,
 *	  without the executor. Otherwise (unlogged jobs, a queue capped by
 *	  max_running, triggers on the live table) the general path runs.
 *
 *	  The general path is three prepared statements: the queue's row
 *	  (paused? capped? a capped queue also takes its lease lock and counts
 *	  its running jobs in a fourth), the pick, which takes the jobs through
 *	  the partial index over pending rows (hashtext(queue), priority, run_at,
 *	  run; queue = $1 is tested on the row, for queues whose names hash
 *	  alike) with FOR UPDATE SKIP LOCKED and returns their partition and
 *	  ctid, and the mark, which sets them running with a fresh lease token,
 *	  by TID in each partition. Joining the picked rows back by key instead
 *	  lets the planner, which cannot know n in a generic plan, choose a merge
 *	  join over the whole table: 50 ms per lease with 100 000 jobs, against a
 *	  few microseconds per row by TID. Paused queues yield nothing; a queue with
 *	  max_running yields at most its free slots (its leases are serialised,
 *	  see below). The time is passed in as a parameter (the clock at the
 *	  call), so run_at is an index bound.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "common/pg_prng.h"
#include "funcapi.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"
#include "utils/uuid.h"

#include "jobq.h"

PG_FUNCTION_INFO_V1(jobq_lease);
PG_FUNCTION_INFO_V1(jobq_token);
PG_FUNCTION_INFO_V1(jobq_new_id);

/* The generator of lease tokens and job ids, seeded once per backend. */
static pg_prng_state id_prng;

static pg_prng_state *
id_generator(void)
{
	static bool seeded = false;

	if (!seeded)
	{
		if (!pg_prng_strong_seed(&id_prng))
			ereport(ERROR,
					(errcode(ERRCODE_INTERNAL_ERROR),
					 errmsg("could not seed the lease token generator")));
		seeded = true;
	}
	return &id_prng;
}

/*
 * jobq._token() returns uuid: a random (version 4) UUID for a lease token.
 *
 * Tokens fence stale workers; they need to be unique, not secret (a worker
 * allowed to complete may complete without one). gen_random_uuid() asks
 * OpenSSL for every token, about 6% of a job's instructions; this draws
 * from a generator of the backend seeded once from the same strong source.
 */
Datum
jobq_token(PG_FUNCTION_ARGS)
{
	return jobq_token_datum();
}

/* A fresh lease token (see jobq_token), palloc'd. */
Datum
jobq_token_datum(void)
{
	pg_uuid_t  *uuid = palloc(UUID_LEN);
	uint64		hi = pg_prng_uint64(id_generator());
	uint64		lo = pg_prng_uint64(id_generator());

	for (int i = 0; i < 8; i++)
	{
		uuid->data[i] = (unsigned char) (hi >> (56 - 8 * i));
		uuid->data[8 + i] = (unsigned char) (lo >> (56 - 8 * i));
	}
	uuid->data[6] = (uuid->data[6] & 0x0f) | 0x40;	/* version 4 */
	uuid->data[8] = (uuid->data[8] & 0x3f) | 0x80;	/* RFC 9562 variant */
	return UUIDPGetDatum(uuid);
}

/*
 * jobq._new_id() returns text: a generated job id, a time-ordered (version 7)
 * UUID in its text form: 48 bits of Unix time in milliseconds, then random
 * bits. Ids of jobs enqueued one after another sort together, so their
 * primary key entries go to the same few B-tree pages (the rightmost, for
 * enqueue; the oldest, for lease and complete) instead of one random page of
 * the whole index each: fewer pages touched and written (a random UUID cost
 * a deep queue 3.5x the WAL per job, W4 of bench/).
 */
Datum
jobq_new_id(PG_FUNCTION_ARGS)
{
	return jobq_new_id_datum();
}

/* A generated job id (see jobq_new_id), a palloc'd text datum. */
Datum
jobq_new_id_datum(void)
{
	static const char hex[] = "0123456789abcdef";
	unsigned char b[16];
	char		out[37];
	uint64		ms = (uint64) (GetCurrentTimestamp() / 1000 +
							   (int64) (POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * SECS_PER_DAY * 1000);
	uint64		r1 = pg_prng_uint64(id_generator());
	uint64		r2 = pg_prng_uint64(id_generator());
	int			o = 0;

	for (int i = 0; i < 6; i++)
		b[i] = (unsigned char) (ms >> (40 - 8 * i));
	b[6] = 0x70 | (unsigned char) (r1 & 0x0f);	/* version 7 */
	b[7] = (unsigned char) (r1 >> 8);
	b[8] = 0x80 | (unsigned char) ((r1 >> 16) & 0x3f);	/* RFC 9562 variant */
	for (int i = 9; i < 16; i++)
		b[i] = (unsigned char) (r2 >> (8 * (i - 9)));
	for (int i = 0; i < 16; i++)
	{
		if (i == 4 || i == 6 || i == 8 || i == 10)
			out[o++] = '-';
		out[o++] = hex[b[i] >> 4];
		out[o++] = hex[b[i] & 0x0f];
	}
	out[o] = '\0';
	return PointerGetDatum(cstring_to_text(out));
}

/*
 * The queue's state; a queue capped by max_running also takes the lock that
 * serialises its leases (see jobq_lease).
 */
static const char *queue_sql =
"SELECT q.paused, q.max_running,"
"  CASE WHEN q.max_running IS NOT NULL AND NOT q.paused THEN"
"    pg_catalog.pg_advisory_xact_lock(1785684594, pg_catalog.hashtext(q.queue)) END"
" FROM jobq.queues q WHERE q.queue = $1";

static const char *running_sql =
"SELECT pg_catalog.count(*)::integer FROM jobq.jobs r"
" WHERE r.queue = $1 AND r.status = 'running'";

/*
 * Picks and locks up to $2 jobs to lease: their partition and ctid.
 * hashtext(queue) is jobs_pending_idx's leading key (the same expression, so
 * the planner matches it), and queue = $1, tested on the row, leaves out the
 * jobs of a queue whose name hashes alike.
 */
static const char *pick_sql =
"SELECT j.persist, j.ctid FROM jobq.jobs j"
" WHERE pg_catalog.hashtext(j.queue) = pg_catalog.hashtext($1) AND j.queue = $1"
"  AND j.status = 'pending' AND j.run_at <= $3"
" ORDER BY j.priority, j.run_at, j.run LIMIT $2"
" FOR UPDATE OF j SKIP LOCKED";

/*
 * Marks the picked jobs running, by TID (a Tid Scan: no join, so no plan can
 * read more than the picked rows), in one partition or both. The rows are
 * locked by the pick, so their ctids still name them; the status check is a
 * safeguard.
 */
#define LEASE_UPDATE(rel, param) \
"UPDATE " rel " j SET status = 'running', attempt = j.attempt + 1," \
"    lease = jobq._token(), worker = $3," \
"    timeout = COALESCE($4, j.timeout)," \
"    lease_expires_at = $5 + COALESCE($4, j.timeout)," \
"    started_at = $5, updated_at = $5" \
"  WHERE j.ctid = ANY(" param ") AND j.status = 'pending'" \
"  RETURNING j.queue, j.id, j.run, j.version, j.attempt, j.lease, j.payload, j.state," \
"    j.timeout, j.lease_expires_at, j.max_retries, j.priority, j.persist, j.run_at," \
"    j.created_at"
#define LEASE_ORDER " ORDER BY priority, run_at, run"

static const char *mark_sql[3] = {
	/* persistent jobs only */
	"WITH p AS (" LEASE_UPDATE("jobq.jobs_persistent", "$1") ")"
	" SELECT * FROM p" LEASE_ORDER,
	/* unlogged jobs only */
	"WITH u AS (" LEASE_UPDATE("jobq.jobs_unlogged", "$2") ")"
	" SELECT * FROM u" LEASE_ORDER,
	/* both */
	"WITH p AS (" LEASE_UPDATE("jobq.jobs_persistent", "$1") "),"
	" u AS (" LEASE_UPDATE("jobq.jobs_unlogged", "$2") ")"
	" SELECT * FROM p UNION ALL SELECT * FROM u" LEASE_ORDER,
};

/* The ctids picked in one partition. */
typedef struct TidList
{
	int			n;
	Datum	   *tids;
} TidList;

static Datum
tid_array(TidList *list)
{
	return PointerGetDatum(construct_array(list->tids, list->n, TIDOID,
										   sizeof(ItemPointerData), false,
										   TYPALIGN_SHORT));
}

/* The leased rows of the last SPI statement into the function's result. */
static void
lease_answer(ReturnSetInfo *rsinfo)
{
	Datum		values[15];
	bool		nulls[15];

	for (uint64 i = 0; i < SPI_processed; i++)
	{
		heap_deform_tuple(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, values, nulls);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
}

/*
 * jobq.lease(queue text, worker text, n int, timeout interval)
 * returns setof jobq.leased (queue, id, run, version, attempt, lease, payload,
 *				 state, timeout, lease_expires_at, max_retries, priority, persist,
 *				 run_at, created_at)
 */
Datum
jobq_lease(PG_FUNCTION_ARGS)
{
	static SPIPlanPtr queue_plan = NULL;
	static SPIPlanPtr running_plan = NULL;
	static SPIPlanPtr pick_plan = NULL;
	static SPIPlanPtr mark_plans[3] = {NULL, NULL, NULL};
	Oid			pick_types[3] = {TEXTOID, INT4OID, TIMESTAMPTZOID};
	Oid			mark_types[5] = {TIDARRAYOID, TIDARRAYOID, TEXTOID, INTERVALOID,
	TIMESTAMPTZOID};
	Datum		pick_args[3];
	Datum		mark_args[5];
	char		mark_nulls[5] = {' ', ' ', ' ', ' ', ' '};
	TidList		lists[2];
	int			which;
	bool		isnull;
	Datum		cap;
	Oid			argtypes[5] = {TEXTOID, TEXTOID, INT4OID, INTERVALOID, TIMESTAMPTZOID};
	Datum		values[5];
	char		nulls[5] = {' ', ' ', ' ', ' ', ' '};
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	int32		n;
	uint64		i;
	int			pinned;			/* jobq_spi_connect's level */

	jobq_queue_arg(fcinfo, 0);
	if (PG_ARGISNULL(2))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("n must not be null")));
	n = PG_GETARG_INT32(2);
	if (n < 1 || n > JOBQ_LEASE_MAX)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("n must be between 1 and %d, got %d", JOBQ_LEASE_MAX, n)));
	if (!PG_ARGISNULL(3))
		jobq_check_positive_interval(PG_GETARG_DATUM(3), "timeout");

	InitMaterializedSRF(fcinfo, 0);

	values[0] = PG_GETARG_DATUM(0);
	values[1] = PG_ARGISNULL(1) ? (Datum) 0 : PG_GETARG_DATUM(1);
	nulls[1] = PG_ARGISNULL(1) ? 'n' : ' ';
	values[2] = Int32GetDatum(n);
	values[3] = PG_ARGISNULL(3) ? (Datum) 0 : PG_GETARG_DATUM(3);
	nulls[3] = PG_ARGISNULL(3) ? 'n' : ' ';
	values[4] = TimestampTzGetDatum(GetCurrentTimestamp());

	if (jobq_persistent_only() &&
		jobq_direct_lease(values[0], values[1], nulls[1] == 'n', n, values[3],
						  nulls[3] == 'n', DatumGetTimestampTz(values[4]), rsinfo) >= 0)
		return (Datum) 0;

	pinned = jobq_spi_connect();

	/*
	 * A queue capped by max_running: leases of it are serialised by a
	 * transaction advisory lock on the queue, taken by the first statement;
	 * the second counts the running jobs in a fresh snapshot (READ COMMITTED)
	 * that sees every lease committed before. Without it, concurrent leases
	 * each count in their own snapshot, blind to the others' uncommitted
	 * leases, and together exceed the cap.
	 */
	jobq_plan(&queue_plan, queue_sql, 1, argtypes);
	if (SPI_execute_plan(queue_plan, values, nulls, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "jobq: lease queue look-up failed");
	if (SPI_processed == 0 ||
		DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull)))
	{
		jobq_spi_finish(pinned);
		return (Datum) 0;
	}
	cap = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull);
	if (!isnull)
	{
		int32		free_slots = DatumGetInt32(cap);

		jobq_plan(&running_plan, running_sql, 1, argtypes);
		if (SPI_execute_plan(running_plan, values, nulls, false, 0) != SPI_OK_SELECT)
			elog(ERROR, "jobq: lease count of running jobs failed");
		free_slots -= DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0],
												  SPI_tuptable->tupdesc, 1, &isnull));
		if (free_slots <= 0)
		{
			jobq_spi_finish(pinned);
			return (Datum) 0;
		}
		n = Min(n, free_slots);
	}

	pick_args[0] = values[0];
	pick_args[1] = Int32GetDatum(n);
	pick_args[2] = values[4];
	jobq_plan(&pick_plan, pick_sql, 3, pick_types);
	if (SPI_execute_plan(pick_plan, pick_args, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "jobq: lease pick failed");
	if (SPI_processed == 0)
	{
		jobq_spi_finish(pinned);
		return (Datum) 0;
	}

	lists[0].n = lists[1].n = 0;
	lists[0].tids = palloc(sizeof(Datum) * SPI_processed);
	lists[1].tids = palloc(sizeof(Datum) * SPI_processed);
	for (i = 0; i < SPI_processed; i++)
	{
		bool		persist = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[i],
														 SPI_tuptable->tupdesc, 1, &isnull));
		TidList    *list = &lists[persist ? 0 : 1];
		ItemPointer tid = (ItemPointer) palloc(sizeof(ItemPointerData));

		ItemPointerCopy((ItemPointer) DatumGetPointer(SPI_getbinval(SPI_tuptable->vals[i],
																	SPI_tuptable->tupdesc, 2,
																	&isnull)),
						tid);
		list->tids[list->n++] = PointerGetDatum(tid);
	}

	mark_args[0] = tid_array(&lists[0]);
	mark_args[1] = tid_array(&lists[1]);
	mark_args[2] = values[1];
	mark_args[3] = values[3];
	mark_args[4] = values[4];
	mark_nulls[2] = nulls[1];
	mark_nulls[3] = nulls[3];
	which = lists[1].n == 0 ? 0 : lists[0].n == 0 ? 1 : 2;
	jobq_plan(&mark_plans[which], mark_sql[which], 5, mark_types);
	if (SPI_execute_plan(mark_plans[which], mark_args, mark_nulls, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "jobq: lease failed");
	lease_answer(rsinfo);
	jobq_spi_finish(pinned);
	return (Datum) 0;
}
