# Shared by scripts/run.sh, scripts/test.sh and scripts/demo.sh: Debian packages and the build.
# shellcheck shell=bash

# What building the agent needs (help2man makes its man page from --help).
BUILD_PACKAGES=(cmake make g++ pkg-config git
  libcurl4-openssl-dev libsimdjson-dev libsqlite3-dev prometheus-cpp-dev libcpp-httplib-dev
  libspdlog-dev libcli11-dev rapidjson-dev libssl-dev libsystemd-dev zlib1g-dev libnats-dev
  help2man)
# What the tests are built with (doctest; nlohmann-json reads records back), and what they and
# the demo run against: a real engine, a real proxy, real checkers, a NATS JetStream cluster.
# (promtool ships in Debian's prometheus package; a rootless engine needs rootlesskit and uidmap;
# fsfreeze and mkfs.ext4 hang a disk under the agent; the .deb is checked by lintian and installed
# in a Debian root made by debootstrap; podman is the engine matrix's third engine, beside
# docker.io and Debian 13's docker.io, which the tests fetch themselves. The fuzz targets are
# built with clang; libFuzzer's runtime and clang's sanitizers are in libclang-rt-14-dev, which
# clang only recommends. scripts/lint.sh runs clang-format and clang-tidy.)
TEST_PACKAGES=(doctest-dev nlohmann-json3-dev
  docker.io busybox-static haproxy prometheus python3 python3-jsonschema curl openssl sqlite3
  systemd apparmor checkpolicy semodule-utils selinux-policy-dev acl rootlesskit uidmap
  util-linux e2fsprogs dpkg-dev lintian debootstrap podman clang libclang-rt-14-dev
  clang-format clang-tidy nats-server)
DEMO_PACKAGES=(docker.io busybox-static curl)

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# Installs the packages that are not installed yet; does nothing (and needs no network) when
# everything is there. No system service is started by the installation (docker.io, containerd,
# haproxy and prometheus would start theirs): during it /usr/sbin/policy-rc.d answers 101
# ("action forbidden"), which invoke-rc.d and deb-systemd-invoke obey. A policy-rc.d the
# administrator put there is moved aside and put back afterwards, also on failure or Ctrl-C.
# Nor is one enabled for the next boot: the units of every package this call installed
# (dependencies included) are left disabled. Packages installed before are not touched.
ensure_packages() {
  local missing=()
  local package
  for package in "$@"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" ||
      missing+=("$package")
  done
  [[ ${#missing[@]} -eq 0 ]] && return 0
  [[ $(id -u) -eq 0 ]] || die "missing Debian packages: ${missing[*]} (run as root to install them)"
  log "installing ${missing[*]} (no service is started)"
  (  # a subshell: its traps are not the caller's
    policy=/usr/sbin/policy-rc.d
    saved=
    restore_policy() {
      rm -f "$policy"
      if [[ -n $saved ]]; then mv "$saved" "$policy"; fi
    }
    trap restore_policy EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    if [[ -e $policy || -L $policy ]]; then
      saved=$(mktemp "$policy.saved-XXXXXX")
      mv -f "$policy" "$saved"
    fi
    printf '#!/bin/sh\n# Written by zastava-agent scripts/lib.sh while it installs packages.\nexit 101\n' \
      >"$policy"
    chmod 0755 "$policy"
    local before
    before=$(installed_packages)
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" \
      >/dev/null
    disable_units_of $(comm -13 <(echo "$before") <(installed_packages))
  )
}

installed_packages() { dpkg-query -W -f='${db:Status-Status} ${Package}\n' | sed -n 's/^installed //p' | sort; }

# disable_units_of PACKAGE...: the systemd units these packages ship stay disabled (their
# maintainer scripts enable them); `systemctl disable` works without a running systemd.
disable_units_of() {
  local units
  units=$(dpkg-query -L "$@" 2>/dev/null | sed -nE 's#^/(usr/)?lib/systemd/system/([^/]+\.(service|socket|timer))$#\2#p' |
    grep -v '@' | sort -u || true)
  [[ -n $units ]] && command -v systemctl >/dev/null || return 0
  log "leaving the services of the new packages disabled: $(echo $units)"
  # shellcheck disable=SC2086
  systemctl disable --quiet $units >/dev/null 2>&1 || true
}

# build_fuzz DIR: configures DIR with clang++ and -DZASTAVA_FUZZ=ON (no tests) and builds the
# fuzz targets and their seed corpora (fuzz/README.md); non-zero if either fails.
build_fuzz() {
  local dir=$1
  log "building the fuzz targets in $dir"
  cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_COMPILER=clang++ \
    -DZASTAVA_FUZZ=ON -DZASTAVA_TESTS=OFF >/dev/null &&
    cmake --build "$dir" -j"$(nproc)" --target zastava_fuzz
}

# build DIR BUILD_TYPE [cmake args...]: configures and builds into DIR; non-zero if either fails.
build() {
  local dir=$1 type=$2
  shift 2
  log "building $type in $dir"
  cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE="$type" "$@" >/dev/null &&
    cmake --build "$dir" -j"$(nproc)"
}
