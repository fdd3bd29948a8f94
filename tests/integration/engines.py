#!/usr/bin/python3
"""Engines besides Debian 12's dockerd, started privately like harness.PrivateDockerd.

Docker26       Debian 13 (trixie)'s docker.io 26.1 (API 1.45). Its .debs are fetched with
               `apt-get download` from a source list kept apart from the system's and unpacked
               with `dpkg -x` into a cache directory (fetch_docker26); nothing is installed.
               It runs with Debian 12's containerd and runc (and the trixie docker CLI).
PodmanService  Debian 12's podman 4.3 serving the Docker-compatible API (API 1.41) with
               `podman system service`, with its own containers.conf, storage.conf and
               registries.conf under the engine's directory (file events, cgroupfs, vfs, runc,
               file locks, no network).

Both are harness.PrivateDockerd subclasses: start(), stop(), endpoint, docker(...),
api(...), events(since, until), make_busybox_image() work as there, and their class attributes
say how they differ (the facts the engine-matrix tests read). A missing binary or a failed
download raises unittest.SkipTest with the reason, or RuntimeError under CI.

make_engine() is the one place that picks the engine of a test (harness.Workspace.dockerd): the
environment variable ZIT_ENGINE, `docker20` (Debian 12's dockerd, the default), `docker26` or
`podman`.

    python3 tests/integration/engines.py fetch CACHE_DIR   # fetch + unpack Docker 26 only
"""

import fcntl
import glob
import json
import os
import shutil
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402

DEFAULT_MIRROR = "http://deb.debian.org/debian"
DOCKER26_SUITE = "trixie"
# docker.io has dockerd and docker-proxy; docker-cli the client (a separate package since 24).
DOCKER26_PACKAGES = ("docker.io", "docker-cli")
KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"


def unavailable(reason):
    """The engine cannot run here: a skip, or a failure under CI (where the test command has
    installed everything and the network is expected)."""
    if os.environ.get("CI"):
        raise RuntimeError(f"engine unavailable under CI: {reason}")
    raise unittest.SkipTest(reason)


# ----------------------------------------------------------------------------------------------
# Docker 26.1 from Debian 13, fetched apart from the system

def debian_mirror():
    """The Debian mirror the system's apt sources use for the main archive (not -security):
    ZIT_DEBIAN_MIRROR when set, else the first such URI in /etc/apt/sources.list{,.d/*}, else
    deb.debian.org."""
    if os.environ.get("ZIT_DEBIAN_MIRROR"):
        return os.environ["ZIT_DEBIAN_MIRROR"].rstrip("/")
    candidates = []  # (uri, suites)
    for path in ["/etc/apt/sources.list"] + sorted(glob.glob("/etc/apt/sources.list.d/*.list")):
        try:
            lines = open(path).read().splitlines()
        except OSError:
            continue
        for line in lines:
            words = line.split("#", 1)[0].split()
            if len(words) < 3 or words[0] != "deb":
                continue
            words = words[1:]
            if words[0].startswith("["):  # [opts] may span words
                while words and not words[0].endswith("]"):
                    words = words[1:]
                words = words[1:]
            if len(words) >= 2:
                candidates.append((words[0], [words[1]]))
    for path in sorted(glob.glob("/etc/apt/sources.list.d/*.sources")):
        try:
            text = open(path).read()
        except OSError:
            continue
        for para in text.split("\n\n"):
            fields = {}
            for line in para.splitlines():
                if line.startswith("#") or ":" not in line or line[0].isspace():
                    continue
                key, value = line.split(":", 1)
                fields[key.strip().lower()] = value.split()
            if "deb" not in fields.get("types", []) or \
                    fields.get("enabled", ["yes"])[0].lower() == "no":
                continue
            for uri in fields.get("uris", []):
                candidates.append((uri, fields.get("suites", [])))
    for uri, suites in candidates:
        if "debian-security" in uri:
            continue
        if any(s and "-" not in s and "/" not in s for s in suites) and "debian" in uri:
            return uri.rstrip("/")
    return DEFAULT_MIRROR


def _apt_options(apt_dir):
    """apt-get options that keep everything in apt_dir: its own source list, lists, cache and
    an empty dpkg status, no system source parts or pinning."""
    return ["-o", f"Dir::Etc::SourceList={apt_dir}/sources.list",
            "-o", "Dir::Etc::SourceParts=/dev/null",
            "-o", "Dir::Etc::Preferences=/dev/null",
            "-o", "Dir::Etc::PreferencesParts=/dev/null",
            "-o", f"Dir::State::Lists={apt_dir}/lists",
            "-o", f"Dir::State::status={apt_dir}/status",
            "-o", f"Dir::Cache={apt_dir}/cache",
            "-o", "APT::Sandbox::User=root"]


def _run(cmd, cwd=None, timeout=600):
    res = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    if res.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:2])} ... {cmd[-1]} -> {res.returncode}: "
                           f"{(res.stderr or res.stdout)[-1500:]}")
    return res.stdout


def fetch_docker26(cache_dir):
    """Debian 13's docker.io and docker-cli unpacked (dpkg -x) into CACHE_DIR/root; returns
    that root. Reuses it when CACHE_DIR/fetched.json says it is complete. Needs the network
    the first time (apt-get update + download from the system's Debian mirror, trixie main);
    never installs anything. Unavailable (skip, or failure under CI) when that fails or the
    unpacked dockerd does not run here."""
    if os.geteuid() != 0:
        unavailable("fetching and running dockerd needs root")
    for tool in ("apt-get", "dpkg", "dpkg-deb"):
        if not shutil.which(tool):
            unavailable(f"{tool} missing (Debian's apt/dpkg)")
    cache_dir = os.path.abspath(cache_dir)
    os.makedirs(cache_dir, exist_ok=True)
    root = os.path.join(cache_dir, "root")
    stamp = os.path.join(cache_dir, "fetched.json")
    with open(os.path.join(cache_dir, ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two tests fetching at once: one fetches
        if os.path.exists(stamp) and os.access(os.path.join(root, "usr/sbin/dockerd"), os.X_OK):
            return root
        try:
            _fetch(cache_dir, root, stamp)
        except (RuntimeError, OSError, subprocess.TimeoutExpired) as exc:
            unavailable(f"cannot fetch Debian {DOCKER26_SUITE}'s docker.io: {exc}")
    return root


def _fetch(cache_dir, root, stamp):
    apt_dir = os.path.join(cache_dir, "apt")
    debs = os.path.join(cache_dir, "debs")
    for d in (f"{apt_dir}/lists/partial", f"{apt_dir}/cache/archives/partial", debs):
        os.makedirs(d, exist_ok=True)
    mirror = debian_mirror()
    signed = f" [signed-by={KEYRING}]" if os.path.exists(KEYRING) else ""
    with open(os.path.join(apt_dir, "sources.list"), "w") as f:
        f.write(f"deb{signed} {mirror} {DOCKER26_SUITE} main\n")
    open(os.path.join(apt_dir, "status"), "a").close()
    opts = _apt_options(apt_dir)
    h.log(f"fetching {', '.join(DOCKER26_PACKAGES)} from {mirror} {DOCKER26_SUITE}")
    _run(["apt-get", *opts, "--error-on=any", "update"])  # a failed fetch is an error
    for old in glob.glob(os.path.join(debs, "*.deb")):
        os.remove(old)
    _run(["apt-get", *opts, "download", *DOCKER26_PACKAGES], cwd=debs)
    tmp = root + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.rmtree(root, ignore_errors=True)
    versions = {}
    for deb in sorted(glob.glob(os.path.join(debs, "*.deb"))):
        fields = _run(["dpkg-deb", "-f", deb, "Package", "Version"]).split("\n")
        versions[fields[0].split(": ", 1)[1]] = fields[1].split(": ", 1)[1]
        _run(["dpkg", "-x", deb, tmp])
    if set(versions) != set(DOCKER26_PACKAGES):
        raise RuntimeError(f"downloaded {versions}, want {DOCKER26_PACKAGES}")
    # Runs with this system's libc? (trixie's needs GLIBC_2.34; Debian 12 has 2.36)
    for binary in ("usr/sbin/dockerd", "usr/bin/docker"):
        res = subprocess.run([os.path.join(tmp, binary), "--version"], capture_output=True,
                             text=True, timeout=60)
        if res.returncode != 0:
            raise RuntimeError(f"{binary} --version -> {res.returncode}: {res.stderr[-500:]}")
    os.rename(tmp, root)
    for d in ("lists", "cache"):  # 20 MB of indexes, not needed again; the .debs stay
        shutil.rmtree(os.path.join(apt_dir, d), ignore_errors=True)
    with open(stamp, "w") as f:
        json.dump({"mirror": mirror, "suite": DOCKER26_SUITE, "packages": versions,
                   "fetched": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}, f, indent=1)
    h.log(f"unpacked {versions} into {root}")


class Docker26(h.PrivateDockerd):
    """Debian 13's dockerd 26.1, unpacked in cache_dir (fetched the first time), started like
    PrivateDockerd with Debian 12's containerd and runc; docker(...) uses the trixie CLI.
    (With --bridge=none, a container renamed while running needs `--network none`.)"""

    label = "docker26"
    api_version = "1.45"

    def __init__(self, base_dir, cache_dir, extra_args=()):
        missing = [t for t in ("containerd", "runc") if not shutil.which(t)]
        if missing:
            unavailable(f"missing {', '.join(missing)} (Debian 12's containerd, runc)")
        self.root = fetch_docker26(cache_dir)
        super().__init__(base_dir, extra_args)
        self.name = "dockerd 26"
        self.cli = os.path.join(self.root, "usr/bin/docker")
        # docker-proxy from the same package; containerd, runc and docker-init from the system.
        # (The package's usr/bin/docker-init is a link to the tini-static it does not ship.)
        self.env = dict(os.environ,
                        PATH=os.path.join(self.root, "usr/sbin") + ":" + os.environ.get(
                            "PATH", "/usr/sbin:/usr/bin:/sbin:/bin"))

    def command(self):
        cmd = super().command()
        cmd[0] = os.path.join(self.root, "usr/sbin/dockerd")
        return cmd


# ----------------------------------------------------------------------------------------------
# Podman 4.3's Docker-compatible API

class PodmanService(h.PrivateDockerd):
    """`podman system service --time=0 unix://DIR/podman.sock` with everything podman keeps
    under DIR (storage, run and tmp dirs, events file, file locks), configured by environment
    (CONTAINERS_CONF, CONTAINERS_STORAGE_CONF, CONTAINERS_REGISTRIES_CONF, XDG_RUNTIME_DIR), so
    the system's podman state is untouched. docker(...) is Debian 12's docker CLI (API 1.41,
    the API podman serves); podman(...) the podman CLI on the same storage (for what the
    compat API lacks: `podman healthcheck run`, as nothing runs health checks without
    systemd)."""

    label = "podman"
    api_version = "1.41"
    removal_action = "remove"  # never destroy
    exec_actions = ("exec", "exec_died")  # no exec_create; no command in the Action
    reports_stop = False  # `stop` before `die` only at times
    rename_has_old_name = False
    schedules_health_checks = False  # systemd timers would: run_health_check

    def __init__(self, base_dir, extra_args=()):
        if os.geteuid() != 0:
            unavailable("the podman service runs rootful here and needs root")
        missing = [t for t in ("podman", "conmon", "runc") if not shutil.which(t)]
        if missing:
            unavailable(f"missing {', '.join(missing)} (Debian 12's podman package)")
        super().__init__(base_dir, extra_args)
        self.name = "podman service"
        self.sock = os.path.join(base_dir, "podman.sock")
        self.endpoint = "unix://" + self.sock
        self.log_path = os.path.join(base_dir, "podman.log")
        self.events_path = os.path.join(base_dir, "events.log")
        d = base_dir
        self.env = dict(os.environ,
                        CONTAINERS_CONF=d + "/containers.conf",
                        CONTAINERS_STORAGE_CONF=d + "/storage.conf",
                        CONTAINERS_REGISTRIES_CONF=d + "/registries.conf",
                        XDG_RUNTIME_DIR=d + "/xdg")
        for k in ("CONTAINER_HOST", "CONTAINER_CONNECTION", "DOCKER_HOST"):
            self.env.pop(k, None)
        # conmon (2.1.6) writes its OOM marker file `oom` into the working directory it
        # inherits: keep that ours, not the caller's
        self.cwd = base_dir

    def write_config(self):
        d = self.dir
        for sub in ("xdg", "tmp", "run", "root", "cni", "volumes"):
            os.makedirs(os.path.join(d, sub), mode=0o700, exist_ok=True)
        files = {
            "containers.conf": f"""\
# Private podman for zastava-agent integration tests (tests/integration/engines.py)
[containers]
# no host limits to copy: the host lacks CAP_SYS_RESOURCE for raising them
default_ulimits = []
default_sysctls = []
netns = "none"

[network]
network_config_dir = "{d}/cni"

[engine]
events_logger = "file"
events_logfile_path = "{self.events_path}"
cgroup_manager = "cgroupfs"
runtime = "runc"
lock_type = "file"
tmp_dir = "{d}/tmp"
# how long an exec session's conmon waits after the exec exits (default 300 s)
exit_command_delay = 5
volume_path = "{d}/volumes"
""",
            "storage.conf": f"""\
[storage]
driver = "vfs"
graphroot = "{d}/root"
runroot = "{d}/run"
""",
            # nothing qualifies a short name with a registry: no pull ever reaches the network
            "registries.conf": "unqualified-search-registries = []\n",
        }
        for name, text in files.items():
            with open(os.path.join(d, name), "w") as f:
                f.write(text)

    def command(self):
        return ["podman", "system", "service", "--time=0", self.endpoint, *self.extra_args]

    def start(self, timeout=60):
        os.makedirs(self.dir, exist_ok=True)
        self.write_config()
        super().start(timeout)

    def stop(self, timeout=60):
        """Stops the service, then its containers: unlike dockerd, the service's end does not
        stop them (each runs under its own conmon), so `podman stop --all` does, as dockerd
        would on SIGTERM."""
        running = self.proc is not None
        super().stop(timeout)
        if running:
            self.podman("stop", "--all", "--time", "2", check=False, timeout=120)

    def close(self):
        """Stopped, and its containers removed (they would outlive the workspace)."""
        self.stop()
        self.remove_all_containers()

    def forget_events(self):
        """Makes the stopped service forget its events as a restarted dockerd does: podman
        keeps them in its events file across restarts, so that file goes (as a rotated-away
        log would)."""
        super().forget_events()
        if os.path.exists(self.events_path):
            os.remove(self.events_path)

    def run_health_check(self, name):
        """`podman healthcheck run NAME`: its health_status event carries the status in a
        top-level HealthStatus."""
        self.podman("healthcheck", "run", name)

    def events(self, since, until, container_ids=None):
        """As PrivateDockerd.events. Podman 4.3 answers /events with `until` unreliably (the
        same query returns all, one or none of the events), so this asks for everything since
        `since` with stream=false (complete every time) and cuts at `until` itself."""
        filters = {"type": ["container"]}
        q = f"/events?since={since:.9f}&stream=false&filters=" + \
            h.urllib_quote(json.dumps(filters))
        status, _, data = h.http_request(None, None, "GET", q, unix_path=self.sock, timeout=30)
        if status != 200:
            raise RuntimeError(f"GET {q} -> {status}: {data[:300]!r}")
        events = [json.loads(line) for line in data.decode().splitlines() if line.strip()]
        events = [e for e in events if e.get("Type") == "container" and
                  e["timeNano"] <= int(until * 1e9)]
        if container_ids is not None:
            events = [e for e in events if e["Actor"]["ID"] in container_ids]
        return events

    def podman(self, *args, check=True, timeout=60):
        """The podman CLI on this engine's storage (not through the socket)."""
        res = subprocess.run(["podman", *args], env=self.env, cwd=self.dir,
                             capture_output=True, text=True, timeout=timeout)
        if check and res.returncode != 0:
            raise RuntimeError(f"podman {' '.join(args)} -> {res.returncode}: {res.stderr}")
        return res.stdout.strip()

    def remove_all_containers(self):
        self.podman("rm", "--all", "--force", "--time", "1", check=False, timeout=120)
        self.end_conmons()

    def end_conmons(self, timeout=10):
        """Ends what this engine left running after its containers are gone: conmon processes
        of exec sessions (they linger exit_command_delay s, then run `podman container
        cleanup`, which would make DIR/root again after the workspace is deleted) and such
        cleanups. Found by our directory in their command line, ended with SIGKILL by pid,
        waited for."""
        marker = self.dir + "/"
        pids = []
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    argv = f.read().split(b"\0")
            except OSError:
                continue
            prog = os.path.basename(argv[0].decode(errors="replace"))
            service = self.proc.pid if self.proc is not None else None
            if prog in ("conmon", "podman") and int(pid) not in (os.getpid(), service) and \
                    any(marker in a.decode(errors="replace") for a in argv[1:]):
                pids.append(int(pid))
        for pid in pids:
            try:
                os.kill(pid, 9)
            except OSError:
                pass

        def gone():
            for pid in pids:
                try:
                    with open(f"/proc/{pid}/stat") as f:
                        if f.read().rsplit(")", 1)[1].split()[0] != "Z":
                            return False
                except OSError:
                    pass
            return True
        h.wait_until(gone, timeout, f"{len(pids)} conmon/podman processes of {self.dir} to end")


# ----------------------------------------------------------------------------------------------
# For a harness.Workspace: started, and stopped at its close

def start_docker26(ws, cache_dir, name="d26", extra_args=()):
    d = Docker26(os.path.join(ws.dir, name), cache_dir, extra_args)
    ws.on_cleanup(d.stop)
    d.start()
    return d


def start_podman(ws, name="pod"):
    p = PodmanService(os.path.join(ws.dir, name))
    ws.on_cleanup(p.close)
    p.start()
    return p


ENGINES = ("docker20", "docker26", "podman")


def make_engine(base_dir, extra_args=()):
    """The engine ZIT_ENGINE names (docker20 when unset), not started: Debian 12's dockerd
    (harness.PrivateDockerd), Docker26 (unpacked in default_cache_dir, fetched the first time)
    or PodmanService. Unavailable engines: as their constructors say."""
    engine = os.environ.get("ZIT_ENGINE") or "docker20"
    if engine == "docker20":
        return h.PrivateDockerd(base_dir, extra_args)
    if engine == "docker26":
        agent = h.ARGS.agent if h.ARGS else None
        return Docker26(base_dir, default_cache_dir(agent), extra_args)
    if engine == "podman":
        return PodmanService(base_dir, extra_args)
    raise ValueError(f"ZIT_ENGINE={engine!r}: want one of {', '.join(ENGINES)}")


def default_cache_dir(agent=None):
    """Where Docker 26 is unpacked: ZIT_ENGINE_CACHE, else BUILD/engine-cache next to the
    agent binary (BUILD/agent/zastava-agent), else /tmp/zit-engine-cache."""
    if os.environ.get("ZIT_ENGINE_CACHE"):
        return os.environ["ZIT_ENGINE_CACHE"]
    if agent:
        return os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(agent))),
                            "engine-cache")
    return "/tmp/zit-engine-cache"


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "fetch":
        try:
            print(fetch_docker26(sys.argv[2]))
        except unittest.SkipTest as exc:
            print(f"unavailable: {exc}", file=sys.stderr)
            sys.exit(77)
    else:
        print(__doc__.strip().splitlines()[-1].strip(), file=sys.stderr)
        sys.exit(2)
