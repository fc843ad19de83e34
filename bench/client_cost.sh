#!/usr/bin/env bash
# CPU the benchmark client itself spends per request: `kelp benchmark` and `weed benchmark` run
# the same workload against the same server, interleaved (kelp, weed, kelp, weed, ...); user+sys
# CPU of each client process (from /usr/bin/time) divided by the requests it completed.
#
#   bench/client_cost.sh --master HOST:PORT [--rounds 3] [-n 20000] [-c 16] [--threads T]
#
# Needs the weed binary (KELP_PEER_WEED, default ~/.cache/kelp-peer/venv/bin/weed).
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
command_line="$*"
master=""
rounds=3
n=20000
c=16
threads=""
while (($#)); do
  case $1 in
    --master) master=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    -n) n=$2; shift 2 ;;
    -c) c=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    -h|--help) sed -n '2,9p' "$0"; exit 0 ;;
    *) echo "client_cost.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
[[ -n $master ]] || { echo "client_cost.sh: --master HOST:PORT is required" >&2; exit 2; }
weed=${KELP_PEER_WEED:-${KELP_PEER_HOME:-$HOME/.cache/kelp-peer}/venv/bin/weed}
[[ -x $weed ]] || { echo "client_cost.sh: no weed binary at $weed" >&2; exit 1; }
kelp=$repo/target/release/kelp
(cd "$repo" && cargo build --release --quiet)

work=$(mktemp -d "${TMPDIR:-/tmp}/kelp-client-cost.XXXXXX")
trap 'rm -rf "$work"' EXIT
: >"$work/results.tsv"

# CLIENT -> appends "client cpu_s requests write_rps read_rps" to results
record() {
  local client=$1 timing=$work/time.txt output=$work/out.txt
  local cpu requests
  cpu=$(awk '{ print $1 + $2 }' "$timing")
  requests=$(awk '/Completed requests:/ { sum += $3 } END { print sum }' "$output")
  rps=$(awk '/Requests per second:/ { printf "%s ", $4 }' "$output")
  echo "$client $cpu $requests $rps" >>"$work/results.tsv"
}

for ((round = 1; round <= rounds; round++)); do
  echo "client_cost.sh: round $round/$rounds" >&2
  /usr/bin/time -f "%U %S" -o "$work/time.txt" "$kelp" benchmark --master "$master" -n "$n" \
    -c "$c" ${threads:+--threads "$threads"} --list "$work/klist.txt" >"$work/out.txt" 2>&1
  record kelp
  /usr/bin/time -f "%U %S" -o "$work/time.txt" "$weed" benchmark -master "$master" -n "$n" \
    -c "$c" -list "$work/wlist.txt" >"$work/out.txt" 2>&1
  record weed
done

python3 - "$work/results.tsv" "$command_line" <<'PY'
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    client, cpu, requests, write_rps, read_rps = line.split()
    rows.setdefault(client, []).append((float(cpu) * 1e6 / int(requests), float(write_rps), float(read_rps)))
print(f"Command: bench/client_cost.sh {sys.argv[2]}\n")
print("| client | CPU us/request (median) | per round | write req/s | read req/s |")
print("|---|---:|---|---:|---:|")
for client in ("kelp", "weed"):
    values = rows[client]
    per_round = ", ".join(f"{v[0]:.1f}" for v in values)
    median = statistics.median(v[0] for v in values)
    write = statistics.median(v[1] for v in values)
    read = statistics.median(v[2] for v in values)
    name = "kelp benchmark" if client == "kelp" else "weed benchmark"
    print(f"| {name} | {median:.1f} | {per_round} | {write:,.0f} | {read:,.0f} |")
ratio = statistics.median(v[0] for v in rows["weed"]) / statistics.median(v[0] for v in rows["kelp"])
print(f"\nweed benchmark spends {ratio:.1f}x the CPU per request of kelp benchmark.")
PY
