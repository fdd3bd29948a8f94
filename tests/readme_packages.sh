#!/usr/bin/env bash
# readme_packages.sh SOURCE_DIR: the README's table of what the two commands install names
# exactly the packages of scripts/lib.sh, so the two cannot drift apart.
set -euo pipefail
cd "$1"
. scripts/lib.sh
status=0
# check LABEL WORDS...: the README row of LABEL lists exactly WORDS, in order, in backquotes.
check() {
  local label=$1
  shift
  local row listed
  row=$(grep -F "| \`$label\` |" README.md) || { echo "README: no row for $label"; status=1; return; }
  listed=$(cut -d'|' -f3 <<<"$row" | grep -o '`[^`]*`' | tr -d '`' | tr '\n' ' ')
  if [[ ${listed% } != "$*" ]]; then
    printf 'README row %s lists:\n  %s\nscripts/lib.sh has:\n  %s\n' "$label" "$listed" "$*"
    status=1
  fi
}
check ./scripts/run.sh "${BUILD_PACKAGES[*]}"
check "./scripts/run.sh --demo" "${DEMO_PACKAGES[*]}"
check ./scripts/test.sh "${TEST_PACKAGES[*]}"
[[ $status -eq 0 ]] && echo "README lists the packages of scripts/lib.sh"
exit "$status"
