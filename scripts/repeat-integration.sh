#!/usr/bin/env bash
# repeat-integration.sh [-n RUNS] [-b BUILD_DIR] [-R REGEX]: runs the integration tests of an
# existing build RUNS times in a row (default 20, build/test, every integration test) to find
# flaky ones, keeping each failing run's output, then prints per test how often it passed and
# failed, and exits non-zero when any run failed. Root is required, as for the tests themselves.
set -euo pipefail
cd "$(dirname "$0")/.."

runs=20
build_dir=build/test
regex=.
while getopts 'n:b:R:' option; do
  case $option in
    n) runs=$OPTARG ;;
    b) build_dir=$OPTARG ;;
    R) regex=$OPTARG ;;
    *) sed -n '2,5p' "$0" >&2; exit 2 ;;
  esac
done
[[ -f $build_dir/CTestTestfile.cmake ]] || { echo "no build in $build_dir (scripts/test.sh makes build/test)" >&2; exit 2; }

logs=$build_dir/repeat-integration
rm -rf "$logs"
mkdir -p "$logs"
declare -A passed failed
failed_runs=0
for ((run = 1; run <= runs; run++)); do
  started=$SECONDS
  status=0
  ctest --test-dir "$build_dir" -L integration -R "$regex" --output-on-failure >"$logs/run-$run.log" 2>&1 ||
    status=$?
  while read -r name result; do
    if [[ $result == Passed ]]; then
      passed[$name]=$((${passed[$name]:-0} + 1))
    elif [[ $result != Skipped ]]; then
      failed[$name]=$((${failed[$name]:-0} + 1))
    fi
  done < <(sed -nE 's/^ *[0-9]+\/[0-9]+ Test +#[0-9]+: ([^ ]+) \.*[* ]*(Passed|Failed|Skipped|Timeout|Exception|[A-Za-z]+).*/\1 \2/p' \
    "$logs/run-$run.log")
  if [[ $status -eq 0 ]]; then
    rm "$logs/run-$run.log"
    echo "run $run: passed ($((SECONDS - started)) s)"
  else
    failed_runs=$((failed_runs + 1))
    echo "run $run: FAILED ($((SECONDS - started)) s), output kept in $logs/run-$run.log"
  fi
done

echo "per test, over $runs runs:"
for name in $(printf '%s\n' "${!passed[@]}" "${!failed[@]}" | sort -u); do
  printf '  %-40s %3d passed, %3d failed\n' "$name" "${passed[$name]:-0}" "${failed[$name]:-0}"
done
echo "runs: $((runs - failed_runs)) passed, $failed_runs failed"
[[ $failed_runs -eq 0 ]]
