#!/usr/bin/python3
"""Captures decoder fixtures from a real engine started by engines.py (not a test).

    python3 tests/integration/capture_engine_fixtures.py docker26 tests/fixtures/engine/docker-26.1 \
        [--engine-cache DIR]
    python3 tests/integration/capture_engine_fixtures.py podman tests/fixtures/engine/podman-4.3

With --posture: one inspect document per risky setting (posture_steps), for the posture checks:

    python3 tests/integration/capture_engine_fixtures.py docker20 tests/fixtures/engine/posture \
        --posture
    python3 tests/integration/capture_engine_fixtures.py docker26 \
        tests/fixtures/engine/posture/docker-26.1 --posture [--engine-cache DIR]
    python3 tests/integration/capture_engine_fixtures.py podman \
        tests/fixtures/engine/posture/podman-4.3 --posture

(docker20 is Debian 12's dockerd started as harness.PrivateDockerd starts it.)

The engine runs under /tmp/zcap/<engine> (wiped first, removed at the end). Every file is the
engine's answer byte for byte, fetched with curl; commands.log lists every docker/podman
command run, in order, with its time. The folder's README.md says what each file is.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import engines  # noqa: E402
import harness as h  # noqa: E402

IMG = h.TEST_IMAGE
LABEL = ["--label", "zastava.fixture=col"]
# grows without bound in memory: busybox tail keeps the unterminated "line" of /dev/zero
HOG = ["tail", "/dev/zero"]


class Capture:
    def __init__(self, d, out, api):
        self.d, self.out, self.api = d, out, api
        self.log = open(os.path.join(out, "commands.log"), "w")

    def note(self, text):
        self.log.write(f"{time.strftime('%H:%M:%S')} {text}\n")
        self.log.flush()
        h.log(text)

    def docker(self, *args, check=True, timeout=120):
        self.note("docker " + " ".join(args))
        return self.d.docker(*args, check=check, timeout=timeout)

    def podman(self, *args, check=True):
        self.note("podman " + " ".join(args))
        return self.d.podman(*args, check=check)

    def curl(self, path, out_file=None):
        """GET path with curl. The body as sent goes to out_file (in the output folder) when
        given. Returns (HTTP status, body bytes)."""
        res = subprocess.run(["curl", "-sS", "--unix-socket", self.d.sock, "-o", "-", "-w",
                              "%{http_code}", "http://x" + path], capture_output=True,
                             check=True)
        status, body = int(res.stdout[-3:]), res.stdout[:-3]
        if out_file:
            self.note(f"curl {path} > {out_file} (HTTP {status})")
            with open(os.path.join(self.out, out_file), "wb") as f:
                f.write(body)
        return status, body


def wait_exited(c, name, timeout=30):
    h.wait_until(lambda: c.d.api("GET", f"/containers/{name}/json")[1]["State"]["Status"]
                 == "exited", timeout, f"{name} exited")


BASES = {"docker20": "d20", "docker26": "d26", "podman": "pod"}
APIS = {"docker20": "/v1.41", "docker26": "/v1.45", "podman": "/v1.41"}


def capture(kind, out, cache, posture=False):
    base = f"/tmp/zcap/{BASES[kind]}"
    shutil.rmtree(base, ignore_errors=True)
    if kind == "docker20":
        d = h.PrivateDockerd(base)
    elif kind == "docker26":
        d = engines.Docker26(base, cache)
    else:
        d = engines.PodmanService(base)
    os.makedirs(out, exist_ok=True)
    t = time.monotonic()
    d.start()
    h.log(f"start took {time.monotonic() - t:.2f} s")
    try:
        c = Capture(d, out, APIS[kind])
        c.note(f"{d.name} started in {time.monotonic() - t:.2f} s")
        d.make_busybox_image()
        if posture:
            posture_steps(c, kind)
        else:
            steps(c, kind)
    finally:
        if kind == "podman" or posture:
            d.remove_all_containers()
        d.stop()
        if posture:
            unmount_shared(base)
        if kind == "podman":
            d.remove_all_containers()
        shutil.rmtree(base, ignore_errors=True)


def steps(c, kind):
    api, d = c.api, c.d
    podman = kind == "podman"
    net = ["--network", "none"]
    c.note("curl -D ping-headers.txt /_ping")
    subprocess.run(["curl", "-sS", "--unix-socket", d.sock, "-D",
                    os.path.join(c.out, "ping-headers.txt"), "-o", "/dev/null",
                    "http://x/_ping"], check=True)
    c.curl(f"{api}/version", "version.json")

    # Containers for the list and the inspects
    c.docker("run", "-d", "--name", "col-run", *LABEL, "--label", "app=web", *net, IMG,
             "sleep", "300")
    c.docker("run", "-d", "--name", "col-exited", *LABEL, *net, IMG, "sh", "-c", "exit 3")
    c.docker("create", "--name", "col-created", *LABEL, *net, IMG, "sleep", "300")
    c.docker("run", "-d", "--name", "col-paused", *LABEL, *net, IMG, "sleep", "300")
    c.docker("pause", "col-paused")
    wait_exited(c, "col-exited")
    time.sleep(1)
    f = urllib.parse.quote(json.dumps({"label": ["zastava.fixture=col"]}))
    c.curl(f"{api}/containers/json?all=1&filters={f}", "containers-list.json")
    c.curl(f"{api}/containers/col-run/json", "inspect-running.json")
    c.curl(f"{api}/containers/col-exited/json", "inspect-exited.json")
    c.docker("rm", "-f", "col-run", "col-exited", "col-created", "col-paused")
    time.sleep(1.1)

    # The lifecycle, with a live /events reader
    ef = urllib.parse.quote(json.dumps({"type": ["container"]}))
    events_path = os.path.join(c.out, "events-lifecycle.ndjson")
    c.note(f"curl -N {api}/events?filters={json.dumps({'type': ['container']})} "
           "> events-lifecycle.ndjson &")
    reader = subprocess.Popen(["curl", "-sS", "-N", "--unix-socket", d.sock,
                               f"http://x{api}/events?filters={ef}"],
                              stdout=open(events_path, "wb"))
    time.sleep(1)
    try:
        lifecycle(c, podman, net)
        time.sleep(2)
    finally:
        reader.terminate()
        reader.wait(10)
    c.note("reader stopped")


def lifecycle(c, podman, net):
    d = c.d
    life = ["--name", "col-life", *LABEL, *net, IMG, "sleep", "300"]
    c.docker("create", *life)
    c.docker("start", "col-life")
    c.docker("pause", "col-life")
    c.docker("unpause", "col-life")
    c.docker("exec", "col-life", "true")
    c.docker("rename", "col-life", "col-life2")
    c.docker("kill", "col-life2")
    c.docker("wait", "col-life2")
    c.docker("restart", "-t", "1", "col-life2")
    time.sleep(1)
    c.docker("stop", "-t", "1", "col-life2")
    c.docker("start", "col-life2")
    c.docker("run", "-d", "--name", "col-exit", *LABEL, *net, IMG, "sh", "-c", "exit 3")
    wait_exited(c, "col-exit")
    c.docker("run", "-d", "--name", "col-health", *LABEL, *net, "--health-cmd", "true",
             "--health-interval", "1s", IMG, "sleep", "300")
    if podman:  # nothing runs podman's health checks without systemd: run them by hand
        time.sleep(1)
        c.podman("healthcheck", "run", "col-health")
        c.podman("healthcheck", "run", "col-health")
    else:
        time.sleep(4)
    c.docker("run", "-d", "--name", "col-oom", *LABEL, *net, "--memory", "8m", IMG, *HOG)
    try:
        wait_exited(c, "col-oom", timeout=30)
    except AssertionError as exc:
        c.note(f"col-oom did not exit: {exc}")
    st, info = d.api("GET", "/containers/col-oom/json")
    c.note("col-oom state: " + json.dumps({k: info["State"].get(k) for k in
                                           ("Status", "ExitCode", "OOMKilled", "Error")}))
    c.docker("run", "--rm", "--name", "col-rm", *LABEL, *net, IMG, "true")
    rm_inspect(c, net)
    c.docker("rm", "-f", "col-life2", "col-exit", "col-health", "col-oom")


def rm_inspect(c, net):
    """A --rm container inspected as fast as we can while it exits and is removed: every
    distinct (status, state) seen, and the first answer that was neither 200 nor 404 saved."""
    c.docker("run", "-d", "--rm", "--name", "col-rm2", *LABEL, *net, IMG, "sh", "-c",
             "sleep 1; exit 0")
    seen = []
    saved = False
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        status, body = c.curl(f"{c.api}/containers/col-rm2/json")
        try:
            state = json.loads(body)["State"]["Status"] if status == 200 else None
        except (ValueError, KeyError, TypeError):
            state = None
        if not seen or seen[-1][:2] != (status, state):
            seen.append((status, state, body[:200].decode(errors="replace")))
        if status not in (200, 404) and not saved:
            with open(os.path.join(c.out, "inspect-rm-exited.json"), "wb") as f:
                f.write(body)
            with open(os.path.join(c.out, "inspect-rm-exited.status"), "w") as f:
                f.write(f"{status}\n")
            saved = True
        if status == 404:
            break
        time.sleep(0.01)
    c.note("inspect of col-rm2 while it exited, in order: " + json.dumps(seen))


# ----------------------------------------------------------------------------------------------
# Posture: one inspect per risky setting

def posture_settings(kind, sock, shared):
    """(setting, docker run options, command) for each fixture inspect-<setting>.json. The
    docker20 engine gets every setting; docker26 and podman the few their folders need."""
    sleep = ["sleep", "300"]
    hardened = ["--read-only", "--memory", "64m", "--cpu-shares", "512", "--pids-limit", "100",
                "--security-opt", "no-new-privileges", "--health-cmd", "true",
                "--health-interval", "2s", "--user", "1000", "--cap-drop", "ALL",
                "--restart", "on-failure:3", "--ulimit", "nofile=1024:2048"]
    every = [
        ("default", [], sleep),
        ("hardened", hardened, sleep),
        ("host-network", ["--network", "host"], sleep),
        ("host-pid", ["--pid", "host"], sleep),
        ("host-ipc", ["--ipc", "host"], sleep),
        ("host-uts", ["--uts", "host"], sleep),
        ("host-userns", ["--userns", "host"], sleep),
        ("cap-add", ["--cap-add", "NET_ADMIN", "--cap-add", "SYS_ADMIN"], sleep),
        ("cap-add-default", ["--cap-add", "CHOWN"], sleep),
        ("cap-add-all", ["--cap-add", "ALL"], sleep),
        ("privileged", ["--privileged"], sleep),
        ("sensitive-mount", ["-v", "/etc:/host-etc"], sleep),
        ("sensitive-mount-ro", ["-v", "/etc/hostname:/x:ro"], sleep),
        ("docker-socket", ["-v", f"{sock}:/var/run/docker.sock"], sleep),
        ("docker-socket-mount", ["--mount", f"type=bind,source={sock},target=/run/engine.sock"],
         sleep),
        ("docker-socket-link", ["-v", f"{os.path.dirname(sock)}/link/docker.sock:/x.sock"],
         sleep),
        ("port-privileged", ["-p", "80:80"], sleep),
        ("port-localhost", ["-p", "127.0.0.1:8080:80"], sleep),
        ("device", ["--device", "/dev/null:/dev/xnull"], sleep),
        ("ulimit", ["--ulimit", "nofile=1024:2048"], sleep),
        ("propagation-rshared", ["--mount", f"type=bind,source={shared},target=/shared,"
                                 "bind-propagation=rshared"], sleep),
        ("seccomp-unconfined", ["--security-opt", "seccomp=unconfined"], sleep),
        ("apparmor-unconfined", ["--security-opt", "apparmor=unconfined"], sleep),
        ("label-disable", ["--security-opt", "label=disable"], sleep),
        ("cgroup-parent", ["--cgroup-parent", "zastava-fixture"], sleep),
        ("restart-always", ["--restart", "always"], sleep),
        ("restart-on-failure-10", ["--restart", "on-failure:10"], sleep),
        ("healthcheck", ["--health-cmd", "true", "--health-interval", "2s"], sleep),
        ("pids-limit", ["--pids-limit", "50"], sleep),
    ]
    if kind == "docker20":
        return every
    wanted = {"docker26": ("default", "privileged", "host-pid", "port-privileged",
                           "port-localhost", "hardened"),
              "podman": ("default", "cap-add", "cap-add-default", "privileged",
                         "port-privileged")}[kind]
    return [s for s in every if s[0] in wanted]


def make_shared(base):
    """A directory under base bind-mounted on itself and made shared (rshared propagation
    needs its source on a shared mount)."""
    shared = os.path.join(base, "shared")
    os.makedirs(shared, exist_ok=True)
    subprocess.run(["mount", "--bind", shared, shared], check=True)
    subprocess.run(["mount", "--make-shared", shared], check=True)
    return shared


def unmount_shared(base):
    """Undoes make_shared, and the network namespace mount dockerd leaves in its exec root
    (os.path.ismount cannot see a directory bind-mounted on itself: umount says)."""
    for path in (os.path.join(base, "shared"), os.path.join(base, "exec/netns/default")):
        if os.path.exists(path):
            subprocess.run(["umount", path], capture_output=True, check=False)


def posture_steps(c, kind):
    """Each setting `docker run -d`; when the engine refuses to start it, the container is
    removed and made again with `docker create` (the agent inspects created containers too).
    Then every inspect, as sent."""
    d = c.d
    c.curl(f"{c.api}/version", "version.json")
    shared = make_shared(d.dir)
    c.note(f"mount --bind {shared} {shared}; mount --make-shared {shared}")
    link = os.path.join(d.dir, "link")
    os.makedirs(link, exist_ok=True)
    os.symlink(d.sock, os.path.join(link, "docker.sock"))
    c.note(f"ln -s {d.sock} {link}/docker.sock")
    outcome = {}
    for setting, opts, cmd in posture_settings(kind, d.sock, shared):
        name = f"posture-{setting}"
        c.note(" ".join(["docker", "run", "-d", "--name", name, *opts, IMG, *cmd]))
        res = d_cli(d, "run", "-d", "--name", name, *opts, IMG, *cmd)
        if res.returncode == 0:
            outcome[setting] = "run"
            continue
        c.note(f"refused ({res.returncode}): {res.stderr.strip()}")
        d_cli(d, "rm", "-f", name)
        c.note(" ".join(["docker", "create", "--name", name, *opts, IMG, *cmd]))
        res = d_cli(d, "create", "--name", name, *opts, IMG, *cmd)
        if res.returncode == 0:
            outcome[setting] = "created"
        else:
            c.note(f"refused by create too ({res.returncode}): {res.stderr.strip()}")
            outcome[setting] = "refused: " + res.stderr.strip()
    time.sleep(6)  # health checks (interval 2 s) have run
    for setting, how in outcome.items():
        if not how.startswith("refused"):
            c.curl(f"{c.api}/containers/posture-{setting}/json", f"inspect-{setting}.json")
            _, info = d.api("GET", f"/containers/posture-{setting}/json")
            outcome[setting] = f"{how}, {info['State']['Status']}"
    c.note("outcome: " + json.dumps(outcome, indent=1))


def d_cli(d, *args):
    """The engine's docker CLI, its stderr kept (PrivateDockerd.docker drops it unless it
    raises)."""
    env = dict(d.env or os.environ, DOCKER_HOST=d.endpoint)
    env.pop("DOCKER_CONTEXT", None)
    return subprocess.run([d.cli or h.docker_cli(), *args], env=env, capture_output=True,
                          text=True, timeout=120)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("engine", choices=sorted(BASES))
    p.add_argument("out")
    p.add_argument("--engine-cache", default=engines.default_cache_dir())
    p.add_argument("--posture", action="store_true",
                   help="one inspect per risky setting instead of the decoder fixtures")
    a = p.parse_args()
    capture(a.engine, os.path.abspath(a.out), a.engine_cache, a.posture)


if __name__ == "__main__":
    main()
