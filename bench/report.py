#!/usr/bin/env python3
"""bench/report.py: the table of `make bench` (bench/RESULTS.md) from the RESULT lines.

    python3 bench/report.py RESULTS_FILE > bench/RESULTS.md

RESULTS_FILE holds the lines the workloads emit (bench/lib.sh):
    RESULT|WORKLOAD|METRIC|SYNC|MEDIAN|MIN|MAX|UNIT
and the lines bench/run.sh adds about the machine and the cluster, and the workloads'
warnings (bench/lib.sh's warn: KEY warning):
    INFO|KEY|VALUE
Prints, in Markdown: the machine and settings, every target of issue 7 as met / not met
with the figures it was judged on (synchronous_commit = off; the figures with on are shown
for information), and every figure with its ratio to its reference from the same run.
A figure that is missing (a workload not run or failed) is "not measured"; so is a target
that needs it. Medians are compared; min and max show the spread of the runs.
"""

import sys
from collections import OrderedDict


def load(path):
	"""Returns (figures, info): figures[(workload, metric, sync)] = dict, info[key] = [values]."""
	figures = OrderedDict()
	info = OrderedDict()
	with open(path) as f:
		for line in f:
			parts = line.rstrip('\n').split('|')
			if parts[0] == 'RESULT' and len(parts) == 8:
				_, w, m, sync, med, lo, hi, unit = parts
				try:
					fig = {'median': float(med), 'min': float(lo), 'max': float(hi), 'unit': unit}
				except ValueError:
					continue		# a run that produced no number: not measured
				figures[(w, m, sync)] = fig
			elif parts[0] == 'INFO' and len(parts) >= 3:
				info.setdefault(parts[1], []).append('|'.join(parts[2:]))
	return figures, info


def num(v):
	"""A figure for reading: 3 significant digits at least, no exponent."""
	if v is None:
		return 'not measured'
	a = abs(v)
	if a >= 100:
		return f'{v:,.0f}'
	if a >= 10:
		return f'{v:.1f}'
	if a >= 1:
		return f'{v:.2f}'
	return f'{v:.3g}'


class Report:
	def __init__(self, figures):
		self.figures = figures

	def get(self, w, m, sync):
		"""The figure (a dict) of workload w (or any workload named w...), metric m, or None."""
		fig = self.figures.get((w, m, sync))
		if fig is None:
			for (fw, fm, fs), f in self.figures.items():
				if fm == m and fs == sync and fw.startswith(w):
					return f
		return fig

	def med(self, w, m, sync):
		fig = self.get(w, m, sync)
		return None if fig is None else fig['median']


# The reference of each jobq figure: (workload, metric, label, divisor).
REFERENCES = {
	('w1', 'enqueue b1'): [('r2', 'insert b1', 'R2 insert b1', 1)],
	('w1', 'enqueue b100'): [('r2', 'insert_select b100', 'R2 insert_select b100', 1)],
	('w2', 'process n1'): [('r2', 'process n1', 'R2 process n1', 1),
		('r1', 'update c4', 'R1 update c4 / 2', 2)],
	('w2', 'process n100'): [('r2', 'process n100', 'R2 process n100', 1)],
	('r2', 'process n1'): [('r1', 'update c4', 'R1 update c4 / 2', 2)],
	('cg', 'jobq n100'): [('cg', 'r2 n100', 'R2 (instructions: lower is better)', 1)],
	('cg', 'jobq n1'): [('cg', 'r2 n1', 'R2 (instructions: lower is better)', 1)],
	('cg', 'jobq enqueue b100'): [('cg', 'r2 insert_select b100', 'R2 (instructions: lower is better)', 1)],
	('cg', 'jobq enqueue b1'): [('cg', 'r2 insert b1', 'R2 (instructions: lower is better)', 1)],
}


def ratio_text(rep, w, m, sync):
	out = []
	v = rep.med(w, m, sync)
	for rw, rm, label, div in REFERENCES.get((w, m), []):
		r = rep.med(rw, rm, sync)
		if v is None or r is None or r == 0:
			continue
		out.append(f'{v / (r / div):.2f}x {label}')
	return '; '.join(out)


def cmp_ge(rep, sync, a, b, factor, div=1):
	"""Checks a >= factor * b / div, a and b (workload, metric). Returns (ok or None, text)."""
	va, vb = rep.med(*a, sync), rep.med(*b, sync)
	name_b = f'{b[0]} {b[1]}' + (f' / {div}' if div != 1 else '')
	if va is None or vb is None:
		missing = ', '.join(f'{x[0]} {x[1]}' for x, v in ((a, va), (b, vb)) if v is None)
		return None, f'{missing} not measured'
	unit = rep.get(*a, sync)['unit']
	ref = vb / div
	if ref <= 0:
		return None, f'{name_b} is {num(ref)} {unit}: no reference to compare with (see the warnings)'
	r = va / ref
	return va >= factor * ref, f'{a[0]} {a[1]} {num(va)} vs {name_b} {num(ref)} {unit}: {r:.2f}x (need {factor}x)'


def cmp_le(rep, sync, a, b, factor):
	"""Checks a <= factor * b. Returns (ok or None, text)."""
	va, vb = rep.med(*a, sync), rep.med(*b, sync)
	if va is None or vb is None:
		missing = ', '.join(f'{x[0]} {x[1]}' for x, v in ((a, va), (b, vb)) if v is None)
		return None, f'{missing} not measured'
	unit = rep.get(*a, sync)['unit']
	if vb <= 0:
		return None, f'{b[0]} {b[1]} is {num(vb)} {unit}: no reference to compare with (see the warnings)'
	r = va / vb
	return va <= factor * vb, f'{a[0]} {a[1]} {num(va)} vs {b[0]} {b[1]} {num(vb)} {unit}: {r:.2f}x (need <= {factor}x)'


def cmp_abs(rep, sync, a, limit, le=True):
	"""Checks a <= limit (or >= when le is false)."""
	va = rep.med(*a, sync)
	if va is None:
		return None, f'{a[0]} {a[1]} not measured'
	unit = rep.get(*a, sync)['unit']
	ok = va <= limit if le else va >= limit
	return ok, f'{a[0]} {a[1]} {num(va)} {unit} (need {"<=" if le else ">="} {num(limit)})'


def both(*checks):
	"""All of several checks: met when all are met, not measured when one is and none failed."""
	oks = [c[0] for c in checks]
	text = '; '.join(c[1] for c in checks)
	if any(o is False for o in oks):
		return False, text
	if any(o is None for o in oks):
		return None, text
	return True, text


TARGETS = [
	('1', 'W2 n = 100 >= 1.5x R2 n = 100',
		lambda r, s: cmp_ge(r, s, ('w2', 'process n100'), ('r2', 'process n100'), 1.5)),
	('1b', 'callgrind: instructions per job, R2 n = 100 >= 1.5x jobq n = 100',
		lambda r, s: cmp_ge(r, s, ('cg', 'r2 n100'), ('cg', 'jobq n100'), 1.5)),
	('2', 'W2 n = 1 >= 1.2x R2 n = 1 and >= 0.9x R1 1-row UPDATE at 4 clients / 2',
		lambda r, s: both(cmp_ge(r, s, ('w2', 'process n1'), ('r2', 'process n1'), 1.2),
			cmp_ge(r, s, ('w2', 'process n1'), ('r1', 'update c4'), 0.9, div=2))),
	('2b', 'callgrind: instructions per job, R2 n = 1 >= 1.2x jobq n = 1',
		lambda r, s: cmp_ge(r, s, ('cg', 'r2 n1'), ('cg', 'jobq n1'), 1.2)),
	('3', 'W1 batch 100 >= 1.5x R2 INSERT ... SELECT of 100 rows',
		lambda r, s: cmp_ge(r, s, ('w1', 'enqueue b100'), ('r2', 'insert_select b100'), 1.5)),
	('3b', 'callgrind: instructions per job, R2 INSERT ... SELECT of 100 >= 1.5x jobq enqueue_batch of 100',
		lambda r, s: cmp_ge(r, s, ('cg', 'r2 insert_select b100'), ('cg', 'jobq enqueue b100'), 1.5)),
	('4', 'W4: time with 1m pending and with 1m history <= 1.2x time with 10k pending',
		lambda r, s: both(cmp_le(r, s, ('w4', 'time pending1m'), ('w4', 'time pending10k'), 1.2),
			cmp_le(r, s, ('w4', 'time history1m'), ('w4', 'time pending10k'), 1.2))),
	('5', 'W3: latency p50 <= 5 ms and p99 <= 50 ms',
		lambda r, s: both(cmp_abs(r, s, ('w3', 'latency p50'), 5), cmp_abs(r, s, ('w3', 'latency p99'), 50))),
	('6', 'W5: size after churn <= 2x baseline',
		lambda r, s: cmp_le(r, s, ('w5', 'size after'), ('w5', 'size baseline'), 2)),
	('7', 'W6: sidecar >= 0.7x libpq (process, enqueue), RSS <= 30 MiB',
		lambda r, s: both(cmp_ge(r, s, ('w6', 'http process'), ('w6', 'libpq process'), 0.7),
			cmp_ge(r, s, ('w6', 'http enqueue'), ('w6', 'libpq enqueue'), 0.7),
			cmp_abs(r, s, ('w6', 'rss'), 30))),
	('7b', 'W6 enqueue with BENCH_W6_MANY (32) clients: sidecar >= 0.7x libpq',
		lambda r, s: cmp_ge(r, s, ('w6', 'http enqueue many'), ('w6', 'libpq enqueue many'), 0.7)),
]


def verdict(ok):
	return {True: 'met', False: '**not met**', None: 'not measured'}[ok]


def cell(text):
	return text.replace('|', '\\|')


def main():
	if len(sys.argv) != 2:
		sys.exit('usage: report.py RESULTS_FILE')
	figures, info = load(sys.argv[1])
	rep = Report(figures)
	one = lambda k, d='unknown': info.get(k, [d])[0]
	syncs = [s for s in ('off', 'on') if any(k[2] == s for k in figures)]
	syncs += sorted({k[2] for k in figures} - set(syncs))

	print('# jobq benchmark results')
	print()
	print(f'Written by `make bench` (bench/run.sh, bench/report.py) on {one("date")}. '
		f'Each figure is the median of {one("runs", "?")} runs (min and max in brackets) of '
		f'{one("seconds", "?")} s unless a workload says otherwise'
		+ (f' (W4: {one("w4_runs")} runs of each case, whose timed spans are short)'
			if 'w4_runs' in info else '')
		+ '; jobq runs alternate with '
		'their reference runs, and every ratio compares medians of the same run of the bench.')
	print()
	print('## Machine and cluster')
	print()
	print(f'- CPUs (`nproc`): {one("nproc")}; {one("cpu")}')
	print(f'- Memory: {one("memory")}')
	print(f'- PostgreSQL: {one("postgresql")}')
	print(f'- jobq commit: {one("commit")}')
	print(f'- synchronous_commit modes run: {one("modes")}')
	print('- Settings (everything not at its default; the throwaway cluster of scripts/cluster.sh '
		'with what README documents, synchronous_commit set per pass):')
	for s in info.get('setting', []):
		print(f'  - `{s}`')
	for s in info.get('failed', []):
		print(f'- **Failed**: {s}')
	for s in info.get('warning', []):
		print(f'- **Warning**: {s}')
	print()

	print('## Targets')
	print()
	print('Judged with synchronous_commit = off; the verdict with on is given for information.')
	print()
	print('| # | target | result (off) | figures (off) | with on |')
	print('| --- | --- | --- | --- | --- |')
	for tid, name, check in TARGETS:
		ok, text = check(rep, 'off')
		on_ok, on_text = check(rep, 'on')
		on = verdict(on_ok) + ('' if on_ok is None else f': {on_text}')
		print(f'| {tid} | {cell(name)} | {verdict(ok)} | {cell(text)} | {cell(on)} |')
	print()

	print('## Figures')
	print()
	print('| workload | metric | unit | ' + ' | '.join(f'sync {s}: median (min – max)' for s in syncs) +
		' | ' + ' | '.join(f'ratio ({s})' for s in syncs) + ' |')
	print('| --- | --- | --- | ' + ' | '.join('---:' for _ in syncs) + ' | ' +
		' | '.join('---' for _ in syncs) + ' |')
	seen = []
	for (w, m, _s) in figures:
		if (w, m) not in seen:
			seen.append((w, m))
	order = {'r1': 0, 'r2': 1, 'w1': 2, 'w2': 3}
	seen.sort(key=lambda k: (order.get(k[0], 4), k[0]))	# stable: metrics keep their order
	for w, m in seen:
		unit = next(f['unit'] for (fw, fm, _s), f in figures.items() if (fw, fm) == (w, m))
		vals = []
		for s in syncs:
			f = figures.get((w, m, s))
			vals.append('not measured' if f is None else
				f'{num(f["median"])} ({num(f["min"])} – {num(f["max"])})')
		ratios = [ratio_text(rep, w, m, s) for s in syncs]
		print(f'| {w} | {cell(m)} | {cell(unit)} | ' + ' | '.join(vals) + ' | ' +
			' | '.join(cell(r) for r in ratios) + ' |')
	if not seen:
		print('| (none) | | | ' + ' | '.join('' for _ in syncs) + ' |')
	print()
	print('R1: the physical limit (pgbench: 1-row INSERT, 1-row UPDATE by key, SELECT 1; one '
		'statement per transaction, tps). R2: the plain-SQL queue of bench/r2.sql (UPDATE ... '
		'FOR UPDATE SKIP LOCKED ... RETURNING, then DELETE). W1: enqueue, 4 clients. W2: lease in '
		'one transaction, complete in a second, 4 workers, from a queue of 100 000 jobs; a run '
		'is a number of transactions (at most 70% of the queue, and what the script\'s earlier runs '
		'got through in the seconds of a run), so a fast one lasts under a second. '
		'Each workload script (bench/*.sh) describes its method in its header.')


if __name__ == '__main__':
	main()
