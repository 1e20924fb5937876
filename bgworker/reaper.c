/*-------------------------------------------------------------------------
 *
 * reaper.c
 *	  The jobq reaper: a background worker per database that gives jobs
 *	  whose lease expired back to their queue (or fails them) and purges
 *	  ended runs older than their queue's retention; now and then it also
 *	  rebuilds bloated indexes (jobq.compact) and vacuums the live tables
 *	  when they hold many dead rows (reaper_vacuum). Between ticks, and
 *	  between batches, it sends the NOTIFY jobq of transactions that left it
 *	  to the reaper (bgworker/notify.c, reaper_notify_round); a commit that
 *	  does sets its latch.
 *
 *	  Registration: when jobq is in shared_preload_libraries, _PG_init calls
 *	  jobq_reaper_init, which defines the GUCs, installs the shared-memory
 *	  hooks and registers one static worker per database in jobq.database.
 *	  Without preload, jobq.start_reaper() (reaper_state.c) launches one for
 *	  the current database as a dynamic worker. Either kind restarts
 *	  REAPER_RESTART_SECS after it dies and right after crash recovery.
 *
 *	  The work is jobq.reap(batch) (sql/src/20_reaper.sql), the function
 *	  tests call on demand. Each tick (jobq.reaper_interval) the worker runs
 *	  it once per short transaction, again while a call comes back with a
 *	  full batch of either kind of work: a transaction holds row locks on at
 *	  most jobq.reaper_batch expired jobs and as many ended runs, taken with
 *	  SKIP LOCKED, so a concurrent lease or complete never waits longer than
 *	  one batch. An error aborts that transaction and ends the tick; it is
 *	  logged and counted in shared memory, and the next tick tries again.
 *
 *	  The worker connects as jobq.reaper_role (default: the bootstrap
 *	  superuser); that role needs only what jobq_admin has.
 *
 *	  Before each batch the worker checks, in the same transaction, that the
 *	  extension exists in its database (and is not being created by this
 *	  very session, as pg_cron checks); until then it waits, having logged
 *	  that once.
 *
 *	  Signals: SIGTERM is die (the worker exits at the next
 *	  CHECK_FOR_INTERRUPTS and the postmaster restarts it unless shutting
 *	  down), SIGHUP reloads the configuration (interval and batch apply at
 *	  once), postmaster death ends the wait. jobq.stop_reaper() sets a flag
 *	  in shared memory and the worker exits with status 0, which
 *	  unregisters it.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "commands/async.h"
#include "commands/vacuum.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/shmem.h"
#include "nodes/makefuncs.h"
#include "tcop/tcopprot.h"
#include "utils/acl.h"
#include "utils/fmgrprotos.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"
#include "utils/varlena.h"

#include "jobq.h"
#include "reaper.h"

#define REAP_SQL	"SELECT reaped, purged FROM jobq.reap($1)"
#define COMPACT_SQL	"SELECT pg_catalog.count(*)::integer, 0 FROM jobq.compact()"

/* GUCs */
char	   *jobq_reaper_databases = NULL;	/* jobq.database */
int			jobq_reaper_interval = 1000;	/* jobq.reaper_interval, ms */
int			jobq_reaper_batch = 1000;	/* jobq.reaper_batch */
int			jobq_compact_interval = 60000;	/* jobq.compact_interval, ms; 0: never */
int			jobq_vacuum_interval = 10000;	/* jobq.vacuum_interval, ms; 0: never */
char	   *jobq_reaper_role = NULL;	/* jobq.reaper_role; empty: bootstrap superuser */

/* Set in the postmaster when loaded by shared_preload_libraries. */
bool		reaper_preloaded = false;

/* True in a reaper: its own transactions send their notifications themselves. */
bool		jobq_in_reaper = false;

/*
 * The least time between two rounds of notifications sent for others: what
 * commits meanwhile goes out in the next round, so that a stream of small
 * transactions costs the reaper at most one transaction per millisecond.
 */
#define REAPER_NOTIFY_GAP_MS 1

static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

/* In the worker: the shared state, its slot there, and its database's name. */
static ReaperShared *my_shared = NULL;
static ReaperSlot *my_slot = NULL;
static const char *my_dbname = NULL;

static bool reaper_check_databases(char **newval, void **extra, GucSource source);
static void reaper_shmem_request(void);
static void reaper_shmem_startup(void);
static void reaper_register_static(void);
static void reaper_tick(bool *waiting_logged);
static bool reaper_run_batch(const char *sql, int batch, bool *ready, int64 *reaped,
							 int64 *purged);
static bool reaper_vacuum(void);
static void reaper_error(MemoryContext cxt);
static bool reaper_extension_ready(void);
static bool reaper_stop_requested(void);
static bool reaper_notify_round(void);
static void reaper_pause_pumping(bool paused);

/*
 * jobq_reaper_init: called from _PG_init. Defines the reaper's SIGHUP GUCs
 * in every process (jobq.reap() reads jobq.reaper_batch), and, when
 * preloading, jobq.database (a PGC_POSTMASTER variable cannot be defined
 * later), the shared-memory hooks and the static workers.
 */
void
jobq_reaper_init(void)
{
	DefineCustomIntVariable("jobq.reaper_interval",
							"Time between two runs of the jobq reaper.",
							NULL,
							&jobq_reaper_interval,
							1000, 10, 3600 * 1000,
							PGC_SIGHUP,
							GUC_UNIT_MS,
							NULL, NULL, NULL);
	DefineCustomIntVariable("jobq.reaper_batch",
							"Most expired jobs, and most ended runs, the jobq reaper handles per transaction.",
							NULL,
							&jobq_reaper_batch,
							1000, 1, 100000,
							PGC_SIGHUP,
							0,
							NULL, NULL, NULL);

	DefineCustomIntVariable("jobq.compact_interval",
							"Time between the reaper's calls of jobq.compact() (0: never).",
							"jobq.compact() rebuilds indexes of jobq's small tables that a long-held snapshot left bloated.",
							&jobq_compact_interval,
							60000, 0, INT_MAX,
							PGC_SIGHUP,
							GUC_UNIT_MS,
							NULL, NULL, NULL);

	DefineCustomIntVariable("jobq.vacuum_interval",
							"Time between the reaper's looks for dead rows in jobq's live tables (0: never).",
							"A live table with more than 1000 + 10% of its live rows dead is vacuumed at once, without waiting for autovacuum_naptime; the reaper's role must own it (the bootstrap superuser does).",
							&jobq_vacuum_interval,
							10000, 0, INT_MAX,
							PGC_SIGHUP,
							GUC_UNIT_MS,
							NULL, NULL, NULL);

	DefineCustomStringVariable("jobq.reaper_role",
							   "Role the jobq reaper connects as.",
							   "Empty means the bootstrap superuser. The role must be able to log in and needs only what jobq_admin has (EXECUTE on jobq.reap). Takes effect when a reaper (re)connects.",
							   &jobq_reaper_role,
							   "",
							   PGC_SIGHUP,
							   0,
							   NULL, NULL, NULL);

	/*
	 * Defined without preload too, where it does nothing, so that a
	 * jobq.database left in postgresql.conf is not reported as an invalid
	 * parameter by every backend that loads jobq; PGC_SIGHUP then, since a
	 * PGC_POSTMASTER variable can only be defined while preloading.
	 */
	DefineCustomStringVariable("jobq.database",
							   "Databases the jobq reaper serves (comma-separated).",
							   "One reaper per database is started when jobq is in shared_preload_libraries; without it, this does nothing (see jobq.start_reaper()).",
							   &jobq_reaper_databases,
							   "postgres",
							   process_shared_preload_libraries_in_progress ? PGC_POSTMASTER : PGC_SIGHUP,
							   GUC_LIST_INPUT,
							   reaper_check_databases, NULL, NULL);

	if (!process_shared_preload_libraries_in_progress)
		return;

	reaper_preloaded = true;
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = reaper_shmem_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = reaper_shmem_startup;
	reaper_register_static();
}

/* check_hook for jobq.database: a list of names. */
static bool
reaper_check_databases(char **newval, void **extra, GucSource source)
{
	char	   *raw = pstrdup(*newval);
	List	   *names;
	bool		ok = SplitGUCList(raw, ',', &names);

	if (!ok)
		GUC_check_errdetail("List syntax is invalid.");
	list_free(names);
	pfree(raw);
	return ok;
}

static void
reaper_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(reaper_shmem_size());
}

static void
reaper_shmem_startup(void)
{
	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();
	(void) reaper_attach(true);
}

/*
 * reaper_fill_worker: the BackgroundWorker of a reaper for a database,
 * connecting by name (static workers: dboid is InvalidOid) or by OID.
 */
void
reaper_fill_worker(BackgroundWorker *worker, const char *dbname, Oid dboid)
{
	memset(worker, 0, sizeof(BackgroundWorker));
	worker->bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker->bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker->bgw_restart_time = REAPER_RESTART_SECS;
	strlcpy(worker->bgw_library_name, "jobq", BGW_MAXLEN);
	strlcpy(worker->bgw_function_name, "jobq_reaper_main", BGW_MAXLEN);
	snprintf(worker->bgw_name, BGW_MAXLEN, "jobq reaper for database %s", dbname);
	strlcpy(worker->bgw_type, "jobq reaper", BGW_MAXLEN);
	worker->bgw_main_arg = ObjectIdGetDatum(dboid);
	strlcpy(worker->bgw_extra, dbname, BGW_EXTRALEN);
}

/* Registers one static reaper per distinct database named in jobq.database. */
static void
reaper_register_static(void)
{
	char	   *raw = pstrdup(jobq_reaper_databases);
	List	   *names;
	List	   *done = NIL;
	ListCell   *lc;

	if (!SplitGUCList(raw, ',', &names))
		return;					/* cannot happen: the check hook accepted it */
	foreach(lc, names)
	{
		char	   *dbname = (char *) lfirst(lc);
		BackgroundWorker worker;
		ListCell   *d;
		bool		dup = false;

		if (dbname[0] == '\0')
			continue;
		foreach(d, done)
			dup = dup || strcmp((char *) lfirst(d), dbname) == 0;
		if (dup)
			continue;
		if (list_length(done) >= REAPER_MAX_SLOTS)
		{
			ereport(WARNING,
					(errmsg("jobq.database names more than %d databases; the others get no reaper",
							REAPER_MAX_SLOTS)));
			break;
		}
		reaper_fill_worker(&worker, dbname, InvalidOid);
		RegisterBackgroundWorker(&worker);
		done = lappend(done, dbname);
	}
}

/*
 * jobq_reaper_main: the worker's entry point. main_arg is the database's
 * OID (dynamic workers) or InvalidOid (static ones: the name is in
 * bgw_extra).
 */
void
jobq_reaper_main(Datum main_arg)
{
	Oid			dboid = DatumGetObjectId(main_arg);
	MemoryContext tick_cxt;
	TimestampTz next_tick;
	bool		waiting_logged = false;
	pid_t		other;
	char	   *role = NULL;

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();

	my_dbname = pstrdup(MyBgworkerEntry->bgw_extra);
	/* jobq.reaper_role, or NULL: the bootstrap superuser */
	if (jobq_reaper_role != NULL && jobq_reaper_role[0] != '\0')
		role = pstrdup(jobq_reaper_role);
	if (OidIsValid(dboid))
	{
		if (!reaper_connect_attempt(dboid))
		{
			ereport(LOG,
					(errmsg("jobq reaper for database \"%s\" gives up after %d failed attempts to connect",
							my_dbname, REAPER_CONNECT_TRIES),
					 errdetail("The database may have been dropped.")));
			proc_exit(0);		/* exit status 0: unregistered */
		}
		if (role == NULL)
			BackgroundWorkerInitializeConnectionByOid(dboid, InvalidOid, 0);
		else
			BackgroundWorkerInitializeConnection(my_dbname, role, 0);
	}
	else
		BackgroundWorkerInitializeConnection(my_dbname, role, 0);

	/* Visible as "jobq reaper" in pg_stat_activity; jobq's SQL is schema-qualified. */
	SetConfigOption("application_name", "jobq reaper", PGC_USERSET, PGC_S_SESSION);
	SetConfigOption("search_path", "pg_catalog, pg_temp", PGC_USERSET, PGC_S_SESSION);

	my_slot = reaper_claim_slot(OidIsValid(dboid), &other);
	if (my_slot == NULL)
	{
		if (other != 0)
			ereport(LOG,
					(errmsg("jobq reaper for database \"%s\" not started: the reaper with PID %d already serves it",
							my_dbname, (int) other)));
		else
			ereport(WARNING,
					(errmsg("jobq reaper for database \"%s\" not started: %d databases already have one",
							my_dbname, REAPER_MAX_SLOTS)));
		proc_exit(0);			/* exit status 0: not restarted */
	}
	my_shared = reaper_attach(false);
	ereport(LOG,
			(errmsg("jobq reaper started for database \"%s\"", my_dbname)));

	tick_cxt = AllocSetContextCreate(TopMemoryContext,
									 "jobq reaper tick",
									 ALLOCSET_DEFAULT_SIZES);
	jobq_in_reaper = true;
	reaper_pause_pumping(false);
	next_tick = GetCurrentTimestamp();
	for (;;)
	{
		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			/* a tick at once, which applies the new settings */
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
			next_tick = GetCurrentTimestamp();
		}
		if (reaper_stop_requested())
		{
			(void) reaper_notify_round();
			ereport(LOG,
					(errmsg("jobq reaper for database \"%s\" stopping on request", my_dbname)));
			proc_exit(0);		/* exit status 0: unregistered */
		}

		/* Woken by a commit that left notifications: send them, then a pause. */
		if (reaper_notify_round())
			(void) WaitLatch(MyLatch, WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
							 REAPER_NOTIFY_GAP_MS, PG_WAIT_EXTENSION);

		if (GetCurrentTimestamp() >= next_tick)
		{
			MemoryContext oldcxt;

			MemoryContextReset(tick_cxt);
			oldcxt = MemoryContextSwitchTo(tick_cxt);
			reaper_tick(&waiting_logged);
			MemoryContextSwitchTo(oldcxt);
			next_tick = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), jobq_reaper_interval);
		}

		/*
		 * Until the next tick, or a commit's notifications. Some may have come
		 * while a lock wait of the round or the tick reset the latch: then no
		 * sleep.
		 */
		(void) WaitLatch(MyLatch,
						 WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 reaper_notify_pending(my_slot) ? 0 :
						 TimestampDifferenceMilliseconds(GetCurrentTimestamp(), next_tick),
						 PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
}

/*
 * reaper_tick: one run: batches until one comes back short of work (or
 * fails, or the worker is asked to stop), then the run's counts go to
 * shared memory. Runs in the tick memory context, outside a transaction.
 */
static void
reaper_tick(bool *waiting_logged)
{
	static TimestampTz last_compact = 0;
	static TimestampTz last_vacuum = 0;

	int64		reaped = 0;
	int64		purged = 0;
	int64		errors = 0;
	bool		ready = false;
	int			batch;

	for (;;)
	{
		int64		r = 0;
		int64		p = 0;

		batch = jobq_reaper_batch;
		if (!reaper_run_batch(REAP_SQL, batch, &ready, &r, &p))
		{
			errors++;
			break;
		}
		reaped += r;
		purged += p;
		(void) reaper_notify_round();
		if (!ready || (r < batch && p < batch))
			break;

		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}
		if (reaper_stop_requested())
			break;
	}

	/* Now and then, rebuild indexes a long-held snapshot left bloated. */
	if (ready && errors == 0 && jobq_compact_interval > 0 &&
		TimestampDifferenceExceeds(last_compact, GetCurrentTimestamp(), jobq_compact_interval))
	{
		int64		rebuilt = 0;
		int64		unused = 0;

		last_compact = GetCurrentTimestamp();
		reaper_pause_pumping(true);
		if (!reaper_run_batch(COMPACT_SQL, 0, &ready, &rebuilt, &unused))
			errors++;
		else if (rebuilt > 0)
			ereport(LOG,
					(errmsg("jobq reaper: rebuilt %d bloated index(es) in database \"%s\"",
							(int) rebuilt, my_dbname)));
		reaper_pause_pumping(false);
	}

	/*
	 * Now and then, vacuum the live tables that hold many dead rows. A busy
	 * queue leaves two dead row versions and their index entries per job;
	 * autovacuum visits a database at most once per autovacuum_naptime (a
	 * minute), and a B-tree keeps the pages it grew to in between (W5 of
	 * bench/).
	 */
	if (ready && errors == 0 && jobq_vacuum_interval > 0 &&
		TimestampDifferenceExceeds(last_vacuum, GetCurrentTimestamp(), jobq_vacuum_interval))
	{
		last_vacuum = GetCurrentTimestamp();
		reaper_pause_pumping(true);
		if (!reaper_vacuum())
			errors++;
		reaper_pause_pumping(false);
	}

	if (!ready && errors == 0 && !*waiting_logged)
	{
		ereport(LOG,
				(errmsg("jobq reaper: extension \"jobq\" is not installed in database \"%s\"; waiting",
						my_dbname),
				 errhint("Run CREATE EXTENSION jobq in that database.")));
		*waiting_logged = true;
	}
	else if (ready && *waiting_logged)
	{
		ereport(LOG,
				(errmsg("jobq reaper: extension \"jobq\" found in database \"%s\"", my_dbname)));
		*waiting_logged = false;
	}

	SpinLockAcquire(&my_shared->mutex);
	if (errors == 0)
		my_slot->ready = ready;
	my_slot->interval_ms = jobq_reaper_interval;
	my_slot->batch = jobq_reaper_batch;
	my_slot->last_run_at = GetCurrentTimestamp();
	my_slot->last_reaped = reaped;
	my_slot->last_purged = purged;
	my_slot->last_errors = errors;
	my_slot->ticks++;
	my_slot->total_reaped += reaped;
	my_slot->total_purged += purged;
	my_slot->total_errors += errors;
	SpinLockRelease(&my_shared->mutex);
}

/*
 * reaper_error: in a PG_CATCH block, logs the error, aborts the transaction
 * and records the error in the slot; cxt is the memory context to go back to.
 */
static void
reaper_error(MemoryContext cxt)
{
	ErrorData  *edata;

	MemoryContextSwitchTo(cxt);
	edata = CopyErrorData();
	EmitErrorReport();
	FlushErrorState();
	AbortCurrentTransaction();

	SpinLockAcquire(&my_shared->mutex);
	strlcpy(my_slot->last_error, edata->message ? edata->message : "unknown error",
			REAPER_ERRLEN);
	my_slot->last_error_at = GetCurrentTimestamp();
	SpinLockRelease(&my_shared->mutex);
	FreeErrorData(edata);
}

/*
 * reaper_run_batch: one statement in its own transaction, when the extension
 * is ready (*ready says whether it was): REAP_SQL, jobq.reap(batch), whose
 * two counts go to *reaped and *purged, or COMPACT_SQL (the indexes rebuilt,
 * and 0). Returns false after an error, which has been logged, recorded in
 * the slot, and its transaction aborted.
 */
static bool
reaper_run_batch(const char *sql, int batch, bool *ready, int64 *reaped, int64 *purged)
{
	MemoryContext cxt = CurrentMemoryContext;
	volatile bool ok = true;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PG_TRY();
	{
		*ready = reaper_extension_ready();
		if (*ready)
		{
			Oid			argtype = INT4OID;
			Datum		arg = Int32GetDatum(batch);
			bool		isnull;

			if (SPI_connect() != SPI_OK_CONNECT)
				elog(ERROR, "jobq reaper: SPI_connect failed");
			PushActiveSnapshot(GetTransactionSnapshot());
			pgstat_report_activity(STATE_RUNNING, sql);

			if (SPI_execute_with_args(sql, batch > 0 ? 1 : 0, &argtype, &arg, NULL,
									  false, 1) != SPI_OK_SELECT ||
				SPI_processed != 1)
				elog(ERROR, "jobq reaper: %s did not return one row", sql);
			*reaped = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0],
												  SPI_tuptable->tupdesc, 1, &isnull));
			*purged = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0],
												  SPI_tuptable->tupdesc, 2, &isnull));

			SPI_finish();
			PopActiveSnapshot();
		}
		CommitTransactionCommand();
	}
	PG_CATCH();
	{
		reaper_error(cxt);
		ok = false;
	}
	PG_END_TRY();
	/* commit and abort leave TopMemoryContext current */
	MemoryContextSwitchTo(cxt);

	pgstat_report_stat(false);
	pgstat_report_activity(STATE_IDLE, NULL);
	return ok;
}

/*
 * reaper_vacuum: VACUUMs jobq.jobs_persistent and jobq.jobs_unlogged when
 * more than REAPER_VACUUM_BASE + REAPER_VACUUM_SCALE of their live rows are
 * dead (the statistics' counts), skipping a table another VACUUM holds or
 * that the reaper's role does not own. VACUUM runs in transactions of its
 * own, as for the VACUUM command at top level. Returns false after an error,
 * which has been logged and recorded in the slot.
 */
#define REAPER_VACUUM_BASE	1000
#define REAPER_VACUUM_SCALE	0.1

static bool
reaper_vacuum(void)
{
	static const char *const tables[] = {"jobs_persistent", "jobs_unlogged"};
	MemoryContext cxt = CurrentMemoryContext;
	MemoryContext vcxt = AllocSetContextCreate(TopMemoryContext, "jobq reaper vacuum",
											   ALLOCSET_DEFAULT_SIZES);
	volatile bool ok = true;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PG_TRY();
	{
		Oid			nsp = get_namespace_oid("jobq", true);
		List	   *rels = NIL;

		for (int i = 0; i < lengthof(tables) && OidIsValid(nsp); i++)
		{
			Oid			relid = get_relname_relid(tables[i], nsp);
			PgStat_StatTabEntry *st;

			if (!OidIsValid(relid) || !pg_class_ownercheck(relid, GetUserId()))
				continue;
			st = pgstat_fetch_stat_tabentry(relid);
			if (st != NULL &&
				st->n_dead_tuples > REAPER_VACUUM_BASE + REAPER_VACUUM_SCALE * st->n_live_tuples)
			{
				/* kept across the transactions VACUUM commits */
				MemoryContext old = MemoryContextSwitchTo(vcxt);

				rels = lappend(rels, makeVacuumRelation(NULL, relid, NIL));
				MemoryContextSwitchTo(old);
			}
		}
		if (rels != NIL)
		{
			VacuumParams params;

			memset(&params, 0, sizeof(params));
			params.options = VACOPT_VACUUM | VACOPT_SKIP_LOCKED;
			params.freeze_min_age = params.freeze_table_age = -1;
			params.multixact_freeze_min_age = params.multixact_freeze_table_age = -1;
			params.is_wraparound = false;
			params.log_min_duration = -1;
			params.index_cleanup = VACOPTVALUE_UNSPECIFIED;
			params.truncate = VACOPTVALUE_UNSPECIFIED;
			params.nworkers = -1;	/* no parallel workers */
			pgstat_report_activity(STATE_RUNNING, "VACUUM (jobq live tables)");
			PortalContext = vcxt;
			vacuum(rels, &params, NULL, true);
			PortalContext = NULL;
		}
		CommitTransactionCommand();
	}
	PG_CATCH();
	{
		PortalContext = NULL;
		reaper_error(cxt);
		ok = false;
	}
	PG_END_TRY();
	MemoryContextSwitchTo(cxt);
	MemoryContextDelete(vcxt);
	pgstat_report_stat(false);
	pgstat_report_activity(STATE_IDLE, NULL);
	return ok;
}

/*
 * reaper_pause_pumping: before a VACUUM or a compaction (which can take a
 * while), sends what is pending and lets transactions send their own
 * notifications again (paused), or, after it, takes them back.
 */
static void
reaper_pause_pumping(bool paused)
{
	if (paused)
		(void) reaper_notify_round();
	reaper_set_pumping(my_slot, !paused);
	if (!paused)
		(void) reaper_notify_round();
}

/*
 * reaper_notify_round: sends, in one transaction, the NOTIFY jobq, '<queue>'
 * that committed transactions left to the reaper (reaper_notify_push), or
 * one for every queue when more queues came than a slot holds. As
 * jobq._notify does, it sends none while the notification queue is half
 * full, and without waiting for its commit's WAL flush (a NOTIFY needs a
 * transaction id, so its commit writes WAL). Returns whether there was
 * anything to send. An error is logged and recorded in the slot, and those
 * notifications are lost (they are hints).
 */
static bool
reaper_notify_round(void)
{
	static char names[REAPER_NOTIFY_MAX][REAPER_NOTIFY_LEN];
	MemoryContext cxt = CurrentMemoryContext;
	bool		all;
	int			n = reaper_notify_take(my_slot, names, &all);

	if (n == 0 && !all)
		return false;
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PG_TRY();
	{
		/*
		 * Nothing here needs to survive a crash, and the jobs announced are
		 * already committed: the round does not wait for its WAL flush.
		 */
		(void) set_config_option("synchronous_commit", "off", PGC_USERSET, PGC_S_SESSION,
								 GUC_ACTION_LOCAL, true, 0, false);
		if (jobq_notify_queue_usage() < JOBQ_NOTIFY_MAX_USAGE)
		{
			if (!all)
			{
				for (int i = 0; i < n; i++)
					Async_Notify("jobq", names[i]);
			}
			else if (reaper_extension_ready())
			{
				if (SPI_connect() != SPI_OK_CONNECT)
					elog(ERROR, "jobq reaper: SPI_connect failed");
				PushActiveSnapshot(GetTransactionSnapshot());
				if (SPI_execute("SELECT pg_catalog.pg_notify('jobq', q.queue) FROM jobq.queues q",
								true, 0) != SPI_OK_SELECT)
					elog(ERROR, "jobq reaper: could not read the queues to notify");
				SPI_finish();
				PopActiveSnapshot();
			}
		}
		CommitTransactionCommand();
	}
	PG_CATCH();
	{
		reaper_error(cxt);
	}
	PG_END_TRY();
	MemoryContextSwitchTo(cxt);
	return true;
}

/*
 * reaper_extension_ready: whether jobq is installed in this database and
 * not being created by this very session (pg_cron's check; another
 * session's CREATE EXTENSION is invisible until it commits). Needs a
 * transaction.
 */
static bool
reaper_extension_ready(void)
{
	Oid			extoid = get_extension_oid("jobq", true);

	if (!OidIsValid(extoid))
		return false;
	if (creating_extension && CurrentExtensionObject == extoid)
		return false;
	return true;
}

/* Whether jobq.stop_reaper() asked this worker to exit. */
static bool
reaper_stop_requested(void)
{
	bool		stop;

	SpinLockAcquire(&my_shared->mutex);
	stop = my_slot->stop_requested;
	SpinLockRelease(&my_shared->mutex);
	return stop;
}
