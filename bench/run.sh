#!/usr/bin/env bash
# Benchmarks, one command: builds the agent, the memory floor (bench/library_floor.cpp) and, for
# ingest, the fake engine in Release under build/bench, then runs the suites, each side by side
# with its peers, printing medians and ratios:
#   ingest  bench/ingest.py: ingest throughput against a fake engine (the agent twice: inspects
#           answered at once, and after --inspect-delay-us), CPU per 10^6 events, the agent's
#           private memory/PSS/RSS before and after the events, its disk writes against dd's
#           fdatasync bandwidth, and the ledger's bytes per record by kind; then
#           bench/store_floor.cpp: what the ledger's storage alone costs per record (SQLite,
#           NDJSON and the SHA-256 chain as the writer does them, nothing of the agent around);
#           then bench/posture_cost.cpp: what the posture checks add to each container start;
#           then bench/seal_cost.py: CPU per seal and seal bytes a day (the agent idle, sealing
#           every second beside sealing once)
#   engine  bench/engine.py: the engine's inspect answer time, start-up inventory, event
#           latency, memory (private/PSS/RSS), idle CPU and evidence cost against a private
#           real dockerd; needs root
#   proxy   bench/proxy.py: event latency direct and through docker-socket-proxy's haproxy
#           configuration, with and without `option http-no-delay`, the agent beside
#           `curl -N` on the same events; needs root
#   delivery  bench/nats_delivery.py: the agent draining a backlog of real records into NATS
#           JetStream (3-node cluster R3 with ack window 256 and 1, one node R1) beside its HTTP
#           sink into a loopback receiver; records/s, CPU per 10^6 records of the agent and of
#           the nats-servers, each stream read back; then the catch-up of a 1 h outage's backlog
#
#   bench/run.sh [--suite ingest|engine|proxy|delivery|all] [--repeat R] [--no-build]
#                [--events N] [--peers agent,agent-slow-inspect,cli,python,raw,delivery]
#                [--event-interval-us U] (ingest; U: engine time between events, default 1)
#                [--inspect-delay-us U] (ingest; U: how long the agent-slow-inspect peer's
#                engine holds each inspect answer; default the real engine's median that
#                `--suite engine --only inspect` measures, set in bench/ingest.py)
#                [--sizes 100,500,1000] [--only inspect,startup,latency,memory,idle,evidence]
#                [--hold-ms MS] (engine and proxy; MS: how long each latency container runs
#                before its kill)
#                [--lifecycles N] (proxy: containers per repetition, 5 events each)
#                [--records N] [--window1-records M] [--outage-records K]
#                [--destinations nats-r3,nats-r3-w1,nats-r1,http] (delivery: backlog sizes,
#                destinations; defaults 10^6, 10^4, 7,200, all)
#
# Needs (installed from Debian when missing, as root): docker.io (dockerd and the docker CLI),
# busybox-static, python3-docker, curl, haproxy, nats-server (delivery), cmake and the agent's
# build dependencies.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

suite=all
events=1000000
repeat=3
build=1
peers=agent,agent-slow-inspect,cli,python,raw,delivery
sizes=100,500,1000
only=inspect,startup,latency,memory,idle,evidence
hold_ms=0
lifecycles=50
interval_us=1
inspect_delay=()
records=1000000
window1_records=10000
outage_records=7200
destinations=nats-r3,nats-r3-w1,nats-r1,http
while [ $# -gt 0 ]; do
  case "$1" in
    --suite) suite="$2"; shift 2 ;;
    --events) events="$2"; shift 2 ;;
    --repeat) repeat="$2"; shift 2 ;;
    --peers) peers="$2"; shift 2 ;;
    --sizes) sizes="$2"; shift 2 ;;
    --only) only="$2"; shift 2 ;;
    --hold-ms) hold_ms="$2"; shift 2 ;;
    --lifecycles) lifecycles="$2"; shift 2 ;;
    --event-interval-us) interval_us="$2"; shift 2 ;;
    --inspect-delay-us) inspect_delay=(--inspect-delay-us "$2"); shift 2 ;;
    --records) records="$2"; shift 2 ;;
    --window1-records) window1_records="$2"; shift 2 ;;
    --outage-records) outage_records="$2"; shift 2 ;;
    --destinations) destinations="$2"; shift 2 ;;
    --no-build) build=0; shift ;;
    -h|--help) sed -n '2,40p' "$0"; exit 0 ;;
    *) echo "bench/run.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
case "$suite" in
  ingest|engine|proxy|delivery|all) ;;
  *) echo "bench/run.sh: --suite is ingest, engine, proxy, delivery or all, not $suite" >&2
     exit 2 ;;
esac
run_ingest=0
run_engine=0
run_proxy=0
run_delivery=0
case "$suite" in ingest|all) run_ingest=1 ;; esac
case "$suite" in delivery|all) run_delivery=1 ;; esac
case "$suite" in engine|all) run_engine=1 ;; esac
case "$suite" in proxy|all) run_proxy=1 ;; esac

# ensure_packages (scripts/lib.sh) installs only what is missing, and only as root.
packages=(docker.io curl)
[ "$run_ingest" = 0 ] || packages+=(python3-docker)
[ "$run_engine$run_proxy" = 00 ] || packages+=(busybox-static)
[ "$run_proxy" = 0 ] || packages+=(haproxy)
[ "$run_delivery" = 0 ] || packages+=(nats-server)
[ "$build" = 0 ] || packages+=("${BUILD_PACKAGES[@]}")
ensure_packages "${packages[@]}"

if [ "$build" = 1 ]; then
  cmake -S . -B build/bench -DCMAKE_BUILD_TYPE=Release -DZASTAVA_TESTS=OFF >/dev/null
  cmake --build build/bench -j"$(nproc)" --target zastava-agent posture_cost
  # The memory floor (bench/library_floor.cpp), linked against exactly the agent's libraries.
  mkdir -p build/bench/tools
  needed=$(readelf -d build/bench/agent/zastava-agent | sed -n 's/.*(NEEDED).*\[\(.*\)\]/-l:\1/p' |
    grep -v -e ':libc\.' -e ':libm\.' -e ':libgcc_s\.' -e ':libstdc++\.')
  # shellcheck disable=SC2086 # one word per library
  g++ -O2 -std=c++20 -Wall -Wextra -Werror bench/library_floor.cpp \
    -o build/bench/tools/library_floor -Wl,--no-as-needed $needed
  if [ "$run_ingest$run_delivery" != 00 ]; then
    cmake -S bench -B build/bench/tools -DCMAKE_BUILD_TYPE=Release >/dev/null
    cmake --build build/bench/tools -j"$(nproc)"
  fi
fi

machine_line() {
  cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')
  echo "machine: $(nproc) CPUs, $cpu," \
    "$(awk '/MemTotal/ {printf "%.1f GiB RAM", $2/1048576}' /proc/meminfo)," \
    "kernel $(uname -r), Debian $(cat /etc/debian_version)"
}
if [ "$run_ingest" = 1 ]; then
  machine_line
  /usr/bin/python3 bench/ingest.py --events "$events" --repeat "$repeat" --peers "$peers" \
    --agent build/bench/agent/zastava-agent --fake-engine build/bench/tools/fake_engine \
    --fixtures tests/fixtures/engine --event-interval-us "$interval_us" "${inspect_delay[@]}" \
    --library-floor build/bench/tools/library_floor
  # The storage design's own floor (bench/store_floor.cpp): as many records of the schema-7
  # mean size (docs/BENCHMARKS.md 8.), written as the agent's writer does, 3 times.
  floor_dir=$(mktemp -d /tmp/zbench-floor-XXXX)
  for _ in 1 2 3; do
    rm -f "$floor_dir"/floor.*
    build/bench/tools/store_floor "$floor_dir" "$events" 566 512
  done
  rm -rf "$floor_dir"
  # What the posture checks add to each container start (bench/posture_cost.cpp).
  build/bench/posture_cost tests/fixtures/engine/posture "$events"
  # What sealing costs (bench/seal_cost.py).
  /usr/bin/python3 bench/seal_cost.py --agent build/bench/agent/zastava-agent --seconds 60 \
    --repeat "$repeat"
fi
if [ "$run_engine" = 1 ]; then
  # engine.py prints its own machine line.
  /usr/bin/python3 bench/engine.py --agent build/bench/agent/zastava-agent --repeat "$repeat" \
    --sizes "$sizes" --only "$only" --hold-ms "$hold_ms" \
    --library-floor build/bench/tools/library_floor
fi
if [ "$run_proxy" = 1 ]; then
  # proxy.py prints its own machine line.
  /usr/bin/python3 bench/proxy.py --agent build/bench/agent/zastava-agent --repeat "$repeat" \
    --lifecycles "$lifecycles" --hold-ms "$hold_ms"
fi
if [ "$run_delivery" = 1 ]; then
  machine_line
  echo "nats-server $(nats-server --version | sed 's/^nats-server: //')"
  /usr/bin/python3 bench/nats_delivery.py --agent build/bench/agent/zastava-agent \
    --fake-engine build/bench/tools/fake_engine --fixtures tests/fixtures/engine \
    --records "$records" --window1-records "$window1_records" \
    --outage-records "$outage_records" --destinations "$destinations" --repeat "$repeat"
fi
