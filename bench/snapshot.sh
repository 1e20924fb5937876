#!/usr/bin/env bash
# bench/snapshot.sh: a snapshot held open while jobs flow (not part of make test).
#
#   bash bench/snapshot.sh [HOLD_SECONDS] [JOBS]      (defaults 60, 20000)
#
# Starts its own throwaway cluster (scripts/cluster.sh, in a temp dir; stopped and removed
# at the end) and runs, with 4 workers (lease 10 + complete, one transaction per call) fed
# by an enqueuer that keeps about 2000 jobs waiting, on a queue with retention 0 (the
# reaper purges finished runs at once, so the history churns too):
#   1. steady: JOBS jobs flow; then VACUUM; table and index sizes = the steady state;
#   2. snapshot: a REPEATABLE READ transaction holds its snapshot (and xmin) for
#      HOLD_SECONDS while jobs keep flowing (at least JOBS of them): no dead row can be
#      removed meanwhile;
#   3. after: the snapshot ends, JOBS more jobs flow; then VACUUM.
#   4. rounds of JOBS/4 more jobs, each followed by VACUUM, until every heap is within 2x of
#      its steady size (VACUUM truncates a table only from its end); meanwhile the reaper's
#      jobq.compact() (jobq.compact_interval = 2s here) rebuilds the B-tree indexes the
#      snapshot left bloated (VACUUM never shrinks a B-tree); the bench waits up to 30 s.
# Prints throughput per phase and relation sizes (sizes under 1 MB count as 1 MB); fails
# (exit 1) on any error of a worker, when the throughput once vacuumed (round 1) is below
# half the steady one, or when the heaps (after the vacuum rounds) or indexes (once compacted) are not
# back within 2x of their steady-state size.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
hold=${1:-60}
jobs=${2:-20000}
export PATH=$(pg_config --bindir):$PATH
/usr/bin/python3 -c 'import psycopg2' || { echo "python3-psycopg2 is missing" >&2; exit 1; }

dir=$(mktemp -d /tmp/jobq-bench-snapshot.XXXXXX)
chmod 755 "$dir"
cleanup() { bash "$top/scripts/cluster.sh" stop "$dir" immediate; rm -rf "$dir"; }
trap cleanup EXIT
read -r port sock < <(bash "$top/scripts/cluster.sh" start "$dir")
export PGHOST=$sock PGPORT=$port PGUSER=postgres PGDATABASE=postgres
psql -X -q -c "ALTER SYSTEM SET jobq.compact_interval = '2s'" -c "SELECT pg_reload_conf()" -c "CREATE EXTENSION jobq" -c "SELECT jobq.create_queue('snap', timeout => '30 s', retention => '0 s')" >/dev/null
echo "cluster: $dir (port $port); hold $hold s, $jobs jobs per phase"

HOLD=$hold JOBS=$jobs /usr/bin/python3 - <<'PY'
import os, sys, threading, time
import psycopg2

HOLD = float(os.environ['HOLD']); JOBS = int(os.environ['JOBS'])
Q = 'snap'
RELS = ['jobq.jobs_persistent', 'jobq.history', 'jobq.job_events']

def connect():
    c = psycopg2.connect(); c.autocommit = True; return c

errors = []
done = [0]
lock = threading.Lock()

def sizes():
    c = connect(); cur = c.cursor(); out = {}
    for r in RELS:
        cur.execute("SELECT pg_relation_size(%s::regclass), pg_indexes_size(%s::regclass)", (r, r))
        out[r] = cur.fetchone()
    c.close(); return out

def vacuum():
    c = connect(); cur = c.cursor()
    for r in RELS:
        cur.execute('VACUUM ' + r)
    c.close()

def phase(name, min_jobs, min_seconds=0.0):
    stop = threading.Event()
    start_done = done[0]
    t0 = time.time()
    timeline = []
    def enqueuer():
        c = connect(); cur = c.cursor(); n = 0
        while not stop.is_set():
            try:
                cur.execute("SELECT count(*) FROM jobq.jobs WHERE queue = %s AND status = 'pending'", (Q,))
                if cur.fetchone()[0] > 2000:
                    time.sleep(0.005); continue
                cur.execute("SELECT count(*) FROM jobq.enqueue_batch(%s, (SELECT jsonb_agg(jsonb_build_object('payload', jsonb_build_object('i', i))) FROM generate_series(1, 200) i))", (Q,))
            except psycopg2.Error as e:
                errors.append('enqueue: %s' % e); time.sleep(0.1)
    def worker(i):
        c = connect(); cur = c.cursor()
        while not stop.is_set():
            try:
                cur.execute("SELECT count(jobq.complete(queue, id, NULL, lease)) FROM jobq.lease(%s, %s, 10)", (Q, 'w%d' % i))
                k = cur.fetchone()[0]
                with lock: done[0] += k
                if k == 0: time.sleep(0.002)
            except psycopg2.Error as e:
                errors.append('worker: %s' % e); time.sleep(0.1)
    ts = [threading.Thread(target=enqueuer)] + [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for t in ts: t.start()
    last = (t0, start_done)
    while True:
        time.sleep(1)
        now = time.time(); d = done[0]
        timeline.append(round((d - last[1]) / (now - last[0])))
        last = (now, d)
        if d - start_done >= min_jobs and now - t0 >= min_seconds:
            break
    stop.set()
    for t in ts: t.join()
    el = time.time() - t0; n = done[0] - start_done
    print('%-9s %6d jobs in %5.1f s = %5.0f jobs/s; per second: %s' % (name, n, el, n / el, timeline))
    return n / el, timeline

def show(label, s):
    print('%-22s ' % label + '  '.join('%s %d+%d kB' % (r.split('.')[1], a // 1024, b // 1024) for r, (a, b) in s.items()))

base, _ = phase('steady', JOBS)
vacuum(); steady = sizes(); show('steady, vacuumed:', steady)

snap = connect(); snap.autocommit = False
scur = snap.cursor()
scur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
scur.execute("SELECT count(*) FROM jobq.jobs")
scur.execute("SELECT backend_xmin FROM pg_stat_activity WHERE pid = pg_backend_pid()")
print('snapshot held, xmin', scur.fetchone()[0])
during, tl = phase('snapshot', JOBS, HOLD)
peak = sizes(); show('end of snapshot:', peak)
vacuum(); show('vacuumed w/ snapshot:', sizes())
snap.rollback(); snap.close()
after, tl2 = phase('after', JOBS)
vacuum(); final = sizes(); sizes_after = final; show('after, vacuumed:', final)

def within(cur, which):
    return all(sum(cur[r][:1] if which == 'heap' else cur[r][1:]) <= 2 * max(sum(steady[r][:1] if which == 'heap' else steady[r][1:]), 1024 * 1024) for r in RELS)

# Plain VACUUM frees the dead space for reuse but truncates a table only from its end:
# keep the flow going with a VACUUM after each round until the heaps are back within 2x.
rounds = 0
recovered = None
while (rounds == 0 or not within(final, 'heap')) and rounds < 8:
    rounds += 1
    tp, _ = phase('round %d' % rounds, JOBS // 4)
    recovered = recovered or tp
    vacuum(); final = sizes(); show('round %d, vacuumed:' % rounds, final)
heap_ok = within(final, 'heap')
# B-tree indexes never shrink by VACUUM (empty pages are recycled, not returned): the
# reaper's jobq.compact() (every jobq.compact_interval, 2 s here) rebuilds the bloated ones
# once no old snapshot remains. Wait for it (at most 30 s).
t_wait = time.time()
while not within(sizes(), 'index') and time.time() - t_wait < 30:
    time.sleep(1)
compact_wait = time.time() - t_wait
reindexed = sizes(); show('compacted by reaper:', reindexed)
print('the reaper compacted the indexes %.0f s after the last vacuum round' % compact_wait)

ok = True
if errors:
    ok = False; print('FAIL: %d errors, e.g. %s' % (len(errors), errors[:3]))
else:
    print('no errors')
print('throughput: steady %.0f, during snapshot %.0f (first 5 s %.0f, last 10 s %.0f), right after it %.0f (%.0f%% of steady), after the first VACUUM %.0f jobs/s (%.0f%% of steady)'
      % (base, during, sum(tl[:5]) / len(tl[:5]), sum(tl[-10:]) / len(tl[-10:]), after, 100 * after / base,
         recovered, 100 * recovered / base))
if recovered < 0.5 * base:
    ok = False; print('FAIL: throughput did not recover')
for r in RELS:
    print('%-22s heap+indexes kB: steady %d+%d, end of snapshot %d+%d, vacuumed after %d+%d, after %d vacuum rounds %d+%d, compacted %d+%d'
          % ((r,) + tuple(x // 1024 for x in steady[r] + peak[r] + tuple(v for v in sizes_after[r]) ) + (rounds,) + tuple(x // 1024 for x in final[r] + reindexed[r])))
print('heaps within 2x of steady after vacuum: %s (after %d rounds of flow + VACUUM)' % (heap_ok, rounds))
print('indexes within 2x of steady after vacuum: %s; after the reaper\'s jobq.compact(): %s' % (within(final, 'index'), within(reindexed, 'index')))
if not heap_ok or not within(reindexed, 'index'):
    ok = False; print('FAIL: sizes did not return within 2x of the steady state')
print('snapshot bench: %s' % ('ok' if ok else 'FAILED'))
sys.exit(0 if ok else 1)
PY
