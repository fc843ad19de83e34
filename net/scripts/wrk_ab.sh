#!/usr/bin/env bash
# Interleaved A/B runs of a server example under wrk (SERVER=binary, default fixed_body;
# URL_PATH=/path, default /). In a variant, BIN=path and PATH_=/path override both.
# Usage: net/scripts/wrk_ab.sh ROUNDS SECONDS CONNECTIONS CORES "LABEL:ENV=VAL ..." ...
# Each variant is "label:VAR=value,VAR2=value" (env for the server). Prints one line per run
# and the median requests/s and p99 per variant. Port 22080 (net's range).
# HOST (default 127.0.0.1) is where wrk connects; SERVER_NETNS / CLIENT_NETNS run the server /
# wrk and curl inside those network namespaces (net/scripts/veth_ab.sh sets them).
set -euo pipefail
rounds=$1 seconds=$2 connections=$3 cores=$4; shift 4
binary=${SERVER:-target/release/examples/fixed_body}
url_path=${URL_PATH:-/}
port=22080
host=${HOST:-127.0.0.1}
server_prefix=() client_prefix=()
[[ -n ${SERVER_NETNS:-} ]] && server_prefix=(ip netns exec "$SERVER_NETNS")
[[ -n ${CLIENT_NETNS:-} ]] && client_prefix=(ip netns exec "$CLIENT_NETNS")
declare -A results
for round in $(seq 1 "$rounds"); do
  for variant in "$@"; do
    label=${variant%%:*}; envs=${variant#*:}
    env_args=(); IFS=',' read -ra pairs <<< "$envs"
    variant_binary=$binary variant_path=$url_path
    for pair in "${pairs[@]}"; do
      case $pair in
        BIN=*) variant_binary=${pair#BIN=} ;;
        PATH_=*) variant_path=${pair#PATH_=} ;;
        ?*) env_args+=("$pair") ;;
      esac
    done
    "${server_prefix[@]}" env "${env_args[@]}" "$variant_binary" "$port" "$cores" 2>/dev/null &
    pid=$!
    for _ in $(seq 1 50); do "${client_prefix[@]}" curl -s -o /dev/null "http://$host:$port/" && break; sleep 0.1; done
    out=$("${client_prefix[@]}" wrk -t1 -c"$connections" -d"${seconds}s" --latency "http://$host:$port$variant_path" 2>&1)
    # Server CPU time (user+system clock ticks) per request: robust to a busy machine.
    ticks=$(awk '{print $14 + $15}' "/proc/$pid/stat")
    kill "$pid"; wait "$pid" 2>/dev/null || true
    rps=$(awk '/Requests\/sec/ {print $2}' <<< "$out")
    p99=$(awk '$1=="99%" {print $2}' <<< "$out")
    requests=$(awk '/requests in/ {print $1}' <<< "$out")
    hz=$(getconf CLK_TCK)
    cpu_us=$(awk -v t="$ticks" -v n="$requests" -v hz="$hz" 'BEGIN {printf "%.2f", t * 1e6 / hz / n}')
    echo "round $round $label rps=$rps p99=$p99 server_cpu_us_per_request=$cpu_us"
    results[$label]+="$rps $p99 $cpu_us;"
  done
done
for variant in "$@"; do
  label=${variant%%:*}
  rps_sorted=$(tr ';' '\n' <<< "${results[$label]}" | awk 'NF {print $1}' | sort -n)
  count=$(wc -l <<< "$rps_sorted")
  median=$(sed -n "$(( (count + 1) / 2 ))p" <<< "$rps_sorted")
  p99s=$(tr ';' '\n' <<< "${results[$label]}" | awk 'NF {printf "%s ", $2}')
  cpu_sorted=$(tr ';' '\n' <<< "${results[$label]}" | awk 'NF {print $3}' | sort -n)
  cpu_median=$(sed -n "$(( (count + 1) / 2 ))p" <<< "$cpu_sorted")
  echo "$label: median rps=$median, median server CPU us/request=$cpu_median over $count runs; p99s: $p99s"
done
