#!/usr/bin/env bash
# Installs what is missing, builds, and runs every test twice: in a normal build and in an
# address+undefined sanitizer build. Unit tests use fixtures captured from a real engine;
# integration tests start a private dockerd, haproxy and promtool (root required).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

ensure_packages "${BUILD_PACKAGES[@]}" "${TEST_PACKAGES[@]}"

build build/test RelWithDebInfo
log "running tests"
ctest --test-dir build/test --output-on-failure -j2

build build/asan Debug -DZASTAVA_SANITIZE=address,undefined
log "running tests under AddressSanitizer and UndefinedBehaviorSanitizer"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
  ctest --test-dir build/asan --output-on-failure -j2
