#!/usr/bin/env bash
# demo.sh AGENT [agent args...]: starts a private Docker engine under /tmp/zastava-demo with a
# small workload (containers created, started, exec'd, paused, killed, removed every few seconds),
# runs the agent against it, and prints each record as it is written with `zastava-agent records
# --follow`. Ctrl-C stops everything. The agent's health and metrics listen on 127.0.0.1 only.
# Needs root (dockerd), docker.io and busybox-static. Nothing outside /tmp/zastava-demo is touched.
# Any step that fails stops the demo with a message saying which, and nothing is left running.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

agent=$(realpath "$1")
shift
[[ $(id -u) -eq 0 ]] || die "the demo starts its own dockerd and must run as root"
dir=/tmp/zastava-demo
socket=$dir/docker.sock
data=$dir/data
export DOCKER_HOST=unix://$socket
pids=()
step="starting"
failure_log=""  # the log whose end says why, when a step failed

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

# Where the records are and how to read them, once the demo has written some.
show_where() {
  compgen -G "$data/runtime-events/*.ndjson" >/dev/null || return 0
  cat >&2 <<MSG

The records stay in $data until the next demo (rm -rf $dir to clean up). To read them:
  every record:             $agent records --data-directory $data
  deaths, last 10 minutes:  $agent records --data-directory $data --kind die --since 10m
  as stored (JSON):         $agent records --data-directory $data --output json
  the files:                $data/runtime-events/*.ndjson, $data/zastava-agent.db (SQLite)
  the agent's log:          $dir/agent.log; what the fields mean: docs/records.md
MSG
}

cleanup() {
  local status=$?
  trap - EXIT INT TERM
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait "${pids[@]}" 2>/dev/null || true
  stop_dockerd
  if [[ $status -eq 0 ]]; then
    log "the demo stopped"
  else
    printf '\nerror: the demo failed while %s\n' "$step" >&2
    [[ -z $failure_log ]] || { echo "the end of $failure_log:"; tail -n 5 "$failure_log"; } >&2
  fi
  show_where
  exit "$status"
}
trap cleanup EXIT
trap 'exit 0' INT TERM

mkdir -p "$dir"
step="stopping a dockerd left from an earlier demo"
stop_dockerd
rm -rf "$data"  # each demo starts a fresh ledger

step="starting a private dockerd"
log "starting a private dockerd on $socket"
dockerd --host "unix://$socket" --data-root "$dir/root" --exec-root "$dir/exec" \
  --pidfile "$dir/docker.pid" --iptables=false --bridge=none --storage-driver=vfs \
  >"$dir/dockerd.log" 2>&1 &
pids+=($!)
for _ in $(seq 300); do curl -sf --unix-socket "$socket" http://x/_ping >/dev/null && break; sleep 0.1; done
curl -sf --unix-socket "$socket" http://x/_ping >/dev/null || {
  failure_log=$dir/dockerd.log
  exit 1
}

step="making a busybox image from Debian's busybox-static"
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
step="starting the first container"
docker ps -aq | xargs -r docker rm -f >/dev/null  # left over from an interrupted demo
docker run -d --name demo-long-lived --label app=demo zastava-demo/busybox:1 sleep 1d >/dev/null

# One round a few seconds apart; the last container of each round adds a capability and mounts
# the engine's socket, so its records show posture risks.
workload() {
  local n=0
  while true; do
    n=$((n + 1))
    docker run -d --name "demo-$n" --label app=demo zastava-demo/busybox:1 sleep 30 >/dev/null
    docker exec "demo-$n" true
    docker pause "demo-$n" >/dev/null && docker unpause "demo-$n" >/dev/null
    docker run --name "demo-$n-job" zastava-demo/busybox:1 sh -c "exit $((n % 4))" || true
    docker run -d --name "demo-$n-risky" --cap-add NET_ADMIN -v "$socket:/var/run/docker.sock" \
      zastava-demo/busybox:1 sleep 5 >/dev/null
    docker kill "demo-$n" >/dev/null
    docker rm -f "demo-$n" "demo-$n-job" "demo-$n-risky" >/dev/null
    sleep 3
  done
}

step="starting the agent"
log "starting the agent; health and metrics on http://127.0.0.1:8080/{readyz,metrics} (loopback" \
  "only) unless you chose another port"
"$agent" --docker-endpoint "unix://$socket" --data-directory "$data" \
  --health-address 127.0.0.1 "$@" >"$dir/agent.log" 2>&1 &
agent_pid=$!
pids+=("$agent_pid")

step="starting the workload"
workload >"$dir/workload.log" 2>&1 &
workload_pid=$!
pids+=("$workload_pid")

log "records as they are written (time, source, kind, container, state, details); Ctrl-C stops"
"$agent" records --data-directory "$data" --follow &
printer_pid=$!
pids+=("$printer_pid")

# The demo runs until Ctrl-C; any of its processes ending first is a failure, said plainly.
set +e
wait -n "$agent_pid" "$workload_pid" "$printer_pid"
set -e
if ! kill -0 "$agent_pid" 2>/dev/null; then
  step="running the agent: it exited"
  failure_log=$dir/agent.log
elif ! kill -0 "$workload_pid" 2>/dev/null; then
  step="running the workload: a docker command failed"
  failure_log=$dir/workload.log
else
  step="printing records"
fi
exit 1
