#!/usr/bin/env bash
# Flame graph of a running server under load: `perf record` on its pid while `kelp benchmark`
# drives it, folded and drawn with inferno (installed with `cargo install inferno` on first use).
#
#   perf/record.sh --pid PID --out flame.svg [--freq 999] --master HOST:PORT [benchmark args ...]
#
# Example: perf/record.sh --pid "$(pgrep -n weed)" --out sw.svg --master 127.0.0.1:19333 -n 50000
# Needs perf (apt-get install linux-perf) and, unless root, kernel.perf_event_paranoid <= 1.
# Kelp's release build keeps line debug info (profile.release debug = 1), so frames have names.
# KEEP_FOLDED=FILE also keeps the folded stacks (one line per stack) for scripts.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
pid=""
out=flame.svg
freq=999
bench_args=()
while (($#)); do
  case $1 in
    --pid) pid=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --freq) freq=$2; shift 2 ;;
    -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
    *) bench_args+=("$1"); shift ;;
  esac
done
[[ -n $pid && -d /proc/$pid ]] || { echo "record.sh: give the running server's --pid" >&2; exit 2; }
command -v perf >/dev/null || { echo "record.sh: perf not found (apt-get install linux-perf)" >&2; exit 1; }
if ! command -v inferno-flamegraph >/dev/null; then
  echo "record.sh: installing inferno (cargo install inferno)" >&2
  cargo install inferno --locked
fi
kelp=$repo/target/release/kelp
[[ -x $kelp ]] || (cd "$repo" && cargo build --release --quiet)

work=$(mktemp -d "${TMPDIR:-/tmp}/kelp-record.XXXXXX")
trap 'rm -rf "$work"' EXIT
# cpu-clock is a software event: it works in VMs without hardware counters too.
perf record -e cpu-clock -F "$freq" -g -p "$pid" -o "$work/perf.data" 2>"$work/record.log" &
perf_pid=$!
sleep 0.3
"$kelp" benchmark "${bench_args[@]}"
kill -INT "$perf_pid"
wait "$perf_pid" || true
perf script -i "$work/perf.data" 2>/dev/null | inferno-collapse-perf >"$work/folded.txt"
[[ -n ${KEEP_FOLDED:-} ]] && cp "$work/folded.txt" "$KEEP_FOLDED"
inferno-flamegraph --title "pid $pid under kelp benchmark ${bench_args[*]}" <"$work/folded.txt" >"$out"
echo "record.sh: $(wc -l <"$work/folded.txt") stacks -> $out"
