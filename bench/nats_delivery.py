#!/usr/bin/python3
"""Delivery benchmark, driven by bench/run.sh --suite delivery: NATS JetStream beside HTTP.

A backlog of real agent records is made once: the agent ingests bench's fake engine events
with delivery off (EventBuffer caps large enough that nothing is pruned, seals once an hour)
and is stopped once its ledger holds --records records; that data directory is copied for each
run. Per repetition, side by side, the agent starts on a fresh copy with delivery on (no engine:
its socket does not exist) and the time runs from its start until its backlog gauge
(zastava_agent_backend_backlog_records) is 0 and zastava_agent_backend_delivered_records_total
covers the backlog; then the destination is read back. Destinations:
  nats-r3     a 3-node nats-server cluster on loopback (tests/integration/nats_cluster.py, file
              storage), the stream with 3 replicas, Backend:NatsAckWindow 256 (the default)
  nats-r3-w1  the same with NatsAckWindow 1: each record waits for the previous one's ack
              (--window1-records, a smaller backlog made the same way: it is slow)
  nats-r1     a single node, the stream with 1 replica
  http        the agent's HTTP sink into a receiver on loopback (Python http.server, reads each
              batch, counts its lines, answers 204)
All with the default batching (Backend:BatchMaxRecords 1000). Per run: records/s, the agent's
CPU (utime + stime of /proc/PID/stat, start-up included) per 10^6 records and by thread
(/proc/PID/task/*/stat), the nats-servers' CPU over the same time (sum of the nodes) per 10^6.
Checks: the stream holds exactly the ledger's delivered records on the host's subject, each
once (every message's Nats-Msg-Id read back through a pull consumer, headers only) and in ledger
order; the HTTP receiver got as many lines.

Then the catch-up after an outage: a backlog of --outage-records records (default 7,200: one
hour of docs/fleet.md's busiest profile, 2.0 records/s), the R3 cluster stopped while the agent
starts on it (Backend:RetryMaxSeconds 1, so its next attempt is within 1 s of the cluster's
return), then started again: the time from the stream answering with a leader again to the
backlog gauge 0, and from the first to the last message the stream stored (their JetStream
timestamps), --repeat times.

  python3 bench/nats_delivery.py --agent build/bench/agent/zastava-agent \\
      --fake-engine build/bench/tools/fake_engine --fixtures tests/fixtures/engine \\
      [--records 1000000] [--window1-records 10000] [--outage-records 7200] [--repeat 3]
      [--destinations nats-r3,nats-r3-w1,nats-r1,http]
"""
import argparse
import collections
import datetime
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

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
import nats_cluster  # noqa: E402  tests/integration/nats_cluster.py

STREAM = "ZASTAVA_RECORDS"
PREFIX = "zastava.records"
DESTINATIONS = ("nats-r3", "nats-r3-w1", "nats-r1", "http")
NAMES = {
    "nats-r3": "NATS, 3 nodes, stream R3, window 256",
    "nats-r3-w1": "NATS, 3 nodes, stream R3, window 1",
    "nats-r1": "NATS, 1 node, stream R1, window 256",
    "http": "HTTP into a loopback receiver (204)",
}
CLK = os.sysconf("SC_CLK_TCK")


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_s(pid):
    """utime + stime of a live process in s, or None."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK
    except (OSError, IndexError, ValueError):
        return None


def thread_cpu(pid):
    """{thread name: utime + stime s} of a live process's threads (names summed)."""
    out = collections.Counter()
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                text = f.read()
        except OSError:
            continue
        name = text[text.index("(") + 1:text.rindex(")")]
        fields = text.rsplit(")", 1)[1].split()
        out[name] += (int(fields[11]) + int(fields[12])) / CLK
    return out


def metrics(port):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
            text = r.read().decode()
    except OSError:
        return {}
    values = {}
    for line in text.splitlines():
        if line.startswith("zastava_agent_"):
            name, _, value = line.rpartition(" ")
            values[name] = float(value)
    return values


def records_total(values):
    return int(sum(v for k, v in values.items() if k.startswith("zastava_agent_events_total{")))


def stop(proc, timeout=30):
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def agent_cmd(args, data, port, extra=()):
    return [args.agent, "--data-directory", data,
            "--docker-endpoint", f"unix://{data}.no-engine.sock",
            "--reconnect-max-backoff-seconds", "3600",
            "--event-buffer-max-file-size-mb", "64",
            "--event-buffer-max-total-size-mb", "65536",
            "--ledger-seal-interval-seconds", "3600",
            "--health-address", "127.0.0.1", "--health-port", str(port), *extra]


def cursor_of(data):
    """The delivery cursor (rowid) of a stopped agent's data directory."""
    db = sqlite3.connect(f"file:{os.path.join(data, 'zastava-agent.db')}?mode=ro", uri=True)
    row = db.execute("SELECT value FROM meta WHERE key = 'delivery_rowid'").fetchone()
    db.close()
    return int(row[0]) if row else 0


def delivered_ids(data, since):
    """eventIds of the records after rowid `since` up to the delivery cursor, in ledger order."""
    cursor = cursor_of(data)
    db = sqlite3.connect(f"file:{os.path.join(data, 'zastava-agent.db')}?mode=ro", uri=True)
    ids = [r[0] for r in db.execute(
        "SELECT event_id FROM events WHERE rowid > ? AND rowid <= ? ORDER BY rowid",
        (since, cursor))]
    db.close()
    return ids


def make_backlog(args, work, n, name):
    """A data directory whose ledger holds >= n undelivered records, made by the agent from the
    fake engine's events with delivery off. Returns (path, records)."""
    data = os.path.join(work, f"backlog-{name}")
    sock = os.path.join(work, f"engine-{name}.sock")
    engine_log = open(os.path.join(work, f"engine-{name}.log"), "w+")
    # ~1.3 records per engine event: n events are always enough.
    engine = subprocess.Popen([args.fake_engine, "--socket", sock, "--events", str(n),
                               "--fixtures", args.fixtures, "--interval-us", "1"],
                              stdout=engine_log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 300
        while True:
            engine_log.seek(0)
            started = engine_log.readline()
            if os.path.exists(sock) and started.endswith("\n"):
                break
            if engine.poll() is not None or time.monotonic() > deadline:
                sys.exit("fake engine did not start: " + started + engine_log.read())
            time.sleep(0.1)
        port = free_port()
        cmd = agent_cmd(args, data, port)
        cmd[cmd.index("--docker-endpoint") + 1] = "unix://" + sock
        with open(os.path.join(work, f"backlog-{name}.log"), "w") as agent_log:
            agent = subprocess.Popen(cmd, stdout=agent_log, stderr=subprocess.STDOUT)
            start = time.monotonic()
            made = 0
            while made < n:
                if agent.poll() is not None:
                    sys.exit(f"the agent making the backlog exited with {agent.returncode}")
                if time.monotonic() - start > 600:
                    sys.exit(f"the backlog reached {made} records in 600 s, not {n}")
                made = records_total(metrics(port))
                time.sleep(0.05)
            stop(agent)
    finally:
        stop(engine)
        engine_log.close()
        try:
            os.unlink(sock)
        except OSError:
            pass
    # The agent stops a little after n: the delivery cursor is put after the records before the
    # last n, as if they had been delivered, so exactly n wait.
    db = sqlite3.connect(os.path.join(data, "zastava-agent.db"))
    count = db.execute("SELECT count(*) FROM events").fetchone()[0]
    row = db.execute("SELECT rowid FROM events ORDER BY rowid DESC LIMIT 1 OFFSET ?",
                     (n,)).fetchone()
    if row:
        with db:
            db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('delivery_rowid', ?)",
                       (str(row[0]),))
    waiting = db.execute("SELECT count(*) FROM events WHERE rowid > ?",
                         (row[0] if row else 0,)).fetchone()[0]
    db.close()
    assert waiting == n, f"{waiting} records after the cursor, not {n}"
    log(f"backlog {name}: {n:,} records waiting ({count:,} in the ledger, "
        f"{du(data) / 1e6:,.0f} MB on disk), made in {time.monotonic() - start:.1f} s")
    return data, n


def du(path):
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(path) for f in fs)


class BenchCluster(nats_cluster.NatsCluster):
    """nats_cluster's cluster with room for the backlog (its tests need 512 MB at most)."""
    file_store = "8GB"

    def start_all(self, timeout=40):
        try:
            super().start_all(timeout)
        except BaseException:
            self.close()
            raise

    def config_text(self, node):
        return super().config_text(node).replace("max_file_store: 512MB",
                                                 f"max_file_store: {self.file_store}")


class Quiet:
    """nats_cluster logs every start and stop through harness.log: silenced here."""

    def __enter__(self):
        self.saved = nats_cluster.h.log
        nats_cluster.h.log = lambda msg: None

    def __exit__(self, *_):
        nats_cluster.h.log = self.saved


def start_cluster(work, nodes):
    directory = tempfile.mkdtemp(prefix=f"nats{nodes}-", dir=work)
    with Quiet():
        cluster = BenchCluster(directory, nodes=nodes, name="bench")
        try:
            cluster.create_stream(STREAM, [PREFIX + ".>"], replicas=nodes)
            if nodes > 1:  # a standalone server's stream has no leader to wait for
                cluster.stream_leader(STREAM)
        except BaseException:
            cluster.close()
            raise
    return cluster, directory


def close_cluster(cluster, directory):
    with Quiet():
        cluster.close()
    shutil.rmtree(directory, ignore_errors=True)


def servers_cpu(cluster):
    return sum(cpu_s(n.proc.pid) or 0 for n in cluster.nodes if n.alive())


class Reader:
    """Reads NATS protocol operations off a NatsClient's socket with offsets into one buffer
    (the client's own reader copies the rest of its buffer at every line: quadratic for a
    million small messages)."""

    def __init__(self, client):
        self.client, self.sock = client, client.sock
        self.buf, self.pos = client.buf, 0

    def _more(self, deadline):
        left = deadline - time.monotonic()
        if left <= 0:
            raise socket.timeout("timed out")
        self.sock.settimeout(left)
        chunk = self.sock.recv(1 << 20)
        if not chunk:
            raise nats_cluster.NatsError("connection closed by the server")
        self.buf = self.buf[self.pos:] + chunk
        self.pos = 0

    def op(self, deadline):
        """(subject, reply, status, headers bytes) of the next message; answers PINGs."""
        while True:
            end = self.buf.find(b"\r\n", self.pos)
            if end < 0:
                self._more(deadline)
                continue
            line = self.buf[self.pos:end]
            if line.startswith(b"HMSG ") or line.startswith(b"MSG "):
                parts = line.split(b" ")
                total = int(parts[-1])
                if len(self.buf) < end + 2 + total + 2:
                    self._more(deadline)
                    continue
                payload = self.buf[end + 2:end + 2 + total]
                self.pos = end + 2 + total + 2
                if parts[0] == b"MSG":
                    return parts[1].decode(), None, None, b""
                hlen = int(parts[-2])
                reply = parts[3].decode() if len(parts) == 6 else None
                head = payload[:hlen]
                first = head[:head.find(b"\r\n")].split(None, 2)
                status = int(first[1]) if len(first) > 1 and first[1].isdigit() else None
                return parts[1].decode(), reply, status, head
            self.pos = end + 2
            if line.startswith(b"PING"):
                self.client._send(b"PONG\r\n")
            elif line.startswith(b"-ERR"):
                raise nats_cluster.NatsError(line.decode(errors="replace"))


def msg_id(head):
    at = head.find(b"Nats-Msg-Id:")
    if at < 0:
        return None
    end = head.find(b"\r\n", at)
    return head[at + 12:end].strip().decode()


def stream_ids(cluster, subject, expected):
    """Nats-Msg-Id of every message on `subject`, in stream order, through a pull consumer that
    delivers headers only (AckAll: the last message of each batch acknowledges the batch)."""
    name = "BENCHREAD"
    cfg = {"stream_name": STREAM, "config": {
        "durable_name": name, "deliver_policy": "all", "ack_policy": "all",
        "filter_subject": subject, "headers_only": True, "max_ack_pending": 100000,
        "replay_policy": "instant"}}
    with Quiet():
        cluster.js_retry(f"$JS.API.CONSUMER.DURABLE.CREATE.{STREAM}.{name}", json.dumps(cfg))
    node = next(n for n in cluster.nodes if n.alive())
    client = cluster.client(node.index, timeout=30)
    inbox = f"_BENCH.{os.getpid()}"
    client._send(f"SUB {inbox} 99\r\n".encode())
    reader = Reader(client)
    ids = []
    try:
        while len(ids) < expected:
            batch = min(10000, expected - len(ids))
            client.publish(f"$JS.API.CONSUMER.MSG.NEXT.{STREAM}.{name}",
                           json.dumps({"batch": batch, "expires": 5_000_000_000}), reply=inbox)
            got, last_reply = 0, None
            deadline = time.monotonic() + 30
            while got < batch:
                subj, reply, status, head = reader.op(deadline)
                if subj != subject:
                    if status in (404, 408):
                        break  # no more messages / the request expired
                    continue
                ids.append(msg_id(head))
                last_reply = reply
                got += 1
            if last_reply:
                client.publish(last_reply, b"+ACK")
            if got == 0:
                break
    finally:
        client.close()
    with Quiet():
        cluster.js_retry(f"$JS.API.CONSUMER.DELETE.{STREAM}.{name}")
    return ids


def subject_count(cluster):
    info = cluster.stream_info(STREAM)
    return info["state"]["messages"]


class Sink(http.server.BaseHTTPRequestHandler):
    """A receiver that reads each batch, counts its lines and answers 204."""
    protocol_version = "HTTP/1.1"
    lines = 0
    batches = 0
    lock = threading.Lock()

    def do_POST(self):
        remaining = int(self.headers["Content-Length"])
        lines = 0
        while remaining:
            block = self.rfile.read(min(remaining, 1 << 20))
            remaining -= len(block)
            lines += block.count(b"\n")
        with Sink.lock:
            Sink.lines += lines
            Sink.batches += 1
        self.send_response(204)
        self.end_headers()

    def log_message(self, *_):
        pass


def run_drain(args, work, backlog, records, dest):
    """One repetition: the agent on a copy of `backlog` delivering to `dest`."""
    data = os.path.join(work, "run-data")
    shutil.rmtree(data, ignore_errors=True)
    subprocess.run(["cp", "-a", backlog, data], check=True)
    since = cursor_of(data)
    cluster = directory = sink = None
    extra = []
    env = dict(os.environ)
    if dest == "http":
        Sink.lines = Sink.batches = 0
        sink = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Sink)
        threading.Thread(target=sink.serve_forever, daemon=True).start()
        extra = ["--backend-url", f"http://127.0.0.1:{sink.server_port}/ingest"]
    else:
        cluster, directory = start_cluster(work, 1 if dest == "nats-r1" else 3)
        extra = ["--backend-url", cluster.urls()]
        env["ZASTAVA_AGENT__Backend__NatsAckWindow"] = "1" if dest == "nats-r3-w1" else str(
            args.window)
    port = free_port()
    out = {"dest": dest, "records": records}
    agent = None
    try:
        servers_before = servers_cpu(cluster) if cluster else 0
        agent_log = open(os.path.join(work, f"agent-{dest}.log"), "w")
        start = time.monotonic()
        agent = subprocess.Popen(agent_cmd(args, data, port, extra), stdout=agent_log,
                                 stderr=subprocess.STDOUT, env=env)
        why = "complete"
        cpu = threads = None
        while True:
            values = metrics(port)
            now = time.monotonic()
            c = cpu_s(agent.pid)
            if c is not None:
                cpu, threads = c, thread_cpu(agent.pid)
            delivered = values.get("zastava_agent_backend_delivered_records_total", 0)
            if (values and values.get("zastava_agent_backend_backlog_records", 1) == 0
                    and delivered >= records):
                break
            if agent.poll() is not None:
                why = f"the agent exited with {agent.returncode}"
                break
            if now - start > args.timeout:
                why = f"timed out at {delivered:,.0f} records"
                break
            time.sleep(args.poll)
        elapsed = now - start
        out.update(elapsed=elapsed, cpu=cpu, threads=threads, why=why,
                   servers_cpu=(servers_cpu(cluster) - servers_before) if cluster else None,
                   failures=int(sum(v for k, v in values.items()
                                    if k.startswith("zastava_agent_backend_failures_total"))),
                   batches=int(values.get("zastava_agent_backend_delivered_batches_total", 0)))
        stop(agent)
        agent_log.close()
        # The destination against the ledger: what the agent says it delivered, once, in order.
        ids = delivered_ids(data, since)
        out["delivered"] = len(ids)
        if sink:
            out["held"] = Sink.lines
            out["check"] = "ok" if Sink.lines == len(ids) else \
                f"MISMATCH: receiver got {Sink.lines:,} lines, ledger delivered {len(ids):,}"
        else:
            subject = f"{PREFIX}.{nats_cluster.nats_subject_token(socket.gethostname())}"
            held = subject_count(cluster)
            got = stream_ids(cluster, subject, held)
            out["held"] = held
            counts = collections.Counter(got)
            dups = sum(c - 1 for c in counts.values() if c > 1)
            problems = []
            if held != len(ids):
                problems.append(f"stream holds {held:,}, ledger delivered {len(ids):,}")
            if dups:
                problems.append(f"{dups:,} duplicates")
            if set(got) != set(ids):
                problems.append(f"{len(set(ids) - set(got)):,} ledger records missing, "
                                f"{len(set(got) - set(ids)):,} unknown")
            elif got != ids:
                problems.append("not in ledger order")
            out["check"] = "ok" if not problems else "MISMATCH: " + "; ".join(problems)
    finally:
        if agent and agent.poll() is None:
            stop(agent)
        if sink:
            sink.shutdown()
            sink.server_close()
        if cluster:
            close_cluster(cluster, directory)
        shutil.rmtree(data, ignore_errors=True)
    return out


def msg_time(cluster, request):
    """The JetStream timestamp (epoch s) of a MSG.GET answer, or None."""
    with Quiet():
        body = cluster.js_retry(f"$JS.API.STREAM.MSG.GET.{STREAM}", json.dumps(request))
    stamp = body["message"]["time"]  # RFC 3339 with nanoseconds, UTC
    whole, _, frac = stamp.rstrip("Z").partition(".")
    t = datetime.datetime.fromisoformat(whole).replace(tzinfo=datetime.timezone.utc)
    return t.timestamp() + (float("0." + frac) if frac else 0.0)


def wait_stream_ready(cluster, timeout=60):
    """Polls the stream's info with short requests until it answers with a leader; (monotonic,
    wall) time of that answer. A request during the elections may get no answer at all."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            msg = cluster.request(f"$JS.API.STREAM.INFO.{STREAM}", b"", timeout=0.2)
            info = nats_cluster.js_answer(msg, "stream info")
            if (info.get("cluster") or {}).get("leader"):
                return time.monotonic(), time.time()
        except (OSError, nats_cluster.NatsError):
            cluster._drop_conn()  # a timed-out request's answer must not be read as the next's
        time.sleep(0.02)
    raise RuntimeError(f"stream {STREAM} had no leader within {timeout} s")


def run_catchup(args, work, backlog, records, timeout_s):
    """The R3 cluster down while the agent starts on `backlog` (Backend:TimeoutSeconds
    `timeout_s`), then back: the drain times."""
    data = os.path.join(work, "run-data")
    shutil.rmtree(data, ignore_errors=True)
    subprocess.run(["cp", "-a", backlog, data], check=True)
    since = cursor_of(data)
    cluster, directory = start_cluster(work, 3)
    port = free_port()
    agent = None
    try:
        with Quiet():
            cluster.stop_all()
        agent_log = open(os.path.join(work, "agent-catchup.log"), "w")
        agent = subprocess.Popen(
            agent_cmd(args, data, port, ["--backend-url", cluster.urls(),
                                         "--backend-retry-max-seconds", "1",
                                         "--backend-nats-ack-window", str(args.window),
                                         "--backend-timeout-seconds", str(timeout_s)]),
            stdout=agent_log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while not any(k.startswith("zastava_agent_backend_failures_total") and v >= 2
                      for k, v in metrics(port).items()):
            if agent.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the agent did not fail against the stopped cluster")
            time.sleep(0.1)
        with Quiet():
            for i in range(len(cluster.nodes)):
                cluster.start(i, wait=False)
        ready, ready_wall = wait_stream_ready(cluster)
        while True:
            values = metrics(port)
            now = time.monotonic()
            if (values.get("zastava_agent_backend_backlog_records", 1) == 0 and
                    values.get("zastava_agent_backend_delivered_records_total", 0) >= records):
                break
            if agent.poll() is not None or now - ready > 120 + 2 * timeout_s:
                raise RuntimeError("the agent did not drain the backlog in time")
            time.sleep(0.01)
        subject = f"{PREFIX}.{nats_cluster.nats_subject_token(socket.gethostname())}"
        first = msg_time(cluster, {"seq": 1, "next_by_subj": subject})
        last = msg_time(cluster, {"last_by_subj": subject})
        held = subject_count(cluster)
        stop(agent)
        agent_log.close()
        delivered = len(delivered_ids(data, since))
        return {"timeout": timeout_s, "ready_to_zero": now - ready, "first_to_last": last - first,
                "ready_to_first": first - ready_wall, "held": held, "delivered": delivered,
                "check": "ok" if held == delivered else
                f"MISMATCH: stream holds {held:,}, ledger delivered {delivered:,}"}
    finally:
        if agent and agent.poll() is None:
            stop(agent)
        close_cluster(cluster, directory)
        shutil.rmtree(data, ignore_errors=True)


def med(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def report(args, results, catchups):
    print(f"\nDelivery throughput draining a backlog, medians of {args.repeat} repetitions "
          f"(time from the agent's start to backlog 0; CPU per 10^6 delivered records)")
    print("| destination | records | records/s | wall s | agent CPU s | agent CPU s per 10^6 | "
          "nats-servers CPU s per 10^6 | ÷ HTTP | checks |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---|")
    rates = {}
    for dest, rs in results.items():
        done = [r for r in rs if r["why"] == "complete"]
        rates[dest] = med([r["records"] / r["elapsed"] for r in done])
    for dest, rs in results.items():
        agent_pm = med([r["cpu"] * 1e6 / r["records"] for r in rs if r["cpu"] is not None])
        servers_pm = med([r["servers_cpu"] * 1e6 / r["records"] for r in rs
                          if r["servers_cpu"] is not None])
        ratio = (f"{rates[dest] / rates['http']:.3g}" if rates.get("http") and rates[dest]
                 else "")
        checks = ", ".join(sorted({r.get("check", r["why"]) for r in rs}))
        incomplete = sum(r["why"] != "complete" for r in rs)
        rate = "none complete" if not rates[dest] else f"{rates[dest]:,.0f}"
        print(f"| {NAMES[dest]} | {rs[0]['records']:,} | {rate}"
              f"{f' ({incomplete} incomplete)' if incomplete else ''} | "
              f"{med([r['elapsed'] for r in rs]):.2f} | {med([r['cpu'] for r in rs]):.2f} | "
              f"{agent_pm:.2f} | {'' if servers_pm is None else f'{servers_pm:.2f}'} | "
              f"{ratio} | {checks} |")
    if rates.get("nats-r3") and rates.get("nats-r3-w1"):
        print(f"window 256 ÷ window 1 (R3): {rates['nats-r3'] / rates['nats-r3-w1']:.1f}x")
    if rates.get("nats-r3") and rates.get("nats-r1"):
        print(f"R3 ÷ R1 (window 256): {rates['nats-r3'] / rates['nats-r1']:.2f}")
    if rates.get("nats-r3") and rates.get("http"):
        print(f"NATS R3 ÷ HTTP: {rates['nats-r3'] / rates['http']:.2f}")
    print("\nAgent CPU by thread, s per 10^6 records (medians)")
    names = sorted({t for rs in results.values() for r in rs for t in (r["threads"] or {})})
    print("| destination | " + " | ".join(names) + " |")
    print("|---|" + "---:|" * len(names))
    for dest, rs in results.items():
        cells = [med([(r["threads"] or {}).get(t, 0) * 1e6 / r["records"] for r in rs])
                 for t in names]
        print(f"| {dest} | " + " | ".join(f"{c:.2f}" for c in cells) + " |")
    print("\nPer repetition: " + "; ".join(
        f"{dest} " + ", ".join(f"{r['records'] / r['elapsed']:,.0f}/s"
                               f"{'' if r['why'] == 'complete' else ' [' + r['why'] + ']'}"
                               f" ({r['failures']} failed attempts, {r['batches']} batches)"
                               for r in rs) for dest, rs in results.items()))
    if catchups:
        n = args.outage_records_actual
        print(f"\nCatch-up after an outage: {n:,} records (about 1 h at 2.0 records/s) into the "
              f"R3 stream, window {args.window}, Backend:RetryMaxSeconds 1; the cluster stopped "
              f"while the agent starts, then started again; medians of {args.repeat}")
        print("| Backend:TimeoutSeconds | stream ready again -> backlog 0, s | "
              "ready -> first record stored, s | first -> last record stored, s | "
              "records/s while draining | runs (ready -> backlog 0) | checks |")
        print("|---:|---:|---:|---:|---:|---|---|")
        for timeout_s in args.catchup_timeouts:
            cs = [c for c in catchups if c["timeout"] == timeout_s]
            drain = [n / c["first_to_last"] for c in cs if c["first_to_last"] > 0]
            print(f"| {timeout_s} | {med([c['ready_to_zero'] for c in cs]):.2f} | "
                  f"{med([c['ready_to_first'] for c in cs]):.2f} | "
                  f"{med([c['first_to_last'] for c in cs]):.3f} | {med(drain):,.0f} | "
                  + ", ".join(f"{c['ready_to_zero']:.2f}" for c in cs) + " | "
                  + ", ".join(sorted({c["check"] for c in cs})) + " |")


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--agent", required=True)
    p.add_argument("--fake-engine", required=True)
    p.add_argument("--fixtures", required=True)
    p.add_argument("--records", type=int, default=1_000_000)
    p.add_argument("--window1-records", type=int, default=10_000,
                   help="backlog of the window-1 destination (0: --records)")
    p.add_argument("--outage-records", type=int, default=7200)
    p.add_argument("--window", type=int, default=256,
                   help="Backend:NatsAckWindow of nats-r3, nats-r1 and the catch-up")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--destinations", default=",".join(DESTINATIONS))
    p.add_argument("--no-catchup", action="store_true")
    p.add_argument("--catchup-timeouts", default="30,5",
                   help="Backend:TimeoutSeconds of the catch-up runs, one set of runs each "
                        "(30: the default)")
    p.add_argument("--poll", type=float, default=0.02, help="s between metric reads")
    p.add_argument("--timeout", type=float, default=1800, help="per run, s")
    args = p.parse_args()
    dests = args.destinations.split(",")
    args.catchup_timeouts = [int(t) for t in args.catchup_timeouts.split(",")]
    unknown = set(dests) - set(DESTINATIONS)
    if unknown:
        p.error(f"unknown destination(s) {sorted(unknown)}")
    work = tempfile.mkdtemp(prefix="zbench-nats-", dir="/tmp")
    try:
        backlogs = {}
        sizes = {d: (args.window1_records or args.records) if d == "nats-r3-w1" else args.records
                 for d in dests}
        for size in sorted(set(sizes.values())):
            backlogs[size] = make_backlog(args, work, size, str(size))
        results = {d: [] for d in dests}
        for rep in range(1, args.repeat + 1):
            for dest in dests:
                path, count = backlogs[sizes[dest]]
                r = run_drain(args, work, path, count, dest)
                results[dest].append(r)
                servers = "" if r["servers_cpu"] is None else \
                    f", nats-servers {r['servers_cpu']:.2f} s CPU"
                log(f"rep {rep} {dest:10s} {count:,} records in {r['elapsed']:7.2f} s = "
                    f"{count / r['elapsed']:>9,.0f} records/s, agent {r['cpu']:.2f} s CPU"
                    f"{servers}; {r['why']}; destination holds {r.get('held', 0):,}: "
                    f"{r.get('check')}")
        catchups = []
        if not args.no_catchup:
            path, count = make_backlog(args, work, args.outage_records, "outage")
            args.outage_records_actual = count
            for rep, timeout_s in ((rep, t) for rep in range(1, args.repeat + 1)
                                   for t in args.catchup_timeouts):
                c = run_catchup(args, work, path, count, timeout_s)
                catchups.append(c)
                log(f"catch-up rep {rep}, Backend:TimeoutSeconds {timeout_s}: {count:,} records, "
                    f"ready -> backlog 0 "
                    f"{c['ready_to_zero']:.3f} s, first -> last stored {c['first_to_last']:.3f} s"
                    f"; {c['check']}")
        report(args, results, catchups)
        bad = [r for rs in results.values() for r in rs if r.get("check") != "ok"] + \
              [c for c in catchups if c["check"] != "ok"]
        if bad:
            print(f"\nWARNING: {len(bad)} runs failed their checks")
            sys.exit(1)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
