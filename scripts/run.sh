#!/usr/bin/env bash
# Installs what is missing, builds the agent (Release) and runs it in the foreground against the
# host's Docker engine. Arguments go to the agent (see --help); --demo instead starts a private
# engine with a small workload so you can watch records flow.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

demo=0
args=()
for arg in "$@"; do
  if [[ $arg == --demo ]]; then demo=1; else args+=("$arg"); fi
done

ensure_packages "${BUILD_PACKAGES[@]}"
build build/release Release -DZASTAVA_TESTS=OFF
agent=build/release/agent/zastava-agent

if [[ $demo -eq 1 ]]; then
  ensure_packages "${DEMO_PACKAGES[@]}"
  exec scripts/demo.sh "$agent" "${args[@]}"
fi

# The endpoint the agent will use, by its own precedence: flag, env, DOCKER_HOST, default.
# --help, --version and --check-config need no engine.
endpoint=${ZASTAVA_AGENT__DockerEndpoint:-${DOCKER_HOST:-unix:///var/run/docker.sock}}
needs_engine=1
for ((i = 0; i < ${#args[@]}; i++)); do
  case ${args[i]} in
    --docker-endpoint) endpoint=${args[i + 1]:-} ;;
    --docker-endpoint=*) endpoint=${args[i]#*=} ;;
    --help | -h | --version | --check-config) needs_engine=0 ;;
  esac
done
if [[ $needs_engine -eq 1 && $endpoint == unix://* && ! -S ${endpoint#unix://} ]]; then
  cat >&2 <<MSG
No Docker engine socket at ${endpoint#unix://}.
  - Start Docker (systemctl start docker), or
  - point the agent at your engine: --docker-endpoint unix:///path/docker.sock or
    tcp://host:2375 (also ZASTAVA_AGENT__DockerEndpoint or DOCKER_HOST), or
  - try it on a private engine with a small workload: $0 --demo
MSG
  exit 1
fi
log "running $agent ${args[*]}"
exec "$agent" "${args[@]}"
