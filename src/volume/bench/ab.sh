#!/usr/bin/env bash
# A/B of two kelp binaries' volume servers (BENCHMARKS.md, "A/B of two Kelp binaries"): both
# run `kelp volume --cores 1` side by side (A on 26610, B on 26620; no master), wrk drives
# POSTs of 1 KB and 64 KB and GETs of 1 KB at 16 and 64 connections, A and B interleaved
# within each round (the order flips every round); prints one line per run, then medians and
# the B/A ratio.
# usage: [MULTIPART=1] src/volume/bench/ab.sh A_BIN B_BIN [ROUNDS=3] [SECONDS=3]
#        (needs wrk, curl, python3; MULTIPART=1 sends POST bodies as multipart/form-data)
set -euo pipefail
bin_a=$1; bin_b=$2; rounds=${3:-3}; dur=${4:-3}
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d /tmp/kelp-volume-ab.XXXXXX)
pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
cd "$work"
mkdir -p a b
"$bin_a" volume --dir a --port 26610 --cores 1 --master 127.0.0.1:26999 2>a.log & pids+=($!)
"$bin_b" volume --dir b --port 26620 --cores 1 --master 127.0.0.1:26999 2>b.log & pids+=($!)
declare -A port=([A]=26610 [B]=26620)
for system in A B; do
  until curl -fsS "127.0.0.1:${port[$system]}/healthz" >/dev/null 2>&1; do sleep 0.2; done
  for vid in 1 2; do curl -fsS -XPOST "127.0.0.1:${port[$system]}/admin/volume/create?volume=$vid" >/dev/null; done
  python3 "$here/populate.py" "${port[$system]}" 1024 1000 1000 1,2
done
run() { # label system lua conns keybase size seconds
  local out
  out=$(VIDS=1,2 KEYBASE=$5 COUNT=1000 SIZE=$6 wrk -t2 -c"$4" -d"$7s" --latency -s "$here/$3" "http://127.0.0.1:${port[$2]}" 2>&1)
  echo "$1 $2 rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}') p50=$(echo "$out" | awk '$1=="50%" {print $2}')" \
    "p99=$(echo "$out" | awk '$1=="99%" {print $2}') non2xx=$(echo "$out" | awk '/Non-2xx/ {print $5}' | grep . || echo 0)"
}
seq=0
for round in $(seq 1 "$rounds"); do
  order="A B"; [ $((round % 2)) -eq 0 ] && order="B A"
  for c in 16 64; do
    seq=$((seq + 1))
    for s in $order; do run "POST1K/c$c" "$s" post.lua "$c" "$(printf '%x' $((0x10000000 * (seq + 10))))" 1024 "$dur"; done
    for s in $order; do run "POST64K/c$c" "$s" post.lua "$c" "$(printf '%x' $((0x10000000 * (seq + 40))))" 65536 2; done
    for s in $order; do run "GET1K/c$c" "$s" get.lua "$c" 1000 1024 "$dur"; done
  done
done | tee results.txt
python3 - results.txt <<'PY'
import re, sys, statistics, collections
rows = collections.defaultdict(list)
for line in open(sys.argv[1]):
    m = re.match(r'(\S+) (\S+) rps=([\d.]+) p50=(\S+) p99=(\S+) non2xx=(\d+)', line)
    if m: rows[(m.group(1), m.group(2))].append(float(m.group(3)))
print('| workload | A median req/s | B median req/s | B/A of medians | median of per-round B/A | rounds B faster |')
print('|---|---|---|---|---|---|')
for label in sorted({k[0] for k in rows}):
    a, b = rows[(label, 'A')], rows[(label, 'B')]
    pairs = [y / x for x, y in zip(a, b)]
    wins = sum(r > 1 for r in pairs)
    print(f'| {label} | {statistics.median(a):,.0f} | {statistics.median(b):,.0f} | '
          f'{statistics.median(b) / statistics.median(a):.2f} | {statistics.median(pairs):.2f} | {wins}/{len(pairs)} |')
PY
