#!/usr/bin/python3
"""Captures decoder fixtures from a real engine started by engines.py (not a test).

    python3 tests/integration/capture_engine_fixtures.py docker26 tests/fixtures/engine/docker-26.1 \
        [--engine-cache DIR]
    python3 tests/integration/capture_engine_fixtures.py podman tests/fixtures/engine/podman-4.3

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


def capture(kind, out, cache):
    base = f"/tmp/zcap/{'d26' if kind == 'docker26' else 'pod'}"
    shutil.rmtree(base, ignore_errors=True)
    d = engines.Docker26(base, cache) if kind == "docker26" else engines.PodmanService(base)
    os.makedirs(out, exist_ok=True)
    t = time.monotonic()
    d.start()
    h.log(f"start took {time.monotonic() - t:.2f} s")
    try:
        api = "/v1.45" if kind == "docker26" else "/v1.41"
        c = Capture(d, out, api)
        c.note(f"{d.name} started in {time.monotonic() - t:.2f} s")
        d.make_busybox_image()
        steps(c, kind)
    finally:
        if kind == "podman":
            d.remove_all_containers()
        d.stop()
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


def main():
    p = argparse.ArgumentParser()
    p.add_argument("engine", choices=["docker26", "podman"])
    p.add_argument("out")
    p.add_argument("--engine-cache", default=engines.default_cache_dir())
    a = p.parse_args()
    capture(a.engine, os.path.abspath(a.out), a.engine_cache)


if __name__ == "__main__":
    main()
