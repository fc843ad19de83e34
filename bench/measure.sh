# Shared by compare.sh and ab.sh (sourced, not run): one `kelp benchmark` measurement with the
# servers' CPU charged to it.

# utime + stime, in clock ticks, of every process in PIDS (all their threads, dead ones too).
cpu_ticks() {
  local total=0 pid
  for pid in "$@"; do total=$((total + $(awk '{print $14 + $15}' "/proc/$pid/stat"))); done
  echo "$total"
}

# measure_phases KELP SYSTEM LABEL MASTER SIZE CONC FILES WORK "PIDS" DELETE_AFTER
# Runs the write phase, then the read phase (it reads the list the first wrote), as two
# `KELP benchmark` runs against MASTER, and prints one line per phase: system, "LABEL
# phase", req/s, p50 ms, p99 ms, and the CPU of PIDS per request in µs ("" without PIDS).
# DELETE_AFTER=1 then deletes the collection, so the next run writes into pages just freed.
# Scratch files go to WORK. Returns 1 (after saying why on stderr) when a benchmark fails.
# With MEASURE_JSON_DIR set, each phase's JSON report is also kept there as
# "SYSTEM LABEL phase.json" (the last one of a label wins), for `kelp plot latency`.
# With MEASURE_KELP_FSYNC=1 the writes to Kelp (every SYSTEM but SeaweedFS: also ab.sh's A
# and B) ask for fsync=true (durable before the answer; group commit); SeaweedFS's do not.
measure_phases() {
  local kelp=$1 system=$2 label=$3 master=$4 size=$5 conc=$6 files=$7 work=$8 pids=$9
  local delete_after=${10} json=$8/run.json phase
  local durable=()
  [[ $system != SeaweedFS && ${MEASURE_KELP_FSYNC:-0} == 1 ]] && durable=(--fsync)
  for phase in write read; do
    local before="" after=""
    [[ -n $pids ]] && before=$(cpu_ticks $pids)
    "$kelp" benchmark --master "$master" -n "$files" -c "$conc" --size "$size" \
      --collection "c$size" --list "$work/list.txt" --json "$json" "--$phase-only" "${durable[@]}" \
      >"$work/last.txt" 2>&1 || {
        echo "kelp benchmark ($phase) on $system failed:" >&2; tail -5 "$work/last.txt" >&2
        return 1; }
    [[ -n $pids ]] && after=$(cpu_ticks $pids)
    if [[ -n ${MEASURE_JSON_DIR:-} ]]; then cp "$json" "$MEASURE_JSON_DIR/$system $label $phase.json"; fi
    python3 - "$json" "$system" "$label $phase" "$before" "$after" "$(getconf CLK_TCK)" <<'PY'
import json, sys
report = json.load(open(sys.argv[1]))
(phase,) = report["phases"]
pct = dict((p, ms) for p, ms in phase["latency"]["percentiles_ms"])
before, after, tck = sys.argv[4], sys.argv[5], int(sys.argv[6])
cpu = f"{(int(after) - int(before)) / tck * 1e6 / max(phase['completed'], 1):.1f}" if before else ""
print(f"{sys.argv[2]}\t{sys.argv[3]}\t{phase['requests_per_second']:.1f}\t{pct[50.0]:.2f}\t{pct[99.0]:.2f}\t{cpu}")
PY
  done
  if [[ $delete_after == 1 ]]; then
    curl -fsS -X POST "http://$master/col/delete?collection=c$size" >/dev/null 2>&1 ||
      echo "could not delete collection c$size on $system" >&2
  fi
}
