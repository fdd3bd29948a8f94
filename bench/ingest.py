#!/usr/bin/python3
"""Ingest-throughput benchmark (issue 5, item 1), driven by bench/run.sh.

Starts bench's fake engine once, then per repetition measures, each on its own /events
connection to the same N-event stream:
  agent   zastava-agent with a fresh data dir: time from start until every engine event is
          accounted for (records made durable, counted in zastava_agent_events_total with source
          stream|replay, plus any zastava_agent_events_dropped_total{reason="event_queue_full"})
  cli     docker events --format '{{json .}}' > file, until N lines
  python  python3-docker DockerClient.events(decode=True) written as JSON lines, until N lines
  raw     curl --unix-socket -sN .../events > file, until N lines
  delivery  the agent again, with backend delivery (docs/backend.md) to a sink on loopback that
          answers 204 to every batch: until every engine event is durable AND accepted by the
          sink (zastava_agent_backend_delivered_records_total), i.e. what delivery costs
and prints medians and ratios. Times are wall clock from process start (the fake engine has the
body ready before it listens, so generation is not measured).
"""
import argparse
import http.server
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

PY_PEER = r"""
import json, sys, docker
client = docker.DockerClient(base_url=sys.argv[1])
out = sys.stdout
for event in client.events(decode=True):
    out.write(json.dumps(event) + "\n")
"""

POLL = 0.05
RSS_SETTLE = 5  # s after the last event before the agent's RSS "after" is read


def proc_stat(pid):
    """(cpu seconds, VmHWM KiB) of a live process, or (None, None)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        hwm = None
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    hwm = int(line.split()[1])
        return cpu, hwm
    except (OSError, IndexError, ValueError):
        return None, None


def vm_rss_kib(pid):
    """VmRSS of a live process in KiB, or None."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return None


def stop(proc):
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class LineCounter:
    """Counts lines of a growing file reading only what is new."""

    def __init__(self, path):
        self.path, self.offset, self.lines = path, 0, 0

    def count(self):
        try:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                while True:
                    block = f.read(1 << 22)
                    if not block:
                        break
                    self.lines += block.count(b"\n")
                    self.offset += len(block)
        except FileNotFoundError:
            pass
        return self.lines


def wait_for(proc, progress, n, timeout, stall):
    """Polls progress() -> (done, accounted) until accounted >= n, the process exits, nothing
    moves for `stall` s, or `timeout`. Returns (elapsed until the last progress, done, cpu, hwm,
    why)."""
    start = time.monotonic()
    last_value, last_change = -1, start
    cpu = hwm = None
    while True:
        done, accounted = progress()
        now = time.monotonic()
        c, h = proc_stat(proc.pid)
        if c is not None:
            cpu, hwm = c, h
        if accounted != last_value:
            last_value, last_change = accounted, now
        if accounted >= n:
            return now - start, done, cpu, hwm, "complete"
        if proc.poll() is not None:
            return last_change - start, done, cpu, hwm, f"exited with {proc.returncode}"
        if now - last_change > stall:
            return last_change - start, done, cpu, hwm, f"stalled at {accounted}"
        if now - start > timeout:
            return now - start, done, cpu, hwm, f"timed out at {accounted}"
        time.sleep(POLL)


def metrics(port):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
            text = r.read().decode()
    except OSError:
        return {}
    values = {}
    for line in text.splitlines():
        if line.startswith("zastava_agent_") and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            values[name] = float(value)
    return values


def sum_where(values, prefix, *needles):
    return int(sum(v for k, v in values.items()
                   if k.startswith(prefix + "{") and any(s in k for s in needles)))


class Sink(http.server.BaseHTTPRequestHandler):
    """A backend that reads each batch and accepts it."""
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        remaining = int(self.headers["Content-Length"])
        while remaining:
            remaining -= len(self.rfile.read(min(remaining, 1 << 20)))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *_):
        pass


def run_agent(args, work, port, deliver=False):
    data = os.path.join(work, "agent-data")
    os.makedirs(data)
    log = open(os.path.join(work, "agent.log"), "w")
    cmd = [args.agent, "--docker-endpoint", "unix://" + args.socket, "--data-directory", data,
           "--health-address", "127.0.0.1", "--health-port", str(port)]
    sink = None
    if deliver:
        sink = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Sink)
        threading.Thread(target=sink.serve_forever, daemon=True).start()
        cmd += ["--backend-url", f"http://127.0.0.1:{sink.server_port}/ingest"]
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    seen = {}

    def progress():
        values = metrics(port)
        if values:
            seen.clear()
            seen.update(values)
        durable = sum_where(seen, "zastava_agent_events_total", 'source="stream"',
                            'source="replay"')
        # Any reason: the recorder's queue_full also drops engine events (mixed with evidence
        # records, so the sum can pass N; a stall ends the wait otherwise).
        dropped = sum_where(seen, "zastava_agent_events_dropped_total", "reason=")
        if deliver:  # every record, evidence included, must reach the sink
            delivered = seen.get("zastava_agent_backend_delivered_records_total", 0)
            records = sum_where(seen, "zastava_agent_events_total", "{")
            durable -= records - int(delivered)
        return durable, durable + dropped

    elapsed, done, cpu, hwm, why = wait_for(proc, progress, args.events, args.timeout, args.stall)
    progress()
    time.sleep(RSS_SETTLE)  # the writer returns a burst's memory once it is idle
    rss_after = vm_rss_kib(proc.pid)
    stop(proc)
    log.close()
    if sink:
        sink.shutdown()
        sink.server_close()
    extra = {
        "dropped": sum_where(seen, "zastava_agent_events_dropped_total", "reason="),
        "drops": {k.split('reason="')[1].rstrip('"}'): int(v) for k, v in seen.items()
                  if k.startswith("zastava_agent_events_dropped_total{") and v},
        "duplicates": sum_where(seen, "zastava_agent_duplicates_suppressed_total", "{", "}")
        if any(k.startswith("zastava_agent_duplicates_suppressed_total") for k in seen) else 0,
        "evidence": sum_where(seen, "zastava_agent_events_total", 'kind="container.evidence"'),
        "rss_after": rss_after,
    }
    shutil.rmtree(data, ignore_errors=True)
    return elapsed, done, cpu, hwm, why, extra


def run_file_peer(args, work, name, cmd):
    out_path = os.path.join(work, name + ".out")
    err = open(os.path.join(work, name + ".err"), "w")
    out = open(out_path, "wb")
    proc = subprocess.Popen(cmd(out_path), stdout=out, stderr=err)
    counter = LineCounter(out_path)

    def progress():
        lines = counter.count()
        return lines, lines

    elapsed, done, cpu, hwm, why = wait_for(proc, progress, args.events, args.timeout, args.stall)
    stop(proc)
    out.close()
    err.close()
    os.unlink(out_path)
    return elapsed, done, cpu, hwm, why, {}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--events", type=int, default=1_000_000)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--agent", required=True)
    p.add_argument("--fake-engine", required=True)
    p.add_argument("--fixtures", required=True)
    p.add_argument("--socket", default=f"/tmp/zbench-{os.getpid()}.sock")
    p.add_argument("--port", type=int, default=18930)
    p.add_argument("--timeout", type=float, default=0, help="per peer, s (0: N/2000 + 60)")
    p.add_argument("--stall", type=float, default=20, help="give up after s without progress")
    p.add_argument("--peers", default="agent,cli,python,raw,delivery")
    args = p.parse_args()
    if not args.timeout:
        args.timeout = args.events / 2000 + 60
    peers = args.peers.split(",")
    sock = "unix://" + args.socket
    commands = {
        "cli": lambda out: ["/usr/bin/docker", "-H", sock, "events", "--format", "{{json .}}"],
        "python": lambda out: ["/usr/bin/python3", "-c", PY_PEER, sock],
        "raw": lambda out: ["curl", "--unix-socket", args.socket, "-sN",
                            "http://localhost/v1.41/events"],
    }
    work = tempfile.mkdtemp(prefix="zbench-", dir="/tmp")
    engine_log = open(os.path.join(work, "engine.log"), "w+")
    engine = subprocess.Popen([args.fake_engine, "--socket", args.socket, "--events",
                               str(args.events), "--fixtures", args.fixtures],
                              stdout=engine_log, stderr=subprocess.STDOUT)
    results = {peer: [] for peer in peers}
    try:
        deadline = time.monotonic() + 300
        while not os.path.exists(args.socket):
            if engine.poll() is not None or time.monotonic() > deadline:
                engine_log.seek(0)
                sys.exit("fake engine did not start: " + engine_log.read())
            time.sleep(0.1)
        engine_log.seek(0)
        print(engine_log.read().strip(), flush=True)
        for rep in range(1, args.repeat + 1):
            for peer in peers:
                if peer in ("agent", "delivery"):
                    r = run_agent(args, work, args.port + rep, deliver=peer == "delivery")
                else:
                    r = run_file_peer(args, work, peer, commands[peer])
                results[peer].append(r)
                elapsed, done, cpu, hwm, why, extra = r
                rate = done / elapsed if elapsed > 0 else 0
                note = "" if why == "complete" else f"  [{why}]"
                if extra.get("rss_after"):
                    note += f", RSS {RSS_SETTLE} s after {extra['rss_after'] / 1024:.1f} MiB"
                if extra.get("dropped"):
                    note += f"  DROPPED {extra['dropped']} records {extra['drops']}"
                print(f"rep {rep} {peer:7s} {done:>9d} events in {elapsed:7.2f} s = "
                      f"{rate:>9.0f} events/s, cpu {cpu or 0:6.2f} s, peak RSS "
                      f"{(hwm or 0) / 1024:7.1f} MiB{note}", flush=True)
                time.sleep(1)
    finally:
        stop(engine)
        engine_log.close()
        try:
            os.unlink(args.socket)
        except OSError:
            pass
    report(args, results)
    shutil.rmtree(work, ignore_errors=True)


def report(args, results):
    def med(values):
        values = [v for v in values if v is not None]
        return statistics.median(values) if values else 0

    rates = {peer: med([r[1] / r[0] if r[0] > 0 else 0 for r in rs]) for peer, rs in results.items()}
    print(f"\nIngest throughput, N = {args.events:,} events, medians of {args.repeat} repetitions")
    print("| peer | events/s | durable/received | wall s | CPU s | peak RSS MiB | agent ÷ peer |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    names = {"agent": "zastava-agent (NDJSON + SQLite, fsync'ed)",
             "cli": "`docker events --format '{{json .}}'` > file",
             "python": "python3-docker `events(decode=True)` > file",
             "raw": "raw limit: `curl --unix-socket` > file",
             "delivery": "zastava-agent + delivery to a loopback backend (until all accepted)"}
    for peer, rs in results.items():
        ratio = rates["agent"] / rates[peer] if "agent" in rates and rates[peer] else 0
        print(f"| {names[peer]} | {rates[peer]:,.0f} | {med([r[1] for r in rs]):,.0f} | "
              f"{med([r[0] for r in rs]):.2f} | {med([r[2] for r in rs]):.2f} | "
              f"{med([r[3] for r in rs]) / 1024:.1f} | "
              f"{'' if peer == 'agent' else f'{ratio:.2f}'} |")
    if "delivery" in results:
        rss = med([r[5].get("rss_after") for r in results["delivery"]]) / 1024
        print(f"\ndelivery: VmRSS {RSS_SETTLE} s after the last record was accepted {rss:.1f} MiB "
              "(median)")
    if "agent" in results:
        drops = [r[5].get("drops", {}) for r in results["agent"]]
        dups = [r[5].get("duplicates", 0) for r in results["agent"]]
        evidence = [r[5].get("evidence", 0) for r in results["agent"]]
        rss_after = med([r[5].get("rss_after") for r in results["agent"]]) / 1024
        print(f"\nagent: records dropped per repetition, by reason {drops} (must be none), duplicates suppressed "
              f"{dups}, container.evidence records on top {evidence}; VmRSS {RSS_SETTLE} s after "
              f"the last event {rss_after:.1f} MiB (median)")
        if any(any(d.values()) for d in drops):
            print("WARNING: the agent DROPPED engine events: its bounded event queue overflowed, "
                  "so its rate counts only the records it kept.")


if __name__ == "__main__":
    main()
