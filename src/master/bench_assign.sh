#!/usr/bin/env bash
# /dir/assign throughput: Kelp's master vs SeaweedFS 4.48's, same machine, same load (wrk,
# keep-alive), rounds interleaved. Usage (from the repository root, after
# `cargo build --release`):
#   src/master/bench_assign.sh [ROUNDS=3] [SECONDS=10] [CONNECTIONS=64] [THREADS=2]
# Kelp: one master on 127.0.0.1:25433 with a volume announced by one heartbeat.
# SeaweedFS: `peer.sh start DIR 25333 25080` (master + volume server); peer.sh is
# ../shared/tools/peer.sh beside the repository, or KELP_PEER_SH.
set -euo pipefail
cd "$(dirname "$0")/../.."
case ${1:-} in -h|--help) sed -n '2,8p' "$0"; exit 0 ;; esac
rounds=${1:-3} seconds=${2:-10} connections=${3:-64} threads=${4:-2}
peer=${KELP_PEER_SH:-$PWD/../shared/tools/peer.sh}
[[ -f $peer ]] || { echo "bench_assign.sh: $peer not found; set KELP_PEER_SH" >&2; exit 1; }
work=$(mktemp -d)
kelp_pid=
cleanup() {
  [[ -n $kelp_pid ]] && kill "$kelp_pid" 2>/dev/null || true
  bash "$peer" stop "$work/weed" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

RUST_LOG=warn target/release/kelp master --port 25433 --mdir "$work/kelp" --pulse-seconds 60 \
  >"$work/kelp.log" 2>&1 &
kelp_pid=$!
until curl -fsS http://127.0.0.1:25433/cluster/status 2>/dev/null | grep -q '"IsLeader":true'; do
  sleep 0.2
done
curl -fsS -X POST http://127.0.0.1:25433/heartbeat -d '{"ip":"127.0.0.1","port":25480,
  "maxVolumeCount":8,"volumes":[{"id":1,"replicaPlacement":"000","size":0}]}' >/dev/null
curl -fsS http://127.0.0.1:25433/dir/assign | grep -q fid

bash "$peer" start "$work/weed" 25333 25080 >/dev/null

run() { # name url
  local out
  out=$(wrk -t"$threads" -c"$connections" -d"${seconds}s" --latency "$2")
  local rps p50 p99
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  p50=$(awk '$1 == "50%" {print $2}' <<<"$out")
  p99=$(awk '$1 == "99%" {print $2}' <<<"$out")
  printf '%-9s round %d: %10s req/s  p50 %8s  p99 %8s\n' "$1" "$round" "$rps" "$p50" "$p99"
}

for round in $(seq 1 "$rounds"); do
  run kelp http://127.0.0.1:25433/dir/assign
  run seaweedfs http://127.0.0.1:25333/dir/assign
done
