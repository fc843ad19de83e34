#!/usr/bin/env bash
# The volume server benchmark (BENCHMARKS.md, "Volume server"): wrk against
#   kelp1 = kelp volume --cores 1            (port 24610 with PORT_BASE=24000)
#   kelp2 = kelp volume --cores 2, main port (24600; half the requests go to the other core)
#   kelp2d = the same server, each volume read on its owner core's port (24601 for volume 2 on
#           core 0, 24602 for volume 1 on core 1; two wrk, each -t1 with half the
#           connections; req/s summed, p99 the higher of the two), as clients that look
#           volumes up at the master reach it
#   weed  = SeaweedFS 4.48 volume server     (24080, master 24333, volume size limit 30 GB)
#   ceil1/ceil2 = net's fixed_body example, 1 KiB from memory, 1 / 2 cores (24710 / 24700)
# 1 KB and 64 KB GETs and POSTs at 16 and 64 connections, systems interleaved within each
# round; prints one line per run, then medians and ratios (summarize.py).
# usage: [PORT_BASE=24000] src/volume/bench/run.sh [ROUNDS=3] [SECONDS=4]   (after cargo build
#        --release --bin kelp -p kelp --example fixed_body -p kelp-net; needs wrk, curl, python3)
# Ports are PORT_BASE + 600/610/700/710/080/333 (the numbers above are for 24000); SeaweedFS
# also listens on those + 10000 (gRPC).
set -euo pipefail
rounds=${1:-3}; dur=${2:-4}; base=${PORT_BASE:-24000}
p_kelp1=$((base + 610)); p_kelp2=$((base + 600)); p_weed=$((base + 80)); p_master=$((base + 333))
p_ceil1=$((base + 710)); p_ceil2=$((base + 700)); p_nomaster=$((base + 999))
here=$(cd "$(dirname "$0")" && pwd)
release=$here/../../../target/release
weed=${KELP_PEER_WEED:-$HOME/.cache/kelp-peer/venv/bin/weed}
work=$(mktemp -d /tmp/kelp-volume-bench.XXXXXX)
pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
cd "$work"
mkdir -p kelp1 kelp2 weed/m weed/v
"$release/kelp" volume --dir kelp1 --port $p_kelp1 --cores 1 --master 127.0.0.1:$p_nomaster 2>kelp1.log & pids+=($!)
"$release/kelp" volume --dir kelp2 --port $p_kelp2 --cores 2 --master 127.0.0.1:$p_nomaster 2>kelp2.log & pids+=($!)
"$release/examples/fixed_body" $p_ceil1 1 2>ceil1.log & pids+=($!)
"$release/examples/fixed_body" $p_ceil2 2 2>ceil2.log & pids+=($!)
"$weed" master -ip=127.0.0.1 -port=$p_master -mdir=weed/m -volumeSizeLimitMB=30000 -peers=none \
  -telemetry=false >weed/master.log 2>&1 & pids+=($!)
"$weed" volume -ip=127.0.0.1 -port=$p_weed -dir=weed/v -max=20 -preStopSeconds=0 \
  -master=127.0.0.1:$p_master >weed/volume.log 2>&1 & pids+=($!)
until curl -fsS 127.0.0.1:$p_master/dir/assign 2>/dev/null | grep -q fid; do sleep 0.5; done
sleep 1
for port in $p_kelp1 $p_kelp2; do
  for vid in 1 2; do curl -fsS -XPOST "127.0.0.1:$port/admin/volume/create?volume=$vid" >/dev/null; done
done
weed_vids=$(curl -fsS 127.0.0.1:$p_weed/status | python3 -c 'import json,sys; print(",".join(str(v["Id"]) for v in json.load(sys.stdin)["Volumes"]))')
echo "idle RSS: kelp1 $(grep VmRSS /proc/${pids[0]}/status | awk '{print $2}') kB, kelp2 $(grep VmRSS /proc/${pids[1]}/status | awk '{print $2}') kB"
declare -A port=([kelp1]=$p_kelp1 [kelp2]=$p_kelp2 [weed]=$p_weed [ceil1]=$p_ceil1 [ceil2]=$p_ceil2)
declare -A vids=([kelp1]=1,2 [kelp2]=1,2 [weed]=$weed_vids [ceil1]=1 [ceil2]=1)
for system in kelp1 kelp2 weed; do
  python3 "$here/populate.py" "${port[$system]}" 1024 1000 1000 "${vids[$system]}"
  python3 "$here/populate.py" "${port[$system]}" 65536 100000 1000 "${vids[$system]}"
done
run() { # label system lua conns keybase size seconds
  local out
  out=$(VIDS=${vids[$2]} KEYBASE=$5 COUNT=1000 SIZE=$6 wrk -t2 -c"$4" -d"$7s" --latency -s "$here/$3" "http://127.0.0.1:${port[$2]}" 2>&1)
  echo "$1 $2 rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}') p50=$(echo "$out" | awk '$1=="50%" {print $2}')" \
    "p99=$(echo "$out" | awk '$1=="99%" {print $2}') non2xx=$(echo "$out" | awk '/Non-2xx/ {print $5}' | grep . || echo 0)"
}
run_direct() { # label lua conns keybase size seconds: kelp2 through its per-core ports
  local outs=() i
  for i in 0 1; do
    VIDS=1,2 ONLY=$((2 - i)) KEYBASE=$4 COUNT=1000 SIZE=$5 wrk -t1 -c$(($3 / 2)) -d"$6s" --latency \
      -s "$here/$2" "http://127.0.0.1:$((p_kelp2 + 1 + i))" >"direct$i.txt" 2>&1 &
    outs+=($!)
  done
  wait "${outs[@]}"
  echo "$1 kelp2d rps=$(awk '/Requests\/sec/ {s += $2} END {print s}' direct0.txt direct1.txt)" \
    "p50=$(awk '$1=="50%" {print $2}' direct0.txt)" \
    "p99=$(python3 -c 'import re,sys
def ms(t):
    m = re.match(r"([\d.]+)(us|ms|s)", t); v = float(m.group(1))
    return v / 1000 if m.group(2) == "us" else v * 1000 if m.group(2) == "s" else v
print(f"{max(ms(t) for t in sys.argv[1:]):.2f}ms")' $(awk '$1=="99%" {print $2}' direct0.txt direct1.txt))" \
    "non2xx=$(cat direct0.txt direct1.txt | awk '/Non-2xx/ {s += $5} END {print s + 0}')"
}
seq=0
for round in $(seq 1 "$rounds"); do
  for c in 16 64; do
    for s in kelp1 kelp2 weed ceil1 ceil2; do run "GET1K/c$c" $s get.lua $c 1000 1024 "$dur"; done
    run_direct "GET1K/c$c" get.lua $c 1000 1024 "$dur"
    for s in kelp1 kelp2 weed; do run "GET64K/c$c" $s get.lua $c 100000 65536 "$dur"; done
    run_direct "GET64K/c$c" get.lua $c 100000 65536 "$dur"
    seq=$((seq + 1))
    for s in kelp1 kelp2 weed; do run "POST1K/c$c" $s post.lua $c "$(printf '%x' $((0x10000000 * (seq + 10))))" 1024 "$dur"; done
    # 64 KB writes fill disks fast: 2 s each.
    for s in kelp1 weed; do run "POST64K/c$c" $s post.lua $c "$(printf '%x' $((0x10000000 * (seq + 40))))" 65536 2; done
  done
done | tee results.txt
echo "RSS after the runs: kelp1 $(grep VmRSS /proc/${pids[0]}/status | awk '{print $2}') kB, weed volume $(grep VmRSS /proc/${pids[5]}/status | awk '{print $2}') kB"
python3 "$here/summarize.py" results.txt
