#!/usr/bin/env bash
# Side by side: SeaweedFS 4.48's filer (default leveldb2 store) and Kelp's filer (redb store)
# under the many-small-files workload, in interleaved rounds (the order flips every round),
# medians and ratios at the end.
#
#   bench/filer_compare.sh [--rounds 3] [-n 20000] [--entries 1000000] [-c 32] [--pages 2000]
#
# Per round and filer: create n files of 1 KB (PUT), stat them (HEAD), read them (GET),
# list --pages pages of 100 entries of a directory of --entries entries (made once per filer
# with empty files before the rounds, from random start names), delete the n files. Load from
# `kelp filer-benchmark` (one client for both). SeaweedFS comes from ../shared/tools/peer.sh
# (master 23433, volume 23480, filer 23488; gRPC +10000), Kelp is `target/release/kelp server`
# (master 23533, volume 23580+, filer 23588). Everything started here is stopped by pid and
# its files removed.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
rounds=3
n=20000
entries=1000000
concurrency=32
pages=2000
while (($#)); do
  case $1 in
    --rounds) rounds=$2; shift 2 ;;
    -n) n=$2; shift 2 ;;
    --entries) entries=$2; shift 2 ;;
    -c) concurrency=$2; shift 2 ;;
    --pages) pages=$2; shift 2 ;;
    -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
    *) echo "filer_compare.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
for value in "$rounds" "$n" "$entries" "$concurrency" "$pages"; do
  [[ $value =~ ^[1-9][0-9]*$ ]] || { echo "filer_compare.sh: counts must be positive integers" >&2; exit 2; }
done

peer=${KELP_PEER_SH:-$repo/../shared/tools/peer.sh}
[[ -f $peer ]] || { echo "filer_compare.sh: peer.sh not found; set KELP_PEER_SH" >&2; exit 1; }
kelp=$repo/target/release/kelp
[[ -x $kelp ]] || { echo "filer_compare.sh: build first: cargo build --release" >&2; exit 1; }
weed=${KELP_PEER_HOME:-$HOME/.cache/kelp-peer}/venv/bin/weed

work=$(mktemp -d "${TMPDIR:-/tmp}/kelp-filer-compare.XXXXXX")
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  bash "$peer" stop "$work/seaweedfs" >/dev/null 2>&1 || true
  sleep 2
  # SeaweedFS's filer may take its time over SIGTERM.
  for pid in "${pids[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

wait_port() {
  local port=$1 tries=0
  until curl -s -o /dev/null "http://127.0.0.1:$port/"; do
    tries=$((tries + 1)); ((tries < 240)) || { echo "filer_compare.sh: nothing on port $port" >&2; exit 1; }
    sleep 0.25
  done
}

bash "$peer" start "$work/seaweedfs" 23433 23480 >/dev/null
mkdir -p "$work/seaweedfs/f"
"$weed" filer -ip=127.0.0.1 -port=23488 -master=127.0.0.1:23433 \
  -defaultStoreDir="$work/seaweedfs/f" >"$work/seaweedfs/filer.log" 2>&1 &
pids+=($!)
"$kelp" server --dir "$work/kelp" --master-port 23533 --volume-port 23580 --filer-port 23588 \
  >"$work/kelp.log" 2>&1 &
pids+=($!)
wait_port 23488
wait_port 23588
# Both masters grow volumes on the first writes: warm up outside the measurement.
for port in 23488 23588; do
  "$kelp" filer-benchmark --filer 127.0.0.1:$port --phase create --dir /warm --count 2000 \
    -c "$concurrency" >/dev/null
done

bench() { "$kelp" filer-benchmark --filer "127.0.0.1:$1" -c "$concurrency" "${@:2}"; }

echo "# $(date -u +%FT%TZ) $(nproc) cores; load: $(cut -d' ' -f1-3 /proc/loadavg)"
for port in 23488 23588; do
  started=$(date +%s)
  bench "$port" --phase populate --dir /big --count "$entries" --seconds-max 3600 | sed "s/^/populate $port: /"
  echo "populate $port: $(( $(date +%s) - started )) s"
done

results=$work/results.tsv
for ((round = 1; round <= rounds; round++)); do
  order=(23488 23588)
  ((round % 2 == 0)) && order=(23588 23488)
  for port in "${order[@]}"; do
    name=kelp; [[ $port == 23488 ]] && name=seaweedfs
    dir=/r$round
    for phase in create stat read list delete; do
      if [[ $phase == list ]]; then
        line=$(bench "$port" --phase list --dir /big --count "$pages" --entries "$entries")
      else
        line=$(bench "$port" --phase "$phase" --dir "$dir" --count "$n")
      fi
      echo "round $round $name $line"
      ops=$(sed -n 's/.*ops_per_s=\([0-9]*\).*/\1/p' <<<"$line")
      p99=$(sed -n 's/.*p99_ms=\([0-9.]*\).*/\1/p' <<<"$line")
      printf '%s\t%s\t%s\t%s\n' "$name" "$phase" "$ops" "$p99" >>"$results"
    done
  done
done

echo
echo "| operation (1 KB files, $concurrency in flight) | SeaweedFS ops/s (p99 ms) | Kelp ops/s (p99 ms) | Kelp / SeaweedFS |"
echo "|---|---|---|---|"
for phase in create stat read list delete; do
  median() { awk -F'\t' -v n="$1" -v p="$phase" -v col="$2" '$1 == n && $2 == p { print $col }' "$results" | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
  sw=$(median seaweedfs 3); kp=$(median kelp 3)
  label=$phase; [[ $phase == list ]] && label="list a page of 100 of $entries entries"
  ratio=$(awk -v a="$kp" -v b="$sw" 'BEGIN { if (b > 0) printf "%.2fx", a / b; else print "-" }')
  echo "| $label | $sw ($(median seaweedfs 4)) | $kp ($(median kelp 4)) | $ratio |"
done
