#!/usr/bin/env bash
# seeds.sh SOURCE_DIR OUT_DIR: assembles each fuzz target's seed corpus in OUT_DIR/<target>/
# from the fixtures in tests/fixtures/ (and the sample configuration deploy/systemd/agent.env),
# cut into the shape the target reads: whole files, or one file per NDJSON line. Nothing is
# copied into the repository; OUT_DIR is made again from scratch each time.
set -euo pipefail
src=$1
out=$2
fixtures=$src/tests/fixtures
engine=$fixtures/engine
procfs=$fixtures/procfs
rm -rf "$out"
mkdir -p "$out"

# files TARGET FILE...: each file is one seed.
files() {
  local target=$1 file
  shift
  mkdir -p "$out/$target"
  for file in "$@"; do
    cp "$file" "$out/$target/$(basename "$(dirname "$file")")-$(basename "$file")"
  done
}

# lines TARGET FILE...: each non-empty line of each file is one seed.
lines() {
  local target=$1 file
  shift
  mkdir -p "$out/$target"
  for file in "$@"; do
    awk -v dir="$out/$target" -v name="$(basename "$(dirname "$file")")-$(basename "$file")" \
      'NF { printf "%s", $0 > (dir "/" name "-" NR); close(dir "/" name "-" NR) }' "$file"
  done
}

# text TARGET NAME TEXT: one seed written here (printf format: \n, \0 allowed).
text() {
  mkdir -p "$out/$1"
  printf -- "$3" >"$out/$1/$2"
}

events=("$engine"/events-*.ndjson "$engine"/*/events-*.ndjson)
inspects=("$engine"/inspect-*.json "$engine"/*/inspect-*.json "$engine"/*/*/inspect-*.json)
records=("$fixtures"/records/*.ndjson)

lines fuzz_decode_event "${events[@]}"
files fuzz_decode_inspect "${inspects[@]}"
files fuzz_decode_container_list "$engine"/containers-list.json "$engine"/*/containers-list.json
files fuzz_decode_version "$engine"/version.json "$engine"/*/version.json \
  "$engine"/inspect-404.json "$engine"/podman-4.3/inspect-rm-exited.json "$engine"/proxy-403.html
files fuzz_ping_headers "$engine"/ping-headers.txt "$engine"/*/ping-headers.txt \
  "$engine"/proxy-403.headers
files fuzz_segment_reader "${records[@]}" "${events[@]}"
lines fuzz_record_summary "${records[@]}"
files fuzz_record_json "${events[@]}"
files fuzz_proc_maps "$procfs"/*-maps*.txt
files fuzz_proc_status "$procfs"/*-status*.txt "$procfs"/tree/*/status
files fuzz_proc_stat "$procfs"/*-stat.txt "$procfs"/malformed-stat-*.txt "$procfs"/tree/*/stat
files fuzz_proc_cgroup "$procfs"/*cgroup*.txt "$procfs"/tree/*/cgroup "$procfs"/container-id.txt
files fuzz_proc_small "$procfs"/*-cmdline.txt "$procfs"/tree/*/cmdline

# Read out of the fixtures: each event's Type, Action and HealthStatus; each inspect's
# environment and each process's command line, one item a line; the engine's times.
python3 - "$out" "${events[@]}" -- "${inspects[@]}" -- "$procfs"/*-cmdline.txt <<'PY'
import json, os, re, sys
out = sys.argv[1]
groups, group = [], []
for arg in sys.argv[2:] + ["--"]:
    if arg == "--":
        groups.append(group)
        group = []
    else:
        group.append(arg)
events, inspects, cmdlines = groups

def write(target, name, data):
    os.makedirs(os.path.join(out, target), exist_ok=True)
    with open(os.path.join(out, target, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())

seen = set()
for path in events:
    for line in open(path, encoding="utf-8"):
        if not line.strip():
            continue
        event = json.loads(line)
        fields = "\n".join([event.get("Type", ""), event.get("Action", event.get("status", "")),
                            event.get("HealthStatus", "")])
        if fields not in seen:
            seen.add(fields)
            write("fuzz_engine_vocabulary", "event-%d" % len(seen), fields)
times = set()
for path in inspects:
    text = open(path, encoding="utf-8").read()
    times.update(re.findall(r'"(\d{4}-\d\d-\d\dT[0-9:.]+Z)"', text))
    try:
        env = (json.loads(text).get("Config") or {}).get("Env") or []
    except ValueError:
        continue
    if env:
        write("fuzz_redaction", "env-" + os.path.basename(path), "\n".join(env))
for path in cmdlines:
    args = open(path, "rb").read().rstrip(b"\0").split(b"\0")
    write("fuzz_redaction", "cmdline-" + os.path.basename(path), b"\n".join(args))
for i, time in enumerate(sorted(times)):
    write("fuzz_time", "engine-%d" % i, time)
PY

# The sample configuration with every setting turned on, each setting alone, the endpoints it
# names, and the records command's forms.
env=$src/deploy/systemd/agent.env
settings=$(sed -nE 's/^#([A-Za-z_]+=.*)$/\1/p' "$env")
mkdir -p "$out/fuzz_config"
printf '%s\n' "$settings" >"$out/fuzz_config/agent-env-all"
n=0
while IFS= read -r setting; do
  n=$((n + 1))
  printf '%s\n' "$setting" >"$out/fuzz_config/agent-env-$n"
done <<<"$settings"
# Each setting of agent.env for fuzz_config_values: a byte with the key's place in the table
# (docs/configuration.md lists the keys in table order), then the value.
SETTINGS=$settings python3 - "$out/fuzz_config_values" "$src/docs/configuration.md" <<'PY'
import os, re, sys
out, doc = sys.argv[1], sys.argv[2]
keys = re.findall(r"^\| `(ZASTAVA_AGENT__\w+)` \|", open(doc, encoding="utf-8").read(), re.M)
os.makedirs(out, exist_ok=True)
for line in os.environ["SETTINGS"].splitlines():
    name, _, value = line.partition("=")
    if name in keys:
        with open(os.path.join(out, name), "wb") as f:
            f.write(bytes([keys.index(name)]) + value.encode())
PY
text fuzz_config records-since 'records\n--since\n2h\n--kind\nstart\n--container\nweb\n'
text fuzz_config flags '--health-port\n9090\n--log-level\ndebug\n--check-config\n'
mkdir -p "$out/fuzz_endpoint"
n=0
for uri in $(grep -ohE '(unix|tcp|http|https)://[^ ,)`"]*' "$env" "$src"/docs/configuration.md |
  sort -u); do
  n=$((n + 1))
  printf '%s\n' "$uri" >"$out/fuzz_endpoint/uri-$n"
done
text fuzz_endpoint tls '\ntcp://localhost:2376\n1\n/etc/zastava-agent/docker\n'
text fuzz_time since-hours '2h'
text fuzz_time since-date '2026-12-06'
text fuzz_time never '0001-01-01T00:00:00Z'

# The backend's Retry-After: seconds, and an HTTP date as the captured engine's Date header.
mkdir -p "$out/fuzz_retry_after"
printf '120' >"$out/fuzz_retry_after/seconds"
sed -nE 's/^Date: (.*)\r?$/\1/p' "$engine"/ping-headers.txt | tr -d '\r' |
  head -c 200 >"$out/fuzz_retry_after/http-date"

# What nats-server answered (tests/fixtures/nats): acks (first byte 0), stream messages (1), and
# a stored message's header block (2).
mkdir -p "$out/fuzz_jetstream_answers"
for answer in "$fixtures"/nats/pub-ack*.json; do
  { printf '0'; cat "$answer"; } >"$out/fuzz_jetstream_answers/$(basename "$answer")"
done
for answer in "$fixtures"/nats/msg-get*.json; do
  { printf '1'; cat "$answer"; } >"$out/fuzz_jetstream_answers/$(basename "$answer")"
done
printf '2NATS/1.0\r\nNats-Msg-Id: e1\r\nNats-Expected-Last-Subject-Sequence: 0\r\n\r\n' \
  >"$out/fuzz_jetstream_answers/headers"

# A seed file and a key file (docs/records.md, "Seals"), of the seed 00 01 .. 1f at epoch 3; the
# first byte picks the parser (even: seed file, odd: key file).
mkdir -p "$out/fuzz_seal_files"
printf '0zastava-seal-seed v1 fc54c4c07610c388 %s\n' \
  000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f >"$out/fuzz_seal_files/seed"
printf '1%-127s\n' 'zastava-seal-key v1 fc54c4c07610c388 0000000003 5a805aa589af7c9c59c19bf8f7418a619ced8f6b8d5055fb0eb5e179d4348683 241413d4' \
  >"$out/fuzz_seal_files/key"

# The inputs of past findings (tests/fixtures/fuzz/README.md), each with its target's seeds.
for finding in "$fixtures"/fuzz/fuzz_*; do
  [[ -f $finding ]] || continue
  target=$(basename "$finding")
  target=${target%%-*}
  [[ -d $out/$target ]] || { echo "seeds.sh: no target $target for $finding" >&2; exit 1; }
  cp "$finding" "$out/$target/finding-$(basename "$finding")"
done

for target in "$out"/*; do
  [[ -n $(ls -A "$target") ]] || { echo "seeds.sh: no seed for $(basename "$target")" >&2; exit 1; }
done
