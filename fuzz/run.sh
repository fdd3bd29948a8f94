#!/usr/bin/env bash
# fuzz/run.sh [-b BUILD_DIR] [-n RUNS] [-t SECONDS] [--fresh] [TARGET...] [-- LIBFUZZER_ARGS...]
# Runs each fuzz target (all of BUILD_DIR/fuzz/fuzz_* by default), one after the other, on its
# corpus BUILD_DIR/fuzz/corpus/TARGET (new inputs are kept there; with --fresh an empty one,
# BUILD_DIR/fuzz/fresh-corpus/TARGET, is used instead, leaving the first to longer runs) and
# its seeds BUILD_DIR/fuzz/seeds/TARGET, for RUNS executions (-runs; 100000 when neither is
# given) or SECONDS (-max_total_time), whichever comes first. Prints one line per target:
# executions, exec/s, coverage (cov, ft) and time. A crash, a leak, a timeout or a failed check
# leaves the input in BUILD_DIR/fuzz/crashes/ and the output in BUILD_DIR/fuzz/logs/TARGET.log
# (fresh-logs/ with --fresh), and makes the exit code 1. Build first (fuzz/README.md):
# cmake -DZASTAVA_FUZZ=ON -DCMAKE_CXX_COMPILER=clang++ ..., then --target zastava_fuzz.
set -euo pipefail
cd "$(dirname "$0")/.."
build=build/fuzz
runs=()
seconds=()
fresh=0
targets=()
extra=()
while [[ $# -gt 0 ]]; do
  case $1 in
    -b) build=$2; shift 2 ;;
    -n) runs=(-runs="$2"); shift 2 ;;
    -t) seconds=(-max_total_time="$2"); shift 2 ;;
    --fresh) fresh=1; shift ;;
    --) shift; extra=("$@"); break ;;
    -h|--help) sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) targets+=("$1"); shift ;;
  esac
done
dir=$build/fuzz
[[ ${#runs[@]} -gt 0 || ${#seconds[@]} -gt 0 ]] || runs=(-runs=100000)
if [[ ${#targets[@]} -eq 0 ]]; then
  for binary in "$dir"/fuzz_*; do
    [[ -x $binary && -f $binary ]] && targets+=("$(basename "$binary")")
  done
fi
[[ ${#targets[@]} -gt 0 ]] || { echo "fuzz/run.sh: no fuzz target in $dir (build them first)" >&2; exit 2; }
logs=$dir/logs
[[ $fresh -eq 1 ]] && logs=$dir/fresh-logs
mkdir -p "$logs" "$dir/crashes"

failed=()
printf '%-28s %-6s %12s %9s %7s %8s %8s\n' target result executions exec/s cov ft seconds
for target in "${targets[@]}"; do
  corpus=$dir/corpus/$target
  if [[ $fresh -eq 1 ]]; then
    corpus=$dir/fresh-corpus/$target
    rm -rf "$corpus"
  fi
  mkdir -p "$corpus"
  log=$logs/$target.log
  status=0
  start=$(date +%s%N)
  "$dir/$target" "${runs[@]}" "${seconds[@]}" -print_final_stats=1 -timeout=25 \
    -artifact_prefix="$dir/crashes/$target-" "${extra[@]}" "$corpus" "$dir/seeds/$target" \
    >"$log" 2>&1 || status=$?
  tenths=$((($(date +%s%N) - start) / 100000000))
  took=$((tenths / 10)).$((tenths % 10))
  executions=$(sed -nE 's/^stat::number_of_executed_units: *([0-9]+).*/\1/p' "$log" | tail -n 1)
  rate=$(sed -nE 's/^stat::average_exec_per_sec: *([0-9]+).*/\1/p' "$log" | tail -n 1)
  stats=$(grep -E '^#[0-9]+' "$log" | grep -E 'cov: ' | tail -n 1 || true)
  cov=$(sed -nE 's/.* cov: ([0-9]+).*/\1/p' <<<"$stats")
  ft=$(sed -nE 's/.* ft: ([0-9]+).*/\1/p' <<<"$stats")
  result=ok
  if [[ $status -ne 0 ]]; then
    result=FAILED
    failed+=("$target")
  fi
  printf '%-28s %-6s %12s %9s %7s %8s %8s\n' "$target" "$result" "${executions:-?}" \
    "${rate:-?}" "${cov:-?}" "${ft:-?}" "$took"
  if [[ $status -ne 0 ]]; then
    grep -E '^(==[0-9]+==ERROR|SUMMARY|fuzz check failed|.*runtime error)|artifact_prefix|Test unit written' \
      "$log" | head -n 8 | sed 's/^/    /'
  fi
done
if [[ ${#failed[@]} -gt 0 ]]; then
  echo "fuzz/run.sh: failed: ${failed[*]} (logs in $logs, inputs in $dir/crashes)" >&2
  exit 1
fi
