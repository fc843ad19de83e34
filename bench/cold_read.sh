#!/usr/bin/env bash
# Cold-read A/B of two kelp binaries: each run starts a fresh `kelp server` (--max 100) in a
# directory under target/ (on disk: a tmpfs cannot drop pages), writes N files with
# `kelp benchmark --write-only`, syncs and drops the `.dat` pages from the page cache
# (fsync + POSIX_FADV_DONTNEED, as memory pressure would), then reads every file once with
# `kelp benchmark --read-only` (A's binary is the client for both). Runs go A, B, B, A, ...
# Prints req/s, p50/p99, the server's CPU per read and its kelp_volume_uncached_reads_total.
#
#   bench/cold_read.sh A_BIN B_BIN [ROUNDS=2] [N=20000] [SIZE=16384] [CONNECTIONS=64]
#
# Ports 23800 (master) and 23810-23812 (volume server); everything started is stopped by pid.
set -euo pipefail
cd "$(dirname "$0")/.."
(($# >= 2)) || { sed -n '2,12p' "$0"; exit 2; }
a=$(realpath "$1") b=$(realpath "$2") rounds=${3:-2} n=${4:-20000} size=${5:-16384} conc=${6:-64}
mkdir -p target
server_pid=
trap '[[ -n $server_pid ]] && kill "$server_pid" 2>/dev/null || true' EXIT

drop_page_cache() { # DIR
  python3 - "$1" <<'PY'
import glob, os, sys
for path in glob.glob(os.path.join(sys.argv[1], "*.dat")):
    fd = os.open(path, os.O_RDONLY)
    os.fsync(fd)
    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    os.close(fd)
PY
}

uncached_reads() {
  for port in 23810 23811 23812; do
    curl -s "http://127.0.0.1:$port/metrics" 2>/dev/null | grep '^kelp_volume_uncached_reads_total' || true
  done | sort -u | awk '{ sum += $2 } END { print sum + 0 }'
}

run() { # BIN LABEL
  local dir out cpu_before cpu_after
  dir=$(mktemp -d target/cold-read.XXXXXX)
  no_filer=()
  "$1" server --help 2>/dev/null | grep -q -- --filer-port && no_filer=(--filer-port 0)
  "$1" server --dir "$dir" --master-port 23800 --volume-port 23810 --max 100 "${no_filer[@]}" \
    >"$dir/log" 2>&1 &
  server_pid=$!
  for _ in $(seq 100); do
    curl -fs "http://127.0.0.1:23800/dir/assign" >/dev/null 2>&1 && break
    sleep 0.2
  done
  if ! "$a" benchmark --master 127.0.0.1:23800 -n "$n" -c "$conc" --size "$size" \
      --collection cold --list "$dir/list" --write-only >"$dir/write.txt" 2>&1; then
    echo "$2: the write phase failed:" >&2; tail -5 "$dir/write.txt" >&2
  else
    drop_page_cache "$dir"
    cpu_before=$(awk '{ print $14 + $15 }' "/proc/$server_pid/stat")
    out=$("$a" benchmark --master 127.0.0.1:23800 -n "$n" -c "$conc" --size "$size" \
      --collection cold --list "$dir/list" --read-only 2>&1)
    cpu_after=$(awk '{ print $14 + $15 }' "/proc/$server_pid/stat")
    printf '%s: %s req/s, p50 %s ms, p99 %s ms, server CPU %d us/read, uncached reads %s\n' "$2" \
      "$(awk '/Requests per/ { print $4 }' <<<"$out")" "$(awk '$1 == "50%" { print $2 }' <<<"$out")" \
      "$(awk '$1 == "99%" { print $2 }' <<<"$out")" \
      $(((cpu_after - cpu_before) * 1000000 / $(getconf CLK_TCK) / n)) "$(uncached_reads)"
  fi
  kill "$server_pid"; wait "$server_pid" 2>/dev/null || true; server_pid=
  rm -rf "$dir"
}

for round in $(seq "$rounds"); do
  if ((round % 2)); then run "$a" A; run "$b" B; else run "$b" B; run "$a" A; fi
done
