#!/usr/bin/env bash
# More data than memory: random reads side by side, SeaweedFS 4.48 and Kelp, each volume
# server in a memory cgroup of its own limited to a fraction of the data it holds (its page
# cache is charged to the cgroup, so most reads miss it and go to the disk).
#
#   bench/cgroup_reads.sh [--data-mb 2048] [--limit-mb 256] [--size 4096] [-c 64] [-n 20000]
#                         [--rounds 2]
#
# 1. Starts `weed master` + `weed volume` and `kelp master` + `kelp volume` on 127.0.0.1
#    (ports 23900-23999), each volume server in its cgroup (cgroup v1 `memory` or v2, made
#    here and removed at the end), and writes data-mb of files of --size bytes to each with
#    `kelp benchmark --write-only`.
# 2. Rounds (order flipped every round): drop each server's volume files from the page cache,
#    then `kelp benchmark --read-only` -n random reads from the written files (the client
#    outside the cgroups). Per run: req/s, p50/p99 ms, and the volume server's major page
#    faults during the reads (a major fault stops the thread that took it until the disk
#    answers: for Kelp, one of its per-core event loops).
# Needs root and a memory cgroup; says so and exits 1 otherwise. Everything started is
# stopped by pid.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
data_mb=2048 limit_mb=256 size=4096 conc=64 n=20000 rounds=2
while (($#)); do
  case $1 in
    --data-mb) data_mb=$2; shift 2 ;;
    --limit-mb) limit_mb=$2; shift 2 ;;
    --size) size=$2; shift 2 ;;
    -c) conc=$2; shift 2 ;;
    -n) n=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
    *) echo "cgroup_reads.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
for value in "$data_mb" "$limit_mb" "$size" "$conc" "$n" "$rounds"; do
  [[ $value =~ ^[1-9][0-9]*$ ]] || { echo "cgroup_reads.sh: $value is not a positive integer" >&2; exit 2; }
done
kelp=$repo/target/release/kelp
[[ -x $kelp ]] || { echo "cgroup_reads.sh: build first: cargo build --release" >&2; exit 1; }
weed=${KELP_PEER_WEED:-${KELP_PEER_HOME:-$HOME/.cache/kelp-peer}/venv/bin/weed}
[[ -x $weed ]] || { echo "cgroup_reads.sh: no weed binary at $weed (../shared/tools/peer.sh install)" >&2; exit 1; }

if [[ -d /sys/fs/cgroup/memory ]]; then
  cgroot=/sys/fs/cgroup/memory limit_file=memory.limit_in_bytes
elif [[ -f /sys/fs/cgroup/cgroup.controllers ]] && grep -qw memory /sys/fs/cgroup/cgroup.controllers; then
  cgroot=/sys/fs/cgroup limit_file=memory.max
else
  echo "cgroup_reads.sh: no memory cgroup controller here" >&2; exit 1
fi

work=$(mktemp -d "$repo/target/cgroup-reads.XXXXXX")   # on disk: a tmpfs cannot drop pages
pids=()
groups=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  for group in "${groups[@]}"; do rmdir "$group" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

made_group=""
make_group() { # NAME: makes the cgroup (limited to limit_mb), its directory in made_group
  local group=$cgroot/kelp-bench-$1-$$
  mkdir "$group" || { echo "cgroup_reads.sh: cannot make cgroup $group (root?)" >&2; exit 1; }
  groups+=("$group")
  echo $((limit_mb * 1024 * 1024)) >"$group/$limit_file"
  made_group=$group
}

# start_in GROUP LOG CMD...: runs CMD in GROUP (it joins before exec); its pid goes to pids.
start_in() {
  local group=$1 log=$2; shift 2
  bash -c 'echo $$ >"$0/cgroup.procs" && exec "$@"' "$group" "$@" >"$log" 2>&1 &
  pids+=($!)
}

wait_assign() { # MASTER
  for _ in $(seq 150); do
    curl -fsS "http://$1/dir/assign" 2>/dev/null | grep -q '"fid"' && return 0
    sleep 0.2
  done
  echo "cgroup_reads.sh: no assignment from $1" >&2; tail -5 "$work"/*.log >&2; exit 1
}

mkdir -p "$work/sw/m" "$work/sw/v" "$work/kelp/m" "$work/kelp/v"
"$weed" master -ip=127.0.0.1 -port=23900 -mdir="$work/sw/m" -volumeSizeLimitMB=1024 >"$work/sw-master.log" 2>&1 &
pids+=($!)
make_group seaweedfs
start_in "$made_group" "$work/sw-volume.log" "$weed" volume -ip=127.0.0.1 -port=23910 \
  -dir="$work/sw/v" -max=100 -preStopSeconds=0 -master=127.0.0.1:23900
sw_volume_pid=${pids[-1]}
"$kelp" master --port 23950 --mdir "$work/kelp/m" --volume-size-limit-mb 1024 >"$work/kelp-master.log" 2>&1 &
pids+=($!)
make_group kelp
start_in "$made_group" "$work/kelp-volume.log" "$kelp" volume --port 23960 \
  --dir "$work/kelp/v" --max 100 --master 127.0.0.1:23950
kelp_volume_pid=${pids[-1]}
wait_assign 127.0.0.1:23900
wait_assign 127.0.0.1:23950

files=$((data_mb * 1024 * 1024 / size))
for system in SeaweedFS Kelp; do
  master=127.0.0.1:23900; [[ $system == Kelp ]] && master=127.0.0.1:23950
  echo "cgroup_reads.sh: writing $files files of $size B to $system" >&2
  "$kelp" benchmark --master "$master" -n "$files" -c "$conc" --size "$size" --size-jitter 0 \
    --collection cg --list "$work/$system.list" --write-only >"$work/$system-write.txt" 2>&1 || {
      echo "cgroup_reads.sh: writing to $system failed:" >&2; tail -5 "$work/$system-write.txt" >&2; exit 1; }
done

drop_page_cache() { # DIR
  python3 - "$1" <<'PY'
import os, sys
for name in os.listdir(sys.argv[1]):
    if name.endswith((".dat", ".idx")):
        fd = os.open(os.path.join(sys.argv[1], name), os.O_RDONLY)
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        os.close(fd)
PY
}

major_faults() { awk '{ print $12 }' "/proc/$1/stat"; }

read_run() { # SYSTEM
  local system=$1 master=127.0.0.1:23900 dir=$work/sw/v pid=$sw_volume_pid before out
  [[ $system == Kelp ]] && master=127.0.0.1:23950 dir=$work/kelp/v pid=$kelp_volume_pid
  drop_page_cache "$dir"
  before=$(major_faults "$pid")
  out=$("$kelp" benchmark --master "$master" -n "$n" -c "$conc" --size "$size" --collection cg \
    --list "$work/$system.list" --read-only 2>&1) || { echo "$system: reads failed: $(tail -3 <<<"$out")" >&2; return; }
  printf '%s\t%s\t%s\t%s\t%s\n' "$system" "$(awk '/Requests per/ { print $4 }' <<<"$out")" \
    "$(awk '$1 == "50%" { print $2 }' <<<"$out")" "$(awk '$1 == "99%" { print $2 }' <<<"$out")" \
    $(($(major_faults "$pid") - before)) | tee -a "$work/results.tsv" >&2
}

for round in $(seq "$rounds"); do
  if ((round % 2)); then read_run SeaweedFS; read_run Kelp; else read_run Kelp; read_run SeaweedFS; fi
done

echo "Machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GB", $2/1e6}' /proc/meminfo), Linux $(uname -r), $(date -u '+%Y-%m-%d %H:%M UTC'), load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "Command: bench/cgroup_reads.sh --data-mb $data_mb --limit-mb $limit_mb --size $size -c $conc -n $n --rounds $rounds"
echo
python3 - "$work/results.tsv" "$rounds" <<'PY'
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    system, rps, p50, p99, faults = line.split("\t")
    rows.setdefault(system, []).append((float(rps), float(p50), float(p99), int(faults)))
med = lambda system, i: statistics.median(r[i] for r in rows[system])
print(f"Medians of {sys.argv[2]} rounds (random reads, files dropped from the page cache first).\n")
print("| server | reads/s | p50 ms | p99 ms | major faults of the volume server |")
print("|---|---:|---:|---:|---:|")
for system in ("SeaweedFS", "Kelp"):
    if system in rows:
        print(f"| {system} | {med(system, 0):,.0f} | {med(system, 1):.2f} | {med(system, 2):.2f} | {med(system, 3):.0f} |")
if "SeaweedFS" in rows and "Kelp" in rows:
    print(f"\nKelp / SeaweedFS reads/s: {med('Kelp', 0) / med('SeaweedFS', 0):.2f}x; "
          f"p99 SeaweedFS / Kelp: {med('SeaweedFS', 2) / med('Kelp', 2):.2f}x")
PY
