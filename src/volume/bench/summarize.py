# Medians and ratios of run.sh output: summarize.py results.txt
import re, sys, statistics, collections
rows = collections.defaultdict(lambda: {'rps': [], 'p99': [], 'bad': 0})
def ms(text):
    m = re.match(r'([\d.]+)(us|ms|s)', text)
    v = float(m.group(1)); return v / 1000 if m.group(2) == 'us' else v * 1000 if m.group(2) == 's' else v
for line in open(sys.argv[1]):
    m = re.match(r'(\S+) (\S+) rps=([\d.]+) p50=(\S+) p99=(\S+) non2xx=(\d+)', line)
    if not m: continue
    r = rows[(m.group(1), m.group(2))]
    r['rps'].append(float(m.group(3))); r['p99'].append(ms(m.group(5))); r['bad'] += int(m.group(6))
labels = sorted({k[0] for k in rows}, key=lambda l: (l.split('/')[0], int(l.split('/c')[1])))
print('| workload | system | runs | median req/s | median p99 ms | non-2xx |')
print('|---|---|---|---|---|---|')
for label in labels:
    for system in ['kelp1', 'kelp2', 'kelp2d', 'weed', 'ceil1', 'ceil2']:
        r = rows.get((label, system))
        if not r: continue
        print(f"| {label} | {system} | {len(r['rps'])} | {statistics.median(r['rps']):,.0f} | {statistics.median(r['p99']):.1f} | {r['bad']} |")
print()
print('| workload | kelp1/weed req/s | kelp2/weed req/s | kelp2d/weed req/s | kelp1/ceil1 | kelp2/ceil2 | kelp2d/ceil2 |')
print('|---|---|---|---|---|---|---|')
med = lambda l, s: statistics.median(rows[(l, s)]['rps']) if (l, s) in rows else None
for label in labels:
    w, k1, k2, kd, c1, c2 = (med(label, s) for s in ['weed', 'kelp1', 'kelp2', 'kelp2d', 'ceil1', 'ceil2'])
    f = lambda a, b: f"{a / b:.2f}" if a and b else "-"
    print(f"| {label} | {f(k1, w)} | {f(k2, w)} | {f(kd, w)} | {f(k1, c1)} | {f(k2, c2)} | {f(kd, c2)} |")
