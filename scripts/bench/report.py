#!/usr/bin/python3
# Summarise kcm_bench results:  scripts/bench/report.py OUTDIR LOG...
#
# Each LOG is one VM's ttyS1 log, build/bench/vm/KVER-LANE/bench.log; its
# KCMBENCH lines are one run each.  Writes OUTDIR/results.txt (every run,
# tagged with kernel and lane), OUTDIR/table.txt (medians and ratios, also
# printed) and OUTDIR/ratios.dat (input of plot.gp).
#
# A cell is the median over the reps whose status is ok; "stalled" if every
# rep stalled, "stall k/n" if k of n did, "skipped" if every rep was (the
# module lacks the feature), "misframed k/n" if the module delivered
# messages whose length disagrees with their prefix, "CORRUPT" if a rep
# received a message that failed its verification (checksum, length,
# sender, order, duplicate), "MISMATCH" or "ERROR" if a rep lost or
# invented messages or failed (a benchmark or module bug).
# Ratios compare medians of ok runs only.
#
# Also writes OUTDIR/failures.txt: one line per run that stalled, misframed,
# delivered wrong data, lost or invented messages, or failed, of our module
# (lane ours) or of a baseline (user, tcp) in either lane; empty if none.
# bench.sh exits 1 when it is not.  Linux's module stalls and misframes
# (see README): its runs are reported in the table, not as failures.
#
# Runs with epoll-driven clients (client_threads=N: vm-matrix.sh's
# BENCH_SCALE) make the SCALE table: requests/s of the directed echo per
# number of connections, ours against user-space framing, and ours at N
# connections against ours at the fewest.
import os
import re
import sys
from collections import defaultdict

outdir = sys.argv[1]
logs = sys.argv[2:]

runs = defaultdict(list)	# (kver, lane, workload, variant, size, conns, threads) -> [dict]
scale = defaultdict(list)	# (kver, lane, variant, size, conns, threads, client threads) -> [dict]
lines = []
for log in logs:
	m = re.search(r'([^/]+)-(ours|linux)/bench\.log$', log)
	if not m:
		continue
	kver, lane = m.group(1), m.group(2)
	with open(log, errors='replace') as f:
		for line in f:
			line = line.strip().replace('\r', '')
			if not line.startswith('KCMBENCH '):
				continue
			lines.append(f'{kver} {lane} {line}')
			d = dict(re.findall(r'(\w+)=("[^"]*"|\S+)', line))
			# Older binaries called lost framing a mismatch.
			if d.get('status') == 'mismatch' and (
					d.get('badframes', '0') != '0' or d.get('badreplies', '0') != '0'):
				d['status'] = 'misframed'
			key = (kver, lane, d['workload'], d['variant'], int(d['size']),
			       int(d['conns']), int(d['threads']))
			if 'client_threads' in d:
				scale[(kver, lane, d['variant'], int(d['size']), int(d['conns']),
				       int(d['threads']), int(d['client_threads']))].append(d)
			else:
				runs[key].append(d)

os.makedirs(outdir, exist_ok=True)
with open(os.path.join(outdir, 'results.txt'), 'w') as f:
	f.write('\n'.join(lines) + '\n')


def median(xs):
	xs = sorted(xs)
	n = len(xs)
	if n == 0:
		return None
	return xs[n // 2] if n % 2 else (xs[n // 2 - 1] + xs[n // 2]) / 2


def cell(kver, lane, w, v, s, c, t, metric):
	"""(text, median value or None) for one variant in one lane."""
	return summarise(runs.get((kver, lane, w, v, s, c, t), []), metric)


def summarise(rs, metric):
	"""(text, median value or None) of the runs rs of one case."""
	if not rs:
		return '-', None
	st = [r['status'] for r in rs]
	ok = [float(r[metric]) for r in rs if r['status'] == 'ok']
	if 'error' in st:
		return 'ERROR', None
	if 'corrupt' in st:
		return 'CORRUPT', None
	if 'mismatch' in st:
		return 'MISMATCH', None
	if 'misframed' in st:
		return f'misframed {st.count("misframed")}/{len(st)}', None
	if st.count('skipped') == len(st):
		return 'skipped', None
	med = median(ok)
	nst = st.count('stalled')
	if nst == len(st):
		return 'stalled', None
	if nst:
		return f'stall {nst}/{len(st)}', None
	return fmt(med), med


def fmt(x):
	if x is None:
		return '-'
	if x >= 100:
		return f'{x:.0f}'
	if x >= 10:
		return f'{x:.1f}'
	return f'{x:.2f}'


def ratio(a, b):
	return f'{a / b:.2f}' if a is not None and b else '-'


def norm(o, u, l, ul):
	"""ours/linux with each side divided by user-space framing in its own VM."""
	if None in (o, u, l, ul) or not (u and l and ul):
		return '-'
	return f'{(o / u) / (l / ul):.2f}'


kvers = sorted({k[0] for k in runs} | {k[0] for k in scale})
cases = sorted({k[2:] for k in runs},
	       key=lambda k: (k[0] != 'stream', k[2] if k[2] else 1 << 30, k[3], k[4]))
out = []
dat = []
for kver in kvers:
	out.append(f'kcm_bench on {kver} (QEMU TCG); medians of ok reps; ours = our kcm.ko,'
		   ' linux = Debian\'s kcm.ko,')
	out.append('user/tcp = user-space framing / plain TCP, measured in the ours VM'
		   ' (user@L: user in the linux VM);')
	out.append('o/l norm = (ours/user) / (linux/user@L), which cancels VM-to-VM drift;')
	out.append('ours-b = ours with KCM_RECV_BATCH (many messages per recvmsg; not in Linux)')
	for w in ('stream', 'echo'):
		# No table without a kcm run (the directed case has none).
		if not any(cs[0] == w and (kver, ln, w, 'kcm') + cs[2:] in runs
			   for cs in cases for ln in ('ours', 'linux')):
			continue
		if w == 'stream':
			out.append('')
			out.append('STREAM: messages/s received by the server; size = payload bytes'
				   ' (0 = mixed 16 B..64 KiB)')
			hdr = ('size', 'C', 'T', 'ours', 'ours-b', 'linux', 'user', 'user@L',
			       'ours MB/s', 'user MB/s', 'tcp MB/s', 'ours/linux', 'o/l norm',
			       'ours/user', 'oursb/user', 'user/tcp')
		else:
			out.append('')
			out.append('ECHO: requests/s (C requests in flight); latency p50/p99/p99.9 in us')
			hdr = ('size', 'C', 'T', 'ours', 'linux', 'user', 'user@L',
			       'ours p50/p99/p99.9', 'linux p50/p99/p99.9', 'user p50/p99/p99.9',
			       'ours/linux', 'o/l norm', 'ours/user')
		rows = [hdr]
		seen = set()
		for cs in cases:
			if cs[0] != w:
				continue
			# Cases without a kcm run (the directed one's user-space
			# runs) belong to other tables.
			if not any((kver, ln, w, 'kcm') + cs[2:] in runs
				   for ln in ('ours', 'linux')):
				continue
			s, c, t = cs[2], cs[3], cs[4]
			if (s, c, t) in seen:
				continue
			seen.add((s, c, t))
			if w == 'stream':
				m = 'msgs_s'
				o_t, o = cell(kver, 'ours', w, 'kcm', s, c, t, m)
				ob_t, ob = cell(kver, 'ours', w, 'kcmb', s, c, t, m)
				l_t, l = cell(kver, 'linux', w, 'kcm', s, c, t, m)
				u_t, u = cell(kver, 'ours', w, 'user', s, c, t, m)
				ul_t, ul = cell(kver, 'linux', w, 'user', s, c, t, m)
				tc_t, tc = cell(kver, 'ours', w, 'tcp', s, c, t, 'mb_s')
				om_t, _ = cell(kver, 'ours', w, 'kcm', s, c, t, 'mb_s')
				um_t, um = cell(kver, 'ours', w, 'user', s, c, t, 'mb_s')
				rows.append((str(s), str(c), str(t), o_t, ob_t, l_t, u_t, ul_t, om_t,
					     um_t, tc_t, ratio(o, l), norm(o, u, l, ul), ratio(o, u),
					     ratio(ob, u), ratio(um, tc)))
				dat.append((f'stream {s or "mix"}/{c}/{t}', o, l, u, ul, ob))
			else:
				m = 'rps'
				o_t, o = cell(kver, 'ours', w, 'kcm', s, c, t, m)
				l_t, l = cell(kver, 'linux', w, 'kcm', s, c, t, m)
				u_t, u = cell(kver, 'ours', w, 'user', s, c, t, m)
				ul_t, ul = cell(kver, 'linux', w, 'user', s, c, t, m)
				lat = []
				for lane, v in (('ours', 'kcm'), ('linux', 'kcm'), ('ours', 'user')):
					ps = [cell(kver, lane, w, v, s, c, t, p) for p in ('p50_us', 'p99_us', 'p999_us')]
					lat.append('/'.join(p[0] for p in ps) if all(p[1] is not None for p in ps)
						   else ps[0][0])
				rows.append((str(s), str(c), str(t), o_t, l_t, u_t, ul_t, *lat,
					     ratio(o, l), norm(o, u, l, ul), ratio(o, u)))
				dat.append((f'echo {s}/{c}/{t}', o, l, u, ul, None))
		widths = [max(len(r[i]) for r in rows) for i in range(len(hdr))]
		for r in rows:
			out.append('  '.join(x.rjust(wd) for x, wd in zip(r, widths)))
	# Directed echo: many independent clients, replies on their own
	# connection (our KCM_ORIGIN), against user-space framing.
	dk = (kver, 'ours', 'echo', 'kcmd', 64, 16, 2)
	if dk in runs:
		out.append('')
		out.append('DIRECTED ECHO: 16 independent clients, T=2, 64 B; ours replies with'
			   ' KCM_ORIGIN; requests/s, latency p50/p99 in us')
		o_t, o = cell(kver, 'ours', 'echo', 'kcmd', 64, 16, 2, 'rps')
		u_t, u = cell(kver, 'ours', 'echo', 'user', 64, 16, 2, 'rps')
		lr = runs.get((kver, 'linux', 'echo', 'kcmd', 64, 16, 2), [])
		l_t = 'skipped (no KCM_ORIGIN in Linux)' if lr else '-'

		def lat2(lane, v):
			ps = [cell(kver, lane, 'echo', v, 64, 16, 2, p) for p in ('p50_us', 'p99_us')]
			return '/'.join(p[0] for p in ps) if all(p[1] is not None for p in ps) else ps[0][0]
		rows = [('ours', 'linux', 'user', 'ours p50/p99', 'user p50/p99', 'ours/user'),
			(o_t, l_t, u_t, lat2('ours', 'kcmd'), lat2('ours', 'user'), ratio(o, u))]
		widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
		for r in rows:
			out.append('  '.join(x.rjust(wd) for x, wd in zip(r, widths)))
	# rpc: few connections, T=4, 16 requests in flight each, 1 in 100
	# slow (1 ms): KCM lets any thread take any request.  user owns each
	# connection in one thread; usero lets any thread read any connection
	# (EPOLLONESHOT), the best user-space design for it.
	if any(k[0] == kver and k[2] == 'rpc' for k in runs):
		out.append('')
		out.append('RPC: 64 B, T=4, 16 requests in flight per connection, 1 in 100 takes'
			   ' the server 1 ms; requests/s, latency p50/p99 in us;')
		out.append('user: a thread owns each connection; usero: any thread reads any'
			   ' connection (EPOLLONESHOT)')
		rows = [('C', 'ours', 'linux', 'user', 'usero', 'ours p50/p99',
			 'linux p50/p99', 'user p50/p99', 'usero p50/p99',
			 'ours/user', 'ours/usero', 'p99 ours/user', 'p99 ours/usero')]
		for c in sorted({k[5] for k in runs if k[0] == kver and k[2] == 'rpc'}):
			def rps(lane, v, c=c):
				return cell(kver, lane, 'rpc', v, 64, c, 4, 'rps')

			def lat2(lane, v, c=c):
				ps = [cell(kver, lane, 'rpc', v, 64, c, 4, p)
				      for p in ('p50_us', 'p99_us')]
				return ('/'.join(p[0] for p in ps)
					if all(p[1] is not None for p in ps) else ps[0][0])

			def p99(lane, v, c=c):
				return cell(kver, lane, 'rpc', v, 64, c, 4, 'p99_us')[1]
			(o_t, o), (l_t, _) = rps('ours', 'kcm'), rps('linux', 'kcm')
			(u_t, u), (x_t, x) = rps('ours', 'user'), rps('ours', 'usero')
			rows.append((str(c), o_t, l_t, u_t, x_t, lat2('ours', 'kcm'),
				     lat2('linux', 'kcm'), lat2('ours', 'user'),
				     lat2('ours', 'usero'), ratio(o, u), ratio(o, x),
				     ratio(p99('ours', 'kcm'), p99('ours', 'user')),
				     ratio(p99('ours', 'kcm'), p99('ours', 'usero'))))
		widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
		for r in rows:
			out.append('  '.join(x.rjust(wd) for x, wd in zip(r, widths)))
	# Scale: the directed echo at many connections, driven by a few
	# client threads with epoll.
	sk = sorted({k[3:] for k in scale if k[0] == kver})
	if sk:
		out.append('')
		out.append('SCALE: directed echo, one request in flight per connection, T server'
			   ' threads, E client threads')
		out.append('driving the connections with epoll; ours replies with KCM_ORIGIN'
			   ' (ours-l: framed by SIOCKCMATTACHLEN);')
		out.append("Linux's kcm.ko has no KCM_ORIGIN (not run); requests/s, latency"
			   ' p50/p99 in us; @N/@first = ours at N connections / ours at the fewest')
		kcm_vs = [v for v in ('kcmd', 'kcmld')
			  if any(k[0] == kver and k[1] == 'ours' and k[2] == v for k in scale)]
		label = {'kcmd': 'ours', 'kcmld': 'ours-l'}
		hdr = (['size', 'conns', 'T', 'E'] + [label[v] for v in kcm_vs] + ['user']
		       + [f'{label[v]}/user' for v in kcm_vs]
		       + [f'{label[v]} p50/p99' for v in kcm_vs] + ['user p50/p99']
		       + [f'{label[v]}@N/@first' for v in kcm_vs])
		rows = [tuple(hdr)]
		first = {}
		for s, c, t, e in sk:
			def sc(v, metric):
				return summarise(scale.get((kver, 'ours', v, s, c, t, e), []), metric)

			def lat2(v):
				ps = [sc(v, p) for p in ('p50_us', 'p99_us')]
				return ('/'.join(p[0] for p in ps)
					if all(p[1] is not None for p in ps) else ps[0][0])
			u_t, u = sc('user', 'rps')
			row = [str(s), str(c), str(t), str(e)]
			rates = {v: sc(v, 'rps') for v in kcm_vs}
			row += [rates[v][0] for v in kcm_vs] + [u_t]
			row += [ratio(rates[v][1], u) for v in kcm_vs]
			row += [lat2(v) for v in kcm_vs] + [lat2('user')]
			for v in kcm_vs:
				first.setdefault((v, s, t, e), rates[v][1])
				row.append(ratio(rates[v][1], first[(v, s, t, e)]))
			rows.append(tuple(row))
		widths = [max(len(r[i]) for r in rows) for i in range(len(hdr))]
		for r in rows:
			out.append('  '.join(x.rjust(wd) for x, wd in zip(r, widths)))
	# KCM over kTLS: the same cases with every connection through kTLS.
	if any(k[0] == kver and k[3] == 'kcm+tls' for k in runs):
		out.append('')
		out.append('KTLS: every connection through kTLS (TLS 1.3, AES-GCM-128), C=4, T=2;'
			   ' stream 512 B msgs/s, echo 64 B requests/s')
		rows = [('case', 'ours', 'linux', 'user', 'ours/user', 'ours/plain')]
		for w, s, m in (('stream', 512, 'msgs_s'), ('echo', 64, 'rps')):
			o_t, o = cell(kver, 'ours', w, 'kcm+tls', s, 4, 2, m)
			l_t, _ = cell(kver, 'linux', w, 'kcm+tls', s, 4, 2, m)
			u_t, u = cell(kver, 'ours', w, 'user+tls', s, 4, 2, m)
			_, p = cell(kver, 'ours', w, 'kcm', s, 4, 2, m)
			rows.append((f'{w} {s}', o_t, l_t, u_t, ratio(o, u), ratio(o, p)))
		widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
		for r in rows:
			out.append('  '.join(x.rjust(wd) for x, wd in zip(r, widths)))
	out.append('')
	# Run counts by status, per lane and variant.
	for lane in ('ours', 'linux'):
		cnt = defaultdict(lambda: defaultdict(int))
		for k, rs in list(runs.items()) + list(scale.items()):
			if k[0] == kver and k[1] == lane:
				for r in rs:
					cnt[r['variant']][r['status']] += 1
		out.append(f'runs {lane}: ' + '; '.join(
			f'{v} ' + ' '.join(f'{st}={n}' for st, n in sorted(cnt[v].items()))
			for v in sorted(cnt)))

# Runs that must not happen: our module's, and the baselines' in any lane
# (there a failure is the benchmark's or the kernel's TCP's).
BASELINES = ('user', 'tcp', 'user+tls')
BAD = ('stalled', 'misframed', 'corrupt', 'mismatch', 'error')
failures = []
for kver, lane, w, v, s, c, t, rs in (
		[k + (runs[k],) for k in sorted(runs)]
		+ [(k[0], k[1], 'echo') + k[2:6] + (scale[k],) for k in sorted(scale)]):
	if lane != 'ours' and v not in BASELINES:
		continue
	for r in rs:
		if r['status'] in BAD:
			extra = ' '.join(f'{x}={r[x]}' for x in (
				'stall', 'reason', 'sent_msgs', 'recv_msgs', 'badframes', 'requests',
				'replies', 'badreplies', 'violations', 'first') if x in r)
			ct = f' client_threads={r["client_threads"]}' if 'client_threads' in r else ''
			failures.append(f'{kver} {lane} {w} {v} size={s} conns={c} threads={t}{ct}'
					f' rep={r.get("rep", "?")}: {r["status"]}' + (f' ({extra})' if extra else ''))
if failures:
	out.append(f'FAILURES: {len(failures)} run(s)')
	out.extend('  ' + f for f in failures)
with open(os.path.join(outdir, 'failures.txt'), 'w') as f:
	f.write(''.join(x + '\n' for x in failures))

text = '\n'.join(out) + '\n'
with open(os.path.join(outdir, 'table.txt'), 'w') as f:
	f.write(text)
with open(os.path.join(outdir, 'ratios.dat'), 'w') as f:
	f.write('# "workload size/C/T" ours/linux ours/linux(user-normalised) ours/user'
		' ours-b/user; NaN: stalled or missing\n')

	def r(x):
		return f'{x:.4f}' if x is not None else 'NaN'
	for name, o, l, u, ul, ob in dat:
		ol = o / l if o and l else None
		n = (o / u) / (l / ul) if o and u and l and ul else None
		ou = o / u if o and u else None
		obu = ob / u if ob and u else None
		f.write(f'"{name}" {r(ol)} {r(n)} {r(ou)} {r(obu)}\n')
sys.stdout.write(text)
