#!/usr/bin/env bash
# check-fresh.sh [options]: checks, as root, that the README's two commands work on a fresh
# Debian 12 machine. It makes a minimal Debian 12 root (debootstrap --variant=minbase bookworm,
# cached as a pristine tarball; each check unpacks a new copy), enters it with a mount namespace
# of its own and pivot_root, in the machine's PID namespace (not chroot: user namespaces and
# /proc/PID/root must work as on a real machine), does there the one step a user does before the README (apt-get install git
# ca-certificates), clones this repository's HEAD, and runs
#   1. ./scripts/run.sh --demo, interrupted with SIGINT (as Ctrl-C) DEMO_SECONDS after its
#      dockerd started: records of kind container.start and container.die were printed, and no
#      dockerd or zastava-agent of the demo is left running;
#   2. ./scripts/test.sh.
# Then it prints a summary: each step passed or failed, its duration, the tail of a failure.
# Needs the network (Debian's mirror). Not run by CI; takes 30 minutes to a few hours.
#
# Options:
#   --dir DIR           work directory (default /tmp/zastava-fresh): the cached pristine root
#                       (bookworm-minbase.tar), the root of this check (root/) and its logs
#   --demo-seconds N    how long the demo runs before the interrupt (default 150)
#   --demo-only         only the demo;  --tests-only: only scripts/test.sh
#   --keep              keep the root afterwards (DIR/root; logs in DIR/root/root/check-fresh)
#   --mirror URL        Debian mirror (default http://deb.debian.org/debian)
set -euo pipefail

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 2; }

dir=/tmp/zastava-fresh
demo_seconds=150
run_demo=1
run_tests=1
keep=0
mirror=http://deb.debian.org/debian
while [[ $# -gt 0 ]]; do
  case $1 in
    --dir) dir=${2:?--dir needs a directory}; shift ;;
    --dir=*) dir=${1#*=} ;;
    --demo-seconds) demo_seconds=${2:?--demo-seconds needs a number}; shift ;;
    --demo-seconds=*) demo_seconds=${1#*=} ;;
    --demo-only) run_tests=0 ;;
    --tests-only) run_demo=0 ;;
    --keep) keep=1 ;;
    --mirror) mirror=${2:?--mirror needs a URL}; shift ;;
    --mirror=*) mirror=${1#*=} ;;
    -h | --help) usage ;;
    *) echo "unknown option $1" >&2; usage ;;
  esac
  shift
done
[[ $demo_seconds =~ ^[0-9]+$ ]] || { echo "--demo-seconds: not a number: $demo_seconds" >&2; exit 2; }
[[ $run_demo -eq 1 || $run_tests -eq 1 ]] || { echo "--demo-only and --tests-only exclude each other" >&2; exit 2; }

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

[[ $(id -u) -eq 0 ]] || die "run as root: it makes a Debian root and mounts in it"
for tool in debootstrap unshare pivot_root git tar; do
  command -v "$tool" >/dev/null || die "$tool is missing (apt-get install debootstrap util-linux git tar)"
done
repo=$(git -C "$(dirname "$0")" rev-parse --show-toplevel)
commit=$(git -C "$repo" rev-parse HEAD)
branch=$(git -C "$repo" symbolic-ref -q --short HEAD || true)
mkdir -p "$dir"
dir=$(realpath "$dir")
pristine=$dir/bookworm-minbase.tar
root=$dir/root
results=$root/root/check-fresh  # as seen from here; /root/check-fresh inside
enter_pid=

# Mount points at or under $1 in this mount namespace.
mounts_under() {
  awk -v p="$1" '$2 == p || index($2, p "/") == 1 { print $2 }' /proc/self/mounts
}

# Ends every process whose / is the root (left by a step that failed or was interrupted).
kill_root_processes() {
  [[ -d $root ]] || return 0
  local ours p
  ours=$(stat -L -c %d:%i "$root")
  for p in /proc/[0-9]*; do
    [[ $(stat -L -c %d:%i "$p/root" 2>/dev/null) == "$ours" ]] && kill -KILL "${p#/proc/}" 2>/dev/null
  done
  return 0
}

# Everything mounted in the root lives in the private mount namespace of the process that
# entered it and ends with it; should anything remain here, it is unmounted before the root
# is deleted (nothing is ever deleted through a mount).
# shellcheck disable=SC2317  # called by the trap
cleanup() {
  local status=$?
  if [[ -n $enter_pid ]] && kill -0 "$enter_pid" 2>/dev/null; then
    kill -KILL "$enter_pid" 2>/dev/null || true
    wait "$enter_pid" 2>/dev/null || true
  fi
  kill_root_processes
  local point
  for point in $(mounts_under "$root" | sort -r) $(mounts_under "$dir/pristine.tmp" | sort -r); do
    umount --lazy "$point" || true
  done
  rm -rf "$dir/pristine.tmp"
  if [[ $keep -eq 0 && -d $root && -z $(mounts_under "$root") ]]; then
    rm -rf "$root"
  elif [[ $keep -eq 1 ]]; then
    log "kept the root: $root (logs in $results)"
  fi
  return "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if [[ ! -f $pristine ]]; then
  log "making the pristine root $pristine (once): debootstrap --variant=minbase bookworm $mirror"
  rm -rf "$dir/pristine.tmp"
  debootstrap --variant=minbase bookworm "$dir/pristine.tmp" "$mirror" >"$dir/debootstrap.log" 2>&1 ||
    die "debootstrap failed (network?): tail of $dir/debootstrap.log:
$(tail -n 20 "$dir/debootstrap.log")"
  rm -f "$dir"/pristine.tmp/var/cache/apt/archives/*.deb
  tar -C "$dir/pristine.tmp" --numeric-owner -cf "$pristine.part" .
  mv "$pristine.part" "$pristine"
  rm -rf "$dir/pristine.tmp"
fi

[[ -z $(mounts_under "$root") ]] || die "something is mounted under $root: $(mounts_under "$root")"
rm -rf "$root"
mkdir -p "$root"
log "a fresh Debian 12 root in $root (from $pristine)"
tar -C "$root" --numeric-owner -xpf "$pristine"
cp /etc/resolv.conf "$root/etc/resolv.conf"  # the machine's name servers, as on a real one
mkdir -p "$results"
if [[ -n $branch ]]; then
  git -C "$repo" bundle create "$results/repo.bundle" "$branch" 2>/dev/null
else
  git -C "$repo" bundle create "$results/repo.bundle" HEAD 2>/dev/null
fi
log "checking commit $commit${branch:+ (branch $branch)}"

# What runs inside the root, as root in /root: each step's output in /root/check-fresh/STEP.log
# and "STEP STATUS SECONDS" in /root/check-fresh/results.
cat >"$results/inner.sh" <<'INNER'
#!/bin/bash
set -uo pipefail
set -m  # each step in its own process group: the demo gets SIGINT as from Ctrl-C
out=/root/check-fresh
branch=$1 run_demo=$2 run_tests=$3 demo_seconds=$4

step() {  # step NAME COMMAND...: runs it, records its status and duration
  local name=$1 start=$SECONDS status
  shift
  echo "==> $name: $*" >&2
  "$@" >"$out/$name.log" 2>&1
  status=$?
  echo "$name $status $((SECONDS - start))" >>"$out/results"
  return "$status"
}

# Processes of this root (whose / is ours: the machine's other processes share the PID
# namespace, as on a real machine) whose name is $1 (a regular expression).
processes() {
  local p comm ours
  ours=$(stat -L -c %d:%i /)
  for p in /proc/[0-9]*; do
    [[ $(stat -L -c %d:%i "$p/root" 2>/dev/null) == "$ours" ]] || continue
    comm=$(cat "$p/comm" 2>/dev/null) || continue
    [[ $comm =~ $1 ]] && echo "${p#/proc/} $comm"
  done
  return 0
}

# The README's command, interrupted like Ctrl-C $demo_seconds after its dockerd started (before
# that, run.sh installs packages and builds: up to an hour). 124: interrupted as planned.
demo() {
  cd /root/zastava-agent || return 1
  ./scripts/run.sh --demo &
  local pid=$! waited=0
  until [[ -n $(processes '^dockerd$') ]]; do
    kill -0 "$pid" 2>/dev/null || { wait "$pid"; echo "the demo ended before its dockerd started: $?"; return 1; }
    ((waited++ < 3600)) || { kill -KILL -- "-$pid"; echo "no dockerd after an hour"; return 1; }
    sleep 1
  done
  echo "==> check-fresh: dockerd started; SIGINT in $demo_seconds s"
  for ((i = 0; i < demo_seconds; i++)); do
    kill -0 "$pid" 2>/dev/null || { wait "$pid"; echo "==> check-fresh: the demo ended by itself: $?"; return 1; }
    sleep 1
  done
  echo "==> check-fresh: SIGINT to the demo's process group"
  kill -INT -- "-$pid"
  for ((i = 0; i < 120; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
  if kill -0 "$pid" 2>/dev/null; then
    echo "==> check-fresh: the demo did not stop within 60 s of SIGINT"
    kill -KILL -- "-$pid"
    wait "$pid"
    return 1
  fi
  wait "$pid"
  echo "==> check-fresh: the demo exited with $? after SIGINT"
  processes '^(dockerd|zastava-agent|containerd.*)$' >"$out/demo-leftovers"
  return 124
}

export DEBIAN_FRONTEND=noninteractive
step setup sh -c 'apt-get update && apt-get install -y git ca-certificates' || exit 1
step clone git clone ${branch:+--branch "$branch"} "$out/repo.bundle" /root/zastava-agent || exit 1
if [[ $run_demo -eq 1 ]]; then step demo demo; fi
if [[ $run_tests -eq 1 ]]; then
  cd /root/zastava-agent && step tests ./scripts/test.sh
fi
exit 0
INNER
chmod 0755 "$results/inner.sh"

# Enters the root: a new mount namespace (private: nothing mounted there is seen here or
# outlives it) in the machine's PID namespace, as on a fresh machine (the agent's evidence
# tells a container that exited from one in a foreign PID namespace by it); the root bound onto
# itself (the engine's image import needs / to be a mount point), the kernel's file systems
# mounted, pivot_root, a clean environment in a new session without a terminal, SIGINT not
# ignored (this script starts it in the background, which ignores it).
enter() {
  # shellcheck disable=SC2016  # expanded by the shell inside
  unshare --mount --fork --propagation private -- /bin/bash -euc '
    root=$1
    shift
    mount --bind "$root" "$root"
    mount -t proc proc "$root/proc"
    mount --rbind /sys "$root/sys"  # with /sys/fs/cgroup, for dockerd
    mount --rbind /dev "$root/dev"
    mount -t devpts -o newinstance,ptmxmode=0666,mode=0620 devpts "$root/dev/pts"
    mount --bind "$root/dev/pts/ptmx" "$root/dev/ptmx"
    mount -t tmpfs -o mode=1777 shm "$root/dev/shm"
    mount -t tmpfs -o mode=0755 run "$root/run"  # /tmp stays on disk (kept with --keep)
    cd "$root"
    mkdir -p .old-root
    pivot_root . .old-root
    cd /
    umount --lazy /.old-root
    rmdir /.old-root
    exec setsid --wait /usr/bin/env --default-signal=INT -i \
      PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
      HOME=/root TERM="${TERM_OUTSIDE:-dumb}" LANG=C.UTF-8 "$@" </dev/null
  ' enter "$root" "$@"
}

started=$SECONDS
log "entering the root: setup (apt-get install git ca-certificates), clone$([[ $run_demo -eq 1 ]] && echo ", demo (${demo_seconds} s after its dockerd started)")$([[ $run_tests -eq 1 ]] && echo ", tests")"
TERM_OUTSIDE=${TERM:-dumb} enter /root/check-fresh/inner.sh "$branch" "$run_demo" "$run_tests" \
  "$demo_seconds" &
enter_pid=$!
wait "$enter_pid" || log "the root's session ended with $?"
enter_pid=

# The summary.
touch "$results/results"
failed=0
summary=()
tails=()
while read -r name status seconds; do
  verdict=passed
  reason=
  if [[ $name == demo ]]; then
    starts=$(grep -c 'container\.start' "$results/demo.log" || true)
    dies=$(grep -c 'container\.die' "$results/demo.log" || true)
    leftovers=$(cat "$results/demo-leftovers" 2>/dev/null || echo "(not checked)")
    reason="lines with container.start: $starts, container.die: $dies"
    if [[ $status -ne 124 ]]; then
      verdict=failed reason="the demo did not run until the interrupt (exit $status); $reason"
    elif [[ $starts -eq 0 || $dies -eq 0 ]]; then
      verdict=failed
    elif [[ -n $leftovers ]]; then
      verdict=failed reason="$reason; left running after the interrupt: ${leftovers//$'\n'/, }"
    fi
  elif [[ $status -ne 0 ]]; then
    verdict=failed reason="exit $status"
  fi
  summary+=("$(printf '%-6s %-7s %6d s  %s' "$name" "$verdict" "$seconds" "$reason")")
  if [[ $verdict == failed ]]; then
    failed=1
    tails+=("--- tail of $name ($results/$name.log) ---" "$(tail -n 40 "$results/$name.log")")
  fi
done <"$results/results"
expected=2
((expected += run_demo + run_tests))
[[ $(wc -l <"$results/results") -eq $expected ]] || failed=1

echo
echo "check-fresh: commit $commit, $((SECONDS - started)) s in the root"
printf '%s\n' "${summary[@]}"
[[ $(wc -l <"$results/results") -eq $expected ]] || echo "(not every step ran)"
if [[ ${#tails[@]} -gt 0 ]]; then printf '%s\n' "${tails[@]}"; fi
if [[ $failed -eq 0 ]]; then echo "check-fresh: PASSED"; else echo "check-fresh: FAILED"; fi
exit "$failed"
