#!/usr/bin/env bash
# Installs what is missing, builds, and runs every test in each part: a normal build, then the
# lint (scripts/lint.sh: clang-format and clang-tidy), then an address+undefined sanitizer
# build, then a smoke run of the fuzz targets (fuzz/README.md: each parser of outside bytes under
# libFuzzer, a bounded number of executions each). Unit tests use fixtures captured from a real
# engine; integration tests start a private dockerd, haproxy and promtool (root required).
# Every part runs even when an earlier one failed; one summary at the end names each part's
# result and the failed tests, and the exit code is non-zero when anything failed. Under it, the
# ENGINE MATRIX rows of the normal part's engine-matrix tests (tests/integration/CMakeLists.txt).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

ensure_packages "${BUILD_PACKAGES[@]}" "${TEST_PACKAGES[@]}"

summary=()
total_passed=0
total_failed=0
failed_parts=0

# part NAME BUILD_DIR BUILD_TYPE [cmake args...]: builds into BUILD_DIR and runs its ctest
# (environment for the tests in PART_ENV), adding one line to the summary.
part() {
  local name=$1 dir=$2 type=$3
  shift 3
  local output=$dir.ctest.log
  if ! (build "$dir" "$type" "$@"); then
    summary+=("$(printf '%-34s FAILED to build (the output is above)' "$name")")
    failed_parts=$((failed_parts + 1))
    return 0
  fi
  log "running the tests of the $name"
  rm -f "$dir/Testing/Temporary/LastTest.log"  # engine_matrix_rows reads this run's only
  local status=0
  env "${PART_ENV[@]}" ctest --test-dir "$dir" --output-on-failure -j2 2>&1 | tee "$output" ||
    status=$?
  local line passed failed total skipped
  line=$(grep -E '^[0-9]+% tests passed, [0-9]+ tests? failed out of [0-9]+' "$output" | tail -n 1)
  total=$(sed -E 's/.* out of ([0-9]+).*/\1/' <<<"$line")
  failed=$(sed -E 's/.*passed, ([0-9]+) tests? failed.*/\1/' <<<"$line")
  skipped=$(grep -cE '^[[:space:]]*[0-9]+ - .*\(Skipped\)$' "$output" || true)
  if [[ -z $line ]]; then
    summary+=("$(printf '%-34s FAILED: ctest ran no test (exit %d)' "$name" "$status")")
    failed_parts=$((failed_parts + 1))
    return 0
  fi
  passed=$((total - failed - skipped))
  total_passed=$((total_passed + passed))
  total_failed=$((total_failed + failed))
  if [[ $failed -eq 0 && $status -eq 0 ]]; then
    summary+=("$(printf '%-34s passed: %d passed, %d skipped' "$name" "$passed" "$skipped")")
  else
    local names
    names=$(sed -E 's/^[0-9]+:(.*)$/\1/' "$dir/Testing/Temporary/LastTestsFailed.log" 2>/dev/null |
      paste -sd, - | sed 's/,/, /g')
    summary+=("$(printf '%-34s FAILED: %d passed, %d failed (%s), %d skipped' "$name" \
      "$passed" "$failed" "${names:-see above}" "$skipped")")
    failed_parts=$((failed_parts + 1))
  fi
}

# engine_matrix_rows DIR: the ENGINE MATRIX rows the tests of DIR's last ctest run printed,
# sorted by test and engine, under one header. ctest --output-on-failure shows no passed test's
# output, but its LastTest.log keeps every test's.
engine_matrix_rows() {
  local log=$1/Testing/Temporary/LastTest.log header='^ENGINE MATRIX \| test '
  [[ -f $log ]] || return 0
  grep -m 1 -E "$header" "$log" || return 0
  grep '^ENGINE MATRIX |' "$log" | grep -vE "$header" | sort -t'|' -k2,3 || true
}

PART_ENV=()
part "normal build (RelWithDebInfo)" build/test RelWithDebInfo
mapfile -t matrix < <(engine_matrix_rows build/test)

# lint_part NAME BUILD_DIR: scripts/lint.sh on the sources, with BUILD_DIR's compile commands,
# adding one line to the summary.
lint_part() {
  local name=$1 dir=$2
  log "checking the format and running clang-tidy (scripts/lint.sh)"
  local output=$dir.lint.log status=0
  scripts/lint.sh "$dir" 2>&1 | tee "$output" || status=$?
  local counts
  counts=$(grep -E '^(format|clang-tidy): [0-9]+ files checked' "$output" | paste -sd';' - |
    sed 's/;/; /g')
  if [[ $status -eq 0 ]]; then
    summary+=("$(printf '%-34s passed: %s' "$name" "$counts")")
  else
    summary+=("$(printf '%-34s FAILED: %s (the findings are above)' "$name" "${counts:-no count}")")
    failed_parts=$((failed_parts + 1))
  fi
}

lint_part "lint (clang-format, clang-tidy)" build/test

PART_ENV=(ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1)
part "sanitizer build (address,undefined)" build/asan Debug -DZASTAVA_SANITIZE=address,undefined

# fuzz_part NAME BUILD_DIR RUNS SECONDS: builds the fuzz targets with clang and runs each from
# its seeds (fuzz/run.sh) for RUNS executions or SECONDS, whichever comes first, adding one line
# to the summary.
fuzz_part() {
  local name=$1 dir=$2 runs=$3 seconds=$4
  if ! (build_fuzz "$dir"); then
    summary+=("$(printf '%-34s FAILED to build (the output is above)' "$name")")
    failed_parts=$((failed_parts + 1))
    return 0
  fi
  log "running the fuzz targets of $dir, $runs executions or $seconds s each"
  local output=$dir.fuzz.log status=0 started=$SECONDS
  fuzz/run.sh -b "$dir" -n "$runs" -t "$seconds" --fresh 2>&1 | tee "$output" || status=$?
  local targets failed
  targets=$(grep -cE '^fuzz_[a-z_]+ +(ok|FAILED) ' "$output" || true)
  failed=$(grep -E '^fuzz_[a-z_]+ +FAILED ' "$output" | cut -d' ' -f1 | paste -sd, - |
    sed 's/,/, /g' || true)
  if [[ $status -eq 0 ]]; then
    summary+=("$(printf '%-34s passed: %d targets, %d s' "$name" "$targets" \
      $((SECONDS - started)))")
  else
    summary+=("$(printf '%-34s FAILED: %s (inputs in %s/fuzz/crashes)' "$name" \
      "${failed:-see above}" "$dir")")
    failed_parts=$((failed_parts + 1))
  fi
}

fuzz_part "fuzz smoke (libFuzzer)" build/fuzz "${ZASTAVA_FUZZ_RUNS:-20000}" \
  "${ZASTAVA_FUZZ_SECONDS:-3}"

log "summary"
printf '  %s\n' "${summary[@]}" >&2
if [[ ${#matrix[@]} -gt 0 ]]; then
  printf '  %s\n' "${matrix[@]}" >&2
fi
echo "tests: $total_passed passed, $total_failed failed"
[[ $failed_parts -eq 0 ]]
