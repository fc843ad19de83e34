#!/usr/bin/env bash
# Master failover campaign under load: N masters (default 3 and 5, one campaign each), one
# `kelp volume`, and `kelp benchmark -c 8` assigning and uploading without pause while the
# leader is SIGKILLed and restarted CYCLES times. Per cycle it measures the failover: from the
# SIGKILL to the first successful /dir/assign through a surviving master (polled every 20 ms,
# each time through the next survivor). At the end the benchmark reads back every upload it
# was acknowledged, and the script prints:
#   failover p50 / max (ms), duplicate file keys among every fid handed out (must be 0),
#   acknowledged uploads that do not read back (must be 0), writes that failed (told to the
#   client, so never acknowledged).
#
#   bench/failover.sh                    # 3 and 5 masters, 20 cycles each
#   MASTERS="3" CYCLES=5 bench/failover.sh
#
# Masters run with their defaults (pulse 5 s, Raft heartbeat 300 ms, election timeout
# E = 1500 ms): the goal is a failover under 3 E = 4.5 s. Ports 23300-23399 on 127.0.0.1;
# scratch files in WORK (default: a new temp dir, removed at the end unless KEEP=1; about
# 1 GB per million uploads, ~6 GB for each campaign, deleted after it).
set -euo pipefail
cd "$(dirname "$0")/.."

MASTERS=${MASTERS:-"3 5"}
CYCLES=${CYCLES:-20}
CLIENTS=${CLIENTS:-8}
STEADY_S=${STEADY_S:-3}
KELP=${KELP:-target/release/kelp}
WORK=${WORK:-$(mktemp -d /tmp/kelp-failover.XXXXXX)}
BASE_PORT=23300

if [[ -z ${NO_BUILD:-} ]]; then cargo build --release --bin kelp >&2; fi
mkdir -p "$WORK"
declare -A PIDS=()
cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
  [[ -n ${KEEP:-} ]] || rm -rf "$WORK"
}
trap cleanup EXIT

now_ms() { echo $(($(date +%s%N) / 1000000)); }

start_master() { # start_master DIR INDEX PEERS
  local port=$((BASE_PORT + $2))
  "$KELP" master --port "$port" --mdir "$1/m$2" --peers "$3" >>"$1/m$2.log" 2>&1 &
  PIDS[m$2]=$!
}

# The leader's address once every master answers, lists all as reachable voters and names
# the same leader; fails after 60 s.
wait_healthy() { # wait_healthy ADDRESSES...
  local deadline=$(($(now_ms) + 60000)) leader
  while (($(now_ms) < deadline)); do
    leader=$(python3 - "$@" <<'PY'
import json, sys, urllib.request
addresses, leaders = sys.argv[1:], set()
try:
    for a in addresses:
        s = json.load(urllib.request.urlopen(f"http://{a}/cluster/status", timeout=2))
        voters = sorted(m["Address"] for m in s["Members"] if m["Role"] == "voter" and m["Reachable"])
        if voters != sorted(addresses): sys.exit(0)
        leaders.add(s["Leader"])
except Exception:
    sys.exit(0)
if len(leaders) == 1 and "" not in leaders: print(leaders.pop())
PY
)
    if [[ -n $leader ]]; then echo "$leader"; return 0; fi
    sleep 0.2
  done
  echo "failover.sh: the masters did not agree on a leader within 60 s" >&2
  return 1
}

# Poll /dir/assign through the survivors until one answers 200; prints the fid.
first_assignment() { # first_assignment SURVIVORS...
  local deadline=$(($(now_ms) + 60000)) i=0 answer
  while (($(now_ms) < deadline)); do
    local through=${@:$((i % $# + 1)):1}
    answer=$(curl -s --max-time 2 -w '\n%{http_code}' "http://$through/dir/assign" || true)
    if [[ ${answer##*$'\n'} == 200 ]]; then
      python3 -c 'import json,sys; print(json.loads(sys.argv[1])["fid"])' "${answer%$'\n'*}"
      return 0
    fi
    i=$((i + 1))
    sleep 0.02
  done
  echo "failover.sh: no assignment through $* within 60 s" >&2
  return 1
}

campaign() { # campaign N
  local n=$1 dir="$WORK/n$1" addresses=() i
  mkdir -p "$dir"
  for ((i = 0; i < n; i++)); do addresses+=("127.0.0.1:$((BASE_PORT + i))"); done
  local peers
  peers=$(IFS=,; echo "${addresses[*]}")
  for ((i = 0; i < n; i++)); do start_master "$dir" "$i" "$peers"; done
  wait_healthy "${addresses[@]}" >/dev/null
  mkdir -p "$dir/v"
  "$KELP" volume --dir "$dir/v" --port $((BASE_PORT + 50)) --max 100 --cores 2 \
    --master "$peers" >>"$dir/v.log" 2>&1 &
  PIDS[v]=$!
  first_assignment "${addresses[@]}" >"$dir/probe_fids.txt"
  local duration=$((CYCLES * (STEADY_S + 12) + 15))
  "$KELP" benchmark --master "$peers" -c "$CLIENTS" -n 1000000000 --duration "$duration" \
    --write-only --size 1024 --list "$dir/acked.txt" --json "$dir/write.json" \
    >"$dir/write.txt" 2>&1 &
  local bench=$!
  PIDS[b]=$bench
  sleep "$STEADY_S"
  : >"$dir/failover_ms.txt"
  for ((cycle = 1; cycle <= CYCLES; cycle++)); do
    local leader survivors=() killed
    leader=$(wait_healthy "${addresses[@]}")
    for i in "${!addresses[@]}"; do
      if [[ ${addresses[$i]} == "$leader" ]]; then killed=$i; else survivors+=("${addresses[$i]}"); fi
    done
    kill -9 "${PIDS[m$killed]}"
    local killed_at
    killed_at=$(now_ms)
    first_assignment "${survivors[@]}" >>"$dir/probe_fids.txt"
    echo $(($(now_ms) - killed_at)) | tee -a "$dir/failover_ms.txt" >/dev/null
    wait "${PIDS[m$killed]}" 2>/dev/null || true
    start_master "$dir" "$killed" "$peers"
    echo "masters $n, cycle $cycle: killed leader $leader, failover $(tail -1 "$dir/failover_ms.txt") ms" >&2
    sleep "$STEADY_S"
  done
  if ! kill -0 "$bench" 2>/dev/null; then
    echo "failover.sh: the benchmark ended before the last cycle (raise its --duration)" >&2
  fi
  wait "$bench" || { echo "failover.sh: kelp benchmark failed:" >&2; tail -5 "$dir/write.txt" >&2; return 1; }
  "$KELP" benchmark --master "$peers" -c "$CLIENTS" --read-only --read-sequentially \
    --list "$dir/acked.txt" --json "$dir/read.json" >"$dir/read.txt" 2>&1 || true
  report "$n" "$dir"
  # Reaped before the next campaign binds the same ports.
  for pid in "${PIDS[v]}" $(for i in "${!addresses[@]}"; do echo "${PIDS[m$i]}"; done); do
    kill -9 "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  [[ -n ${KEEP:-} ]] || rm -rf "$dir/v"
}

report() { # report N DIR
  python3 - "$1" "$2" "$CYCLES" "$CLIENTS" <<'PY'
import json, statistics, sys
n, d, cycles, clients = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
failovers = [int(l) for l in open(f"{d}/failover_ms.txt") if l.strip()]
fids = [l.strip() for f in ("acked.txt", "probe_fids.txt") for l in open(f"{d}/{f}") if l.strip()]
keys = [int(f.split(",")[1][:-8], 16) for f in fids]
duplicates = len(keys) - len(set(keys))
(write,) = json.load(open(f"{d}/write.json"))["phases"]
(read,) = json.load(open(f"{d}/read.json"))["phases"]
acked = sum(1 for l in open(f"{d}/acked.txt") if l.strip())
unread = acked - read["completed"]
print(f"| {n} | {cycles} | {clients} | {statistics.median(failovers):.0f} | {max(failovers)} "
      f"| {write['completed']} | {write['failed']} | {duplicates} | {unread} |")
PY
}

echo "| masters | leader kills | clients | failover p50 ms | failover max ms | acknowledged uploads | failed writes | duplicate keys | unread acknowledged |"
echo "|---|---|---|---|---|---|---|---|---|"
for n in $MASTERS; do campaign "$n"; done
