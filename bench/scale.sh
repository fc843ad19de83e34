#!/usr/bin/env bash
# Scale of one `kelp volume`: memory per needle and start-up time with many needles, and the
# memory each volume costs.
#
#   bench/scale.sh                      # 100 M needles in 100 volumes; overhead at 1,000 and 10,000 volumes
#   KELP_SCALE_NEEDLES=10000000 bench/scale.sh
#
# 1. `kelp generate-volumes` writes KELP_SCALE_NEEDLES needles (8-40 data bytes each, so 100 M
#    take ~6 GB of .dat and 1.7 GB of .idx) into KELP_SCALE_VOLUMES volumes.
# 2. A `kelp volume` on an empty directory gives the baseline RssAnon.
# 3. KELP_SCALE_RUNS times: start `kelp volume` on the generated directory and time until the
#    first GET of a generated needle is answered with its bytes (the server binds its ports
#    only after every volume is loaded); then GET the last needle of every volume and compare
#    the bytes; RssAnon from /proc/PID/status; stop it (SIGTERM).
#    Then KELP_SCALE_COLD_RUNS (default 1) cold starts: every file of the volumes is dropped
#    from the page cache first (posix_fadvise DONTNEED), so the `.idx` files come from disk.
# 4. Per-volume memory: the same with KELP_SCALE_OVERHEAD_VOLUMES volumes of one needle each.
#
# Warm start-up is measured with the files in the page cache (just written). Every directory is
# made under KELP_SCALE_TMP (default /tmp) and deleted at the end.
# Env: KELP (binary, default target/release/kelp), KELP_SCALE_CORES (default: all),
# KELP_SCALE_PORT (default 18480; it and the next cores+1 ports, and port + 10000, must be free).
set -euo pipefail

NEEDLES=${KELP_SCALE_NEEDLES:-100000000}
VOLUMES=${KELP_SCALE_VOLUMES:-100}
RUNS=${KELP_SCALE_RUNS:-3}
COLD_RUNS=${KELP_SCALE_COLD_RUNS:-1}
OVERHEAD_VOLUMES=${KELP_SCALE_OVERHEAD_VOLUMES:-1000 10000}
KELP=${KELP:-target/release/kelp}
CORES=${KELP_SCALE_CORES:-$(nproc)}
PORT=${KELP_SCALE_PORT:-18480}
WORK=$(mktemp -d "${KELP_SCALE_TMP:-/tmp}/kelp-scale.XXXXXX")
SERVER_PID=""

cleanup() {
  if [[ -n $SERVER_PID ]]; then kill -TERM "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

[[ -x $KELP ]] || { echo "no kelp binary at $KELP (cargo build --release -p kelp)" >&2; exit 1; }
(( NEEDLES % VOLUMES == 0 )) || { echo "KELP_SCALE_NEEDLES must be a multiple of KELP_SCALE_VOLUMES" >&2; exit 1; }
# Three descriptors per volume, plus connections.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

now_ms() { echo $(( $(date +%s%N) / 1000000 )); }
rss_anon_kb() { awk '/^RssAnon:/ {print $2}' "/proc/$1/status"; }

# start_server DIR MAX: starts `kelp volume` in the background (SERVER_PID).
start_server() {
  "$KELP" volume --dir "$1" --port "$PORT" --cores "$CORES" --max "$2" \
    --master 127.0.0.1:1 >"$WORK/server.log" 2>&1 &
  SERVER_PID=$!
}

stop_server() {
  kill -TERM "$SERVER_PID"
  wait "$SERVER_PID" || true
  SERVER_PID=""
}

# get_hex FID: the body of GET /FID in hex, or nothing when not served (yet).
get_hex() {
  curl -fsS --max-time 5 "http://127.0.0.1:$PORT/$1" 2>/dev/null | od -An -v -tx1 | tr -d ' \n'
}

# wait_first_read FID HEX STARTED_MS: polls until GET FID returns HEX (at most 300 s); prints
# the milliseconds since STARTED_MS.
wait_first_read() {
  local deadline=$(( $(now_ms) + 300000 ))
  while (( $(now_ms) < deadline )); do
    kill -0 "$SERVER_PID" 2>/dev/null || { echo "kelp volume exited:" >&2; tail "$WORK/server.log" >&2; exit 1; }
    if [[ $(get_hex "$1") == "$2" ]]; then echo $(( $(now_ms) - $3 )); return; fi
    sleep 0.01
  done
  echo "no answer for $1 within 300 s" >&2; tail "$WORK/server.log" >&2; exit 1
}

# check_samples FILE: every `fid<TAB>hex` line is served with exactly those bytes.
check_samples() {
  local fid hex got bad=0
  while IFS=$'\t' read -r fid hex; do
    got=$(get_hex "$fid")
    [[ $got == "$hex" ]] || { echo "GET $fid: wrong bytes" >&2; bad=1; }
  done <"$1"
  (( bad == 0 )) || exit 1
}

# measure DIR SAMPLES MAX: one start; prints "startup_ms rss_anon_kb".
measure() {
  local first hex started ms rss
  IFS=$'\t' read -r first hex <"$2"
  started=$(now_ms)
  start_server "$1" "$3"
  ms=$(wait_first_read "$first" "$hex" "$started")
  check_samples "$2"
  sleep 1
  rss=$(rss_anon_kb "$SERVER_PID")
  stop_server
  echo "$ms $rss"
}

# evict DIR: drops every file of DIR from the page cache (written back first).
evict() {
  sync
  python3 - "$1" <<'PY'
import os, sys
for name in os.listdir(sys.argv[1]):
    fd = os.open(os.path.join(sys.argv[1], name), os.O_RDONLY)
    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    os.close(fd)
PY
}

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GB", $2/1e6}' /proc/meminfo), $(uname -r), load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "kelp: $("$KELP" --version)"

mkdir -p "$WORK/empty"
start_server "$WORK/empty" 8
until curl -fsS "http://127.0.0.1:$PORT/healthz" >/dev/null 2>&1; do sleep 0.05; done
sleep 1
BASE_KB=$(rss_anon_kb "$SERVER_PID")
stop_server
echo "baseline: kelp volume with no volumes, RssAnon $BASE_KB kB"

generate() { # DIR VOLUMES NEEDLES_PER_VOLUME
  local started; started=$(now_ms)
  "$KELP" generate-volumes --dir "$1" --volumes "$2" --needles-per-volume "$3" \
    --sample-fids "$1.samples" >&2
  echo "generated in $(( ($(now_ms) - started) / 1000 )) s; on disk: $(du -sh "$1" | cut -f1)" >&2
}

# Needles.
DIR=$WORK/needles
generate "$DIR" "$VOLUMES" $(( NEEDLES / VOLUMES ))
: >"$WORK/runs"
for run in $(seq "$RUNS"); do
  measure "$DIR" "$DIR.samples" "$VOLUMES" | tee -a "$WORK/runs" | awk -v r="$run" '{printf "run %d: first read after %d ms, RssAnon %d kB\n", r, $1, $2}'
done
STARTUP_MS=$(cut -d' ' -f1 "$WORK/runs" | median)
RSS_KB=$(cut -d' ' -f2 "$WORK/runs" | median)
: >"$WORK/cold"
for run in $(seq "$COLD_RUNS"); do
  evict "$DIR"
  measure "$DIR" "$DIR.samples" "$VOLUMES" | tee -a "$WORK/cold" | awk -v r="$run" '{printf "cold run %d: first read after %d ms, RssAnon %d kB\n", r, $1, $2}'
done
DAT=$(du -cb "$DIR"/*.dat | tail -1 | cut -f1)
IDX=$(du -cb "$DIR"/*.idx | tail -1 | cut -f1)
rm -rf "$DIR" "$DIR.samples"

# Per-volume overhead.
: >"$WORK/overhead"
for count in $OVERHEAD_VOLUMES; do
  if (( 3 * count + 1024 > $(ulimit -n) )); then
    echo "skipping $count volumes: they need $(( 3 * count + 1024 )) descriptors, the open-file limit is $(ulimit -n)" >&2
    continue
  fi
  dir=$WORK/volumes-$count
  generate "$dir" "$count" 1
  read -r ms rss < <(measure "$dir" "$dir.samples" "$count")
  echo "$count $ms $rss" >>"$WORK/overhead"
  rm -rf "$dir" "$dir.samples"
done

echo
echo "| $NEEDLES needles in $VOLUMES volumes, $CORES cores | median of $RUNS starts |"
echo "|---|---|"
awk -v n="$NEEDLES" -v rss="$RSS_KB" -v base="$BASE_KB" -v ms="$STARTUP_MS" -v dat="$DAT" -v idx="$IDX" 'BEGIN {
  printf "| RssAnon, MB | %.1f (empty server %.1f) |\n", rss * 1024 / 1e6, base * 1024 / 1e6
  printf "| RAM per needle, bytes (RssAnon / needles) | %.2f |\n", rss * 1024 / n
  printf "| RAM per needle above the empty server, bytes | %.2f |\n", (rss - base) * 1024 / n
  printf "| start-up to first served read (warm page cache), s | %.2f |\n", ms / 1000
  printf "| needles loaded per second | %.1f M |\n", n / (ms / 1000) / 1e6
  printf "| .dat + .idx on disk, GB | %.2f + %.2f |\n", dat / 1e9, idx / 1e9
}'
if [[ -s $WORK/cold ]]; then
  awk -v n="$NEEDLES" -v ms="$(cut -d' ' -f1 "$WORK/cold" | median)" 'BEGIN {
    printf "| start-up to first served read (cold: files dropped from the page cache), s | %.2f |\n", ms / 1000
    printf "| needles loaded per second, cold | %.1f M |\n", n / (ms / 1000) / 1e6 }'
fi
echo
echo "| volumes (1 needle each) | start-up, s | RssAnon, MB | per volume above the empty server, KB |"
echo "|---|---|---|---|"
while read -r count ms rss; do
  awk -v c="$count" -v ms="$ms" -v rss="$rss" -v base="$BASE_KB" 'BEGIN {
    printf "| %d | %.2f | %.1f | %.1f |\n", c, ms / 1000, rss * 1024 / 1e6, (rss - base) * 1024 / c / 1000 }'
done <"$WORK/overhead"
