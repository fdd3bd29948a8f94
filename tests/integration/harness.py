"""Helpers for zastava-agent integration tests: real dockerd, real haproxy, the real agent.

Everything here starts real processes in private directories under /tmp/zit-XXXX (short, so
unix socket paths stay well under 100 chars) and stops exactly the processes it started.
Debian's /usr/bin/python3, stdlib only (plus python3-jsonschema for schema validation).
"""

import argparse
import hashlib
import http.client
import json
import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import unittest

GENESIS_HASH = "0" * 64
TEST_IMAGE = "zastava-test/busybox:1"
# A long-running container command that exits 0 promptly on SIGTERM (sh as PID 1 would ignore it).
IDLE_CMD = ["sh", "-c", "trap 'exit 0' TERM; while :; do sleep 0.2; done"]


# ----------------------------------------------------------------------------------------------
# Small utilities

def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def wait_until(pred, timeout, what, interval=0.1):
    """Polls pred() until it returns a truthy value (which is returned). Raises AssertionError
    naming `what` (and the last exception pred raised, if any) on timeout."""
    deadline = time.monotonic() + timeout
    last_exc = None
    while True:
        try:
            value = pred()
            if value:
                return value
            last_exc = None
        except Exception as exc:  # pred may fail while things are starting
            last_exc = exc
        if time.monotonic() >= deadline:
            extra = f" (last error: {last_exc!r})" if last_exc else ""
            raise AssertionError(f"timed out after {timeout}s waiting for {what}{extra}")
        time.sleep(interval)


def terminate(proc, timeout):
    """SIGTERM to a running process and wait; SIGKILL after `timeout` s. True when it exited on
    SIGTERM (or had already)."""
    if proc is None or proc.poll() is not None:
        return True
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
        return True
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)
        return False


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_open(port, host="127.0.0.1"):
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def make_workdir(prefix="zit-"):
    return tempfile.mkdtemp(prefix=prefix, dir="/tmp")


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def make_ca(directory, name):
    """A CA key and self-signed certificate: DIR/NAME-key.pem, DIR/NAME.pem."""
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            "-subj", f"/CN={name}", "-keyout", f"{name}-key.pem", "-out", f"{name}.pem",
            cwd=directory)


def make_signed(directory, name, ca, extensions):
    """A key and a certificate signed by CA with the given X.509 v3 extensions."""
    with open(os.path.join(directory, f"{name}.ext"), "w") as f:
        f.write(extensions + "\n")
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}",
            "-keyout", f"{name}-key.pem", "-out", f"{name}.csr", cwd=directory)
    openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}-key.pem",
            "-CAcreateserial", "-days", "2", "-extfile", f"{name}.ext", "-out", f"{name}.pem",
            cwd=directory)


def parse_args():
    """Parses --agent/--source-dir and leaves the rest for unittest."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--agent", required=True, help="path to the zastava-agent binary")
    parser.add_argument("--source-dir", required=True, help="repository root")
    args, rest = parser.parse_known_args()
    args.source_dir = os.path.abspath(args.source_dir)  # tools started elsewhere read from it
    return args, [sys.argv[0]] + rest


REQUIRED_TOOLS = ("dockerd", "haproxy", "promtool", "tar")


def skip_reason():
    """Why these tests cannot run here (None when they can)."""
    if os.geteuid() != 0:
        return "integration tests start dockerd and must run as root"
    missing = [t for t in REQUIRED_TOOLS if not shutil.which(t)]
    if not os.path.exists("/bin/busybox"):
        missing.append("/bin/busybox (busybox-static)")
    if not docker_cli():
        missing.append("docker CLI")
    return f"missing: {', '.join(missing)}" if missing else None


# The script's --agent and --source-dir (main() sets them), for helpers that need them.
ARGS = None


def main(test_module_globals, why_skip=skip_reason):
    """Entry point for test scripts: parse our flags, store them, run unittest.
    Exits 77 (CTest SKIP_RETURN_CODE) when the machine cannot run them (why_skip() says why;
    by default: not root, or dockerd/haproxy/promtool missing), except under CI, where the test
    command has installed everything and a missing part is a failure; also when every test
    was skipped (an engine that is not available here: engines.unavailable)."""
    global ARGS
    args, argv = parse_args()
    ARGS = args
    reason = why_skip()
    if reason:
        if os.environ.get("CI"):
            print(f"FAIL: {reason} (the README's test command should have installed it)")
            sys.exit(1)
        print(f"SKIP: {reason}")
        sys.exit(77)
    if not os.access(args.agent, os.X_OK):
        print(f"agent binary {args.agent} is not executable")
        sys.exit(1)
    test_module_globals["ARGS"] = args
    unittest.TestCase.maxDiff = None  # show every problem in a failed list comparison
    prog = unittest.main(argv=argv, verbosity=2, exit=False)
    print_fault_summary()
    print_matrix_row()
    result = prog.result
    if not result.wasSuccessful():
        sys.exit(1)
    # A class whose set-up skipped counts as one skip and no test run.
    skipped_tests = sum(isinstance(t, unittest.TestCase) for t, _ in result.skipped)
    sys.exit(77 if result.skipped and result.testsRun == skipped_tests else 0)


def tail(path, max_chars=4000):
    try:
        with open(path, "r", errors="replace") as f:
            text = f.read()
    except OSError as exc:
        return f"<cannot read {path}: {exc}>"
    return text[-max_chars:]


# ----------------------------------------------------------------------------------------------
# HTTP over a unix socket (the engine API)

class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path, timeout=30):
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        try:
            s.connect(self._path)
        except OSError:
            s.close()
            raise
        self.sock = s


def http_request(host, port, method, path, body=None, timeout=10, unix_path=None):
    """Returns (status, headers dict lowercased, body bytes)."""
    if unix_path:
        conn = UnixHTTPConnection(unix_path, timeout=timeout)
    else:
        conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        headers = {}
        if body is not None:
            headers["Content-Type"] = "application/json"
            body = json.dumps(body).encode()
        conn.request(method, path, body=body, headers=headers)
        resp = conn.getresponse()
        data = resp.read()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data
    finally:
        conn.close()


# ----------------------------------------------------------------------------------------------
# A private Docker Engine

def docker_cli():
    # Debian's docker.io CLI; /usr/local/bin/docker may be another build.
    return "/usr/bin/docker" if os.path.exists("/usr/bin/docker") else shutil.which("docker")


class PrivateDockerd:
    """A private dockerd in base_dir (keep it short): vfs storage, no bridge, no iptables.

    The class attributes are what the engine-matrix tests need to know of an engine;
    engines.py's engines override them. Tests read these facts, never the engine's name."""

    label = "docker20"  # its name in ZIT_ENGINE and in the ENGINE MATRIX row
    api_version = "1.41"  # the API version it speaks (/version's ApiVersion)
    removal_action = "destroy"  # the Action of a container's removal
    exec_actions = ("exec_create", "exec_start", "exec_die")  # the Actions of a `docker exec`
    reports_stop = True  # `docker stop` always sends a `stop` event
    rename_has_old_name = True  # a rename's attributes carry oldName
    schedules_health_checks = True  # it runs health checks itself (else: run_health_check)

    def __init__(self, base_dir, extra_args=()):
        self.dir = base_dir
        self.extra_args = list(extra_args)  # e.g. a TLS tcp:// listener besides the socket
        self.sock = os.path.join(base_dir, "docker.sock")
        self.endpoint = "unix://" + self.sock
        self.log_path = os.path.join(base_dir, "dockerd.log")
        self.proc = None
        # Hooks for other engines (tests/integration/engines.py): the engine's name in logs, its
        # environment and working directory (None: ours) and the docker CLI that drives it
        # (None: docker_cli()).
        self.name = "dockerd"
        self.env = None
        self.cwd = None
        self.cli = None
        assert len(self.sock) < 100, self.sock

    def command(self):
        d = self.dir
        return ["dockerd", "--host", "unix://" + self.sock, "--data-root", d + "/root",
                "--exec-root", d + "/exec", "--pidfile", d + "/docker.pid",
                "--iptables=false", "--bridge=none", "--storage-driver=vfs", *self.extra_args]

    def start(self, timeout=60):
        os.makedirs(self.dir, exist_ok=True)
        logf = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self.command(), stdout=logf, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True,
                                     env=self.env, cwd=self.cwd)
        logf.close()
        wait_until(self._ping_or_died, timeout, f"{self.name} /_ping on {self.sock}")
        log(f"{self.name} up (pid {self.proc.pid}) at {self.sock}")

    def _ping_or_died(self):
        if self.proc.poll() is not None:
            raise RuntimeError(f"{self.name} exited {self.proc.returncode}:\n"
                               f"{tail(self.log_path)}")
        return self.ping()

    def ping(self):
        try:
            status, _, body = http_request(None, None, "GET", "/_ping", unix_path=self.sock,
                                           timeout=2)
            return status == 200 and body == b"OK"
        except OSError:
            return False

    def stop(self, timeout=60):
        """SIGTERM and wait for exit (dockerd also stops its containerd)."""
        if self.proc is None or self.proc.poll() is not None:
            return
        if not terminate(self.proc, timeout):
            log(f"{self.name} did not exit after SIGTERM; SIGKILL")
        log(f"{self.name} stopped (exit {self.proc.returncode})")
        # The socket file stays; nothing listens on it any more.

    def restart(self):
        self.stop()
        self.start()

    def close(self):
        """The end of a workspace: stopped (dockerd stops its containers too)."""
        self.stop()

    def forget_events(self):
        """Makes a stopped engine forget the events it had: nothing to do for dockerd, which
        keeps them only in memory (engines.PodmanService keeps them in a file)."""
        assert self.proc is None or self.proc.poll() is not None, "the engine is running"

    def run_health_check(self, name):
        """Runs container `name`'s health check now, for an engine that does not schedule
        them (schedules_health_checks False)."""
        raise NotImplementedError(f"{self.name} runs health checks itself")

    def docker(self, *args, check=True, timeout=60):
        """Runs the docker CLI against this engine; returns stdout stripped."""
        env = dict(os.environ, DOCKER_HOST=self.endpoint)
        env.pop("DOCKER_CONTEXT", None)
        res = subprocess.run([self.cli or docker_cli(), *args], env=env, capture_output=True,
                             text=True, timeout=timeout)
        if check and res.returncode != 0:
            raise RuntimeError(f"docker {' '.join(args)} -> {res.returncode}: {res.stderr}")
        return res.stdout.strip()

    def api(self, method, path, body=None, timeout=30):
        """Engine API call over the socket; returns (status, parsed JSON or raw bytes)."""
        status, _, data = http_request(None, None, method, path, body=body, timeout=timeout,
                                       unix_path=self.sock)
        try:
            return status, json.loads(data) if data else None
        except ValueError:
            return status, data

    def events(self, since, until, container_ids=None):
        """The engine's own container events in [since, until] (float unix seconds), in order,
        as the raw JSON objects of GET /events."""
        filters = {"type": ["container"]}
        q = f"/events?since={since:.9f}&until={until:.9f}&filters=" + \
            urllib_quote(json.dumps(filters))
        status, _, data = http_request(None, None, "GET", q, unix_path=self.sock, timeout=30)
        if status != 200:
            raise RuntimeError(f"GET {q} -> {status}: {data[:300]!r}")
        events = [json.loads(line) for line in data.decode().splitlines() if line.strip()]
        if container_ids is not None:
            events = [e for e in events if e["Actor"]["ID"] in container_ids]
        return events

    def make_busybox_image(self, tag=TEST_IMAGE):
        """Imports a rootfs built from Debian's busybox-static as `tag` (if not there yet)."""
        if self.docker("images", "-q", tag):
            return
        rootfs = os.path.join(self.dir, "bbroot")
        bindir = os.path.join(rootfs, "bin")
        os.makedirs(bindir, exist_ok=True)
        busybox = "/bin/busybox"
        shutil.copy2(busybox, os.path.join(bindir, "busybox"))
        applets = subprocess.run([busybox, "--list"], capture_output=True, text=True,
                                 check=True).stdout.split()
        for applet in applets:
            if applet != "busybox":
                link = os.path.join(bindir, applet)
                if not os.path.lexists(link):
                    os.symlink("busybox", link)  # relative
        for d in ("etc", "tmp", "proc", "sys", "dev", "usr/bin", "sbin"):
            os.makedirs(os.path.join(rootfs, d), exist_ok=True)
        tar = subprocess.Popen(["tar", "-C", rootfs, "-c", "."], stdout=subprocess.PIPE)
        env = dict(os.environ, DOCKER_HOST=self.endpoint)
        res = subprocess.run([self.cli or docker_cli(), "import", "-", tag], stdin=tar.stdout,
                             env=env, capture_output=True, text=True, timeout=120)
        tar.stdout.close()
        tar.wait()
        if res.returncode != 0:
            raise RuntimeError(f"docker import failed: {res.stderr}")
        shutil.rmtree(rootfs, ignore_errors=True)
        log(f"imported {tag}")

    def remove_all_containers(self):
        ids = self.docker("ps", "-aq", check=False).split()
        if ids:
            self.docker("rm", "-f", *ids, check=False)


def urllib_quote(s):
    import urllib.parse
    return urllib.parse.quote(s, safe="")


# ----------------------------------------------------------------------------------------------
# The agent under test

class Agent:
    def __init__(self, binary, endpoint, data_dir, port=None, extra_args=(), env=None,
                 log_dir=None, reconnect_max_backoff=1):
        self.binary = binary
        self.endpoint = endpoint
        self.data_dir = data_dir
        self.port = port or free_port()
        self.extra_args = list(extra_args)
        self.env = dict(env or {})
        self.log_path = os.path.join(log_dir or data_dir + ".logs", "agent.stderr")
        self.stdout_path = os.path.join(os.path.dirname(self.log_path), "agent.stdout")
        self.reconnect_max_backoff = reconnect_max_backoff
        self.proc = None

    def args(self):
        return [self.binary, "--docker-endpoint", self.endpoint, "--data-directory",
                self.data_dir, "--health-address", "127.0.0.1", "--health-port",
                str(self.port), "--log-level", "debug", "--reconnect-max-backoff-seconds",
                str(self.reconnect_max_backoff), *self.extra_args]

    def start(self):
        os.makedirs(os.path.dirname(self.log_path), exist_ok=True)
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("ZASTAVA_AGENT__") and k != "DOCKER_HOST"}
        env.update(self.env)
        self._err = open(self.log_path, "ab")
        self._out = open(self.stdout_path, "ab")
        self.proc = subprocess.Popen(self.args(), stdout=self._out, stderr=self._err,
                                     stdin=subprocess.DEVNULL, env=env)
        log(f"agent started (pid {self.proc.pid}) endpoint={self.endpoint} port={self.port}")
        return self

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def http_get(self, path, timeout=5):
        status, _, body = http_request("127.0.0.1", self.port, "GET", path, timeout=timeout)
        return status, body.decode(errors="replace")

    def wait_http(self, timeout=20):
        """Waits until the health server answers at all (any status)."""
        def up():
            if not self.alive():
                raise AssertionError(f"agent exited {self.proc.returncode}:\n{self.log_text()}")
            return self.http_get("/livez")[0] > 0
        wait_until(up, timeout, f"agent health server on port {self.port}")

    def wait_ready(self, timeout=30):
        def ready():
            if not self.alive():
                raise AssertionError(f"agent exited {self.proc.returncode}:\n{self.log_text()}")
            return self.http_get("/readyz")[0] == 200
        try:
            wait_until(ready, timeout, "agent /readyz 200")
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n--- agent log tail ---\n{tail(self.log_path)}")

    def wait_readyz(self, status, timeout=30, body_pred=None):
        def check():
            if not self.alive():
                raise AssertionError(f"agent exited {self.proc.returncode}")
            s, b = self.http_get("/readyz")
            return (s, b) if s == status and (body_pred is None or body_pred(b)) else None
        return wait_until(check, timeout, f"agent /readyz {status}")

    def metrics(self):
        status, body = self.http_get("/metrics")
        assert status == 200, f"/metrics -> {status}"
        return body

    def metric_value(self, name, labels=None):
        return metric_value(self.metrics(), name, labels)

    def stop(self, sig=signal.SIGTERM, timeout=15):
        """Sends sig, waits; returns (exit code, seconds taken)."""
        if self.proc is None:
            return None, 0.0
        t0 = time.monotonic()
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
                return None, time.monotonic() - t0
        self._close()
        return self.proc.returncode, time.monotonic() - t0

    def kill9(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self._close()

    def _close(self):
        for f in (getattr(self, "_err", None), getattr(self, "_out", None)):
            if f and not f.closed:
                f.close()

    def log_text(self):
        try:
            with open(self.log_path, "r", errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def stdout_text(self):
        try:
            with open(self.stdout_path, "r", errors="replace") as f:
                return f.read()
        except OSError:
            return ""


def run_agent_once(binary, args, env=None, timeout=10):
    """Runs the agent to completion (config checks, --help, ...). Returns CompletedProcess."""
    full_env = {k: v for k, v in os.environ.items()
                if not k.startswith("ZASTAVA_AGENT__") and k != "DOCKER_HOST"}
    full_env.update(env or {})
    return subprocess.run([binary, *args], env=full_env, capture_output=True, text=True,
                          timeout=timeout)


# ----------------------------------------------------------------------------------------------
# Prometheus text helpers

_SAMPLE_RE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)')
_LABEL_RE = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse_metrics(text):
    """[(name, {labels}, float value)] for every sample line."""
    samples = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = _SAMPLE_RE.match(line)
        if m:
            labels = dict(_LABEL_RE.findall(m.group(2) or ""))
            samples.append((m.group(1), labels, float(m.group(3))))
    return samples


def metric_value(text, name, labels=None):
    """The value of the first sample of `name` whose labels include `labels`; None if absent."""
    for n, l, v in parse_metrics(text):
        if n == name and all(l.get(k) == val for k, val in (labels or {}).items()):
            return v
    return None


# ----------------------------------------------------------------------------------------------
# haproxy configured the way tecnativa/docker-socket-proxy does it

PROXY_SECTIONS = [
    # (env var, path section) as in the tecnativa image, alphabetical by variable.
    ("AUTH", "auth"), ("BUILD", "build"), ("COMMIT", "commit"), ("CONFIGS", "configs"),
    ("CONTAINERS", "containers"), ("DISTRIBUTION", "distribution"), ("EVENTS", "events"),
    ("EXEC", "exec"), ("GRPC", "grpc"), ("IMAGES", "images"), ("INFO", "info"),
    ("NETWORKS", "networks"), ("NODES", "nodes"), ("PING", "_ping"), ("PLUGINS", "plugins"),
    ("SECRETS", "secrets"), ("SERVICES", "services"), ("SESSION", "session"),
    ("SWARM", "swarm"), ("SYSTEM", "system"), ("TASKS", "tasks"), ("VERSION", "version"),
    ("VOLUMES", "volumes"),
]


def haproxy_errors_dir():
    for d in ("/usr/share/haproxy/errors", "/etc/haproxy/errors"):
        if os.path.exists(os.path.join(d, "403.http")):
            return d
    raise RuntimeError("no haproxy errors/403.http found (is Debian's haproxy installed?)")


class Haproxy:
    """haproxy in front of a docker socket; permissions are environment variables (1/0)."""

    def __init__(self, work_dir, socket_path, allow=None, listen_port=None, stream_timeout=None):
        """stream_timeout (e.g. "2s"): `timeout client` and `timeout server` everywhere, the
        events backend included, so haproxy cuts a stream silent that long."""
        self.dir = work_dir
        self.stream_timeout = stream_timeout
        self.socket_path = socket_path
        self.port = listen_port or free_port()
        self.allow = dict(allow if allow is not None else
                          {"CONTAINERS": 1, "EVENTS": 1, "PING": 1, "VERSION": 1})
        self.cfg_path = os.path.join(work_dir, f"haproxy-{self.port}.cfg")
        self.log_path = os.path.join(work_dir, f"haproxy-{self.port}.log")
        self.proc = None

    def config_text(self):
        errors = haproxy_errors_dir()
        p = "path,url_dec -m reg -i ^(/v[\\d\\.]+)?(/\\w+)?/"
        lines = [
            "global",
            "    log stdout format raw daemon info",
            "    maxconn 4000",
            "",
            "defaults",
            "    mode http",
            "    log global",
            "    option httplog",
            "    option dontlognull",
            "    option http-server-close",
            "    option redispatch",
            "    retries 3",
            "    timeout http-request 10s",
            "    timeout queue 1m",
            "    timeout connect 10s",
            f"    timeout client {self.stream_timeout or '10m'}",
            f"    timeout server {self.stream_timeout or '10m'}",
            "    timeout http-keep-alive 10s",
            "    timeout check 10s",
            "    maxconn 3000",
        ]
        for code in (400, 403, 408, 500, 502, 503, 504):
            if os.path.exists(f"{errors}/{code}.http"):
                lines.append(f"    errorfile {code} {errors}/{code}.http")
        lines += [
            "",
            "backend dockerbackend",
            f"    server dockersocket {self.socket_path}",
            "",
            "backend docker-events",
            f"    server dockersocket {self.socket_path}",
            f"    timeout server {self.stream_timeout or '0'}",
            "",
            "frontend dockerfrontend",
            f"    bind 127.0.0.1:{self.port}",
            "    http-request deny unless METH_GET || { env(POST) -m bool }",
        ]
        for var, section in PROXY_SECTIONS:
            lines.append(f"    http-request allow if {{ {p}{section} }} {{ env({var}) -m bool }}")
        lines += [
            "    http-request deny",
            "    default_backend dockerbackend",
            f"    use_backend docker-events if {{ {p}events }}",
            "",
        ]
        return "\n".join(lines)

    def environment(self):
        env = {k: v for k, v in os.environ.items()}
        for var, _ in PROXY_SECTIONS:
            env[var] = str(int(self.allow.get(var, 0)))
        env["POST"] = str(int(self.allow.get("POST", 0)))
        return env

    def start(self, timeout=15):
        os.makedirs(self.dir, exist_ok=True)
        with open(self.cfg_path, "w") as f:
            f.write(self.config_text())
        check = subprocess.run(["haproxy", "-c", "-f", self.cfg_path], env=self.environment(),
                               capture_output=True, text=True)
        if check.returncode != 0:
            raise RuntimeError(f"haproxy -c failed:\n{check.stdout}\n{check.stderr}")
        logf = open(self.log_path, "ab")
        self.proc = subprocess.Popen(["haproxy", "-f", self.cfg_path, "-db"],
                                     env=self.environment(), stdout=logf,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     start_new_session=True)
        logf.close()

        def up():
            if self.proc.poll() is not None:
                raise RuntimeError(f"haproxy exited {self.proc.returncode}: "
                                   f"{tail(self.log_path)}")
            return port_open(self.port)
        wait_until(up, timeout, f"haproxy on 127.0.0.1:{self.port}")
        log(f"haproxy up (pid {self.proc.pid}) on :{self.port} allow={self.allow}")
        return self

    @property
    def endpoint(self):
        return f"tcp://127.0.0.1:{self.port}"

    def request(self, method, path, body=None):
        """(status, headers, body bytes) through the proxy."""
        return http_request("127.0.0.1", self.port, method, path, body=body)

    def stop(self):
        terminate(self.proc, 10)

    def log_text(self):
        return tail(self.log_path, 10 ** 7)

    def requests_seen(self):
        """[(status, method, path)] from haproxy's httplog lines."""
        out = []
        for line in self.log_text().splitlines():
            m = re.search(r' (\d{3}) .*"([A-Z]+) (\S+) HTTP/[\d.]+"', line)
            if m:
                out.append((int(m.group(1)), m.group(2), m.group(3)))
        return out


# ----------------------------------------------------------------------------------------------
# The agent's output: NDJSON segments, SQLite, hash chain, ids

def expected_event_id(event):
    """eventId of an engine event as the agent must compute it."""
    text = "engine\n{}\n{}\n{}\n{}".format(event["Type"], event["Action"], event["Actor"]["ID"],
                                         event["timeNano"])
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def segment_paths(data_dir):
    d = os.path.join(data_dir, "runtime-events")
    if not os.path.isdir(d):
        return []
    names = [n for n in os.listdir(d) if n.startswith("events-") and n.endswith(".ndjson")]

    def seq(name):  # docs/records.md: ordered by the last number in the name
        nums = re.findall(r"\d+", name)
        return (int(nums[-1]) if nums else -1, name)
    return [os.path.join(d, n) for n in sorted(names, key=seq)]



class Tailer(threading.Thread):
    """Polls files every 1 ms and stamps each new complete line with time.time_ns() taken after
    the read that found it. sources: name -> function returning the current paths (in order)."""

    def __init__(self, sources):
        super().__init__(daemon=True, name="tailer")
        self.sources = sources
        self.lines = {name: [] for name in sources}
        self.state = {}  # path -> [fd, partial bytes]
        self.halt = threading.Event()

    def run(self):
        while not self.halt.is_set():
            for name, paths in self.sources.items():
                for path in paths():
                    self.poll(name, path)
            time.sleep(0.001)
        for st in self.state.values():
            os.close(st[0])

    def poll(self, name, path):
        st = self.state.get(path)
        if st is None:
            try:
                st = self.state[path] = [os.open(path, os.O_RDONLY), b""]
            except FileNotFoundError:
                return
        chunks = []
        while True:
            block = os.read(st[0], 1 << 20)
            if not block:
                break
            chunks.append(block)
        if not chunks:
            return
        seen = time.time_ns()
        data = st[1] + b"".join(chunks)
        *complete, st[1] = data.split(b"\n")
        self.lines[name].extend((line, seen) for line in complete if line)

    def stop(self):
        self.halt.set()
        self.join(10)


def read_ndjson(data_dir):
    """All complete lines of all segments, in file-name order (raw strings, no newline)."""
    lines = []
    for path in segment_paths(data_dir):
        with open(path, "r", encoding="utf-8") as f:
            data = f.read()
        parts = data.split("\n")
        # A final part without "\n" is a line still being written: ignore it.
        lines.extend(p for p in parts[:-1] if p)
    return lines


def db_path(data_dir):
    return os.path.join(data_dir, "zastava-agent.db")


def read_sqlite(data_dir, query="SELECT event_id, kind, container_id, time_nano, source, record "
                                "FROM events ORDER BY rowid"):
    """Rows of `query` on the agent's database, opened read-only."""
    path = db_path(data_dir)
    if not os.path.exists(path):
        return []
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    try:
        return conn.execute(query).fetchall()
    finally:
        conn.close()


def read_table(data_dir, table):
    """All rows of a table as dicts (read-only)."""
    path = db_path(data_dir)
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    conn.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in conn.execute(f"SELECT * FROM {table}")]
    finally:
        conn.close()


def read_containers_table(data_dir):
    return read_table(data_dir, "containers")


def rfc3339_to_nanos(text):
    """'2026-11-22T14:33:46.456774704Z' -> integer nanoseconds since the epoch."""
    import calendar
    m = re.match(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)\.(\d{9})Z$", text)
    if not m:
        raise ValueError(f"not RFC 3339 with 9 fractional digits: {text!r}")
    secs = calendar.timegm(time.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S"))
    return secs * 1_000_000_000 + int(m.group(2))


_HASH_SUFFIX_RE = re.compile(r',"hash":"([0-9a-f]{64})"\}$')


def line_hash(line):
    """A record's hash (docs/records.md, "Verifying the hash chain"): the SHA-256 of its line;
    a line of schema 6 or older carries it as its last key "hash" instead. Returns (hash,
    problem or None)."""
    m = _HASH_SUFFIX_RE.search(line)
    if not m:
        return hashlib.sha256(line.encode("utf-8")).hexdigest(), None
    digest = hashlib.sha256((line[:m.start()] + "}").encode("utf-8")).hexdigest()
    if digest != m.group(1):
        return m.group(1), f"hash {m.group(1)} != sha256(canonical) {digest}"
    return m.group(1), None


def engine_time_nano(rec):
    """The engine's timeNano of a record of an engine event (its `time`, docs/records.md), or
    None for a record of no engine event."""
    if rec.get("source") not in ("stream", "replay") or \
            rec.get("kind") in ("container.inspect", "container.evidence"):
        return None
    return rfc3339_to_nanos(rec["time"])


def verify_chain(lines):
    """Checks the prevHash links (and the own hash of schema 6 lines). Returns a list of
    problems (empty = ok)."""
    problems = []
    prev = GENESIS_HASH
    for i, line in enumerate(lines):
        digest, problem = line_hash(line)
        if problem:
            problems.append(f"line {i}: {problem}")
        rec = json.loads(line)
        if rec.get("prevHash") != prev:
            problems.append(f"line {i}: prevHash {rec.get('prevHash')} != previous hash {prev}")
        prev = digest
    return problems


def load_schema(source_dir):
    path = os.path.join(source_dir, "docs", "record-schema.json")
    if not os.path.exists(path):
        return None, path
    with open(path) as f:
        return json.load(f), path


def schema_errors(schema, records):
    """[message] for every record that does not validate (at most a few per record)."""
    import jsonschema
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    validator = cls(schema, format_checker=cls.FORMAT_CHECKER)
    out = []
    for i, rec in enumerate(records):
        for err in list(validator.iter_errors(rec))[:3]:
            out.append(f"record {i} ({rec.get('kind')}): {err.json_path}: {err.message}")
    return out


def engine_kind(event):
    """The record kind of a container event (docs/records.md, "Engine actions and record
    kinds")."""
    return "container." + record_action(event)[0]


def split_action(raw):
    verb, _, detail = raw.partition(": ")
    return verb, detail


# docs/records.md, "Engine actions and record kinds": Podman's words for Docker's actions.
PODMAN_ACTIONS = {"remove": "destroy", "exec": "exec_start", "exec_died": "exec_die"}


def record_action(event):
    """(action, actionDetail, engineAction) of the record the agent writes for a container
    event, as docs/records.md says: Docker's words (Podman's remove, exec and exec_died
    mapped), a Podman health_status's status from the event's top-level HealthStatus, and
    engineAction the Action as sent when action and detail do not spell it (None otherwise)."""
    verb, detail = split_action(event["Action"])
    action = PODMAN_ACTIONS.get(verb, verb)
    if action == "health_status" and not detail:
        detail = event.get("HealthStatus") or ""
    mapped = (action, detail) != (verb, split_action(event["Action"])[1])
    return action, detail, event["Action"] if mapped else None


class Workspace:
    """A /tmp/zit-XXXX directory with dockerd, haproxy and agents to clean up in reverse order.
    Kept on failure when ZIT_KEEP=1."""

    def __init__(self):
        self.dir = make_workdir()
        self._cleanups = []
        self._agents = []
        self._closed = False
        log(f"workspace {self.dir}")

    def on_cleanup(self, fn):
        self._cleanups.append(fn)

    def dockerd(self, name="d", extra_args=()):
        """The engine ZIT_ENGINE names (engines.make_engine: Debian 12's dockerd unless set),
        started in DIR/NAME, closed at the workspace's close."""
        import engines  # not at the top: engines imports this module
        d = engines.make_engine(os.path.join(self.dir, name), extra_args)
        self.on_cleanup(d.close)
        d.start()
        return d

    def haproxy(self, socket_path, allow=None, **kw):
        h = Haproxy(os.path.join(self.dir, "proxy"), socket_path, allow, **kw)
        self.on_cleanup(h.stop)
        return h.start()

    def agent(self, binary, endpoint, name="a", **kw):
        data = os.path.join(self.dir, name, "data")
        a = Agent(binary, endpoint, data, log_dir=os.path.join(self.dir, name), **kw)
        self.on_cleanup(a.kill9)
        self._agents.append(a)
        return a

    def respawn(self, old, **kw):
        """A new Agent on old's data directory and port (its log gets a .N suffix), not started.
        kw overrides constructor arguments (extra_args, env, ...)."""
        n = sum(1 for a in self._agents if a.data_dir == old.data_dir) + 1
        base = old.log_path.split(".stderr")[0] + ".stderr"
        args = dict(port=old.port, extra_args=old.extra_args, env=old.env,
                    log_dir=os.path.dirname(base),
                    reconnect_max_backoff=old.reconnect_max_backoff)
        args.update(kw)
        a = Agent(old.binary, old.endpoint, old.data_dir, **args)
        a.log_path = f"{base}.{n}"
        a.stdout_path = f"{a.stdout_path}.{n}"
        self.on_cleanup(a.kill9)
        self._agents.append(a)
        return a

    def close(self):
        if self._closed:
            return
        self._closed = True
        for a in self._agents:  # shown by ctest --output-on-failure
            print(f"--- tail of {a.log_path} ---\n{tail(a.log_path, 3000)}", flush=True)
        for fn in reversed(self._cleanups):
            try:
                fn()
            except Exception as exc:
                log(f"cleanup error: {exc!r}")
        if os.environ.get("ZIT_KEEP") != "1":
            shutil.rmtree(self.dir, ignore_errors=True)
        else:
            log(f"kept {self.dir}")


class WorkspaceTest(unittest.TestCase):
    """A test class with one Workspace (cls.ws) for all its tests. Subclasses put their set-up
    in the classmethod set_up(cls); if it raises, the workspace is closed (and the error
    reported) before unittest gives up on the class."""

    @classmethod
    def setUpClass(cls):
        cls.ws = Workspace()
        try:
            cls.set_up()
        except BaseException:
            cls.ws.close()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.ws.close()

    @classmethod
    def set_up(cls):
        pass


# ----------------------------------------------------------------------------------------------
# Comparing what the engine said with what the agent wrote

def rfc3339_nanos(time_nano):
    secs, nanos = divmod(int(time_nano), 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + f".{nanos:09d}Z"


def container_life(d, agent, name, wait=True):
    """A container created, started, stopped and removed on dockerd `d`; waits until `agent`
    has recorded each of its engine events (when `wait` and the agent runs). Returns their
    eventIds. Raises AssertionError when the engine sent fewer than 5 events or the agent
    missed one."""
    t0 = time.time()
    cid = d.docker("create", "--name", name, TEST_IMAGE, *IDLE_CMD)
    d.docker("start", name)
    d.docker("stop", "-t", "5", name)
    d.docker("rm", name)
    ids = [expected_event_id(e) for e in d.events(t0 - 0.05, time.time() + 0.3, [cid])]
    if len(ids) < 5:
        raise AssertionError(f"engine events of {name}: {len(ids)}, expected at least 5")
    if wait and agent is not None and agent.alive():
        missed = wait_recorded(agent, ids, timeout=30)
        if missed:
            raise AssertionError(f"engine events of {name} not recorded by the agent: {missed}")
    return ids


def wait_recorded(agent, event_ids, timeout=30):
    """Polls SQLite until every id in event_ids has a row. Returns the missing ids on timeout
    (an empty set when all arrived) so the test can report them precisely."""
    missing = set(event_ids)

    def all_there():
        nonlocal missing
        have = {r[0] for r in read_sqlite(agent.data_dir, "SELECT event_id FROM events")}
        missing = set(event_ids) - have
        return not missing
    try:
        wait_until(all_there, timeout, f"{len(event_ids)} engine events in SQLite")
    except AssertionError:
        pass
    return missing


# The record fields exactly_once_problems compares with the engine's event.
EVENT_FIELDS = ("kind", "time", "actionDetail", "engineAction", "container.id", "attributes",
                "source")


def unsaid_attributes(event, verb, rec, labels):
    """The engine event's attributes the record does not say (docs/records.md: `attributes`
    holds what the container block does not; image and name are container.image and .name, a
    die's exitCode is container.exitCode, and the labels are said once per container: `labels`,
    what the ledger's records said of this container's labels), and the record's attributes
    that the engine did not send. Returns a list of problem texts."""
    attrs = rec.get("attributes", {})
    container = rec.get("container") or {}
    problems = [f"attribute {k}={v!r} not sent" for k, v in attrs.items()
                if event["Actor"].get("Attributes", {}).get(k) != v]
    said_elsewhere = {"image": container.get("image"), "name": container.get("name")}
    if verb == "die" and "exitCode" in container:
        said_elsewhere["exitCode"] = str(container["exitCode"])
    for key, value in event["Actor"].get("Attributes", {}).items():
        if attrs.get(key) != value and said_elsewhere.get(key) != value and \
                labels.get(key) != value:
            problems.append(f"attribute {key}={value!r} said nowhere")
    return problems


def exactly_once_problems(engine_events, records, where, counts=None):
    """For each engine event: exactly one record with its expected eventId whose fields match
    (EVENT_FIELDS; the action in Docker's words, record_action). records: parsed JSON objects.
    Returns a list of problem strings; adds the fields compared to counts["fields"] if given."""
    problems = []
    by_id = {}
    labels = {}  # container id -> the labels the ledger says it has
    for rec in records:
        by_id.setdefault(rec.get("eventId"), []).append(rec)
        container = rec.get("container") or {}
        labels.setdefault(container.get("id"), {}).update(container.get("labels", {}))
    for ev in engine_events:
        eid = expected_event_id(ev)
        desc = f"{ev['Action']!r} of {ev['Actor']['ID'][:12]} at {ev['timeNano']}"
        found = by_id.get(eid, [])
        if len(found) != 1:
            problems.append(f"{where}: {desc} (eventId {eid}) appears {len(found)} times")
            continue
        rec = found[0]
        verb, detail, engine_action = record_action(ev)
        want = {"kind": "container." + verb, "time": rfc3339_nanos(ev["timeNano"])}
        got = {k: rec.get(k) for k in want}
        if got != want:
            problems.append(f"{where}: {desc}: fields {got} != expected {want}")
        for gone in ("timeNano", "action", "hash"):  # schema 7 says each of them elsewhere
            if gone in rec:
                problems.append(f"{where}: {desc}: has {gone}")
        if rec.get("actionDetail", "") != detail:  # exactly what followed ": ", or absent
            problems.append(f"{where}: {desc}: actionDetail {rec.get('actionDetail')!r} != "
                            f"{detail!r}")
        if rec.get("engineAction") != engine_action:  # only where the agent mapped it
            problems.append(f"{where}: {desc}: engineAction {rec.get('engineAction')!r} != "
                            f"{engine_action!r}")
        if (rec.get("container") or {}).get("id") != ev["Actor"]["ID"]:
            problems.append(f"{where}: {desc}: container.id {rec.get('container')}")
        for problem in unsaid_attributes(ev, verb, rec, labels.get(ev["Actor"]["ID"], {})):
            problems.append(f"{where}: {desc}: {problem}")
        if rec.get("source") not in ("stream", "replay"):
            problems.append(f"{where}: {desc}: source {rec.get('source')!r}")
        if counts is not None:
            counts["fields"] = counts.get("fields", 0) + len(EVENT_FIELDS)
    return problems


# ----------------------------------------------------------------------------------------------
# Fault tests: the agent's ledger against the engine's truth, and a summary table

def engine_containers(d):
    """{id: inspect JSON} of every container the engine has (all states); {} for d=None."""
    if d is None:
        return {}
    out = {}
    for cid in d.docker("ps", "-aq", "--no-trunc").split():
        status, info = d.api("GET", f"/containers/{cid}/json")
        if status == 200:
            out[cid] = info
    return out


def wait_engine_settled(d, timeout=60):
    """Waits until no container is restarting or being removed (states the ledger never has)."""
    if d is None:
        return
    wait_until(lambda: all(c["State"]["Status"] not in ("restarting", "removing")
                           for c in engine_containers(d).values()),
               timeout, "engine containers to settle (none restarting/removing)")


def table_problems(d, data_dir, destroyed_ids=(), unknowable_ids=(), counts=None):
    """(a): the containers table against the engine. Every container the engine has: a row
    with the same name, state and (for exited ones) exit code. Every id in destroyed_ids: state
    removed (no row allowed only for unknowable_ids: containers whose whole life fell where the
    engine could report nothing). Every row not removed: the engine must still have it.
    With counts: adds the containers compared ("containers"), those whose row agreed ("equal")
    and the fields compared ("fields")."""
    engine = engine_containers(d)
    try:
        rows = {r["container_id"]: r for r in read_containers_table(data_dir)}
    except sqlite3.Error as exc:
        return [f"containers table unreadable: {exc}"]
    problems = []
    tally = {"containers": 0, "equal": 0, "fields": 0}

    def compared(fields, problem=None):
        tally["containers"] += 1
        tally["fields"] += fields
        if problem:
            problems.append(problem)
        else:
            tally["equal"] += 1
    for cid, info in sorted(engine.items()):
        st = info["State"]
        name = info["Name"].lstrip("/")
        row = rows.get(cid)
        if row is None:
            compared(0, f"table: engine has {name} ({cid[:12]}) {st['Status']}, no row")
            continue
        got = (row["name"], row["state"])
        if got != (name, st["Status"]):
            compared(2, f"table: {name} ({cid[:12]}) is {got}, engine says "
                        f"{(name, st['Status'])}")
        elif st["Status"] == "exited":
            compared(3, None if row["exit_code"] == st["ExitCode"] else
                     f"table: {name} ({cid[:12]}) exit_code {row['exit_code']!r}, engine says "
                     f"{st['ExitCode']}")
        else:
            compared(2)
    for cid in destroyed_ids:
        if cid in engine:
            continue
        row = rows.get(cid)
        if row is None:
            if cid not in unknowable_ids:
                compared(0, f"table: destroyed container {cid[:12]} has no row")
        elif row["state"] != "removed":
            compared(1, f"table: destroyed container {row['name']} ({cid[:12]}) has state "
                        f"{row['state']!r}, not 'removed'")
        else:
            compared(1)
    for cid, row in sorted(rows.items()):
        if cid not in engine and cid not in destroyed_ids:
            compared(1, None if row["state"] == "removed" else
                     f"table: {row['name']} ({cid[:12]}) is {row['state']!r}; the engine no "
                     f"longer has it")
    if counts is not None:
        for k, v in tally.items():
            counts[k] = counts.get(k, 0) + v
    return problems


def wait_table_agrees(d, agent, destroyed_ids=(), unknowable_ids=(), timeout=30):
    """Polls (a) until it holds; returns the remaining problems (empty = agrees)."""
    problems = []

    def ok():
        nonlocal problems
        problems = table_problems(d, agent.data_dir, destroyed_ids, unknowable_ids)
        return not problems
    try:
        wait_until(ok, timeout, "containers table to agree with the engine", interval=0.5)
    except AssertionError:
        pass
    return problems


_GAP_KEYS = ["from", "to", "fromTimeNano", "toTimeNano", "reason"]


def gap_records(records):
    return [r for r in records if r.get("kind") == "agent.gap"]


def gap_problems(records):
    """Shape of every agent.gap record (docs/records.md)."""
    problems = []
    for r in gap_records(records):
        g = r.get("gap")
        if r.get("source") != "reconcile":
            problems.append(f"agent.gap {r.get('eventId')}: source {r.get('source')!r}")
        if "container" in r:
            problems.append(f"agent.gap {r.get('eventId')}: has a container key")
        if not isinstance(g, dict) or list(g) != _GAP_KEYS:
            problems.append(f"agent.gap {r.get('eventId')}: gap {g!r}, want keys {_GAP_KEYS}")
            continue
        try:
            if rfc3339_to_nanos(g["from"]) != g["fromTimeNano"] or \
                    rfc3339_to_nanos(g["to"]) != g["toTimeNano"]:
                problems.append(f"agent.gap {r['eventId']}: from/to != fromTimeNano/toTimeNano")
        except (ValueError, TypeError) as exc:
            problems.append(f"agent.gap {r['eventId']}: {exc}")
            continue
        if g["fromTimeNano"] > g["toTimeNano"]:
            problems.append(f"agent.gap {r['eventId']}: from after to: {g}")
        if not g["reason"]:
            problems.append(f"agent.gap {r['eventId']}: empty reason")
    return problems


def stop_and_check_ledger(test, agent, expected, missing, source_dir):
    """Stops `agent` (it must exit 0) and checks its files against the engine's `expected`
    events; `missing` are the expected eventIds that never reached SQLite.
    Returns (problems, stats, records) as ledger_file_problems does."""
    code, _ = agent.stop()
    test.assertEqual(code, 0, tail(agent.log_path))
    problems, stats, records = ledger_file_problems(agent.data_dir, expected, source_dir)
    if missing:
        problems.append(f"{len(missing)} engine events never reached SQLite")
    return problems, stats, records


def ledger_file_problems(data_dir, engine_events, source_dir, counts=None):
    """(b) + (c) on the files of a stopped agent. Returns (problems, stats, records): stats has
    expected / recorded / duplicates / missing as in the fault summary table. counts: as
    exactly_once_problems'."""
    problems = []
    lines = read_ndjson(data_dir)
    records = [json.loads(x) for x in lines]
    rows = read_sqlite(data_dir)
    # (b) every engine event exactly once, with the engine's fields
    problems += exactly_once_problems(engine_events, records, "ndjson", counts)
    have = {}
    for r in records:
        have[r.get("eventId")] = have.get(r.get("eventId"), 0) + 1
    expected = {expected_event_id(e) for e in engine_events}
    recorded = sum(1 for i in expected if have.get(i))
    dupes = sorted(i for i, n in have.items() if n > 1)
    # (c) no id twice, NDJSON == SQLite, chain, schema
    if dupes:
        problems.append(f"ndjson: {len(dupes)} eventIds more than once: {dupes[:5]}")
    sql_ids = [r[0] for r in rows]
    if len(sql_ids) != len(set(sql_ids)):
        problems.append("sqlite: an event_id more than once")
    if lines != [r[5] for r in rows]:
        problems.append(f"NDJSON ({len(lines)} lines) != SQLite record column ({len(rows)} rows)"
                        + first_difference(lines, [r[5] for r in rows]))
    problems += verify_chain(lines)
    schema, path = load_schema(source_dir)
    if schema is None:
        problems.append(f"{path} missing")
    else:
        problems += schema_errors(schema, records)
    problems += gap_problems(records)
    # A container is created once and destroyed once: never a second record of either.
    seen = {}
    for r in records:
        if r.get("kind") in ("container.create", "container.destroy"):
            key = (r["kind"], (r.get("container") or {}).get("id"))
            seen.setdefault(key, []).append(r.get("source"))
    for (kind, cid), sources in sorted(seen.items()):
        if len(sources) > 1:
            problems.append(f"{kind} of {str(cid)[:12]} written {len(sources)} times "
                            f"(sources {sources})")
    stats = {"expected": len(expected), "recorded": recorded, "duplicates": len(dupes),
             "missing": len(expected) - recorded}
    return problems, stats, records


def first_difference(a, b):
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return f"; first difference at {i}: {x[:120]!r} vs {y[:120]!r}"
    return f"; one is a prefix of the other ({len(a)} vs {len(b)})"


# ----------------------------------------------------------------------------------------------
# Verifying a ledger (docs/records.md "Verifying the ledger"): `zastava-agent verify` and its
# second implementation, tests/buffer/verify_ledger.py, must agree

def export_seeds(binary, data_dir, out_dir):
    """`zastava-agent seal-key export` of data_dir, each printed seed line written to a file
    of its own in out_dir. Returns (CompletedProcess, [seed file paths])."""
    res = run_agent_once(binary, ["seal-key", "export", "--data-directory", data_dir],
                         timeout=30)
    os.makedirs(out_dir, exist_ok=True)
    paths = []
    for line in res.stdout.splitlines():
        parts = line.split()
        if len(parts) == 4 and parts[0] == "zastava-seal-seed":
            path = os.path.join(out_dir, f"seed-{parts[2]}")
            with open(path, "w") as f:
                f.write(line + "\n")
            os.chmod(path, 0o600)
            paths.append(path)
    return res, paths


def run_verifiers(binary, data_dir, source_dir, seal_keys=()):
    """Both verifiers on data_dir: {"cpp": (exit code, output), "py": (exit code, output)}."""
    keys = [a for k in seal_keys for a in ("--seal-key", k)]
    cpp = run_agent_once(binary, ["verify", "--data-directory", data_dir, *keys], timeout=120)
    py = subprocess.run([sys.executable,
                         os.path.join(source_dir, "tests", "buffer", "verify_ledger.py"),
                         data_dir, *keys], capture_output=True, text=True, timeout=120)
    return {"cpp": (cpp.returncode, cpp.stdout + cpp.stderr),
            "py": (py.returncode, py.stdout + py.stderr)}


def verify_problems(binary, data_dir, source_dir, seal_keys=(), expected=0, what="ledger"):
    """[] when both verifiers exit `expected` on data_dir; otherwise a problem naming each
    verifier's exit code and output."""
    results = run_verifiers(binary, data_dir, source_dir, seal_keys)
    codes = {name: code for name, (code, _) in results.items()}
    log(f"verify {what} ({len(seal_keys)} seed(s)): zastava-agent verify {codes['cpp']}, "
        f"verify_ledger.py {codes['py']}")
    if all(code == expected for code in codes.values()):
        return []
    return [f"verify {what}: expected exit {expected}, zastava-agent verify exited "
            f"{codes['cpp']}, verify_ledger.py {codes['py']}\n--- zastava-agent verify ---\n"
            f"{results['cpp'][1][-3000:]}\n--- verify_ledger.py ---\n{results['py'][1][-3000:]}"]


def seals_verify_problems(binary, data_dir, source_dir, work_dir, what="ledger"):
    """The fault tests' last check: the seeds exported, then both verifiers with and without
    them exit 0 on the data directory."""
    res, seeds = export_seeds(binary, data_dir, work_dir)
    problems = []
    if res.returncode != 0 or not seeds:
        problems.append(f"seal-key export of {what}: exit {res.returncode}, {len(seeds)} seeds: "
                        f"{res.stderr[-1000:]}")
    problems += verify_problems(binary, data_dir, source_dir, (), 0, what)
    if seeds:
        problems += verify_problems(binary, data_dir, source_dir, seeds, 0, what + " with seeds")
    return problems


FAULT_ROWS = []
_COLUMNS = ["fault", "times repeated", "events expected", "events recorded", "duplicates",
            "missing"]


def fault_row(fault, repeats, stats, note=""):
    row = [fault, str(repeats), str(stats["expected"]), str(stats["recorded"]),
           str(stats["duplicates"]), str(stats["missing"]), note]
    FAULT_ROWS.append(row)
    log("FAULT ROW | " + " | ".join(row))


def print_fault_summary():
    if not FAULT_ROWS:
        return
    widths = [max(len(c), *(len(r[i]) for r in FAULT_ROWS)) for i, c in enumerate(_COLUMNS)]
    fmt = lambda cells: " | ".join(c.ljust(w) for c, w in zip(cells, widths))  # noqa: E731
    print("\n==== FAULT SUMMARY ====")
    print(fmt(_COLUMNS))
    print("-+-".join("-" * w for w in widths))
    for r in FAULT_ROWS:
        print(fmt(r[:6]) + (f"   ({r[6]})" if r[6] else ""))
    print("=======================", flush=True)


# ----------------------------------------------------------------------------------------------
# The engine matrix: lifecycle, engine restart and proxy on each engine (ZIT_ENGINE),
# each ending with the agent's ledger against the engine's own /events; one row per script

class EngineSpan:
    """The engine's own container events from now on, across engine restarts: a restarted
    dockerd forgets its events, so read() before every engine stop and at the end; events
    holds the union (by eventId), in the engine's order."""

    def __init__(self, d):
        self.d = d
        self.since_ns = time.time_ns()
        self.events = []

    def read(self):
        """Adds what the engine reports from the span's start until now (a moment ahead, so
        the last events are in); returns events. (Asks from a second earlier and cuts at the
        start itself, whatever precision the engine's `since` has.)"""
        have = {expected_event_id(e) for e in self.events}
        self.events += [e for e in self.d.events(self.since_ns / 1e9 - 1, time.time() + 0.5)
                        if e["timeNano"] >= self.since_ns and expected_event_id(e) not in have]
        return self.events


_MATRIX_COLUMNS = ["test", "engine", "API version", "events expected", "recorded", "missing",
                   "duplicated", "final states equal", "fields checked"]
_MATRIX_WIDTHS = [14, 8] + [len(c) for c in _MATRIX_COLUMNS[2:]]  # aligned across scripts
MATRIX = {}  # this script's row, summed over the runs (agents) it compared


def engine_matrix_check(d, agent, events, source_dir):
    """The end of an engine-matrix run, on a stopped agent and a running engine: its ledger
    against `events`, what the engine itself reported of the span it watched (EngineSpan):
    each exactly once with the engine's fields, no eventId twice, NDJSON == SQLite, chain,
    schema (ledger_file_problems); and every container's final state in its table equal to the
    engine's (table_problems; those removed in `events` must be `removed`). Adds its counts to
    this script's ENGINE MATRIX row (printed by main()); returns the problems."""
    counts = {}
    problems, stats, _ = ledger_file_problems(agent.data_dir, events, source_dir, counts)
    destroyed = sorted({e["Actor"]["ID"] for e in events if record_action(e)[0] == "destroy"})
    problems += table_problems(d, agent.data_dir, destroyed, counts=counts)
    status, version = d.api("GET", "/version")
    api = version.get("ApiVersion") if status == 200 and isinstance(version, dict) else None
    if api != d.api_version:
        problems.append(f"{d.name} speaks API {api}, {type(d).__name__} says {d.api_version}")
    row = MATRIX.setdefault("row", {"engine": d.label, "api": api, "expected": 0,
                                    "recorded": 0, "missing": 0, "duplicates": 0,
                                    "containers": 0, "equal": 0, "fields": 0, "notes": []})
    for key in ("expected", "recorded", "missing", "duplicates"):
        row[key] += stats[key]
    for key in ("containers", "equal", "fields"):
        row[key] += counts.get(key, 0)
    log(f"ledger vs {d.name}: {stats}, {counts}, {len(problems)} problems")
    return problems


def skip_part(d, what, why):
    """A part of a test that `d` cannot do: said in the log and in the ENGINE MATRIX row, never
    silently."""
    log(f"SKIPPED on {d.label}: {what}: {why}")
    MATRIX.setdefault("skipped", []).append(what)


def print_matrix_row():
    """The ENGINE MATRIX header and this script's row (scripts/test.sh collects them from the
    test log: the lines that begin with "ENGINE MATRIX |")."""
    row = MATRIX.get("row")
    if not row:
        return
    test = os.path.splitext(os.path.basename(sys.argv[0]))[0].removeprefix("test_")
    equal = f"{'yes' if row['equal'] == row['containers'] else 'NO'} " \
            f"{row['equal']}/{row['containers']}"
    cells = [test, row["engine"], str(row["api"]), str(row["expected"]), str(row["recorded"]),
             str(row["missing"]), str(row["duplicates"]), equal, str(row["fields"])]
    fmt = lambda cs: "ENGINE MATRIX | " + " | ".join(  # noqa: E731
        c.ljust(w) for c, w in zip(cs, _MATRIX_WIDTHS)).rstrip()
    skipped = MATRIX.get("skipped")
    print("\n" + fmt(_MATRIX_COLUMNS))
    print(fmt(cells) + (f"   (skipped: {'; '.join(skipped)})" if skipped else ""), flush=True)


def wait_metric(agent, name, pred, timeout=30, labels=None):
    """Polls /metrics until pred(value) holds (value None when absent); returns the value."""
    box = {}

    def check():
        box["v"] = agent.metric_value(name, labels)
        return pred(box["v"])
    try:
        wait_until(check, timeout, f"{name}{labels or ''}")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; last value {box.get('v')!r}") from None
    return box["v"]
