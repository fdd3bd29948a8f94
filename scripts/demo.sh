#!/usr/bin/env bash
# demo.sh AGENT [agent args...]: starts a private Docker engine under /tmp/zastava-demo with a
# small workload (containers created, started, exec'd, paused, killed, removed every few seconds),
# runs the agent against it and prints each record as it is written. Ctrl-C stops everything.
# Needs root (dockerd), docker.io and busybox-static. Nothing outside /tmp/zastava-demo is touched.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

agent=$(realpath "$1")
shift
[[ $(id -u) -eq 0 ]] || die "the demo starts its own dockerd and must run as root"
dir=/tmp/zastava-demo
socket=$dir/docker.sock
export DOCKER_HOST=unix://$socket
pids=()

# Stops the demo's dockerd (and its containers) and waits until it has exited, so the next
# demo can start cleanly.
stop_dockerd() {
  [[ -f $dir/docker.pid ]] || return 0
  local pid
  pid=$(cat "$dir/docker.pid")
  docker ps -aq 2>/dev/null | xargs -r docker rm -f >/dev/null 2>&1 || true
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
  rm -f "$dir/docker.pid"
}

cleanup() {
  log "stopping the demo"
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait "${pids[@]}" 2>/dev/null || true
  stop_dockerd
  log "records kept in $dir/data until the next demo (rm -rf $dir to clean up)"
}
trap cleanup EXIT
trap 'exit 0' INT TERM

mkdir -p "$dir"
stop_dockerd  # one left over from an interrupted demo
rm -rf "$dir/data"  # each demo starts a fresh ledger
log "starting a private dockerd on $socket"
dockerd --host "unix://$socket" --data-root "$dir/root" --exec-root "$dir/exec" \
  --pidfile "$dir/docker.pid" --iptables=false --bridge=none --storage-driver=vfs \
  >"$dir/dockerd.log" 2>&1 &
pids+=($!)
for _ in $(seq 300); do curl -sf --unix-socket "$socket" http://x/_ping >/dev/null && break; sleep 0.1; done
curl -sf --unix-socket "$socket" http://x/_ping >/dev/null || die "dockerd did not start: see $dir/dockerd.log"

if ! docker image inspect zastava-demo/busybox:1 >/dev/null 2>&1; then
  log "making a busybox image from Debian's busybox-static (no registry needed)"
  rootfs=$(mktemp -d)
  mkdir -p "$rootfs/bin"
  cp /bin/busybox "$rootfs/bin/busybox"
  for applet in $("$rootfs/bin/busybox" --list); do
    [[ $applet == busybox ]] || ln -s busybox "$rootfs/bin/$applet"
  done
  tar -C "$rootfs" -c . | docker import - zastava-demo/busybox:1 >/dev/null
  rm -rf "$rootfs"
fi
docker ps -aq | xargs -r docker rm -f >/dev/null  # left over from an interrupted demo
docker run -d --name demo-long-lived --label app=demo zastava-demo/busybox:1 sleep 1d >/dev/null

workload() {
  local n=0
  while true; do
    n=$((n + 1))
    docker run -d --name "demo-$n" --label app=demo zastava-demo/busybox:1 sleep 30 >/dev/null
    docker exec "demo-$n" true
    docker pause "demo-$n" >/dev/null && docker unpause "demo-$n" >/dev/null
    docker run --name "demo-$n-job" zastava-demo/busybox:1 sh -c "exit $((n % 4))" || true
    docker kill "demo-$n" >/dev/null
    docker rm "demo-$n" "demo-$n-job" >/dev/null
    sleep 3
  done
}
workload >"$dir/workload.log" 2>&1 &
pids+=($!)

log "starting the agent; health and metrics on http://127.0.0.1:8080/{readyz,metrics} unless you chose a port"
"$agent" --docker-endpoint "unix://$socket" --data-directory "$dir/data" "$@" &
pids+=($!)
agent_pid=$!
for _ in $(seq 50); do compgen -G "$dir/data/runtime-events/*.ndjson" >/dev/null && break; sleep 0.2; done
segment=$(ls "$dir"/data/runtime-events/*.ndjson | tail -n 1)
log "records as they are written (full JSON in $segment):"
tail -n +1 -F "$segment" 2>/dev/null | python3 -u -c '
import json, sys
for line in sys.stdin:
    if not line.startswith("{"):
        continue
    r = json.loads(line)
    c = r["container"]
    print(r["time"], r["source"].ljust(9), r["kind"].ljust(24), c.get("name", "").ljust(16),
          c.get("state", "").ljust(8), "exit=" + str(c.get("exitCode", "-")))
' &
pids+=($!)
wait "$agent_pid"
