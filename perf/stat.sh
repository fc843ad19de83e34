#!/usr/bin/env bash
# Cost per request of a running server: cycles, instructions, context switches and syscalls,
# counted with `perf stat` on the server's pid while `kelp benchmark` drives it, divided by the
# requests the benchmark completed.
#
#   perf/stat.sh --pid PID [--pid PID2 ...] --master HOST:PORT [benchmark args ...]
#
# Example (SeaweedFS from peer.sh: both pids, the master and the volume server):
#   perf/stat.sh --pid 1234 --pid 1235 --master 127.0.0.1:19333 -n 20000 -c 16
# On machines without hardware counters (most VMs) cycles and instructions show as
# "not supported"; the software counts (task-clock, context switches, syscalls) still work.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
pids=()
bench_args=()
while (($#)); do
  case $1 in
    --pid) pids+=("$2"); shift 2 ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) bench_args+=("$1"); shift ;;
  esac
done
((${#pids[@]})) || { echo "stat.sh: give the server's --pid" >&2; exit 2; }
for pid in "${pids[@]}"; do
  [[ -d /proc/$pid ]] || { echo "stat.sh: no process with pid $pid" >&2; exit 1; }
done
command -v perf >/dev/null || { echo "stat.sh: perf not found (apt-get install linux-perf)" >&2; exit 1; }
kelp=$repo/target/release/kelp
[[ -x $kelp ]] || (cd "$repo" && cargo build --release --quiet)

work=$(mktemp -d "${TMPDIR:-/tmp}/kelp-stat.XXXXXX")
trap 'rm -rf "$work"' EXIT
pid_list=$(IFS=,; echo "${pids[*]}")
events=task-clock,cycles,instructions,context-switches,cpu-migrations,raw_syscalls:sys_enter

perf stat -x, -e "$events" -p "$pid_list" -o "$work/perf.csv" &
perf_pid=$!
sleep 0.2
"$kelp" benchmark --json "$work/bench.json" "${bench_args[@]}"
kill -INT "$perf_pid"
wait "$perf_pid" || true

requests=$(python3 -c 'import json,sys; print(sum(p["completed"] for p in json.load(open(sys.argv[1]))["phases"]))' "$work/bench.json")
echo
echo "Server cost per request (pids $pid_list, $requests requests of kelp benchmark):"
awk -F, -v requests="$requests" '
  /^#/ || NF < 3 { next }
  {
    value = $1; event = $3
    if (value ~ /not (supported|counted)/) { printf "  %-26s %s\n", event, value; next }
    if (event == "task-clock") printf "  %-26s %10.2f us/request\n", "CPU time", value * 1000 / requests
    else printf "  %-26s %10.2f /request\n", event, value / requests
  }
' "$work/perf.csv"
