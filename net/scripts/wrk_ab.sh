#!/usr/bin/env bash
# Interleaved A/B runs of a server example under wrk (SERVER=binary, default fixed_body;
# URL_PATH=/path, default /).
# Usage: net/scripts/wrk_ab.sh ROUNDS SECONDS CONNECTIONS CORES "LABEL:ENV=VAL ..." ...
# Each variant is "label:VAR=value,VAR2=value" (env for the server). Prints one line per run
# and the median requests/s and p99 per variant. Port 22080 (net's range).
set -euo pipefail
rounds=$1 seconds=$2 connections=$3 cores=$4; shift 4
binary=${SERVER:-target/release/examples/fixed_body}
url_path=${URL_PATH:-/}
port=22080
declare -A results
for round in $(seq 1 "$rounds"); do
  for variant in "$@"; do
    label=${variant%%:*}; envs=${variant#*:}
    env_args=(); IFS=',' read -ra pairs <<< "$envs"
    for pair in "${pairs[@]}"; do [ -n "$pair" ] && env_args+=("$pair"); done
    env "${env_args[@]}" "$binary" "$port" "$cores" 2>/dev/null &
    pid=$!
    for _ in $(seq 1 50); do curl -s -o /dev/null "http://127.0.0.1:$port/" && break; sleep 0.1; done
    out=$(wrk -t1 -c"$connections" -d"${seconds}s" --latency "http://127.0.0.1:$port$url_path" 2>&1)
    kill "$pid"; wait "$pid" 2>/dev/null || true
    rps=$(awk '/Requests\/sec/ {print $2}' <<< "$out")
    p99=$(awk '$1=="99%" {print $2}' <<< "$out")
    echo "round $round $label rps=$rps p99=$p99"
    results[$label]+="$rps $p99;"
  done
done
for variant in "$@"; do
  label=${variant%%:*}
  rps_sorted=$(tr ';' '\n' <<< "${results[$label]}" | awk 'NF {print $1}' | sort -n)
  count=$(wc -l <<< "$rps_sorted")
  median=$(sed -n "$(( (count + 1) / 2 ))p" <<< "$rps_sorted")
  p99s=$(tr ';' '\n' <<< "${results[$label]}" | awk 'NF {printf "%s ", $2}')
  echo "$label: median rps=$median over $count runs; p99s: $p99s"
done
