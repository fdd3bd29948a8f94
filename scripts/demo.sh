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

cleanup() {
  log "stopping the demo"
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait "${pids[@]}" 2>/dev/null || true
  if [[ -f $dir/docker.pid ]]; then
    docker ps -aq | xargs -r docker rm -f >/dev/null 2>&1 || true
    kill "$(cat "$dir/docker.pid")" 2>/dev/null || true
  fi
  log "records kept in $dir/data (rm -rf $dir to clean up)"
}
trap cleanup EXIT
trap 'exit 0' INT TERM

mkdir -p "$dir"
log "starting a private dockerd on $socket"
dockerd --host "unix://$socket" --data-root "$dir/root" --exec-root "$dir/exec" \
  --pidfile "$dir/docker.pid" --iptables=false --bridge=none --storage-driver=vfs \
  >"$dir/dockerd.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do curl -sf --unix-socket "$socket" http://x/_ping >/dev/null && break; sleep 0.1; done
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
log "records as they are written (full JSON in $dir/data/runtime-events/):"
tail -n +1 -F "$dir"/data/runtime-events/*.ndjson 2>/dev/null | while read -r line; do
  [[ $line == \{* ]] || continue
  python3 -c 'import json,sys; r=json.loads(sys.argv[1]); c=r["container"]
print(f"{r[\"time\"]}  {r[\"source\"]:<9} {r[\"kind\"]:<24} {c.get(\"name\",\"\"):<16} "
      f"{c.get(\"state\",\"\"):<8} exit={c.get(\"exitCode\",\"-\")}")' "$line"
done &
pids+=($!)
wait "$agent_pid"
