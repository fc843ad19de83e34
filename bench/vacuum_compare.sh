#!/usr/bin/env bash
# Vacuum side by side: SeaweedFS 4.48 and Kelp on the same data, in interleaved rounds
# (SeaweedFS then Kelp in odd rounds, Kelp then SeaweedFS in even ones).
#
#   bench/vacuum_compare.sh [--rounds 2] [-n 40000] [--size 4096] [--rate 1000] [-c 8]
#                           [--lead-seconds 1] [--out FILE] [--systems "seaweedfs kelp"]
#                           [--kelp-compaction-mb-per-second 0]
#
# Per system and round: n files of --size bytes are written into collection `vac` with
# `kelp benchmark`, which deletes 60 % of them one second after their write. A reader
# (`kelp benchmark --read-only`, paced at --rate requests/s, latencies from each request's
# scheduled start) starts, and --lead-seconds later `/vol/vacuum?garbageThreshold=0.3&
# collection=vac` is called on the master; the reader stops when it answers (`--stop-file`).
# Then a second reader of the same length, started the same way, reads with no vacuum: the
# quiet window the first is compared with (same length, same warm-up: a reader's first
# requests look volumes up, which a shorter window would feel more). Afterwards every
# survivor is read once more (any failure is counted). Reported: the vacuum's time, the
# collection's .dat bytes before and after, the reader's p99 in the quiet window, p99 and
# max during the vacuum, and the failed reads during and after. A last table has the medians
# and the Kelp / SeaweedFS ratios.
#
# SeaweedFS comes from ../shared/tools/peer.sh (override with KELP_PEER_SH); Kelp is
# `target/release/kelp server` (build it first) with the automatic vacuum off. Ports
# 23400-23409 (+10000 for SeaweedFS's gRPC) must be free. Everything started here is
# stopped by pid and its data removed.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
command_line="$*"
rounds=2
n=40000
size=4096
rate=1000
conc=8
lead_seconds=1
out=""
systems="seaweedfs kelp"
kelp_mbps=0
while (($#)); do
  case $1 in
    --rounds) rounds=$2; shift 2 ;;
    -n) n=$2; shift 2 ;;
    --size) size=$2; shift 2 ;;
    --rate) rate=$2; shift 2 ;;
    -c) conc=$2; shift 2 ;;
    --lead-seconds) lead_seconds=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --systems) systems=$2; shift 2 ;;
    --kelp-compaction-mb-per-second) kelp_mbps=$2; shift 2 ;;
    -h|--help) sed -n '2,27p' "$0"; exit 0 ;;
    *) echo "vacuum_compare.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
for value in "$rounds" "$n" "$size" "$rate" "$conc" "$lead_seconds"; do
  [[ $value =~ ^[1-9][0-9]*$ ]] || { echo "vacuum_compare.sh: $value is not a positive integer" >&2; exit 2; }
done

kelp=$repo/target/release/kelp
[[ -x $kelp ]] || { echo "vacuum_compare.sh: build first: cargo build --release" >&2; exit 1; }
peer=${KELP_PEER_SH:-}
for candidate in "$repo/../shared/tools/peer.sh" "$repo/../../shared/tools/peer.sh"; do
  [[ -z $peer && -f $candidate ]] && peer=$candidate
done
[[ -n $peer && -f $peer ]] || { echo "vacuum_compare.sh: peer.sh not found; set KELP_PEER_SH" >&2; exit 1; }

work=$(mktemp -d "${TMPDIR:-/tmp}/kelp-vacuum.XXXXXX")
results=$work/results.tsv
kelp_pid=""
cleanup() {
  bash "$peer" stop "$work/seaweedfs" >/dev/null 2>&1 || true
  [[ -n $kelp_pid ]] && kill "$kelp_pid" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

master_port=23400
volume_port=23401

wait_for_assign() {
  local tries=0
  until curl -fsS "http://127.0.0.1:$master_port/dir/assign" 2>/dev/null | grep -q '"fid"'; do
    tries=$((tries + 1))
    if ((tries >= 200)); then
      echo "vacuum_compare.sh: $1 not ready after 60 s; its log ends:" >&2
      tail -20 "$work/kelp.log" >&2
      return 1
    fi
    sleep 0.3
  done
}

# Waits until nothing listens on the ports any more (the system stopped before starts).
wait_ports_free() {
  local tries=0 port
  for port in $master_port $volume_port $((volume_port + 1)) $((volume_port + 2)) \
    $((master_port + 10000)) $((volume_port + 10000)); do
    while ss -ltn "sport = :$port" | grep -q LISTEN; do
      tries=$((tries + 1))
      ((tries < 300)) || { echo "vacuum_compare.sh: port $port still taken" >&2; return 1; }
      sleep 0.1
    done
  done
}

start_system() {
  wait_ports_free
  case $1 in
    seaweedfs)
      bash "$peer" start "$work/seaweedfs" "$master_port" "$volume_port" >/dev/null
      data_dir=$work/seaweedfs/v ;;
    kelp)
      data_dir=$work/kelp
      mkdir -p "$data_dir"
      "$kelp" server --dir "$data_dir" --master-port "$master_port" --volume-port "$volume_port" \
        --filer-port 0 --vacuum-interval 0 --compaction-mb-per-second "$kelp_mbps" \
        >"$work/kelp.log" 2>&1 &
      kelp_pid=$!
      wait_for_assign kelp ;;
  esac
}

stop_system() {
  case $1 in
    seaweedfs) bash "$peer" stop "$work/seaweedfs"; rm -rf "$work/seaweedfs" ;;
    kelp) kill "$kelp_pid"; wait "$kelp_pid" 2>/dev/null || true; kelp_pid=""; rm -rf "$work/kelp" ;;
  esac
}

# Bytes of the collection's .dat files.
dat_bytes() {
  local total=0 file
  for file in "$data_dir"/vac_*.dat; do
    [[ -f $file ]] && total=$((total + $(stat -c %s "$file")))
  done
  echo "$total"
}

bench() {
  "$kelp" benchmark --master "127.0.0.1:$master_port" -c "$conc" --size "$size" --size-jitter 0 \
    --collection vac --list "$work/list.txt" "$@"
}

# The reader's p99, max and failures from a report: "p99 max failed".
read_stats() {
  python3 - "$1" <<'PY'
import json, sys
(phase,) = json.load(open(sys.argv[1]))["phases"]
pct = dict((p, ms) for p, ms in phase["latency"]["percentiles_ms"])
print(f"{pct[99.0]:.2f} {phase['latency']['max_ms']:.2f} {phase['failed']}")
PY
}

run_one() {
  local system=$1 round=$2
  start_system "$system"
  bench -n "$n" --write-only --delete-percent 60 >"$work/write.txt" 2>&1 ||
    { echo "write phase on $system failed:" >&2; tail -5 "$work/write.txt" >&2; return 1; }
  sleep 2
  local before after
  before=$(dat_bytes)
  local reads=$((rate * 3600))
  rm -f "$work/stop"
  local reader_start started ended
  reader_start=$(date +%s.%N)
  bench -n "$reads" --read-only --rate "$rate" --duration 3600 --stop-file "$work/stop" \
    --json "$work/during.json" >/dev/null 2>&1 &
  local reader=$!
  sleep "$lead_seconds"
  started=$(date +%s.%N)
  curl -fsS "http://127.0.0.1:$master_port/vol/vacuum?garbageThreshold=0.3&collection=vac" \
    >"$work/vacuum.json"
  ended=$(date +%s.%N)
  touch "$work/stop"
  wait "$reader"
  sleep 1
  after=$(dat_bytes)
  # The quiet window: a reader of the same length, started the same way, with no vacuum.
  bench -n "$reads" --read-only --rate "$rate" --duration "$(echo "$ended - $reader_start" | bc)" \
    --json "$work/before.json" >/dev/null 2>&1
  bench -n "$n" --read-only --read-sequentially --json "$work/after.json" >/dev/null 2>&1
  local base during check
  base=$(read_stats "$work/before.json")
  during=$(read_stats "$work/during.json")
  check=$(read_stats "$work/after.json")
  printf '%s\t%s\t%.2f\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$system" "$round" \
    "$(echo "$ended - $started" | bc)" "$before" "$after" "${base%% *}" \
    "$(echo "$during" | cut -d' ' -f1)" "$(echo "$during" | cut -d' ' -f2)" \
    "$(echo "$during" | cut -d' ' -f3)" "$(echo "$check" | cut -d' ' -f3)" >>"$results"
  stop_system "$system"
}

for ((round = 1; round <= rounds; round++)); do
  read -r -a order <<<"$systems"
  if ((round % 2 == 0)); then
    read -r -a order <<<"$(echo "$systems" | tr ' ' '\n' | tac | tr '\n' ' ')"
  fi
  for system in "${order[@]}"; do
    echo "round $round: $system" >&2
    run_one "$system" "$round"
  done
done

report() {
  echo "vacuum_compare.sh $command_line (n=$n, size=$size, rate=$rate/s, c=$conc)"
  echo "$(nproc) cores, $(uname -r), $(date -u +%Y-%m-%d)"
  echo
  echo "| system | round | vacuum s | .dat before | .dat after | reclaimed | read p99 quiet ms | p99 during ms | max during ms | failed during | failed after |"
  echo "|---|---|---|---|---|---|---|---|---|---|---|"
  while IFS=$'\t' read -r system round seconds before after p99b p99d maxd faild failc; do
    echo "| $system | $round | $seconds | $before | $after | $((before - after)) | $p99b | $p99d | $maxd | $faild | $failc |"
  done <"$results"
  echo
  python3 - "$results" <<'PY'
import statistics, sys
rows = [line.rstrip("\n").split("\t") for line in open(sys.argv[1])]
cols = {"vacuum s": 2, "reclaimed bytes": None, "p99 quiet ms": 5, "p99 during ms": 6, "max during ms": 7}
def median(system, col):
    values = []
    for r in rows:
        if r[0] != system:
            continue
        values.append(int(r[3]) - int(r[4]) if col is None else float(r[col]))
    return statistics.median(values)
both = {r[0] for r in rows} == {"seaweedfs", "kelp"}
if both:
    print("| median | SeaweedFS 4.48 | Kelp | Kelp / SeaweedFS |")
    print("|---|---|---|---|")
for name, col in cols.items():
    if not both:
        break
    s, k = median("seaweedfs", col), median("kelp", col)
    ratio = f"{k / s:.2f}" if s else "-"
    print(f"| {name} | {s:.2f} | {k:.2f} | {ratio} |")
for system in ("seaweedfs", "kelp"):
    if not any(r[0] == system for r in rows):
        continue
    during = [float(r[6]) / float(r[5]) for r in rows if r[0] == system and float(r[5]) > 0]
    if during:
        print(f"\n{system}: p99 during / p99 quiet, median {statistics.median(during):.2f}")
PY
}

if [[ -n $out ]]; then report | tee "$out"; else report; fi
