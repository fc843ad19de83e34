#!/usr/bin/env bash
# Side by side: SeaweedFS 4.48 and Kelp under the same workloads, in interleaved rounds
# (SeaweedFS then Kelp in odd rounds, Kelp then SeaweedFS in even ones), one table of medians
# and ratios at the end.
#
#   bench/compare.sh [--rounds 3] [-n 20000] [--kelp-master HOST:PORT] [--out FILE] [--quick]
#                    [--workloads "65536 16,65536 64"]   (size and connections; default: all six)
#                    [--kelp-fsync]  (Kelp's writes with fsync=true, SeaweedFS's without)
#                    [--plots DIR]   (charts: DIR/ratios.svg, a bar per row of the table, and
#                                     DIR/latency-<workload>.svg, both servers' percentile
#                                     curves in the last round)
#
# Workloads: 1 KB, 4 KB and 64 KB files (64 KB with n/2 files), each written then read in random
# order, with 16 and 64 connections, driven by `kelp benchmark`; plus `weed benchmark` as a second
# client (1 KB, 16 connections; over the masters' gRPC, so on Kelp only when its master serves
# gRPC on its port + 10000) for reference. SeaweedFS is started with ../shared/tools/peer.sh
# (override with KELP_PEER_SH); Kelp is the server at --kelp-master, else `target/release/kelp
# server` when the binary has it, else `kelp master` + `kelp volume`, else its column says "not
# yet built". Ports: 23300-23399 (+10000 for SeaweedFS's gRPC); all must be free. Everything
# started here is stopped by pid, and its files are removed.
#
# COMPARE_DELETE_AFTER=1 deletes each run's collection (/col/delete) after its read phase, so
# the next run writes into pages just freed. On a VM that backs guest memory lazily, writing
# into never-used pages costs a host fault per page, for both servers alike, and swamps what a
# 64 KB write costs the server itself (BENCHMARKS.md, "Side by side with SeaweedFS").
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
source "$repo/bench/measure.sh"
command_line="$*"
rounds=3
n=20000
kelp_master=""
out=""
quick=0
only_workloads=""
plots=""
while (($#)); do
  case $1 in
    --rounds) rounds=$2; shift 2 ;;
    -n) n=$2; shift 2 ;;
    --kelp-master) kelp_master=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --quick) quick=1; shift ;;
    --workloads) only_workloads=$2; shift 2 ;;
    --plots) plots=$2; shift 2 ;;
    --kelp-fsync) export MEASURE_KELP_FSYNC=1; shift ;;
    -h|--help) sed -n '2,23p' "$0"; exit 0 ;;
    *) echo "compare.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
[[ $rounds =~ ^[1-9][0-9]*$ ]] || { echo "compare.sh: --rounds must be a positive integer" >&2; exit 2; }
[[ $n =~ ^[1-9][0-9]*$ ]] || { echo "compare.sh: -n must be a positive integer" >&2; exit 2; }

peer=${KELP_PEER_SH:-}
for candidate in "$repo/../shared/tools/peer.sh" "$repo/../../shared/tools/peer.sh"; do
  [[ -z $peer && -f $candidate ]] && peer=$candidate
done
[[ -n $peer && -f $peer ]] || { echo "compare.sh: peer.sh not found; set KELP_PEER_SH" >&2; exit 1; }

work=$(mktemp -d "${TMPDIR:-/tmp}/kelp-compare.XXXXXX")
results=$work/results.tsv
kelp_pids=()
cleanup() {
  bash "$peer" stop "$work/seaweedfs" >/dev/null 2>&1 || true
  for pid in "${kelp_pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

echo "compare.sh: building kelp (release)" >&2
(cd "$repo" && cargo build --release --quiet)
kelp=$repo/target/release/kelp
bash "$peer" install
weed=${KELP_PEER_WEED:-${KELP_PEER_HOME:-$HOME/.cache/kelp-peer}/venv/bin/weed}

sw_master_port=23333
# A server already on one of these ports would silently take part in the measurement.
for port in 23333 23380 33333 33380 23343 23390 23391 23392 33343 33390; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "compare.sh: port $port is in use; stop what listens there first" >&2
    exit 1
  fi
done
# peer.sh starts SeaweedFS with its default -minFreeSpace (1% of the disk): below that every
# volume is read-only and every assign fails, which would read as SeaweedFS failing every run.
free_pct=$(df --output=avail,size "$work" | awk 'NR==2 { printf "%d", $1 * 100 / $2 }')
if [ "$free_pct" -lt 2 ]; then
  echo "compare.sh: only ${free_pct}% of the disk under $work is free; SeaweedFS refuses writes" \
    "below 1%: free some space (or set TMPDIR to a roomier disk) first" >&2
  exit 1
fi
echo "compare.sh: starting SeaweedFS" >&2
bash "$peer" start "$work/seaweedfs" "$sw_master_port" 23380 >&2
sw_master=127.0.0.1:$sw_master_port

wait_assign() { # HOST:PORT seconds
  local deadline=$((SECONDS + $2))
  until curl -fsS "http://$1/dir/assign" 2>/dev/null | grep -q '"fid"'; do
    ((SECONDS < deadline)) || return 1
    sleep 0.5
  done
}

kelp_state="not yet built"
if [[ -n $kelp_master ]]; then
  wait_assign "$kelp_master" 30 || { echo "compare.sh: no Kelp master at $kelp_master" >&2; exit 1; }
  kelp_state=ready
elif "$kelp" server --help 2>/dev/null | grep -q -- '--master-port'; then
  mkdir -p "$work/kelp/data"
  # The same volume count and size limit as peer.sh gives SeaweedFS (-max=100, 1024 MB): every
  # workload writes to a collection of its own, and each collection grows a batch of volumes.
  # No filer: these workloads do not use one, and port 8888 may be taken.
  no_filer=()
  "$kelp" server --help 2>/dev/null | grep -q -- --filer-port && no_filer=(--filer-port 0)
  "$kelp" server --dir "$work/kelp/data" --master-port 23343 --volume-port 23390 \
    --max 100 --volume-size-limit-mb 1024 "${no_filer[@]}" >"$work/kelp/server.log" 2>&1 &
  kelp_pids+=($!)
  kelp_master=127.0.0.1:23343
elif "$kelp" master --help 2>/dev/null | grep -q -- '--mdir' &&
  "$kelp" volume --help 2>/dev/null | grep -q -- '--master'; then
  mkdir -p "$work/kelp/m" "$work/kelp/data"
  "$kelp" master --port 23343 --mdir "$work/kelp/m" --volume-size-limit-mb 1024 \
    >"$work/kelp/master.log" 2>&1 &
  kelp_pids+=($!)
  "$kelp" volume --port 23390 --dir "$work/kelp/data" --max 100 --master 127.0.0.1:23343 \
    --cores 2 >"$work/kelp/volume.log" 2>&1 &
  kelp_pids+=($!)
  kelp_master=127.0.0.1:23343
fi
if ((${#kelp_pids[@]})); then
  if wait_assign "$kelp_master" 30; then
    kelp_state=ready
  else
    kelp_state="did not start"
    echo "compare.sh: Kelp did not answer /dir/assign; logs:" >&2
    tail -n 20 "$work"/kelp/*.log >&2 || true
  fi
fi

# The server processes of SYSTEM, whose CPU a run is charged with (none for --kelp-master).
server_pids() {
  case $1 in
    SeaweedFS) cat "$work/seaweedfs/pids" ;;
    Kelp) ((${#kelp_pids[@]})) && echo "${kelp_pids[@]}" ;;
  esac
}

# One measurement (measure.sh): SYSTEM LABEL MASTER SIZE CONC FILES -> a line per phase in
# $results; a failure is recorded in failed.tsv and the table says so.
measure_kelp_client() {
  local system=$1 label=$2 master=$3 size=$4 conc=$5 files=$6
  local lines
  lines=$(measure_phases "$kelp" "$system" "$label" "$master" "$size" "$conc" "$files" \
    "$work" "$(server_pids "$system" | xargs)" "${COMPARE_DELETE_AFTER:-0}") ||
    printf '%s\t%s\n' "$system" "$label" >>"$work/failed.tsv"
  [[ -n $lines ]] || return 0
  printf '%s\n' "$lines" >>"$results"
  # Each run as it ends (system, phase, req/s, p50, p99, server CPU µs/req), for the spread.
  printf '%s\n' "$lines" | sed 's/^/compare.sh:   /' >&2
}

measure_weed_client() {
  local system=$1 label=$2 master=$3 size=$4 conc=$5 files=$6
  timeout 600 "$weed" benchmark -master "$master" -n "$files" -c "$conc" -size "$size" \
    -collection "w$size" -list "$work/wlist.txt" >"$work/last.txt" 2>&1 || {
      echo "compare.sh: weed benchmark on $system failed:" >&2; tail -5 "$work/last.txt" >&2; return 0; }
  awk -v name="$system" -v label="$label" '
    /Writing Benchmark/ { kind = "write" }
    /Reading Benchmark/ { kind = "read" }
    /Requests per second:/ { rps[kind] = $4 }
    /^ +50%/ { p50[kind] = $2 }
    /^ +99%/ { p99[kind] = $2 }
    END {
      split("write read", kinds, " ")
      for (i = 1; i <= 2; i++) {
        k = kinds[i]
        if (k in rps) printf "%s\t%s %s\t%s\t%s\t%s\t\n", name, label, k, rps[k], p50[k], p99[k]
      }
    }
  ' "$work/last.txt" >>"$results"
}

# Whether the Kelp master answers on its gRPC port (its HTTP port + 10000).
kelp_serves_grpc() {
  local host=${kelp_master%:*} port=${kelp_master##*:}
  (exec 3<>"/dev/tcp/$host/$((port + 10000))") 2>/dev/null
}

workloads=("1024 16" "1024 64" "4096 16" "4096 64" "65536 16" "65536 64")
((quick)) && workloads=("1024 16")
if [[ -n $only_workloads ]]; then
  IFS=, read -r -a workloads <<<"$only_workloads"
  for workload in "${workloads[@]}"; do
    [[ $workload =~ ^[1-9][0-9]*\ [1-9][0-9]*$ ]] || {
      echo "compare.sh: --workloads takes \"SIZE CONNECTIONS,...\", got \"$workload\"" >&2; exit 2; }
  done
fi
: >"$results"
if [[ -n $plots ]]; then
  mkdir -p "$plots" "$work/json"
  export MEASURE_JSON_DIR=$work/json
fi
for ((round = 1; round <= rounds; round++)); do
  for workload in "${workloads[@]}"; do
    read -r size conc <<<"$workload"
    files=$n
    ((size >= 65536)) && files=$((n / 2))
    label="$((size / 1024)) KB c$conc"
    echo "compare.sh: round $round/$rounds: $label ($files files)" >&2
    # The order flips every round: a run that follows another inherits its page cache and
    # the memory it freed or took, which on this VM changes what a write costs (see the
    # header), so neither server always goes second.
    if ((round % 2)); then
      measure_kelp_client SeaweedFS "$label" "$sw_master" "$size" "$conc" "$files"
    fi
    if [[ $kelp_state == ready ]]; then
      measure_kelp_client Kelp "$label" "$kelp_master" "$size" "$conc" "$files"
    fi
    if ((round % 2 == 0)); then
      measure_kelp_client SeaweedFS "$label" "$sw_master" "$size" "$conc" "$files"
    fi
  done
  if [[ -z $only_workloads ]]; then
    echo "compare.sh: round $round/$rounds: weed benchmark client" >&2
    if ((round % 2)); then
      measure_weed_client SeaweedFS "weed client 1 KB c16" "$sw_master" 1024 16 "$n"
    fi
    # weed benchmark talks to the master over gRPC (port + 10000): a Kelp master without it
    # would leave weed waiting forever, so Kelp's row says n/a then.
    if [[ $kelp_state == ready ]] && kelp_serves_grpc; then
      measure_weed_client Kelp "weed client 1 KB c16" "$kelp_master" 1024 16 "$n"
    fi
    if ((round % 2 == 0)); then
      measure_weed_client SeaweedFS "weed client 1 KB c16" "$sw_master" 1024 16 "$n"
    fi
  fi
done

touch "$work/failed.tsv"
table=$(python3 - "$results" "$kelp_state" "$rounds" "$work/failed.tsv" "$work/ratios.tsv" <<'PY'
import statistics, sys
rows, order = {}, []
failed = {tuple(line.rstrip("\n").split("\t")) for line in open(sys.argv[4]) if line.strip()}
for line in open(sys.argv[1]):
    system, label, rps, p50, p99, cpu = line.rstrip("\n").split("\t")
    if not (rps and p50 and p99) or float(rps) == 0:
        # No numbers or no request served (its server failed): the run is left out.
        print(f"compare.sh: no numbers for {system} {label}; left out", file=sys.stderr)
        continue
    if label not in order:
        order.append(label)
    cpu = float(cpu) if cpu else None
    rows.setdefault((label, system), []).append((float(rps), float(p50), float(p99), cpu))
for system, base in sorted(failed):
    for label in (f"{base} write", f"{base} read"):
        if label not in order:
            order.append(label)
kelp_state, rounds = sys.argv[2], sys.argv[3]
def median(values, i):
    return statistics.median(v[i] for v in values)
def median_cpu(values):
    known = [v[3] for v in values or [] if v[3] is not None]
    return statistics.median(known) if known else None
ratios = open(sys.argv[5], "w")
print(f"Medians of {rounds} interleaved rounds. req/s higher is better; p50/p99 in ms.")
print("Server CPU: user+system of the server processes (SeaweedFS: master + volume server;")
print("Kelp: `kelp server`) per request; a write is an assignment plus an upload.\n")
print("| workload | SeaweedFS req/s | Kelp req/s | Kelp/SeaweedFS | SeaweedFS p50 / p99 | Kelp p50 / p99 | server CPU µs/req SeaweedFS / Kelp |")
print("|---|---:|---:|---:|---:|---:|---:|")
for label in order:
    sw = rows.get((label, "SeaweedFS"))
    kp = rows.get((label, "Kelp"))
    base = label.rsplit(" ", 1)[0]
    sw_rps = f"{median(sw, 0):,.0f}" if sw else ("failed" if ("SeaweedFS", base) in failed else "-")
    sw_lat = f"{median(sw, 1):.2f} / {median(sw, 2):.2f}" if sw else "-"
    if kp:
        kp_rps = f"{median(kp, 0):,.0f}"
        ratio = f"{median(kp, 0) / median(sw, 0):.2f}x" if sw else "-"
        if sw:
            ratios.write(f"{label}\t{median(kp, 0) / median(sw, 0):.3f}\n")
        kp_lat = f"{median(kp, 1):.2f} / {median(kp, 2):.2f}"
    else:
        kp_rps = "n/a (no gRPC)" if label.startswith("weed client") else kelp_state
        if ("Kelp", base) in failed:
            kp_rps = "failed"
        ratio, kp_lat = "-", "-"
    sw_cpu, kp_cpu = median_cpu(sw), median_cpu(kp)
    cpu = f"{sw_cpu:.0f} / {kp_cpu:.0f} ({sw_cpu / kp_cpu:.1f}x)" if sw_cpu and kp_cpu else "-"
    print(f"| {label} | {sw_rps} | {kp_rps} | {ratio} | {sw_lat} | {kp_lat} | {cpu} |")
PY
)
machine="$(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), Linux $(uname -r), $(date -u +%Y-%m-%d)"
report="Machine: $machine
Command: bench/compare.sh $command_line

$table"
echo "$report"
if [[ -n $out ]]; then echo "$report" >"$out"; fi
if [[ -n $plots ]]; then
  if [[ -s $work/ratios.tsv ]]; then
    "$kelp" plot ratios --out "$plots/ratios.svg" --table "$work/ratios.tsv" --goal 3 \
      --title "Kelp / SeaweedFS requests per second (medians of $rounds rounds)"
  fi
  for workload in "${workloads[@]}"; do
    read -r size conc <<<"$workload"
    label="$((size / 1024)) KB c$conc"
    reports=()
    for system in SeaweedFS Kelp; do
      for phase in write read; do
        file="$work/json/$system $label $phase.json"
        [[ -f $file ]] && reports+=("$system=$file")
      done
    done
    ((${#reports[@]})) || continue
    "$kelp" plot latency --out "$plots/latency-${size}-c${conc}.svg" \
      --title "Latency, $label files (last round)" "${reports[@]}"
  done
  echo "compare.sh: charts in $plots" >&2
fi
