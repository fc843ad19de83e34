#!/usr/bin/env bash
# Volume servers in a SeaweedFS cluster: `weed benchmark` through a SeaweedFS 4.48 master
# against a Go volume server (`weed volume`) and against a Kelp volume server (`kelp volume`
# joined to that master with SeaweedFS's SendHeartbeat), in interleaved rounds (Go then Kelp
# in odd rounds, Kelp then Go in even ones), each on a fresh master and empty disk. Prints the
# write and read requests per second of every run, each round's Kelp / Go ratio, the medians
# and the median of the rounds' ratios.
#
#   bench/seaweed_volume_compare.sh [--rounds 3] [-n 20000] [-c 16] [--size 1024]
#                                   [--kelp target/release/kelp] [--cores N]
#                                   [--timeout-s 600]
#
# `weed` is $KELP_PEER_WEED, else ~/.cache/kelp-peer/venv/bin/weed (../shared/tools/peer.sh
# install). Ports 23600-23620 and their +10000 gRPC twins must be free (checked). Every wait
# is bounded (start 60 s, benchmark --timeout-s, stop 10 s then SIGKILL); everything started
# here is stopped by pid and its files removed, also on failure or interrupt.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
rounds=3 n=20000 conc=16 size=1024 kelp=$repo/target/release/kelp cores="" timeout_s=600
while (($#)); do
  case $1 in
    --rounds) rounds=$2; shift 2 ;;
    -n) n=$2; shift 2 ;;
    -c) conc=$2; shift 2 ;;
    --size) size=$2; shift 2 ;;
    --kelp) kelp=$2; shift 2 ;;
    --cores) cores=$2; shift 2 ;;
    --timeout-s) timeout_s=$2; shift 2 ;;
    -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
    *) echo "seaweed_volume_compare.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
for number in "$rounds" "$n" "$conc" "$size" "$timeout_s"; do
  [[ $number =~ ^[1-9][0-9]*$ ]] || { echo "seaweed_volume_compare.sh: $number is not a positive integer" >&2; exit 2; }
done
weed=${KELP_PEER_WEED:-$HOME/.cache/kelp-peer/venv/bin/weed}
[[ -x $weed ]] || { echo "seaweed_volume_compare.sh: no weed at $weed (peer.sh install)" >&2; exit 1; }
[[ -x $kelp ]] || { echo "seaweed_volume_compare.sh: no kelp at $kelp (cargo build --release)" >&2; exit 1; }

master_port=23600 volume_port=23610
work=$(mktemp -d "${TMPDIR:-/tmp}/kelp-swvc.XXXXXX")
pids=()
# stop_all: SIGTERM to every process started here, at most 10 s for them to go, then SIGKILL.
stop_all() {
  local pid tries
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do
    for ((tries = 0; tries < 100; tries++)); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  pids=()
}
trap 'stop_all; rm -rf "$work"' EXIT
trap 'exit 130' INT TERM

# fail MESSAGE: prints MESSAGE and the last log lines, then exits (the EXIT trap stops all).
fail() {
  echo "seaweed_volume_compare.sh: $1" >&2
  tail -n 5 "$work"/run/*.log "$work"/run/bench.txt >&2 2>/dev/null || true
  exit 1
}

# port_free PORT: true when nothing listens on 127.0.0.1:PORT.
port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# run_once SYSTEM: a fresh master and one volume server of SYSTEM (go or kelp), then
# `weed benchmark`; appends "SYSTEM write RPS FAILED" and "SYSTEM read RPS FAILED" to
# $results. Runs in this shell (not a pipeline's subshell) so `pids` and the traps see
# every process it starts.
run_once() {
  local system=$1 dir=$work/run port
  rm -rf "$dir"; mkdir -p "$dir/m" "$dir/v"
  for port in $master_port $volume_port $((master_port + 10000)) $((volume_port + 10000)); do
    port_free "$port" || fail "port $port is in use (a server left from an earlier run?)"
  done
  "$weed" master -ip=127.0.0.1 -port=$master_port -mdir="$dir/m" -volumeSizeLimitMB=1024 \
    -peers=none -telemetry=false >"$dir/master.log" 2>&1 & pids+=($!)
  if [[ $system == go ]]; then
    "$weed" volume -ip=127.0.0.1 -port=$volume_port -dir="$dir/v" -max=20 -preStopSeconds=0 \
      -master=127.0.0.1:$master_port -minFreeSpace=64MiB >"$dir/volume.log" 2>&1 & pids+=($!)
  else
    "$kelp" volume --ip 127.0.0.1 --port $volume_port --dir "$dir/v" --max 20 \
      --master 127.0.0.1:$master_port --master-kind seaweedfs --min-free-space-mb 64 \
      ${cores:+--cores $cores} >"$dir/volume.log" 2>&1 & pids+=($!)
  fi
  local waited=0
  until curl -fsS -m 5 "http://127.0.0.1:$master_port/dir/assign" 2>/dev/null | grep -q '"fid"'; do
    sleep 0.2; waited=$((waited + 1))
    ((waited < 300)) || fail "no assign from the master after 60 s ($system)"
  done
  timeout -k 5 "$timeout_s" "$weed" benchmark -master=127.0.0.1:$master_port -n "$n" -c "$conc" \
    -size "$size" -collection=bench -list="$dir/list.txt" >"$dir/bench.txt" 2>&1 ||
    fail "weed benchmark on $system failed or took over $timeout_s s"
  awk -v server="$system" '
    /^------------ Writing Benchmark/ { kind = "write" }
    /^------------ Randomly Reading Benchmark/ { kind = "read" }
    /Failed requests:/ { failed[kind] = $3 }
    /Requests per second:/ { print server, kind, $4, failed[kind] }' "$dir/bench.txt" |
    tee -a "$results" >&2
  stop_all
}

results=$work/results.txt
for ((round = 1; round <= rounds; round++)); do
  if ((round % 2)); then order="go kelp"; else order="kelp go"; fi
  for system in $order; do
    echo "round $round/$rounds: $system" >&2
    run_once "$system"
  done
done

python3 - "$results" "$n" "$conc" "$size" <<'PY'
import statistics, sys
runs = {}
for line in open(sys.argv[1]):
    system, phase, rps, failed = line.split()
    runs.setdefault((system, phase), []).append(float(rps))
    if failed != "0":
        print(f"warning: {system} {phase} had {failed} failed requests")
rounds = len(runs[("go", "write")])
print(f"weed benchmark -n {sys.argv[2]} -c {sys.argv[3]} -size {sys.argv[4]}: requests/s, {rounds} rounds")
print("| phase | round | Go volume server | Kelp volume server | Kelp / Go |")
print("|---|---|---|---|---|")
for phase in ("write", "read"):
    for round, (go, kelp) in enumerate(zip(runs[("go", phase)], runs[("kelp", phase)]), 1):
        print(f"| {phase} | {round} | {go:.0f} | {kelp:.0f} | {kelp / go:.2f} |")
print()
print("| phase | Go median | Kelp median | Kelp / Go of the medians | median of the rounds' Kelp / Go |")
print("|---|---|---|---|---|")
for phase in ("write", "read"):
    go_runs, kelp_runs = runs[("go", phase)], runs[("kelp", phase)]
    go, kelp = statistics.median(go_runs), statistics.median(kelp_runs)
    ratios = [k / g for g, k in zip(go_runs, kelp_runs)]
    print(f"| {phase} | {go:.0f} | {kelp:.0f} | {kelp / go:.2f} | {statistics.median(ratios):.2f} |")
PY
