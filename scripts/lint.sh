#!/usr/bin/env bash
# scripts/lint.sh [BUILD_DIR]: checks the project's C++ files, as CI does (scripts/test.sh).
#  1. format: every tracked .cpp and .h file is formatted as .clang-format says
#     (clang-format --dry-run --Werror); `clang-format -i FILE` fixes one.
#  2. clang-tidy: every source file of the agent's libraries and programs (not tests/, bench/,
#     fuzz/), and the project headers they include, pass the checks of .clang-tidy, which
#     makes every warning an error. It reads BUILD_DIR/compile_commands.json (default
#     build/test), configuring BUILD_DIR first when it has none.
# Prints one line per finding and exits non-zero when there is any.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build/test}
source_dir=$PWD
# What clang-tidy reads: the agent's own folders (a folder added to the agent belongs here).
folders='agent|buffer|collectors|common|delivery|health|net|posture'

status=0

mapfile -t files < <(git ls-files '*.cpp' '*.h')
[[ ${#files[@]} -gt 0 ]] || { echo "scripts/lint.sh: no C++ file tracked by git" >&2; exit 2; }
unformatted=()
for file in "${files[@]}"; do
  clang-format --dry-run --Werror "$file" >/dev/null 2>&1 || unformatted+=("$file")
done
if [[ ${#unformatted[@]} -gt 0 ]]; then
  for file in "${unformatted[@]}"; do
    echo "format: $file differs from .clang-format (clang-format -i $file fixes it)" >&2
  done
  status=1
fi
echo "format: ${#files[@]} files checked, ${#unformatted[@]} differ"

if [[ ! -f $build/compile_commands.json ]]; then
  cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
fi
# run-clang-tidy prints each file's command line and the findings; keep the findings.
output=$(mktemp)
trap 'rm -f "$output"' EXIT
tidy_status=0
run-clang-tidy -p "$build" -j "$(nproc)" -quiet \
  -header-filter="^$source_dir/($folders)/" "^$source_dir/($folders)/.*\.cpp$" \
  >"$output" 2>&1 || tidy_status=$?
findings=$(sed 's/\x1b\[[0-9;]*m//g' "$output" | grep -E '^[^ ]+:[0-9]+:[0-9]+: (warning|error):' |
  sort -u || true)
checked=$(grep -cE '^clang-tidy' "$output" || true)
if [[ -n $findings || $tidy_status -ne 0 ]]; then
  printf '%s\n' "$findings" | sed "s|^$source_dir/||" >&2
  [[ -n $findings ]] || tail -n 20 "$output" >&2
  status=1
fi
echo "clang-tidy: $checked files checked, $(grep -c . <<<"$findings" || true) findings"
exit $status
