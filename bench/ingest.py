#!/usr/bin/python3
"""Ingest-throughput benchmark, driven by bench/run.sh.

Starts bench's fake engine once (its N events are its event log; /events?since= replays from
there, like Podman), then per repetition measures, each on its own /events connection:
  agent   zastava-agent with a fresh data dir: time from start until every engine event is a
          record made durable (zastava_agent_events_total with source stream|replay, evidence
          left out), or until the last record when nothing moves for --stall s. When its event
          queue is full the agent closes the stream and reopens it with since=
          (zastava_agent_event_queue_overflows_total); what the engine replays again is
          suppressed as duplicates. Afterwards its ledger (the SQLite events table) is checked
          against the engine's N events: an event whose eventId is not there must lie in an
          agent.gap record's span, or be a destroy a reconciliation wrote first (a duplicate by
          design); otherwise the run prints a WARNING and exits non-zero. A repetition that
          stalled is complete only when nothing but such destroys is missing
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
import bisect
import hashlib
import http.server
import json
import os
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

    elapsed, done, cpu, hwm, why = wait_for(proc, progress, args.events, args.timeout, args.stall)
    progress()
    time.sleep(RSS_SETTLE)  # the writer returns a burst's memory once it is idle
    rss_after = vm_rss_kib(proc.pid)
    progress()
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
        "ledger": check_ledger(os.path.join(data, "zastava-agent.db"), args.engine_events),
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
    p.add_argument("--event-interval-us", type=int, default=1,
                   help="engine time between consecutive events (the fake engine's --interval-us)")
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
                               str(args.events), "--fixtures", args.fixtures,
                               "--interval-us", str(args.event_interval_us)],
                              stdout=engine_log, stderr=subprocess.STDOUT)
    results = {peer: [] for peer in peers}
    try:
        deadline = time.monotonic() + 300
        while True:  # it says it listens once the socket exists
            engine_log.seek(0)
            started = engine_log.readline()
            if os.path.exists(args.socket) and started.endswith("\n"):
                break
            if engine.poll() is not None or time.monotonic() > deadline:
                sys.exit("fake engine did not start: " + started + engine_log.read())
            time.sleep(0.1)
        print(started.strip(), flush=True)
        # The ledger check's reference, read on a connection of its own (not timed).
        args.engine_events = engine_events(args.socket, args.events)
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
                print(f"rep {rep} {peer:7s} {done:>9d} events in {elapsed:7.2f} s = "
                      f"{rate:>9.0f} events/s, cpu {cpu or 0:6.2f} s, peak RSS "
                      f"{(hwm or 0) / 1024:7.1f} MiB{note}", flush=True)
                if "ledger" in extra:
                    print(f"      {peer}: {agent_summary(extra)}", flush=True)
                time.sleep(1)
    finally:
        stop(engine)
        engine_log.close()
        try:
            os.unlink(args.socket)
        except OSError:
            pass
    complete = report(args, results)
    shutil.rmtree(work, ignore_errors=True)
    if not complete:
        sys.exit(1)


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


def report(args, results):
    """Prints the table and the agent's accounting; False when an engine event is missing from
    an agent's ledger without a gap covering it."""
    def med(values):
        values = [v for v in values if v is not None]
        return statistics.median(values) if values else 0

    # A repetition that stalled before N has no rate for N events.
    rates = {peer: med([r[1] / r[0] for r in rs if r[4] == "complete" and r[0] > 0])
             for peer, rs in results.items()}
    print(f"\nIngest throughput, N = {args.events:,} events, medians of {args.repeat} repetitions")
    print("| peer | events/s | durable/received | wall s | CPU s | peak RSS MiB | agent ÷ peer |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    names = {"agent": "zastava-agent (NDJSON + SQLite, fsync'ed)",
             "cli": "`docker events --format '{{json .}}'` > file",
             "python": "python3-docker `events(decode=True)` > file",
             "raw": "raw limit: `curl --unix-socket` > file",
             "delivery": "zastava-agent + delivery to a loopback backend (until all accepted)"}
    for peer, rs in results.items():
        agent_rate = rates.get("agent", 0)
        ratio = agent_rate / rates[peer] if agent_rate and rates[peer] else None
        stalled = sum(r[4] != "complete" for r in rs)
        note = f" ({stalled} of {len(rs)} incomplete)" if stalled else ""
        rate = f"{rates[peer]:,.0f}" if rates[peer] else "none complete"
        print(f"| {names[peer]} | {rate} | {med([r[1] for r in rs]):,.0f}{note} | "
              f"{med([r[0] for r in rs]):.2f} | {med([r[2] for r in rs]):.2f} | "
              f"{med([r[3] for r in rs]) / 1024:.1f} | "
              f"{'' if peer == 'agent' else '—' if ratio is None else f'{ratio:.2f}'} |")
    if "delivery" in results:
        rss = med([r[5].get("rss_after") for r in results["delivery"]]) / 1024
        print(f"\ndelivery: VmRSS {RSS_SETTLE} s after the last record was accepted {rss:.1f} MiB "
              "(median)")
    complete = True
    for peer in ("agent", "delivery"):
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
        if peer == "agent":
            rss_after = med([e.get("rss_after") for e in extras]) / 1024
            print(f"agent: VmRSS {RSS_SETTLE} s after the last event {rss_after:.1f} MiB (median)")
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
