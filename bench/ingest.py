#!/usr/bin/python3
"""Ingest-throughput benchmark, driven by bench/run.sh.

Starts bench's fake engine once (its N events are its event log; /events?since= replays from
there, like Podman; inspects answered at once), and a second one answering each inspect after
--inspect-delay-us when the agent-slow-inspect peer is asked for, then per repetition measures,
each on its own /events connection:
  agent   zastava-agent with a fresh data dir, started while the engine holds the events back
          (fake_engine --events-gate): once /readyz is 200 and 2 s have passed its memory is
          read (ready and idle, no container), then the events are let through and the time
          runs from there until every engine event is a record made durable
          (zastava_agent_events_total with source stream|replay, evidence
          left out), or until the last record when nothing moves for --stall s. When its event
          queue is full the agent closes the stream and reopens it with since=
          (zastava_agent_event_queue_overflows_total); what the engine replays again is
          suppressed as duplicates. Afterwards its ledger (the SQLite events table) is checked
          against the engine's N events: an event whose eventId is not there must lie in an
          agent.gap record's span, or be a destroy a reconciliation wrote first (a duplicate by
          design); otherwise the run prints a WARNING and exits non-zero. A repetition that
          stalled is complete only when nothing but such destroys is missing
  agent-slow-inspect  the agent again, against the second fake engine: every inspect the agent
          sends answered after --inspect-delay-us (default: the
          real engine's median, bench/engine.py --only inspect), like a real engine, not at once
  cli     docker events --format '{{json .}}' > file, until N lines
  python  python3-docker DockerClient.events(decode=True) written as JSON lines, until N lines
  raw     curl --unix-socket -sN .../events > file, until N lines
  delivery  the agent again, with backend delivery (docs/backend.md) to a sink on loopback that
          answers 204 to every batch: until every engine event is durable AND accepted by the
          sink (zastava_agent_backend_delivered_records_total), i.e. what delivery costs
and prints medians and ratios. Times are wall clock from process start for the peers that never
wait (cli, python, raw), from the release of the events for the agents (their start-up is not
in it); the fake engine has the body ready before it listens, so generation is not measured.

Also, per peer: CPU s (utime + stime of /proc/PID/stat just before it is stopped) per 10^6
events. For every agent peer: private memory (Private_Clean + Private_Dirty), PSS and RSS of
/proc/PID/smaps_rollup (bench/procmem.py) ready and idle before the events and RSS_SETTLE s after
the last one, and the same three of bench/library_floor.cpp (--library-floor), run once before
any peer (alone: the libraries' pages it maps are private to it, as they are to a lone agent)
and once beside the first agent (they are then shared). Disk: the fdatasync bandwidth of the
filesystem of the agents' data directories (`dd if=/dev/zero of=FILE bs=1M count=--dd-mib
oflag=dsync` there, once before the peers), and per agent repetition the bytes it wrote to
storage (write_bytes of /proc/PID/io, read just before it is stopped, less what it had written
when the events were released) ÷ its wall time, as a fraction of that bandwidth, and per event.
For the first agent repetition, the ledger's bytes per record by kind: NDJSON line length + 1
per record kind, and the SQLite file (with its -wal) size ÷ records.
"""
import argparse
import bisect
import hashlib
import http.server
import json
import os
import re
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

import procmem  # bench/procmem.py, beside this file

PY_PEER = r"""
import json, sys, docker
client = docker.DockerClient(base_url=sys.argv[1])
out = sys.stdout
for event in client.events(decode=True):
    out.write(json.dumps(event) + "\n")
"""

POLL = 0.05
RSS_SETTLE = 5  # s after the last event before the agent's memory "after" is read
IDLE_SETTLE = 2  # s after /readyz is 200 before the agent's memory "before" is read
# The real engine's median answer time to an inspect of a running container, in µs:
# bench/engine.py --only inspect (docs/BENCHMARKS.md, 1.), the median of five runs' medians
# (1.2-1.9 ms on 2 CPUs shared with other builds), rounded to 100 µs.
INSPECT_DELAY_US = 1600
AGENTS = ("agent", "agent-slow-inspect", "delivery")


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


def proc_number(path, key):
    """The number after `key:` in a /proc file of "key: value" lines, or None."""
    try:
        with open(path) as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return None


def vm_rss_kib(pid):
    """VmRSS of a live process in KiB, or None."""
    return proc_number(f"/proc/{pid}/status", "VmRSS")


def write_bytes(pid):
    """write_bytes of /proc/PID/io (bytes the process caused to be sent to storage), or None."""
    return proc_number(f"/proc/{pid}/io", "write_bytes")


def dd_bandwidth(directory, mib):
    """Bytes/s of `dd if=/dev/zero of=FILE bs=1M count=mib oflag=dsync` (every 1 MiB block
    written and fdatasync'ed) into a file in `directory`, removed afterwards; None on failure."""
    path = os.path.join(directory, "dd-bandwidth")
    try:
        res = subprocess.run(["dd", "if=/dev/zero", f"of={path}", "bs=1M", f"count={mib}",
                              "oflag=dsync"], capture_output=True, text=True)
    finally:
        try:
            os.unlink(path)
        except OSError:
            pass
    # "268435456 bytes (268 MB, 256 MiB) copied, 1.2345 s, 217 MB/s"
    found = re.search(r"^(\d+) bytes .* copied, ([\d.]+) s", res.stderr, re.M)
    if res.returncode != 0 or not found or float(found.group(2)) <= 0:
        print(f"dd failed: {res.stderr.strip()}", flush=True)
        return None
    return int(found.group(1)) / float(found.group(2))


def filesystem(path):
    """'TYPE on MOUNTPOINT' of the filesystem holding path (from /proc/self/mounts)."""
    best = ("?", "?")
    path = os.path.realpath(path)
    with open("/proc/self/mounts") as f:
        for line in f:
            fields = line.split()
            point = fields[1]
            if (path == point or path.startswith(point.rstrip("/") + "/")) and len(point) >= len(
                    best[1] if best[1] != "?" else ""):
                best = (fields[2], point)
    return f"{best[0]} on {best[1]}"


def record_bytes(data):
    """{kind: (records, NDJSON bytes)} of the segments under data/runtime-events (line length
    + 1 each; the record's kind is its first "kind" key), and (SQLite bytes, ledger records)."""
    kinds = {}
    segments = os.path.join(data, "runtime-events")
    for name in sorted(os.listdir(segments)) if os.path.isdir(segments) else []:
        with open(os.path.join(segments, name), "rb") as f:
            for line in f:
                at = line.find(b'"kind":"')
                kind = line[at + 8:line.find(b'"', at + 8)].decode() if at >= 0 else "?"
                count, size = kinds.get(kind, (0, 0))
                kinds[kind] = (count + 1, size + len(line.rstrip(b"\n")) + 1)
    db = os.path.join(data, "zastava-agent.db")
    size = sum(os.path.getsize(db + suffix) for suffix in ("", "-wal")
               if os.path.exists(db + suffix))
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        records = conn.execute("SELECT count(*) FROM events").fetchone()[0]
        conn.close()
    except sqlite3.Error:
        records = None
    return kinds, (size, records)


def wait_ready(proc, port, timeout=60):
    """Polls /readyz until 200; False if the agent exits or `timeout` s pass."""
    deadline = time.monotonic() + timeout
    while proc.poll() is None and time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as r:
                if r.status == 200:
                    return True
        except OSError:
            pass
        time.sleep(POLL)
    return False


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


def run_agent(args, work, port, engine, deliver=False, floor_beside=False, by_kind=False):
    """One agent repetition against `engine` (its socket and its events): waits until it is
    ready with the events held back, reads its memory, releases the events and times them."""
    data = os.path.join(work, "agent-data")
    os.makedirs(data)
    if os.path.exists(args.gate):
        os.unlink(args.gate)
    log = open(os.path.join(work, "agent.log"), "w")
    cmd = [args.agent, "--docker-endpoint", "unix://" + engine["socket"], "--data-directory", data,
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
        # Engine events only: a container.evidence record has its start event's source too.
        durable = sum_where(seen, "zastava_agent_events_total", 'source="stream"',
                            'source="replay"') - sum_where(
            seen, "zastava_agent_events_total", 'kind="container.evidence",source="stream"',
            'kind="container.evidence",source="replay"')
        if not deliver:
            return durable, durable
        # Every record, evidence included, must reach the sink. Progress is engine records
        # only: gap and reconcile records come and go through delivery without any.
        delivered = seen.get("zastava_agent_backend_delivered_records_total", 0)
        undelivered = sum_where(seen, "zastava_agent_events_total", "{") - int(delivered)
        return durable - undelivered, durable if undelivered <= 0 else min(durable,
                                                                          args.events - 1)

    if not wait_ready(proc, port):
        print(f"the agent was not ready within 60 s (exit {proc.poll()})", flush=True)
    time.sleep(IDLE_SETTLE)
    mem_before = procmem.smaps(proc.pid)
    floor = procmem.library_floor(args.library_floor) if floor_beside else {}
    written_before = write_bytes(proc.pid) or 0
    with open(args.gate, "w"):
        pass  # the events flow
    elapsed, done, cpu, hwm, why = wait_for(proc, progress, args.events, args.timeout, args.stall)
    progress()
    time.sleep(RSS_SETTLE)  # the writer returns a burst's memory once it is idle
    rss_after = vm_rss_kib(proc.pid)
    mem_after = procmem.smaps(proc.pid)
    progress()
    c, _ = proc_stat(proc.pid)
    cpu = c if c is not None else cpu
    written = write_bytes(proc.pid)
    stop(proc)
    log.close()
    if sink:
        sink.shutdown()
        sink.server_close()
    extra = {
        "overflows": int(seen.get("zastava_agent_event_queue_overflows_total", 0)),
        "gaps": int(seen.get("zastava_agent_gaps_total", 0)),
        "duplicates": int(seen.get("zastava_agent_duplicates_suppressed_total", 0)),
        "drops": {k.split('reason="')[1].rstrip('"}'): int(v) for k, v in seen.items()
                  if k.startswith("zastava_agent_events_dropped_total{") and v},
        "evidence": sum_where(seen, "zastava_agent_events_total", 'kind="container.evidence"'),
        "rss_after": rss_after,
        "mem_before": mem_before,
        "mem_after": mem_after,
        "floor_beside": floor,
        "written": None if written is None else written - written_before,
        "ledger": check_ledger(os.path.join(data, "zastava-agent.db"), engine["events"]),
        "by_kind": record_bytes(data) if by_kind else None,
    }
    ledger = extra["ledger"]
    # The engine's destroy of a container a reconciliation destroyed first is a duplicate, never
    # a record: the stall that ends such a run is its end, if nothing else is missing.
    if why.startswith("stalled") and ledger.get("reconciled_destroy") and not (
            ledger["in_gap"] or ledger["uncovered"]):
        why = "complete"
    shutil.rmtree(data, ignore_errors=True)
    return elapsed, done, cpu, hwm, why, extra


def engine_events(socket_path, n):
    """The fake engine's N events as (timeNano, eventId, container id of a destroy else None),
    in order: the eventId as the agent derives it (buffer/record.cpp, eventIdForEngineEvent)."""
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    conn.connect(socket_path)
    conn.sendall(b"GET /v1.41/events HTTP/1.1\r\nHost: bench\r\n\r\n")
    events, rest = [], b""
    while len(events) < n:
        block = conn.recv(1 << 22)
        if not block:
            break
        lines = (rest + block).split(b"\n")
        rest = lines.pop()
        for line in lines:
            if not line.startswith(b"{"):
                continue  # chunk framing
            event = json.loads(line)
            actor = event["Actor"]["ID"]
            time_nano = event["timeNano"]
            digest = hashlib.sha256(
                f"engine\n{event['Type']}\n{event['Action']}\n{actor}\n{time_nano}".encode())
            destroyed = actor if event["Action"] == "destroy" else None
            events.append((time_nano, digest.hexdigest()[:32], destroyed))
    conn.close()
    if len(events) != n:
        sys.exit(f"the fake engine sent {len(events)} events, not {n}")
    return events


def check_ledger(db_path, events):
    """Which engine events the ledger lacks, and whether something accounts for each: a gap
    record's span, or (a destroy) the same container's destroy written by a reconciliation."""
    try:
        db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
        ids = {row[0] for row in db.execute(
            "SELECT event_id FROM events WHERE source IN ('stream', 'replay')")}
        spans = sorted((g["fromTimeNano"], g["toTimeNano"]) for g in (
            json.loads(row[0])["gap"] for row in db.execute(
                "SELECT record FROM events WHERE kind = 'agent.gap'")))
        destroyed = {row[0] for row in db.execute(
            "SELECT container_id FROM events WHERE source = 'reconcile' "
            "AND kind = 'container.destroy'")}
        reconcile = db.execute("SELECT count(*) FROM events WHERE source = 'reconcile' "
                               "AND kind != 'agent.gap'")
        reconcile = reconcile.fetchone()[0]
        db.close()
    except (sqlite3.Error, KeyError, ValueError) as error:
        return {"error": str(error)}
    merged = []
    for start, end in spans:
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    starts = [m[0] for m in merged]
    missing = in_gap = reconciled_destroy = 0
    uncovered = []
    for time_nano, event_id, destroyed_id in events:
        if event_id in ids:
            continue
        missing += 1
        at = bisect.bisect_right(starts, time_nano) - 1
        if at >= 0 and time_nano <= merged[at][1]:
            in_gap += 1
        elif destroyed_id is not None and destroyed_id in destroyed:
            reconciled_destroy += 1
        else:
            uncovered.append(time_nano)
    return {"present": len(events) - missing, "missing": missing, "in_gap": in_gap,
            "reconciled_destroy": reconciled_destroy, "uncovered": len(uncovered),
            "first_uncovered": uncovered[0] if uncovered else None,
            "gap_records": len(spans), "reconcile_records": reconcile}


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
    c, _ = proc_stat(proc.pid)
    cpu = c if c is not None else cpu
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
    p.add_argument("--peers", default="agent,agent-slow-inspect,cli,python,raw,delivery")
    p.add_argument("--event-interval-us", type=int, default=1,
                   help="engine time between consecutive events (the fake engine's --interval-us)")
    p.add_argument("--inspect-delay-us", type=int, default=INSPECT_DELAY_US,
                   help="agent-slow-inspect: how long its fake engine holds each inspect answer "
                        "(default: the real engine's median, bench/engine.py --only inspect)")
    p.add_argument("--library-floor", help="bench/library_floor.cpp built by bench/run.sh")
    p.add_argument("--dd-mib", type=int, default=256,
                   help="MiB that dd writes (1 MiB blocks, each fdatasync'ed) to measure the disk")
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
    unknown = set(peers) - set(AGENTS) - set(commands)
    if unknown:
        p.error(f"unknown peer(s) {sorted(unknown)}")
    work = tempfile.mkdtemp(prefix="zbench-", dir="/tmp")
    args.gate = os.path.join(work, "events-gate")
    engines = {"fast": {"socket": args.socket, "delay": 0}}
    if "agent-slow-inspect" in peers:
        engines["slow"] = {"socket": args.socket + ".slow", "delay": args.inspect_delay_us}
    results = {peer: [] for peer in peers}
    first_agent = next((q for q in peers if q in AGENTS), None)
    context = {"floor": {}, "disk": {}}
    try:
        for engine in engines.values():
            engine["log"] = open(os.path.join(work, f"engine-{engine['delay']}.log"), "w+")
            engine["proc"] = subprocess.Popen(
                [args.fake_engine, "--socket", engine["socket"], "--events", str(args.events),
                 "--fixtures", args.fixtures, "--interval-us", str(args.event_interval_us),
                 "--inspect-delay-us", str(engine["delay"]), "--events-gate", args.gate],
                stdout=engine["log"], stderr=subprocess.STDOUT)
        for engine in engines.values():
            deadline = time.monotonic() + 300
            while True:  # it says it listens once the socket exists
                engine["log"].seek(0)
                started = engine["log"].readline()
                if os.path.exists(engine["socket"]) and started.endswith("\n"):
                    break
                if engine["proc"].poll() is not None or time.monotonic() > deadline:
                    sys.exit("fake engine did not start: " + started + engine["log"].read())
                time.sleep(0.1)
            print(started.strip(), flush=True)
        # The ledger check's reference, read on a connection of its own (not timed); each
        # engine stamps its events when it builds them.
        with open(args.gate, "w"):
            pass
        for engine in engines.values():
            engine["events"] = engine_events(engine["socket"], args.events)
        if args.library_floor:
            floor = procmem.library_floor(args.library_floor)
            print(f"library floor (bench/library_floor.cpp), no agent running: "
                  f"{procmem.triple(floor)}", flush=True)
            context["floor"] = floor
        bandwidth = dd_bandwidth(work, args.dd_mib)
        context["disk"] = {"bandwidth": bandwidth, "filesystem": filesystem(work)}
        print(f"disk: dd bs=1M count={args.dd_mib} oflag=dsync in {work} "
              f"({context['disk']['filesystem']}): "
              f"{'n/a' if bandwidth is None else f'{bandwidth / 1e6:.1f} MB/s'}", flush=True)
        for rep in range(1, args.repeat + 1):
            for peer in peers:
                if peer in AGENTS:
                    r = run_agent(args, work, args.port + rep,
                                  engines["slow" if peer == "agent-slow-inspect" else "fast"],
                                  deliver=peer == "delivery",
                                  floor_beside=rep == 1 and peer == first_agent,
                                  by_kind=rep == 1 and peer == "agent")
                else:
                    with open(args.gate, "w"):
                        pass
                    r = run_file_peer(args, work, peer, commands[peer])
                results[peer].append(r)
                elapsed, done, cpu, hwm, why, extra = r
                rate = done / elapsed if elapsed > 0 else 0
                note = "" if why == "complete" else f"  [{why}]"
                if extra.get("rss_after"):
                    note += f", RSS {RSS_SETTLE} s after {extra['rss_after'] / 1024:.1f} MiB"
                print(f"rep {rep} {peer:7s} {done:>9d} events in {elapsed:7.2f} s = "
                      f"{rate:>9.0f} events/s, cpu {cpu or 0:6.2f} s, peak RSS "
                      f"{(hwm or 0) / 1024:7.1f} MiB{note}", flush=True)
                if "ledger" in extra:
                    print(f"      {peer}: {agent_summary(extra)}", flush=True)
                    print(f"      {peer}: memory before the events "
                          f"{procmem.triple(extra['mem_before'])}, {RSS_SETTLE} s after the last "
                          f"{procmem.triple(extra['mem_after'])}; "
                          f"wrote {extra['written'] or 0:,} bytes", flush=True)
                    if extra["floor_beside"]:
                        print(f"      library floor beside this agent: "
                              f"{procmem.triple(extra['floor_beside'])}", flush=True)
                time.sleep(1)
    finally:
        for engine in engines.values():
            if "proc" in engine:
                stop(engine["proc"])
                engine["log"].close()
            try:
                os.unlink(engine["socket"])
            except OSError:
                pass
    complete = report(args, results, context)
    shutil.rmtree(work, ignore_errors=True)
    if not complete:
        sys.exit(1)


COLUMN = {"agent": "agent ÷ peer", "agent-slow-inspect": "agent (slow inspect) ÷ peer"}


def memory_report(args, results, context):
    """Private/PSS/RSS of each agent peer before and after the events, and the library floor."""
    print(f"\nMemory (MiB, medians; private = Private_Clean + Private_Dirty, PSS, RSS of "
          f"/proc/PID/smaps_rollup): ready and idle with 0 containers before the events, "
          f"{RSS_SETTLE} s after the last")
    print("| process | private before | of which dirty | PSS before | RSS before | private after | "
          "of which dirty | PSS after | RSS after | private after ÷ before |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for peer in AGENTS:
        if peer not in results:
            continue
        extras = [r[5] for r in results[peer]]

        def m(when, key):
            return med([e[when].get(key) for e in extras])
        growth = m("mem_after", "private") / m("mem_before", "private") if m(
            "mem_before", "private") else None
        print(f"| {peer} | " + " | ".join(procmem.mib(m(w, k)) for w in ("mem_before", "mem_after")
                                         for k in ("private", "dirty", "pss", "rss")) +
              f" | {'n/a' if growth is None else f'{growth:.2f}'} |")
    floor = context["floor"]
    if floor:
        print(f"| library floor (bench/library_floor.cpp), no agent running | "
              f"{procmem.mib(floor['private'])} | {procmem.mib(floor['dirty'])} | "
              f"{procmem.mib(floor['pss'])} | {procmem.mib(floor['rss'])} | | | | | |")
    beside = [r[5]["floor_beside"] for rs in results.values() for r in rs
              if r[5].get("floor_beside")]
    if beside:
        print(f"| library floor beside the first agent (their libraries shared) | "
              f"{procmem.mib(beside[0]['private'])} | {procmem.mib(beside[0]['dirty'])} | "
              f"{procmem.mib(beside[0]['pss'])} | {procmem.mib(beside[0]['rss'])} | | | | | |")
    if "agent" in results:
        extras = [r[5] for r in results["agent"]]
        before = med([e["mem_before"].get("private") for e in extras])
        after = med([e["mem_after"].get("private") for e in extras])
        print(f"goal private memory after the events at most 10 % above before: "
              f"{'met' if before and after <= 1.1 * before else 'MISSED'} "
              f"({procmem.mib(before)} -> {procmem.mib(after)} MiB)")


def disk_report(results, context):
    """The agents' write rate against the disk's fdatasync bandwidth, and bytes per record."""
    disk = context["disk"]
    bandwidth = disk.get("bandwidth")
    print(f"\nDisk: fdatasync bandwidth of the data directory's filesystem "
          f"({disk.get('filesystem')}), dd 1 MiB blocks with oflag=dsync: "
          f"{'n/a' if bandwidth is None else f'{bandwidth / 1e6:.1f} MB/s'}")
    print("| peer | bytes written (write_bytes) | MB/s over its wall time | disk fraction | "
          "bytes per event |")
    print("|---|---:|---:|---:|---:|")
    for peer in AGENTS:
        rs = [r for r in results.get(peer, []) if r[5].get("written") is not None]
        if not rs:
            continue
        rate = med([r[5]["written"] / r[0] for r in rs if r[0] > 0])
        per_event = med([r[5]["written"] / r[1] for r in rs if r[1]])
        fraction = f"{rate / bandwidth:.3f}" if bandwidth else "n/a"
        print(f"| {peer} | {med([r[5]['written'] for r in rs]):,.0f} | {rate / 1e6:.1f} | "
              f"{fraction} | {per_event:,.0f} |")
    for r in results.get("agent", []):
        if not r[5].get("by_kind"):
            continue
        kinds, (db_bytes, records) = r[5]["by_kind"]
        print("\nLedger bytes per record by kind, agent repetition 1 (NDJSON line + 1)")
        print("| kind | records | NDJSON bytes | bytes per record |")
        print("|---|---:|---:|---:|")
        for kind, (count, size) in sorted(kinds.items(), key=lambda kv: -kv[1][0]):
            print(f"| {kind} | {count:,} | {size:,} | {size / count:.0f} |")
        count = sum(c for c, _ in kinds.values())
        size = sum(b for _, b in kinds.values())
        if count:
            print(f"| all | {count:,} | {size:,} | {size / count:.0f} |")
        if records:
            print(f"SQLite: {db_bytes:,} bytes (zastava-agent.db with its -wal) for {records:,} "
                  f"records = {db_bytes / records:.0f} bytes per record")
            if count < records:
                print(f"(the NDJSON segments left hold {count:,} of the ledger's {records:,} "
                      f"records: older segments were removed by the size cap; the figures are "
                      f"per record)")


def agent_summary(extra):
    """One line: how the agent's stream went and what its ledger lacks."""
    ledger = extra["ledger"]
    if "error" in ledger:
        return f"ledger not readable: {ledger['error']}"
    text = (f"{extra['overflows']} queue overflows (stream reopened), {extra['gaps']} gaps "
            f"({ledger['gap_records']} agent.gap records), {extra['duplicates']} duplicates "
            f"suppressed, {ledger['reconcile_records']} reconcile records; ledger holds "
            f"{ledger['present']:,} of the engine's events, {ledger['missing']:,} missing: "
            f"{ledger['in_gap']:,} inside a gap's span, {ledger['reconciled_destroy']:,} destroys "
            f"written by reconciliation first, {ledger['uncovered']:,} unaccounted for")
    if extra["drops"]:
        text += f"; records dropped by reason {extra['drops']}"
    return text


def med(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else 0


def report(args, results, context):
    """Prints the table and the agent's accounting; False when an engine event is missing from
    an agent's ledger without a gap covering it."""
    # A repetition that stalled before N has no rate for N events.
    rates = {peer: med([r[1] / r[0] for r in rs if r[4] == "complete" and r[0] > 0])
             for peer, rs in results.items()}
    agents = [a for a in ("agent", "agent-slow-inspect") if a in results]
    print(f"\nIngest throughput, N = {args.events:,} events, medians of {args.repeat} repetitions")
    print("| peer | events/s | durable/received | wall s | CPU s | CPU s per 10^6 events | "
          "peak RSS MiB |" + "".join(f" {COLUMN[a]} |" for a in agents))
    print("|---|---:|---:|---:|---:|---:|---:|" + "---:|" * len(agents))
    names = {"agent": "zastava-agent (NDJSON + SQLite, fsync'ed), inspects answered at once",
             "agent-slow-inspect": "zastava-agent, inspects answered after "
                                   f"{args.inspect_delay_us:,} µs (a real engine's median)",
             "cli": "`docker events --format '{{json .}}'` > file",
             "python": "python3-docker `events(decode=True)` > file",
             "raw": "raw limit: `curl --unix-socket` > file",
             "delivery": "zastava-agent + delivery to a loopback backend (until all accepted)"}
    for peer, rs in results.items():
        ratios = []
        for a in agents:
            ratio = rates[a] / rates[peer] if rates[a] and rates[peer] else None
            ratios.append("" if peer == a else "—" if ratio is None else f"{ratio:.2f}")
        stalled = sum(r[4] != "complete" for r in rs)
        note = f" ({stalled} of {len(rs)} incomplete)" if stalled else ""
        rate = f"{rates[peer]:,.0f}" if rates[peer] else "none complete"
        per_million = med([r[2] * 1e6 / r[1] for r in rs if r[2] is not None and r[1]])
        print(f"| {names[peer]} | {rate} | {med([r[1] for r in rs]):,.0f}{note} | "
              f"{med([r[0] for r in rs]):.2f} | {med([r[2] for r in rs]):.2f} | "
              f"{per_million:.2f} | {med([r[3] for r in rs]) / 1024:.1f} |" +
              "".join(f" {r} |" for r in ratios))
    if any(peer in AGENTS for peer in results):
        memory_report(args, results, context)
        disk_report(results, context)
    if "delivery" in results:
        rss = med([r[5].get("rss_after") for r in results["delivery"]]) / 1024
        print(f"\ndelivery: VmRSS {RSS_SETTLE} s after the last record was accepted {rss:.1f} MiB "
              "(median)")
    complete = True
    for peer in AGENTS:
        if peer not in results:
            continue
        extras = [r[5] for r in results[peer]]
        print(f"\n{peer}, per repetition: queue overflows (stream reopened) "
              f"{[e['overflows'] for e in extras]}, gaps {[e['gaps'] for e in extras]}, "
              f"duplicates suppressed {[e['duplicates'] for e in extras]}, "
              f"engine events missing from the ledger "
              f"{[e['ledger'].get('missing') for e in extras]}, of which in no gap's span "
              f"{[e['ledger'].get('uncovered') for e in extras]}; container.evidence records on "
              f"top {[e['evidence'] for e in extras]}")
        for rep, e in enumerate(extras, 1):
            ledger = e["ledger"]
            if "error" in ledger or ledger["uncovered"] or e["drops"]:
                complete = False
                print(f"WARNING: {peer} rep {rep}: engine events missing from the ledger with no "
                      f"agent.gap record covering them: {agent_summary(e)}")
    incomplete = [f"{peer} rep {rep}" for peer, rs in results.items()
                  for rep, r in enumerate(rs, 1) if r[4] != "complete"]
    if incomplete:
        print(f"\nWARNING: not complete (stopped before N events; no rate): "
              f"{', '.join(incomplete)}")
    return complete


if __name__ == "__main__":
    main()
