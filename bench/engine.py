#!/usr/bin/python3
"""Real-engine benchmarks (docs/BENCHMARKS.md, sections 2-6), driven by bench/run.sh.

Starts a private dockerd (tests/integration/harness.py's PrivateDockerd, under /tmp/zbe-XXXX),
imports the busybox test image and an image of dynamically linked host programs, and measures
the agent (`--log-level info`, defaults otherwise, a fresh data dir per run) side by side with a
peer in the same run, several repetitions, printing medians and ratios:

  startup   N running busybox containers (N = --sizes): time from the agent's start until
            /readyz answers 200 (polled every 10 ms) and then /metrics counts N durable
            `container.snapshot` records (zastava_agent_events_total{kind="container.snapshot",
            source="snapshot"}), against `docker ps -aq` + `docker inspect` of them all
            (`sh -c 'docker inspect $(docker ps -aq) > /dev/null'`).
  latency   about --events engine container events (create, start, kill, die, destroy of
            containers driven over the engine API, one after the other; each is killed as soon
            as its start returns, or --hold-ms later): per event, the time
            from its engine timeNano until its line appeared in the agent's NDJSON segment, and
            until it appeared in the output file of `docker events --filter type=container
            --format '{{json .}}'` started before the events. One thread polls both files every
            1 ms and stamps each new line with the wall clock after the read. The agent writes a
            group commit's lines after the SQLite commit and before the segment's fdatasync, so
            its figure is short of durable by one fdatasync (the mean group commit duration is
            printed alongside). The agent's observedAt - timeNano too (observedAt is taken when
            the event arrives from the engine).
  memory    private memory (Private_Clean + Private_Dirty), PSS and RSS (/proc/PID/smaps_rollup,
            bench/procmem.py) and VmHWM of the agent tracking the largest N, at ready and 30 s
            later, against a `docker events` CLI process started just before it; the same for an
            agent with 0 containers (run first, before any container exists); and the same three
            of bench/library_floor.cpp (--library-floor), run at the end when no agent runs, so
            the libraries' pages it maps alone count as private, as they do for a lone agent.
  inspect   the engine's answer time to GET /containers/ID/json of one running busybox container
            (`sleep 3600`) and of a missing one (404), --inspect-samples answers each, one after
            the other: curl --unix-socket SOCK -s -o /dev/null -w '%{time_total}' (the engine's
            answer, not a docker CLI process start); median and p90. Its median is the default
            of bench/ingest.py's --inspect-delay-us (the realistic inspect of the fake engine).
  idle      CPU (utime+stime of /proc/PID/stat) over --idle-seconds with --idle-n containers,
            after the agent is ready and its evidence scans and 30 s re-scans are done, as % of
            one core, against an idle `docker events` CLI process over the same window.
  evidence  per container start of a dynamically linked workload (coreutils `sleep`: 3 files;
            `curl` blocked on a FIFO: ~34 files, ~18 MB): the agent's scan duration
            (zastava_agent_evidence_scan_duration_seconds _sum/_count), bytes hashed and hash
            cache hits/misses (metric deltas), cold (first container after a fresh agent start)
            and warm (a second container of the same image right after), against `sha256sum` of
            the same files (the record's loadedLibraries paths, read under /proc/PID/root).

The startup runs at the largest N also give the memory samples, and at --idle-n the idle CPU
window, so those agents are the startup agents kept running after their time was taken.
Everything started here (containers, agents, CLI peers, dockerd, temp dirs) is removed at the
end, on Ctrl-C and on errors too. Run as root (dockerd); absolute times depend on the machine.
"""
import argparse
import concurrent.futures
import http.client
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "tests", "integration"))
import harness  # noqa: E402
import procmem  # noqa: E402  (bench/procmem.py, beside this file)

DOCKER = "/usr/bin/docker"
BUSYBOX = harness.TEST_IMAGE
DYNAMIC = "zastava-bench/dynamic:1"
FIFO = "/block.fifo"
# name -> (command in the image, host programs whose files go into the image)
WORKLOADS = {
    "sleep": ["/usr/bin/sleep", "100000"],
    "curl": ["/usr/bin/curl", "-s", "-o", "/dev/null", "file://" + FIFO],
}
IDLE_LABEL = {"zastava-bench": "idle"}
SNAPSHOT = {"kind": "container.snapshot", "source": "snapshot"}
POLL = 0.01
CREATE_THREADS = 8


def log(msg):
    harness.log(msg)


class BenchError(Exception):
    """A benchmark could not be run (the message says why)."""


# ----------------------------------------------------------------------------------------------
# /proc and HTTP helpers

def proc_status(pid):
    """{'VmRSS': KiB, 'VmHWM': KiB} of a live process ({} when gone)."""
    out = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                key, _, rest = line.partition(":")
                if key in ("VmRSS", "VmHWM"):
                    out[key] = int(rest.split()[0])
    except (OSError, ValueError):
        return {}
    return out


def proc_memory(pid):
    """VmRSS/VmHWM (/proc/PID/status) and private/pss/rss (smaps_rollup) in KiB ({} when gone)."""
    return {**proc_status(pid), **procmem.smaps(pid)}


def cpu_seconds(pid):
    """utime + stime of a live process in seconds (None when gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def http_get(port, path, timeout=2):
    """(status, body text) of GET path on the agent's health port; (0, error) when refused."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.read().decode(errors="replace")
    except OSError as exc:
        return 0, str(exc)
    finally:
        conn.close()


def scrape(port):
    """[(name, labels, value)] of the agent's /metrics ([] when it does not answer)."""
    status, body = http_get(port, "/metrics")
    return harness.parse_metrics(body) if status == 200 else []


def total(samples, name, **labels):
    """Sum of the samples of `name` whose labels include `labels` (0 when absent)."""
    return sum(v for n, l, v in samples
               if n == name and all(l.get(k) == val for k, val in labels.items()))


def percentile(values, p):
    """Nearest-rank percentile (p in 0..100) of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * p // 100))
    return ordered[int(rank) - 1]


def med(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def fmt(value, spec):
    return "n/a" if value is None else format(value, spec)


def ratio(a, b):
    return None if a is None or not b else a / b


# ----------------------------------------------------------------------------------------------
# Processes started here, all stopped in cleanup()

class Processes:
    """Every agent and CLI peer this script starts, so cleanup can stop exactly those."""

    def __init__(self):
        self.procs = []

    def start(self, cmd, stdout, env=None):
        # Own session: a Ctrl-C in the terminal reaches only this script, which stops them.
        proc = subprocess.Popen(cmd, stdout=stdout, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, env=env, start_new_session=True)
        self.procs.append(proc)
        return proc

    def stop(self, proc, timeout=60):
        """SIGTERM, wait (SIGKILL after timeout); returns seconds until it exited."""
        t0 = time.monotonic()
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                log(f"pid {proc.pid} ({proc.args[0]}) did not exit after SIGTERM; SIGKILL")
                proc.kill()
                proc.wait(10)
        if proc in self.procs:
            self.procs.remove(proc)
        return time.monotonic() - t0

    def stop_all(self):
        for proc in list(self.procs):
            self.stop(proc, timeout=20)


class BenchDockerd(harness.PrivateDockerd):
    """PrivateDockerd with a choice of storage driver (the tests use vfs; hosts use overlay2,
    where the containers of one image share their files' inodes)."""

    def __init__(self, base_dir, driver):
        super().__init__(base_dir)
        self.driver = driver

    def command(self):
        return [("--storage-driver=" + self.driver if a == "--storage-driver=vfs" else a)
                for a in super().command()]


class Bench:
    """The private engine, the agent binary and everything started, for one run of the script."""

    def __init__(self, args):
        self.args = args
        self.work = harness.make_workdir("zbe-")
        self.procs = Processes()
        self.dockerd = BenchDockerd(os.path.join(self.work, "d"), args.storage_driver)
        self.env = dict(os.environ, DOCKER_HOST=self.dockerd.endpoint)
        self.env.pop("DOCKER_CONTEXT", None)
        self.agent_env = {k: v for k, v in os.environ.items()
                          if not k.startswith("ZASTAVA_AGENT__") and k != "DOCKER_HOST"}
        self.idle_ids = []
        self.runs = 0

    # -- the engine ---------------------------------------------------------------------------

    def start_engine(self, dynamic=True):
        if not shutil.which("dockerd"):
            raise BenchError("dockerd not found: install Debian's docker.io (bench/run.sh does)")
        if not os.path.exists(DOCKER):
            raise BenchError(f"{DOCKER} not found: install Debian's docker.io")
        if not os.path.exists("/bin/busybox"):
            raise BenchError("/bin/busybox not found: install Debian's busybox-static")
        try:
            self.dockerd.start(timeout=90)
        except (AssertionError, RuntimeError, OSError) as exc:
            raise BenchError(f"dockerd did not start ({exc}); its log:\n"
                             f"{harness.tail(self.dockerd.log_path)}") from None
        self.dockerd.make_busybox_image()
        if dynamic:
            self.make_dynamic_image()
        version = self.dockerd.api("GET", "/version")[1]
        info = self.dockerd.api("GET", "/info")[1]
        log(f"engine {version.get('Version')} (API {version.get('ApiVersion')}), storage "
            f"driver {info.get('Driver')}, cgroup {info.get('CgroupVersion')}")
        return version, info

    def make_dynamic_image(self):
        """zastava-bench/dynamic:1 from host files: the workload programs, every library ldd
        lists for them and the dynamic loader, at their host paths, plus a FIFO for curl."""
        files = set()
        for cmd in WORKLOADS.values():
            program = cmd[0]
            if not os.path.exists(program):
                raise BenchError(f"{program} not found (the evidence workload; install it)")
            files.add(program)
            out = subprocess.run(["ldd", program], capture_output=True, text=True, check=True)
            for line in out.stdout.splitlines():
                for word in line.split():
                    if word.startswith("/"):
                        files.add(word)
        rootfs = os.path.join(self.work, "dynroot")
        os.makedirs(rootfs)
        subprocess.run(["cp", "-L", "--parents", *sorted(files), rootfs], check=True)
        for d in ("etc", "tmp", "proc", "sys", "dev"):
            os.makedirs(os.path.join(rootfs, d), exist_ok=True)
        os.mkfifo(rootfs + FIFO)
        tar = subprocess.Popen(["tar", "-C", rootfs, "-c", "."], stdout=subprocess.PIPE)
        res = subprocess.run([DOCKER, "import", "-", DYNAMIC], stdin=tar.stdout, env=self.env,
                             capture_output=True, text=True, timeout=300)
        tar.stdout.close()
        tar.wait()
        shutil.rmtree(rootfs, ignore_errors=True)
        if res.returncode != 0:
            raise BenchError(f"docker import of {DYNAMIC} failed: {res.stderr}")
        log(f"imported {DYNAMIC} ({len(files)} host files)")

    def api(self, method, path, body=None, ok=(200, 201, 204)):
        status, data = self.dockerd.api(method, path, body=body, timeout=120)
        if status not in ok:
            raise BenchError(f"engine {method} {path} -> {status}: {str(data)[:300]}")
        return data

    def run_container(self, image, cmd, labels=None):
        """docker run -d --network none: create + start over the API; returns the id."""
        body = {"Image": image, "Cmd": cmd, "Labels": labels or {},
                "HostConfig": {"NetworkMode": "none"}}
        cid = self.api("POST", "/containers/create", body)["Id"]
        self.api("POST", f"/containers/{cid}/start")
        return cid

    def remove(self, ids):
        """docker rm -f of ids, CREATE_THREADS at a time."""
        with concurrent.futures.ThreadPoolExecutor(CREATE_THREADS) as pool:
            list(pool.map(lambda c: self.dockerd.api("DELETE", f"/containers/{c}?force=1",
                                                     timeout=120), ids))

    def ensure_idle_containers(self, n):
        """Brings the busybox `sleep 100000` containers up to n (they are only ever added)."""
        missing = n - len(self.idle_ids)
        if missing <= 0:
            return
        log(f"starting {missing} busybox containers ({len(self.idle_ids)} -> {n})")
        t0 = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(CREATE_THREADS) as pool:
            futures = [pool.submit(self.run_container, BUSYBOX, ["sleep", "100000"], IDLE_LABEL)
                       for _ in range(missing)]
            for future in futures:
                self.idle_ids.append(future.result())
        running = len(self.api("GET", "/containers/json"))
        if running != n:
            raise BenchError(f"{running} containers running, expected {n}")
        log(f"{n} containers running ({time.monotonic() - t0:.1f} s to start {missing})")

    # -- agents and peers ---------------------------------------------------------------------

    def start_agent(self):
        """A fresh agent (new data dir); returns (proc, data dir, port, log path)."""
        self.runs += 1
        run_dir = os.path.join(self.work, f"a{self.runs}")
        data = os.path.join(run_dir, "data")
        os.makedirs(data)
        port = harness.free_port()
        log_path = os.path.join(run_dir, "agent.log")
        cmd = [self.args.agent, "--docker-endpoint", self.dockerd.endpoint, "--data-directory",
               data, "--health-address", "127.0.0.1", "--health-port", str(port),
               "--log-level", "info"]
        with open(log_path, "wb") as out:
            proc = self.procs.start(cmd, out, env=self.agent_env)
        return proc, data, port, log_path

    def stop_agent(self, proc, data, log_path):
        """Stops the agent; returns (seconds to exit, exit code, warning/error log lines)."""
        secs = self.procs.stop(proc)
        notes = []
        with open(log_path, errors="replace") as f:
            for line in f:
                if "warn" in line.lower() or "error" in line.lower() or "critical" in line:
                    notes.append(line.rstrip())
        shutil.rmtree(os.path.dirname(data), ignore_errors=True)
        return secs, proc.returncode, notes

    def start_events_cli(self, out_path):
        out = open(out_path, "wb")
        proc = self.procs.start([DOCKER, "events", "--filter", "type=container", "--format",
                                 "{{json .}}"], out, env=self.env)
        out.close()
        return proc

    def wait_agent(self, proc, port, n_snapshots, t0, timeout):
        """Polls /readyz every 10 ms until 200, then /metrics until n_snapshots snapshot records
        are durable. Returns (s until ready, s until both)."""
        ready_at = None
        while True:
            now = time.monotonic()
            if proc.poll() is not None:
                raise BenchError(f"the agent exited with {proc.returncode} before it was ready")
            if now - t0 > timeout:
                raise BenchError(f"the agent was not ready with {n_snapshots} snapshots after "
                                 f"{timeout} s")
            if ready_at is None:
                if http_get(port, "/readyz")[0] == 200:
                    ready_at = time.monotonic() - t0
                    continue
            elif total(scrape(port), "zastava_agent_events_total", **SNAPSHOT) >= n_snapshots:
                return ready_at, time.monotonic() - t0
            time.sleep(POLL)

    def wait_ready(self, proc, port, purpose):
        """Polls /readyz until 200; BenchError naming `purpose` if the agent exits or times out."""
        t0 = time.monotonic()
        while http_get(port, "/readyz")[0] != 200:
            if proc.poll() is not None or time.monotonic() - t0 > self.args.timeout:
                raise BenchError(f"the agent did not become ready for {purpose}")
            time.sleep(POLL)

    def cleanup(self):
        log("cleaning up")
        self.procs.stop_all()
        if self.dockerd.proc is not None and self.dockerd.proc.poll() is None:
            try:
                ids = self.dockerd.docker("ps", "-aq", "--no-trunc", check=False).split()
                if ids:
                    log(f"removing {len(ids)} containers")
                    self.remove(ids)
            except Exception as exc:  # keep going: dockerd still has to stop
                log(f"removing containers failed: {exc!r}")
            self.dockerd.stop()
        unmount_under(self.work)
        shutil.rmtree(self.work, ignore_errors=True)
        if os.path.exists(self.work):
            log(f"could not remove {self.work} entirely")


def unmount_under(path):
    """Lazily unmounts whatever is still mounted under path (a dockerd that was killed)."""
    with open("/proc/self/mounts") as f:
        points = [line.split()[1] for line in f]
    for point in sorted((p for p in points if p.startswith(path + "/")), reverse=True):
        subprocess.run(["umount", "-l", point], capture_output=True)


# ----------------------------------------------------------------------------------------------
# Start-up inventory, memory and idle CPU

def time_cli_inventory(bench):
    t0 = time.monotonic()
    res = subprocess.run(["sh", "-c", f"{DOCKER} inspect $({DOCKER} ps -aq) > /dev/null"],
                         env=bench.env, capture_output=True, text=True)
    elapsed = time.monotonic() - t0
    if res.returncode != 0:
        raise BenchError(f"docker inspect $(docker ps -aq) failed: {res.stderr[:300]}")
    return elapsed


def wait_evidence_settled(port, timeout):
    """Waits until every start/reconcile scan that read a tree has had its re-scan and no scan
    waits. Returns (settled, scans by scan kind)."""
    deadline = time.monotonic() + timeout
    while True:
        m = scrape(port)
        first = sum(total(m, "zastava_agent_evidence_scans_total", scan=s, status=st)
                    for s in ("start", "reconcile") for st in ("complete", "partial"))
        rescans = total(m, "zastava_agent_evidence_scans_total", scan="rescan")
        depth = total(m, "zastava_agent_evidence_queue_depth")
        counts = {s: int(total(m, "zastava_agent_evidence_scans_total", scan=s))
                  for s in ("start", "reconcile", "rescan")}
        if m and first > 0 and rescans >= first and depth == 0:
            return True, counts
        if time.monotonic() > deadline:
            return False, counts
        time.sleep(1)


def inventory_run(bench, n, memory, idle):
    """One agent run on n containers: its start-up time, then optionally memory samples and an
    idle CPU window, each against a `docker events` CLI process started just before it."""
    out = {}
    cli = None
    if memory or idle:
        cli = bench.start_events_cli(os.path.join(bench.work, "idle-events.out"))
        time.sleep(1)  # let the CLI finish starting before the agent's clock runs
    proc, data, port, log_path = bench.start_agent()
    t0 = time.monotonic()
    try:
        out["ready"], out["agent"] = bench.wait_agent(proc, port, n, t0, bench.args.timeout)
        if memory:
            out["mem_ready"] = (proc_memory(proc.pid), proc_memory(cli.pid))
            time.sleep(30)
            out["mem_30s"] = (proc_memory(proc.pid), proc_memory(cli.pid))
        if idle:
            settled, scans = wait_evidence_settled(port, 40 + n * 0.2)
            if not settled:
                log(f"WARNING: evidence scans not settled before the idle window: {scans}")
            out["idle_scans"] = scans
            c0 = (cpu_seconds(proc.pid), cpu_seconds(cli.pid))
            w0 = time.monotonic()
            time.sleep(bench.args.idle_seconds)
            c1 = (cpu_seconds(proc.pid), cpu_seconds(cli.pid))
            window = time.monotonic() - w0
            out["idle"] = tuple(None if a is None or b is None else 100 * (b - a) / window
                                for a, b in zip(c0, c1))
            out["idle_window"] = window
        m = scrape(port)
        out["snapshots"] = int(total(m, "zastava_agent_events_total", **SNAPSHOT))
        out["dropped"] = int(total(m, "zastava_agent_events_dropped_total"))
        out["rss_end"] = proc_status(proc.pid)
    finally:
        out["stop_s"], out["exit"], out["log"] = bench.stop_agent(proc, data, log_path)
        if cli is not None:
            bench.procs.stop(cli)
    return out


def run_inventory(bench, sizes, repeat, want):
    """Startup at each size (ascending), memory at the largest and at 0 (first, before any
    container exists: results[0]), idle CPU at --idle-n."""
    mem_n = sizes[-1] if "memory" in want else None
    idle_n = None
    if "idle" in want:
        below = [s for s in sizes if s <= bench.args.idle_n]
        idle_n = below[-1] if below else sizes[0]
    visit = sizes if "startup" in want else sorted({s for s in (mem_n, idle_n) if s})
    results = {}
    if mem_n is not None and not bench.idle_ids:
        for rep in range(1, repeat + 1):
            a = inventory_run(bench, 0, True, False)
            results.setdefault(0, []).append(a)
            log(f"memory N=0 rep {rep}: agent {a['mem_ready'][0]} -> {a['mem_30s'][0]} (KiB)")
            time.sleep(1)
    for n in visit:
        bench.ensure_idle_containers(n)
        time.sleep(2)
        for rep in range(1, repeat + 1):
            agent_first = rep % 2 == 1  # alternate which of the two goes first
            r = {}
            for who in (("agent", "cli") if agent_first else ("cli", "agent")):
                if who == "cli" and "startup" in want:
                    r["cli"] = time_cli_inventory(bench)
                    log(f"startup N={n} rep {rep}: CLI docker inspect $(docker ps -aq) "
                        f"{r['cli']:.3f} s")
                elif who == "agent":
                    a = inventory_run(bench, n, n == mem_n, n == idle_n)
                    r.update(a)
                    log(f"startup N={n} rep {rep}: agent ready {a['ready']:.3f} s, {a['snapshots']}"
                        f" snapshots durable {a['agent']:.3f} s; stopped in {a['stop_s']:.2f} s "
                        f"(exit {a['exit']}), dropped {a['dropped']}, RSS at stop "
                        f"{a['rss_end'].get('VmRSS', 0) / 1024:.1f} MiB")
                    if "mem_ready" in a:
                        log(f"  memory: agent {a['mem_ready'][0]} -> {a['mem_30s'][0]}, CLI "
                            f"{a['mem_ready'][1]} -> {a['mem_30s'][1]} (KiB)")
                    if "idle" in a:
                        log(f"  idle CPU over {a['idle_window']:.1f} s: agent "
                            f"{fmt(a['idle'][0], '.3f')} %, CLI {fmt(a['idle'][1], '.3f')} % "
                            f"(scans before the window {a['idle_scans']})")
                    for line in a["log"][:5]:
                        log(f"  agent log: {line}")
                    if len(a["log"]) > 5:
                        log(f"  agent log: ... {len(a['log']) - 5} more warning/error lines")
                time.sleep(1)
            results.setdefault(n, []).append(r)
    return results, mem_n, idle_n


# ----------------------------------------------------------------------------------------------
# Event latency

def lifecycle(bench, labels, hold_s=0.0):
    """create, start, kill (-> kill, die), rm (-> destroy): 5 engine events, the kill hold_s
    after the start. Returns the id."""
    cid = bench.run_container(BUSYBOX, ["sleep", "100000"], labels)
    time.sleep(hold_s)
    bench.api("POST", f"/containers/{cid}/kill")
    bench.api("POST", f"/containers/{cid}/wait", ok=(200,))
    bench.api("DELETE", f"/containers/{cid}")
    return cid


def agent_latencies(lines, ids):
    """{eventId: (appeared - timeNano, observedAt - timeNano, source)} in ns, for the engine
    events of containers in ids."""
    out = {}
    for raw, seen in lines:
        rec = json.loads(raw)
        cid = (rec.get("container") or {}).get("id")
        engine_time = harness.engine_time_nano(rec)  # None for a record of no engine event
        if cid not in ids or engine_time is None:
            continue
        observed = harness.rfc3339_to_nanos(rec["observedAt"])
        out[rec["eventId"]] = (seen - engine_time, observed - engine_time, rec.get("source"),
                               rec["kind"].removeprefix("container."))
    return out


def cli_latencies(lines, ids):
    out = {}
    for raw, seen in lines:
        ev = json.loads(raw)
        if ev.get("Type") == "container" and ev["Actor"]["ID"] in ids:
            out[harness.expected_event_id(ev)] = seen - ev["timeNano"]
    return out


def latency_run(bench, n_events):
    per_container = 5
    count = -(-n_events // per_container)
    cli_out = os.path.join(bench.work, "latency-events.out")
    proc, data, port, log_path = bench.start_agent()
    cli = None
    tailer = None
    try:
        bench.wait_ready(proc, port, "the latency run")
        cli = bench.start_events_cli(cli_out)
        segments = os.path.join(data, "runtime-events")
        tailer = harness.Tailer({"agent": lambda: harness.segment_paths(data),
                         "cli": lambda: [cli_out]})
        tailer.start()
        # Warm-up lifecycles, not measured, until both peers have all 5 events of one (the
        # CLI needs a moment to connect).
        for attempt in range(20):
            warm = lifecycle(bench, {"zastava-bench": "warmup"})
            try:
                harness.wait_until(lambda: len(cli_latencies(tailer.lines["cli"], {warm})) == 5
                                   and len(agent_latencies(tailer.lines["agent"], {warm})) == 5,
                                   5, "the warm-up events at both peers", interval=0.1)
                break
            except AssertionError:
                if attempt == 19:
                    raise
        m0 = scrape(port)
        ids = set()
        t0 = time.monotonic()
        for _ in range(count):
            ids.add(lifecycle(bench, {"zastava-bench": "latency"}, bench.args.hold_ms / 1000))
        gen_s = time.monotonic() - t0
        expected = count * per_container

        def all_seen():
            return (len(cli_latencies(tailer.lines["cli"], ids)) >= expected and
                    len(agent_latencies(tailer.lines["agent"], ids)) >= expected)
        try:
            harness.wait_until(all_seen, 30, "every event at both peers", interval=0.2)
        except AssertionError:
            log("WARNING: not every event reached both peers within 30 s")
        tailer.stop()
        m1 = scrape(port)
        agent = agent_latencies(tailer.lines["agent"], ids)
        cli_l = cli_latencies(tailer.lines["cli"], ids)
        commits = (total(m1, "zastava_agent_buffer_commit_duration_seconds_count") -
                   total(m0, "zastava_agent_buffer_commit_duration_seconds_count"))
        commit_s = (total(m1, "zastava_agent_buffer_commit_duration_seconds_sum") -
                    total(m0, "zastava_agent_buffer_commit_duration_seconds_sum"))
        sources = {}
        by_action = {}
        for _, _, src, action in agent.values():
            sources[src] = sources.get(src, 0) + 1
        for appeared, _, src, action in agent.values():
            if src == "stream":
                by_action.setdefault(action, []).append(appeared / 1e6)
        r = {"expected": expected, "gen_s": gen_s,
             "agent": [v[0] / 1e6 for k, v in agent.items() if v[2] == "stream"],
             "observed": [v[1] / 1e6 for k, v in agent.items() if v[2] == "stream"],
             "cli": [v / 1e6 for v in cli_l.values()],
             "sources": sources, "by_action": by_action,
             "commit_ms": 1000 * commit_s / commits if commits else None,
             "commits": int(commits), "segments": len(os.listdir(segments))}
    finally:
        if tailer is not None and tailer.is_alive():
            tailer.stop()
        if cli is not None:
            bench.procs.stop(cli)
        r_stop = bench.stop_agent(proc, data, log_path)
    r["log"] = r_stop[2]
    try:
        os.unlink(cli_out)
    except OSError:
        pass
    return r


def run_latency(bench, repeat):
    results = []
    for rep in range(1, repeat + 1):
        r = latency_run(bench, bench.args.events)
        results.append(r)
        s = summarize(r)
        log(f"latency rep {rep}: {r['expected']} events generated in {r['gen_s']:.1f} s; agent "
            f"{len(r['agent'])} stream records {r['sources']}, p50/p99/max "
            f"{s['agent'][0]:.1f}/{s['agent'][1]:.1f}/{s['agent'][2]:.1f} ms (observedAt "
            f"{s['observed'][0]:.1f}/{s['observed'][1]:.1f}/{s['observed'][2]:.1f}); CLI "
            f"{len(r['cli'])} lines, {s['cli'][0]:.1f}/{s['cli'][1]:.1f}/{s['cli'][2]:.1f} ms; "
            f"{r['commits']} group commits, mean {fmt(r['commit_ms'], '.2f')} ms")
        log("  agent by action, p50/p99/max ms: " + ", ".join(
            f"{a} {percentile(v, 50):.1f}/{percentile(v, 99):.1f}/{max(v):.1f}"
            for a, v in sorted(r["by_action"].items())))
        for line in r["log"][:5]:
            log(f"  agent log: {line}")
        time.sleep(1)
    return results


def summarize(r):
    out = {}
    for key in ("agent", "observed", "cli"):
        v = r[key]
        out[key] = (percentile(v, 50), percentile(v, 99), max(v)) if v else (0, 0, 0)
    return out


# ----------------------------------------------------------------------------------------------
# Inspect answer time

def time_curl(sock, path, samples):
    """(HTTP status, [µs]) of `samples` GETs of path, each its own curl process; the time is
    curl's time_total (connect, request, answer), not the process start."""
    times, status = [], None
    for _ in range(samples):
        res = subprocess.run(["curl", "--unix-socket", sock, "-s", "-o", "/dev/null", "-w",
                              "%{http_code} %{time_total}", "http://localhost/v1.41" + path],
                             capture_output=True, text=True, timeout=30)
        code, _, seconds = res.stdout.partition(" ")
        if res.returncode != 0 or not seconds:
            raise BenchError(f"curl GET {path} failed ({res.returncode}): {res.stderr[:300]}")
        status = code
        times.append(float(seconds) * 1e6)
    return status, times


def run_inspect(bench, samples):
    """The engine's answer time to inspects of one running container and of a missing one."""
    cid = bench.run_container(BUSYBOX, ["sleep", "3600"], {"zastava-bench": "inspect"})
    try:
        out = {}
        for key, path in (("running", f"/containers/{cid}/json"),
                          ("missing", "/containers/" + "0" * 64 + "/json")):
            out[key + "_status"], out[key] = time_curl(bench.dockerd.sock, path, samples)
            v = out[key]
            log(f"inspect {key}: HTTP {out[key + '_status']}, {len(v)} answers, p50 "
                f"{percentile(v, 50):.0f} µs, p90 {percentile(v, 90):.0f} µs, max {max(v):.0f} µs")
    finally:
        bench.remove([cid])
    return out


# ----------------------------------------------------------------------------------------------
# Evidence cost

EVIDENCE_METRICS = {
    "scans": "zastava_agent_evidence_scan_duration_seconds_count",
    "scan_s": "zastava_agent_evidence_scan_duration_seconds_sum",
    "bytes": "zastava_agent_evidence_hashed_bytes_total",
    "hits": "zastava_agent_evidence_hash_cache_hits_total",
    "misses": "zastava_agent_evidence_hash_cache_misses_total",
}


def evidence_values(port):
    m = scrape(port)
    return {k: total(m, name) for k, name in EVIDENCE_METRICS.items()}


def start_evidence(data, cid):
    """The container's first container.evidence record with evidence.scan "start", or None."""
    for line in harness.read_ndjson(data):
        if '"container.evidence"' not in line or cid not in line:
            continue
        rec = json.loads(line)
        if rec["container"]["id"] == cid and rec["evidence"]["scan"] == "start":
            return rec
    return None


def time_sha256sum(pid, paths):
    files = [f"/proc/{pid}/root{p}" for p in paths]
    t0 = time.monotonic()
    res = subprocess.run(["sha256sum", *files], capture_output=True, text=True)
    elapsed = time.monotonic() - t0
    if res.returncode != 0:
        raise BenchError(f"sha256sum failed: {res.stderr[:300]}")
    return elapsed, sum(os.path.getsize(f) for f in files)


def evidence_scan(bench, port, data, workload):
    """Starts one container of the workload and waits for its start scan: returns the metric
    deltas, the record's facts and sha256sum's time over the same files."""
    before = evidence_values(port)
    cid = bench.run_container(DYNAMIC, WORKLOADS[workload], {"zastava-bench": "evidence"})
    rec = harness.wait_until(lambda: start_evidence(data, cid), 60,
                             f"the start evidence record of {cid[:12]}", interval=0.02)
    after = harness.wait_until(
        lambda: (lambda v: v if v["scans"] > before["scans"] else None)(evidence_values(port)),
        10, "the evidence metrics")
    delta = {k: after[k] - before[k] for k in after}
    ev = rec["evidence"]
    libs = (ev.get("loadedLibraries") or {}).get("libraries", [])
    pid = ev["initPid"]
    sha_s, sha_bytes = time_sha256sum(pid, [lib["path"] for lib in libs]) if libs else (None, 0)
    return {"cid": cid, "status": ev["status"], "reason": ev.get("reason"),
            "scans": int(delta["scans"]), "scan_ms": 1000 * delta["scan_s"],
            "bytes": int(delta["bytes"]), "hits": int(delta["hits"]),
            "misses": int(delta["misses"]), "files": len(libs),
            "cached": sum(1 for lib in libs if lib.get("cached")),
            "lib_bytes": (ev.get("loadedLibraries") or {}).get("bytesHashed"),
            "sha_ms": None if sha_s is None else 1000 * sha_s, "sha_bytes": sha_bytes}


def evidence_run(bench, workload):
    proc, data, port, log_path = bench.start_agent()
    ids = []
    try:
        bench.wait_ready(proc, port, "the evidence run")
        cold = evidence_scan(bench, port, data, workload)
        ids.append(cold["cid"])
        warm = evidence_scan(bench, port, data, workload)
        ids.append(warm["cid"])
    finally:
        bench.remove(ids)
        notes = bench.stop_agent(proc, data, log_path)[2]
    return {"cold": cold, "warm": warm, "log": notes}


def run_evidence(bench, repeat):
    results = {w: [] for w in WORKLOADS}
    for rep in range(1, repeat + 1):
        for workload in WORKLOADS:
            r = evidence_run(bench, workload)
            results[workload].append(r)
            for kind in ("cold", "warm"):
                s = r[kind]
                log(f"evidence {workload} rep {rep} {kind}: {s['status']}, {s['scans']} scan "
                    f"{s['scan_ms']:.1f} ms, {s['bytes']} bytes hashed, cache {s['hits']} hits "
                    f"{s['misses']} misses, {s['files']} files ({s['cached']} cached) "
                    f"bytesHashed {s['lib_bytes']}; sha256sum {fmt(s['sha_ms'], '.1f')} ms over "
                    f"{s['sha_bytes']} bytes" + (f"; reason: {s['reason']}" if s["reason"]
                                                 else ""))
            for line in r["log"][:5]:
                log(f"  agent log: {line}")
    return results


# ----------------------------------------------------------------------------------------------
# Report

def report(args, sizes, inventory, mem_n, idle_n, latency, evidence, inspect, engine_line):
    print(f"\n## Real-engine benchmarks, medians of {args.repeat} repetitions")
    print(engine_line)
    if inspect:
        print(f"\nInspect answer time, {args.inspect_samples} answers each, one after the other "
              f"(curl --unix-socket -w '%{{time_total}}', µs)")
        print("| GET /v1.41/containers/ID/json of | status | p50 µs | p90 µs | max µs |")
        print("|---|---:|---:|---:|---:|")
        for key, name in (("running", "a running busybox container"),
                          ("missing", "a missing container")):
            v = inspect[key]
            print(f"| {name} | {inspect[key + '_status']} | {percentile(v, 50):.0f} | "
                  f"{percentile(v, 90):.0f} | {max(v):.0f} |")
        print(f"realistic inspect delay for bench/ingest.py --inspect-delay-us: "
              f"{round(percentile(inspect['running'], 50), -2):.0f} µs (the running container's "
              f"median, rounded to 100 µs)")
    if inventory and any("cli" in r for rs in inventory.values() for r in rs):
        base = sizes[0]
        a0 = med([r["agent"] for r in inventory[base]])
        c0 = med([r["cli"] for r in inventory[base]])
        print("\nStart-up inventory: agent start -> /readyz 200 and N snapshot records durable; "
              "CLI: docker inspect $(docker ps -aq) > /dev/null")
        print(f"| N containers | agent s | of which until /readyz | CLI s | agent ÷ CLI | "
              f"agent growth (÷ N={base}) | CLI growth | linear |")
        print("|---:|---:|---:|---:|---:|---:|---:|---:|")
        for n in sizes:
            a = med([r["agent"] for r in inventory[n]])
            ready = med([r["ready"] for r in inventory[n]])
            c = med([r.get("cli") for r in inventory[n]])
            print(f"| {n:,} | {a:.3f} | {ready:.3f} | {fmt(c, '.3f')} | "
                  f"{fmt(ratio(a, c), '.2f')} | {fmt(ratio(a, a0), '.2f')} | "
                  f"{fmt(ratio(c, c0), '.2f')} | {n / base:.2f} |")
        worse = [n for n in sizes if med([r["agent"] for r in inventory[n]]) >
                 (med([r.get("cli") for r in inventory[n]]) or float("inf"))]
        steep = [n for n in sizes if med([r["agent"] for r in inventory[n]]) / a0 > n / base]
        print(f"goal agent <= CLI at every N: {'met' if not worse else f'MISSED at N={worse}'}; "
              f"growth no worse than linear: {'met' if not steep else f'MISSED at N={steep}'}")
    if mem_n:
        def m(n, when, who, key):
            values = [r[when][who].get(key) for r in inventory.get(n, []) if when in r]
            return med(values)

        def cells(n, who):
            return " | ".join(fmt(m(n, w, who, k) and m(n, w, who, k) / 1024, ".1f")
                              for w in ("mem_ready", "mem_30s")
                              for k in ("private", "pss", "rss", "VmHWM"))

        print(f"\nMemory (MiB; private = Private_Clean + Private_Dirty, PSS and RSS from "
              f"/proc/PID/smaps_rollup, VmHWM from /proc/PID/status)")
        print("| process | private at ready | PSS | RSS | VmHWM | private 30 s later | PSS | "
              "RSS | VmHWM |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
        print(f"| zastava-agent, {mem_n:,} containers | {cells(mem_n, 0)} |")
        print(f"| `docker events` CLI beside it | {cells(mem_n, 1)} |")
        if 0 in inventory:
            print(f"| zastava-agent, 0 containers | {cells(0, 0)} |")
        floor = procmem.library_floor(args.library_floor)
        if floor:
            print(f"| the agent's libraries alone, libcurl initialised (bench/library_floor.cpp, "
                  f"no agent running) | {procmem.mib(floor['private'])} | "
                  f"{procmem.mib(floor['pss'])} | {procmem.mib(floor['rss'])} | | | | | |")
        private = m(mem_n, "mem_30s", 0, "private")
        a, c = m(mem_n, "mem_30s", 0, "rss"), m(mem_n, "mem_30s", 1, "rss")
        print(f"agent ÷ CLI RSS 30 s later: {fmt(ratio(a, c), '.2f')}; goal private memory "
              f"<= 8 MiB with {mem_n:,} containers (docs/BENCHMARKS.md): "
              f"{'met' if private is not None and private <= 8 * 1024 else 'MISSED'} "
              f"({fmt(private and private / 1024, '.1f')} MiB 30 s after ready)")
    if idle_n:
        rs = [r for r in inventory[idle_n] if "idle" in r]
        a = med([r["idle"][0] for r in rs])
        c = med([r["idle"][1] for r in rs])
        window = med([r["idle_window"] for r in rs])
        print(f"\nIdle CPU with {idle_n:,} idle containers over {window:.0f} s, after the "
              f"agent's evidence scans and re-scans (utime+stime, 10 ms ticks)")
        print("| process | % of one core |")
        print("|---|---:|")
        print(f"| zastava-agent | {fmt(a, '.3f')} |")
        print(f"| `docker events` CLI | {fmt(c, '.3f')} |")
        print(f"goal agent < 0.1 %: {'met' if a is not None and a < 0.1 else 'MISSED'}")
    if latency:
        print(f"\nEvent latency over {latency[0]['expected']:,} engine events per repetition, "
              f"each container killed {args.hold_ms:g} ms after its start returned "
              f"(ms from the engine's timeNano; median over repetitions of each percentile)")
        print("| peer | events seen | p50 ms | p99 ms | max ms |")
        print("|---|---:|---:|---:|---:|")
        sums = [summarize(r) for r in latency]
        rows = (("agent", "zastava-agent: line in NDJSON segment (before its fdatasync)"),
                ("observed", "zastava-agent: its record's observedAt (the event's arrival)"),
                ("cli", "`docker events` CLI: line in its output file"))
        for key, name in rows:
            print(f"| {name} | {med([len(r[key]) for r in latency]):.0f} | " +
                  " | ".join(f"{med([s[key][i] for s in sums]):.1f}" for i in range(3)) + " |")
        a = med([s["agent"][1] for s in sums])
        o = med([s["observed"][1] for s in sums])
        c = med([s["cli"][1] for s in sums])
        print(f"p99 ÷ CLI's p99: agent's NDJSON line {fmt(ratio(a, c), '.2f')}, agent's "
              f"observedAt {fmt(ratio(o, c), '.2f')}; mean group commit (SQLite + NDJSON "
              f"fdatasync) {fmt(med([r['commit_ms'] for r in latency]), '.2f')} ms; events "
              f"generated at {med([r['expected'] / r['gen_s'] for r in latency]):.0f}/s")
        print(f"goal agent's NDJSON line p99 < 5 ms: "
              f"{'met' if a is not None and a < 5 else 'MISSED'}")
        pooled = {}
        for r in latency:
            for action, values in r["by_action"].items():
                pooled.setdefault(action, []).extend(values)
        print("\nzastava-agent by action, line in NDJSON segment (all repetitions pooled)")
        print("| action | events | p50 ms | p99 ms | max ms |")
        print("|---|---:|---:|---:|---:|")
        for action, v in sorted(pooled.items()):
            print(f"| {action} | {len(v)} | {percentile(v, 50):.1f} | {percentile(v, 99):.1f} | "
                  f"{max(v):.1f} |")
    if evidence:
        print("\nEvidence cost per container start (agent: scan duration histogram and hash "
              "metrics deltas; peer: sha256sum of the record's loadedLibraries paths under "
              "/proc/PID/root, page cache warm)")
        print("| workload | agent hash cache | files | bytes hashed | cache hits/misses | "
              "scan ms | sha256sum ms | sha256sum bytes | agent ÷ sha256sum |")
        print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
        for workload, runs in evidence.items():
            for kind in ("cold", "warm"):
                rs = [r[kind] for r in runs]
                scan = med([s["scan_ms"] for s in rs])
                sha = med([s["sha_ms"] for s in rs])
                print(f"| {workload} | {kind} | {med([s['files'] for s in rs]):.0f} | "
                      f"{med([s['bytes'] for s in rs]):,.0f} | "
                      f"{med([s['hits'] for s in rs]):.0f}/{med([s['misses'] for s in rs]):.0f} | "
                      f"{scan:.1f} | {fmt(sha, '.1f')} | {med([s['sha_bytes'] for s in rs]):,.0f}"
                      f" | {fmt(ratio(scan, sha), '.2f')} |")


def machine_line():
    def first(path, key):
        try:
            with open(path) as f:
                for line in f:
                    if line.startswith(key):
                        return line.split(":", 1)[1].strip()
        except OSError:
            pass
        return "?"
    mem = first("/proc/meminfo", "MemTotal").split()[0]
    try:
        with open("/etc/debian_version") as f:
            debian = f.read().strip()
    except OSError:
        debian = "?"
    return (f"machine: {os.cpu_count()} CPUs, {first('/proc/cpuinfo', 'model name')}, "
            f"{int(mem) / 1048576:.1f} GiB RAM, kernel {os.uname().release}, Debian {debian}")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--agent", required=True, help="the zastava-agent binary")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--sizes", default="100,500,1000", help="container counts for start-up")
    p.add_argument("--only", default="inspect,startup,latency,memory,idle,evidence")
    p.add_argument("--inspect-samples", type=int, default=50,
                   help="inspect: answers timed per container (running, missing)")
    p.add_argument("--events", type=int, default=1000, help="engine events for latency")
    p.add_argument("--hold-ms", type=float, default=0,
                   help="latency: how long each container runs before its kill")
    p.add_argument("--idle-n", type=int, default=500, help="containers for the idle window")
    p.add_argument("--idle-seconds", type=float, default=60)
    p.add_argument("--storage-driver", default="overlay2", choices=("overlay2", "vfs"))
    p.add_argument("--timeout", type=float, default=600, help="per agent start, s")
    p.add_argument("--library-floor", help="bench/library_floor.cpp built by bench/run.sh")
    args = p.parse_args()
    want = set(args.only.split(","))
    unknown = want - {"inspect", "startup", "latency", "memory", "idle", "evidence"}
    if unknown:
        p.error(f"unknown benchmark(s) {sorted(unknown)}")
    sizes = sorted(int(s) for s in args.sizes.split(","))
    if os.geteuid() != 0:
        sys.exit("bench/engine.py starts its own dockerd and must run as root")
    if not os.access(args.agent, os.X_OK):
        sys.exit(f"agent binary {args.agent} is not executable (build it: bench/run.sh)")

    def on_signal(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)

    print(machine_line(), flush=True)
    started = time.monotonic()
    bench = Bench(args)
    inventory, mem_n, idle_n, latency, evidence, inspect = {}, None, None, [], {}, {}
    try:
        version, info = bench.start_engine(dynamic="evidence" in want)
        engine_line = (f"engine: dockerd {version.get('Version')} (API "
                       f"{version.get('ApiVersion')}), storage driver {info.get('Driver')}, "
                       f"docker CLI {DOCKER}; agent {args.agent} --log-level info")
        # Inspect, evidence and latency first, on an engine without the idle containers.
        if "inspect" in want:
            inspect = run_inspect(bench, args.inspect_samples)
        if "evidence" in want:
            evidence = run_evidence(bench, args.repeat)
        if "latency" in want:
            latency = run_latency(bench, args.repeat)
        if want & {"startup", "memory", "idle"}:
            inventory, mem_n, idle_n = run_inventory(bench, sizes, args.repeat, want)
    except (BenchError, AssertionError) as exc:  # AssertionError: a harness.wait_until timed out
        print(f"bench/engine.py: {exc}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # let the cleanup finish
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        bench.cleanup()
    report(args, sizes, inventory, mem_n, idle_n, latency, evidence, inspect, engine_line)
    print(f"\n(total {time.monotonic() - started:.0f} s)")


if __name__ == "__main__":
    main()
