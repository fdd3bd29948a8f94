#!/usr/bin/env bash
# Benchmarks, one command: builds the agent and the fake engine in Release under build/bench,
# then runs the ingest-throughput benchmark (issue 5, item 1) side by side with its peers and
# prints medians and ratios.
#
#   bench/run.sh [--events N] [--repeat R] [--no-build] [--peers agent,cli,python,raw]
#
# Needs (installed from Debian when missing, as root): docker.io (the docker CLI),
# python3-docker, curl, cmake and the agent's build dependencies (see scripts/test.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

events=1000000
repeat=3
build=1
peers=agent,cli,python,raw
while [ $# -gt 0 ]; do
  case "$1" in
    --events) events="$2"; shift 2 ;;
    --repeat) repeat="$2"; shift 2 ;;
    --peers) peers="$2"; shift 2 ;;
    --no-build) build=0; shift ;;
    -h|--help) sed -n '2,9p' "$0"; exit 0 ;;
    *) echo "bench/run.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done

missing=()
[ -x /usr/bin/docker ] || missing+=(docker.io)
/usr/bin/python3 -c 'import docker' 2>/dev/null || missing+=(python3-docker)
command -v curl >/dev/null || missing+=(curl)
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
fi

if [ "$build" = 1 ]; then
  cmake -S . -B build/bench -DCMAKE_BUILD_TYPE=Release -DZASTAVA_TESTS=OFF >/dev/null
  cmake --build build/bench -j"$(nproc)" --target zastava-agent
  cmake -S bench -B build/bench/tools -DCMAKE_BUILD_TYPE=Release >/dev/null
  cmake --build build/bench/tools -j"$(nproc)"
fi

echo "machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')," \
  "$(awk '/MemTotal/ {printf "%.1f GiB RAM", $2/1048576}' /proc/meminfo)," \
  "kernel $(uname -r), Debian $(cat /etc/debian_version)"
exec /usr/bin/python3 bench/ingest.py --events "$events" --repeat "$repeat" --peers "$peers" \
  --agent build/bench/agent/zastava-agent --fake-engine build/bench/tools/fake_engine \
  --fixtures tests/fixtures/engine
