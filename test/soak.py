#!/usr/bin/python3
"""soak.py: a history-checked soak of jobq (run by test/t/soak.sh; needs python3-psycopg2).

    /usr/bin/python3 test/soak.py --seconds 60 --log DIR

For SECONDS, one enqueuer and 8 workers (threads, each with its own connection) run
random lease / heartbeat / complete / fail / release / abandon against queue `soak`
(lease timeouts of 1-2 s, so abandoned and slow leases expire and the reaper takes them
back), while a chaos thread terminates a random worker backend every ~2 s and, half-way,
crashes the server (`pg_ctl stop -m immediate`, via scripts/cluster.sh) and starts it again.
Every call and its answer is appended to DIR/history.jsonl (outside the database): the
enqueue of id X is acknowledged only after its autocommit statement returned, i.e. after
COMMIT. Then the checker proves, from that history and the database:
  1. every acknowledged enqueue is present (live or ended), after the crash too, and no
     job is present that nobody tried to enqueue; each job has exactly one run;
  2. attempt <= max_retries + 1 for every job;
  3. no job was completed by two leases (a complete answered with an error, e.g. a stale
     token, does not count), every acknowledged complete is `finished` in the history, and
     nothing is finished without a complete call;
  4. no two leases of one job overlapped: no call of an older lease succeeded after a
     newer lease of that job had been handed out.
Exit status 0 when every check holds; the last lines summarise the figures.
"""
import argparse
import json
import os
import random
import subprocess
import sys
import threading
import time

import psycopg2

QUEUE = 'soak'
WORKERS = 8
TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

stop = threading.Event()
log_lock = threading.Lock()
logf = None
counts = {'terminated': 0, 'crashes': 0}


def log(rec):
    line = json.dumps(rec, separators=(',', ':'))
    with log_lock:
        logf.write(line + '\n')
        logf.flush()


def connect(app):
    c = psycopg2.connect(application_name=app, connect_timeout=5)
    c.autocommit = True
    return c


def call(conn, who, op, sql, args, fetch='all'):
    """Runs one autocommit statement; logs the call and its answer. Returns (ok, rows)."""
    t0 = time.time()
    try:
        cur = conn.cursor()
        cur.execute(sql, args)
        rows = cur.fetchall() if fetch == 'all' else None
        t1 = time.time()
        log({'op': op, 'w': who, 't0': t0, 't1': t1, 'args': args, 'ok': True, 'res': rows})
        return True, rows
    except psycopg2.Error as e:
        t1 = time.time()
        log({'op': op, 'w': who, 't0': t0, 't1': t1, 'args': args, 'ok': False,
             'err': e.pgcode or type(e).__name__, 'msg': str(e).strip().split('\n')[0]})
        if isinstance(e, (psycopg2.OperationalError, psycopg2.InterfaceError)) or conn.closed:
            raise ConnectionError(str(e))
        return False, None


def enqueuer():
    conn = None
    seq = 0
    rnd = random.Random(1)
    while not stop.is_set():
        try:
            if conn is None:
                conn = connect('soak-enq')
            seq += 1
            jid = 'e%07d' % seq
            mr = rnd.choice([0, 1, 2, 3])
            call(conn, 'enq', 'enqueue',
                 "SELECT id FROM jobq.enqueue(%s, jsonb_build_object('n', %s::int), %s, "
                 "max_retries => %s)", (QUEUE, seq, jid, mr))
            time.sleep(rnd.uniform(0.01, 0.04))
        except (ConnectionError, psycopg2.Error):
            try:
                conn.close()
            except Exception:
                pass
            conn = None
            time.sleep(0.2)


def worker(i):
    who = 'w%d' % i
    rnd = random.Random(100 + i)
    conn = None
    while not stop.is_set():
        try:
            if conn is None:
                conn = connect('soak-' + who)
            n = rnd.randint(1, 3)
            timeout = rnd.choice(['1 s', '2 s'])
            ok, rows = call(conn, who, 'lease',
                            "SELECT id, lease::text, attempt, max_retries FROM jobq.lease(%s, %s, %s, %s::interval)",
                            (QUEUE, who, n, timeout))
            if not ok or not rows:
                time.sleep(0.02)
                continue
            for jid, lease, attempt, mr in rows:
                if stop.is_set():
                    break
                if rnd.random() < 0.08:
                    time.sleep(rnd.uniform(1.2, 2.6))   # slow: the lease may expire
                else:
                    time.sleep(rnd.uniform(0, 0.02))
                if rnd.random() < 0.3:
                    call(conn, who, 'heartbeat',
                         "SELECT jobq.heartbeat(%s, %s, jsonb_build_object('hb', %s), 50, lease => %s::uuid)",
                         (QUEUE, jid, who, lease))
                r = rnd.random()
                if r < 0.62:
                    call(conn, who, 'complete',
                         "SELECT jobq.complete(%s, %s, jsonb_build_object('by', %s), %s::uuid)",
                         (QUEUE, jid, who, lease))
                elif r < 0.84:
                    call(conn, who, 'fail', "SELECT jobq.fail(%s, %s, 'random', %s, %s::uuid)",
                         (QUEUE, jid, rnd.random() < 0.8, lease))
                elif r < 0.95:
                    call(conn, who, 'release', "SELECT jobq.release(%s, %s, NULL, %s::uuid)",
                         (QUEUE, jid, lease))
                else:
                    log({'op': 'abandon', 'w': who, 't0': time.time(), 'args': [QUEUE, jid, None, lease]})
        except (ConnectionError, psycopg2.Error):
            try:
                conn.close()
            except Exception:
                pass
            conn = None
            time.sleep(0.2)


def chaos(seconds, crash_at):
    rnd = random.Random(7)
    conn = None
    start = time.time()
    crashed = False
    while not stop.is_set():
        time.sleep(rnd.uniform(1.0, 3.0))
        if stop.is_set():
            break
        if not crashed and time.time() - start >= crash_at:
            crashed = True
            try:
                conn.close()
            except Exception:
                pass
            conn = None
            log({'op': 'crash', 't0': time.time()})
            d = os.environ['JOBQ_TEST_DIR']
            subprocess.run(['bash', TOP + '/scripts/cluster.sh', 'stop', d, 'immediate'], check=True)
            subprocess.run(['bash', TOP + '/scripts/cluster.sh', 'start', d, os.environ['PGPORT']],
                           check=True, stdout=subprocess.DEVNULL)
            counts['crashes'] += 1
            log({'op': 'restarted', 't0': time.time()})
            continue
        try:
            if conn is None:
                conn = connect('soak-chaos')
            cur = conn.cursor()
            cur.execute("SELECT pid, application_name FROM pg_stat_activity "
                        "WHERE application_name LIKE 'soak-w%%' OR application_name = 'soak-enq'")
            procs = cur.fetchall()
            if procs:
                pid, app = rnd.choice(procs)
                cur.execute("SELECT pg_terminate_backend(%s)", (pid,))
                counts['terminated'] += 1
                log({'op': 'terminate', 't0': time.time(), 'pid': pid, 'app': app})
        except psycopg2.Error:
            conn = None


def check(logpath):
    recs = [json.loads(l) for l in open(logpath)]
    conn = connect('soak-check')
    cur = conn.cursor()
    cur.execute("""SELECT id, status, attempt, max_retries, 'live' FROM jobq.jobs WHERE queue = %s
                   UNION ALL
                   SELECT id, status, attempt, max_retries, 'history' FROM jobq.history WHERE queue = %s""",
                (QUEUE, QUEUE))
    rows = cur.fetchall()
    problems = []
    runs = {}
    for jid, status, attempt, mr, where in rows:
        runs.setdefault(jid, []).append((status, attempt, mr, where))

    tried = {r['args'][2] for r in recs if r['op'] == 'enqueue'}
    acked = {r['args'][2] for r in recs if r['op'] == 'enqueue' and r['ok']}
    # 1. acknowledged enqueues are present; nothing unknown; one run each
    missing = sorted(acked - set(runs))
    if missing:
        problems.append('%d acknowledged enqueues missing, e.g. %s' % (len(missing), missing[:5]))
    unknown = sorted(set(runs) - tried)
    if unknown:
        problems.append('%d jobs nobody enqueued: %s' % (len(unknown), unknown[:5]))
    multi = [j for j, r in runs.items() if len(r) != 1]
    if multi:
        problems.append('%d jobs with more than one run: %s' % (len(multi), multi[:5]))
    # 2. attempts bounded
    over = [(j, r) for j, rs in runs.items() for r in rs if r[2] >= 0 and r[1] > r[2] + 1]
    if over:
        problems.append('%d jobs with attempt > max_retries + 1: %s' % (len(over), over[:5]))
    # 3. completions
    done = {}
    for r in recs:
        if r['op'] == 'complete' and r['ok']:
            done.setdefault(r['args'][1], []).append(r['args'][3])
    twice = {j: l for j, l in done.items() if len(l) > 1}
    if twice:
        problems.append('%d jobs completed by more than one lease: %s' % (len(twice), list(twice.items())[:3]))
    notfin = [j for j in done if not any(x[0] == 'finished' for x in runs.get(j, []))]
    if notfin:
        problems.append('%d acknowledged completes not finished: %s' % (len(notfin), notfin[:5]))
    called = {r['args'][1] for r in recs if r['op'] == 'complete'}
    phantom = [j for j, rs in runs.items() if any(x[0] == 'finished' for x in rs) and j not in called]
    if phantom:
        problems.append('%d jobs finished without a complete call: %s' % (len(phantom), phantom[:5]))
    # 4. no overlapping leases: once a newer lease of a job was handed out (its lease call
    # returned), no call of an older lease of that job may succeed after that (its call
    # started later).
    grants = {}     # id -> [(t1 of the lease call, token)]
    for r in recs:
        if r['op'] == 'lease' and r['ok']:
            for jid, lease, attempt, mr in r['res']:
                grants.setdefault(jid, []).append((r['t1'], lease))
    success = {}    # token -> latest start of a successful call with it
    for r in recs:
        if r['op'] in ('heartbeat', 'complete', 'fail', 'release') and r['ok']:
            tok = r['args'][3] if r['op'] != 'release' else r['args'][2]
            success[tok] = max(success.get(tok, 0), r['t0'])
    overlaps = []
    for jid, gs in grants.items():
        gs.sort()
        for k, (t_a, tok_a) in enumerate(gs):
            for t_b, tok_b in gs[k + 1:]:
                if tok_a in success and success[tok_a] > t_b:
                    overlaps.append((jid, tok_a, tok_b))
    if overlaps:
        problems.append('%d overlapping leases: %s' % (len(overlaps), overlaps[:3]))
    # figures
    ops = {}
    for r in recs:
        key = r['op'] + ('' if r.get('ok', True) else ':' + str(r.get('err')))
        ops[key] = ops.get(key, 0) + 1
    cur.execute("SELECT count(*) FROM jobq.job_events WHERE queue = %s AND message = 'lease expired'", (QUEUE,))
    reaped = cur.fetchone()[0]
    cur.execute("SELECT status, count(*) FROM (SELECT status FROM jobq.jobs WHERE queue = %s "
                "UNION ALL SELECT status FROM jobq.history WHERE queue = %s) x GROUP BY 1 ORDER BY 1", (QUEUE, QUEUE))
    bystatus = dict(cur.fetchall())
    stale = sum(1 for r in recs if r['op'] in ('complete', 'fail', 'heartbeat', 'release')
                and not r['ok'] and r.get('err') == '55000')
    print('calls:', json.dumps(ops, sort_keys=True))
    print('jobs by status:', json.dumps(bystatus, sort_keys=True))
    print('enqueues tried %d, acknowledged %d, present %d; completes acknowledged %d; '
          'refused as stale/not running (55000) %d; leases reaped %d; backends terminated %d; crashes %d'
          % (len(tried), len(acked), len(runs), len(done), stale, reaped, counts['terminated'],
             counts['crashes']))
    if counts['crashes'] != 1:
        problems.append('the crash did not happen')
    if reaped == 0:
        problems.append('no lease was reaped during the soak')
    if not done:
        problems.append('nothing was completed')
    for p in problems:
        print('FAIL:', p)
    print('history check: %s' % ('ok' if not problems else '%d problems' % len(problems)))
    return not problems


def main():
    global logf
    ap = argparse.ArgumentParser()
    ap.add_argument('--seconds', type=float, default=60)
    ap.add_argument('--log', default='.')
    ap.add_argument('--check', metavar='HISTORY', help='only check an existing history file')
    a = ap.parse_args()
    if a.check:
        counts['crashes'] = 1
        return 0 if check(a.check) else 1
    os.makedirs(a.log, exist_ok=True)
    path = os.path.join(a.log, 'history.jsonl')
    logf = open(path, 'w')
    conn = connect('soak-setup')
    cur = conn.cursor()
    cur.execute("SELECT jobq.drop_queue(queue, force => true) FROM jobq.queues WHERE queue = %s", (QUEUE,))
    cur.execute("SELECT queue FROM jobq.create_queue(%s, timeout => '1 s', max_retries => 2, "
                "retry_base => '10 ms', retry_cap => '200 ms')", (QUEUE,))
    conn.close()
    threads = [threading.Thread(target=enqueuer)]
    threads += [threading.Thread(target=worker, args=(i,)) for i in range(1, WORKERS + 1)]
    threads.append(threading.Thread(target=chaos, args=(a.seconds, a.seconds / 2)))
    for t in threads:
        t.start()
    time.sleep(a.seconds)
    stop.set()
    for t in threads:
        t.join()
    logf.close()
    # let the server settle (the reaper must be back after the crash)
    conn = connect('soak-check')
    cur = conn.cursor()
    for _ in range(100):
        cur.execute("SELECT jobq.stats() -> 'reaper' ->> 'status'")
        if cur.fetchone()[0] == 'running':
            break
        time.sleep(0.1)
    else:
        print('FAIL: the reaper is not running after the soak')
        return 1
    conn.close()
    return 0 if check(path) else 1


if __name__ == '__main__':
    sys.exit(main())
