#!/usr/bin/env bash
# A/B of two kelp binaries under `kelp benchmark`, the workload of compare.sh: each binary runs
# `kelp server` (master + volume server, --max 100 --volume-size-limit-mb 1024) on its own ports,
# and the workloads run A, B, B, A, A, B, ... (the order flips every round) with the same client
# (A's binary; the write phase, then the read phase, as two runs). Prints one line per run,
# then a table of medians and B/A, with the server process's CPU time (user + system, all its
# threads, from /proc/PID/stat) per request: on a shared machine throughput swings with
# whatever else runs, CPU per request much less.
#
#   bench/ab.sh A_BIN B_BIN [--rounds 3] [-n 20000] [--workloads "65536 16,65536 64"] [--fsync]
#
# --fsync: every write asks for fsync=true (durable before the answer).
#
# AB_DELETE_AFTER=1 deletes each run's collection after it (see compare.sh, COMPARE_DELETE_AFTER).
# Ports: 23400-23499. Everything started here is stopped by pid, and its files are removed.
set -euo pipefail
(($# >= 2)) || { sed -n '2,16p' "$0"; exit 2; }
declare -A bin=([A]=$(realpath "$1") [B]=$(realpath "$2"))
shift 2
rounds=3
n=20000
workloads="1024 16,1024 64,65536 16,65536 64"
while (($#)); do
  case $1 in
    --rounds) rounds=$2; shift 2 ;;
    -n) n=$2; shift 2 ;;
    --workloads) workloads=$2; shift 2 ;;
    --fsync) export MEASURE_KELP_FSYNC=1; shift ;;
    *) echo "ab.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
for system in A B; do
  [[ -x ${bin[$system]} ]] || { echo "ab.sh: ${bin[$system]} is not an executable" >&2; exit 2; }
done
source "$(dirname "$0")/measure.sh"
work=$(mktemp -d "${TMPDIR:-/tmp}/kelp-ab.XXXXXX")
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
declare -A server_pid=()
declare -A master=([A]=127.0.0.1:23433 [B]=127.0.0.1:23443)
declare -A volume=([A]=23480 [B]=23490)
for system in A B; do
  mkdir -p "$work/$system"
  # Two servers at once: no filer (a binary that runs one would take port 8888 twice).
  no_filer=()
  "${bin[$system]}" server --help 2>/dev/null | grep -q -- --filer-port && no_filer=(--filer-port 0)
  "${bin[$system]}" server --dir "$work/$system" --master-port "${master[$system]#*:}" \
    --volume-port "${volume[$system]}" --max 100 --volume-size-limit-mb 1024 "${no_filer[@]}" \
    >"$work/$system.log" 2>&1 &
  pids+=($!)
  server_pid[$system]=$!
done
for system in A B; do
  for _ in $(seq 1 150); do
    curl -fsS "http://${master[$system]}/dir/assign" >/dev/null 2>&1 && break
    sleep 0.2
  done
done
results=$work/results.tsv
: >"$results"
IFS=, read -r -a list <<<"$workloads"
for ((round = 1; round <= rounds; round++)); do
  order="A B"; ((round % 2 == 0)) && order="B A"
  for workload in "${list[@]}"; do
    read -r size conc <<<"$workload"
    files=$n; ((size >= 65536)) && files=$((n / 2))
    label="$((size / 1024)) KB c$conc"
    for system in $order; do
      measure_phases "${bin[A]}" "$system" "$label" "${master[$system]}" "$size" "$conc" \
        "$files" "$work" "${server_pid[$system]}" "${AB_DELETE_AFTER:-0}" | tee -a "$results"
      ((PIPESTATUS[0] == 0)) || exit 1
    done
  done
done
python3 - "$results" "$rounds" <<'PY'
import statistics, sys
rows, order = {}, []
for line in open(sys.argv[1]):
    system, label, rps, _p50, p99, cpu = line.rstrip("\n").split("\t")
    if label not in order:
        order.append(label)
    rows.setdefault((label, system), []).append((float(rps), float(p99), float(cpu)))
print(f"\nMedians of {sys.argv[2]} rounds (A and B interleaved).\n")
print("Server CPU: user+system µs per request (a write is an assign plus an upload).\n")
print("| workload | A req/s | B req/s | B/A | per-round B/A | A p99 ms | B p99 ms | A CPU µs/req | B CPU µs/req |")
print("|---|---:|---:|---:|---|---:|---:|---:|---:|")
med = lambda rows, i: statistics.median(r[i] for r in rows)
for label in order:
    a, b = rows[(label, "A")], rows[(label, "B")]
    ma, mb = med(a, 0), med(b, 0)
    per = ", ".join(f"{y[0] / x[0]:.2f}" for x, y in zip(a, b))
    cpu = f"{med(a, 2):.1f} | {med(b, 2):.1f}"
    print(f"| {label} | {ma:,.0f} | {mb:,.0f} | {mb / ma:.2f} | {per} | {med(a, 1):.2f} | {med(b, 1):.2f} | {cpu} |")
PY
