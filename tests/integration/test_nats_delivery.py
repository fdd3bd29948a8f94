#!/usr/bin/python3
"""NATS JetStream delivery (docs/backend.md): the real agent publishes its ledger to a real
3-node JetStream cluster (nats_cluster.py: Debian's nats-server), while a private dockerd
produces the records.

The oracle is the stream itself: every test reads the host's subject back message by message
($JS.API.STREAM.MSG.GET, next_by_subj) and compares it with the agent's ledger (the SQLite
`record` column by rowid): each record exactly once, in ledger order, byte for byte (the line
without its newline), Nats-Msg-Id == eventId, and the hash chain read back from the stream
verifies. The first test runs what docs/fleet.md tells a fleet to run: the stream of
deploy/nats/zastava-records.stream.json, the agent's default stream and subject, and the
consumer of deploy/nats/zastava-store.consumer.json, which checks the chain and the seals.
Faults, each repeated: the stream leader SIGKILLed during delivery, the whole cluster
stopped and started, the agent SIGKILLed with publishes in flight, the agent's database restored
from an older copy. Bad input, each with a clear log line, /readyz 503 naming it and nothing
lost once fixed: a stream that does not exist, a subject prefix no stream covers, a bad
password, a CA that did not sign the server's certificate. Auth that works: user/password,
token, NKey seed, TLS with a client certificate. A summary table ends the run."""

import json
import os
import shutil
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402
import backend_receiver as br  # noqa: E402
import nats_cluster as nc  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "buffer"))
import verify_ledger as vl  # noqa: E402  (the seal arithmetic of docs/records.md)

ARGS = None
CAUSES_METRIC = "zastava_agent_backend_failures_total"
NO_EVIDENCE = ["--evidence-workers", "0"]  # fewer, steadier records where counts matter
PASSWORD = "pw-Zq81-agent"  # must never show in the agent's log
ADMIN = ("admin", "pw-admin-Xy")
TOKEN = "tok-9f3b-agent"
HOST_TOKEN = nc.nats_subject_token(socket.gethostname())
REPEAT = 2  # each fault case, repeated (more only lengthens CI: each round is the same path)

ROWS = []  # the summary table: case, records, missing, duplicates, out of order, note
_COLUMNS = ["case", "records", "in stream", "missing", "duplicates", "out of order"]


def tearDownModule():
    if not ROWS:
        return
    widths = [max(len(c), *(len(str(r[i])) for r in ROWS)) for i, c in enumerate(_COLUMNS)]
    fmt = lambda cells: " | ".join(str(c).ljust(w) for c, w in zip(cells, widths))  # noqa
    print("\n==== NATS DELIVERY SUMMARY ====")
    print(fmt(_COLUMNS))
    print("-+-".join("-" * w for w in widths))
    for r in ROWS:
        print(fmt(r[:6]) + (f"   ({r[6]})" if r[6] else ""))
    print("===============================", flush=True)


def seal_problems(lines, seed_paths):
    """A consumer's seal checks (docs/backend.md "Checking seals as they arrive") over one
    host's records in order: each agent.seal's MAC under the epoch key of its keyId's seed, its
    lastHash the hash of the line before it, its records the lines since the previous seal or
    seal-key record. Returns {"seals": checked, "problems": [...]}."""
    seeds = {}
    for path in seed_paths:
        with open(path) as f:
            key_id, seed = vl.parse_seed_file(f.read())
        seeds[key_id] = seed
    problems, seals, since, prev_hash = [], 0, 0, h.GENESIS_HASH
    for i, line in enumerate(lines):
        rec = json.loads(line)
        if rec["kind"] == "agent.seal":
            seal = rec["seal"]
            seed = seeds.get(seal["keyId"])
            if seed is None:
                problems.append(f"line {i}: no seed for key {seal['keyId']}")
            else:
                message = vl.seal_message(seal["keyId"], seal["epoch"], seal["records"],
                                          seal["lastHash"], rec["time"])
                if vl.seal_mac(vl.epoch_key(seed, seal["epoch"]), message) != seal["mac"]:
                    problems.append(f"line {i}: seal epoch {seal['epoch']} does not verify")
            if seal["lastHash"] != prev_hash:
                problems.append(f"line {i}: lastHash is not the hash of the line before")
            if seal["records"] != since:
                problems.append(f"line {i}: records {seal['records']}, {since} lines since")
            seals += 1
        since = 0 if rec["kind"] in ("agent.seal", "agent.seal-key") else since + 1
        prev_hash = h.line_hash(line)[0]
    return {"seals": seals, "problems": problems}


def ledger(agent):
    """The agent's records in commit order: the SQLite record column by rowid."""
    return [r[0] for r in h.read_sqlite(agent.data_dir,
                                        "SELECT record FROM events ORDER BY rowid")]


def eid(line):
    return json.loads(line)["eventId"]


def describe(line):
    """kind/source of a record line, for messages."""
    if not isinstance(line, str):
        return "?"
    rec = json.loads(line)
    return f"{rec.get('kind')}/{rec.get('source')}"


def compare(msgs, want_lines, allowed_ids=None):
    """What the subject's messages [(seq, headers, data)] hold against the ledger lines
    `want_lines` (in order). allowed_ids: eventIds that may be in the stream without being in
    want_lines (records of a ledger since rolled back). Returns (stats, problems)."""
    problems = []
    want_ids = [eid(x) for x in want_lines]
    index = {e: i for i, e in enumerate(want_ids)}
    by_id = dict(zip(want_ids, want_lines))
    seen, dups, prev_seq, last_index, out_of_order = set(), [], 0, -1, 0
    for seq, hdrs, data in msgs:
        try:
            line = data.decode("utf-8")
            rec_id = json.loads(line)["eventId"]
        except (UnicodeDecodeError, ValueError, KeyError) as exc:
            problems.append(f"seq {seq}: not a record: {exc}: {data[:120]!r}")
            continue
        if hdrs.get("Nats-Msg-Id") != rec_id:
            problems.append(f"seq {seq}: Nats-Msg-Id {hdrs.get('Nats-Msg-Id')!r} != eventId "
                            f"{rec_id}")
        expect = hdrs.get("Nats-Expected-Last-Subject-Sequence")
        if expect is not None and expect != str(prev_seq):
            problems.append(f"seq {seq}: Nats-Expected-Last-Subject-Sequence {expect} but the "
                            f"previous message on the subject is {prev_seq}")
        prev_seq = seq
        if data.endswith(b"\n"):
            problems.append(f"seq {seq}: payload ends with a newline")
        if rec_id in seen:
            dups.append(rec_id)
            continue
        seen.add(rec_id)
        if rec_id in index:
            if by_id[rec_id] != line and allowed_ids is None:
                problems.append(f"seq {seq}: bytes differ from the ledger: "
                                f"{h.first_difference(line, by_id[rec_id])}")
            if index[rec_id] < last_index:
                out_of_order += 1
            last_index = max(last_index, index[rec_id])
        elif allowed_ids is None or rec_id not in allowed_ids:
            problems.append(f"seq {seq}: eventId {rec_id} is in no ledger")
    missing = [e for e in want_ids if e not in seen]
    if allowed_ids is not None:
        missing += [e for e in allowed_ids if e not in seen and e not in index]
    if dups:
        problems.append(f"{len(dups)} duplicates: {dups[:5]}")
    if missing:
        described = [f"{e} ({describe(by_id.get(e) or (allowed_ids or {}).get(e))})"
                     for e in missing[:5]]
        problems.append(f"{len(missing)} missing: {described}")
    if out_of_order and allowed_ids is None:  # a rolled-back ledger has its own order
        problems.append(f"{out_of_order} records out of ledger order")
    stats = {"records": len(want_ids) + (len(set(allowed_ids or ()) - set(want_ids))),
             "in_stream": len(msgs), "missing": len(missing), "duplicates": len(dups),
             "out_of_order": out_of_order}
    return stats, problems


class NatsDelivery(h.WorkspaceTest):
    @classmethod
    def set_up(cls):
        cls.d = cls.ws.dockerd()
        cls.d.make_busybox_image()
        cls.pki = br.make_pki(os.path.join(cls.ws.dir, "pki"))
        cls.nats = cls.cluster("nats")

    @classmethod
    def cluster(cls, name, nodes=3, **kw):
        c = nc.NatsCluster(os.path.join(cls.ws.dir, name), nodes=nodes, **kw)
        cls.ws.on_cleanup(c.close)
        return c

    # ------------------------------------------------------------------------------ helpers
    def stream(self, cluster, tag, create=True):
        """A stream of its own for a test: (name, subject prefix, the host's subject)."""
        name, prefix = f"ZT_{tag.upper()}", f"zt.{tag}.records"
        if create:
            cluster.create_stream(name, [f"zt.{tag}.>"], replicas=len(cluster.nodes))
        return name, prefix, f"{prefix}.{HOST_TOKEN}"

    @staticmethod
    def nats_env(cluster, stream, prefix, env=None):
        """The agent's environment for delivery to `stream` under `prefix` (None: the
        defaults) with short timeouts for the test, plus `env`."""
        chosen = {"ZASTAVA_AGENT__Backend__NatsStream": stream,
                  "ZASTAVA_AGENT__Backend__NatsSubjectPrefix": prefix}
        return {"ZASTAVA_AGENT__Backend__Url": cluster.urls(),
                **{k: v for k, v in chosen.items() if v is not None},
                "ZASTAVA_AGENT__Backend__TimeoutSeconds": "2",
                "ZASTAVA_AGENT__Backend__RetryMaxSeconds": "2",
                "ZASTAVA_AGENT__Backend__BatchMaxWaitMs": "100",
                **(env or {})}

    def agent(self, name, cluster, stream, prefix, env=None, args=(), start=True, ready=True):
        e = self.nats_env(cluster, stream, prefix, env)
        a = self.ws.agent(ARGS.agent, self.d.endpoint, name=name, extra_args=list(args), env=e)
        if start:
            a.start()
            self.ready(a) if ready else self.ready(a, http_only=True)
        return a

    def ready(self, agent, http_only=False, timeout=30):
        """Waits for /readyz 200 (or any answer with http_only); fails at once, with the log,
        when the agent exits (a configuration error)."""
        def check():
            if not agent.alive():
                return "exited"
            status = agent.http_get("/readyz")[0]
            return status > 0 if http_only else status == 200
        try:
            got = h.wait_until(check, timeout, "agent /readyz")
        except AssertionError as exc:
            self.fail(f"{exc}: {agent.http_get('/readyz')}\n{h.tail(agent.log_path, 3000)}")
        if got == "exited":
            self.fail(f"agent exited {agent.proc.returncode}:\n{h.tail(agent.log_path, 3000)}")

    def life(self, agent, name, wait=True):
        """harness.container_life on the test's dockerd."""
        return h.container_life(self.d, agent, name, wait)

    def wait_delivered(self, agent, cluster, stream, subject, allowed_ids=None, timeout=45,
                       check_metrics=True):
        """Waits until the subject holds the ledger (each eventId once; allowed_ids: see
        compare), the ledger did not change while looking and the backlog gauge is 0. Fails
        with a report otherwise. Returns (ledger, messages, stats, problems)."""
        box = {}

        def check():
            if check_metrics and not agent.alive():
                box["dead"] = True
                return True
            l1 = ledger(agent)
            backlog = agent.metric_value("zastava_agent_backend_backlog_records") \
                if check_metrics and agent.alive() else 0
            msgs = cluster.read_subject(stream, subject)
            l2 = ledger(agent)
            stats, problems = compare(msgs, l2, allowed_ids)
            box.update(ledger=l2, msgs=msgs, stats=stats, problems=problems, backlog=backlog)
            return bool(l1) and l1 == l2 and backlog == 0 and stats["missing"] == 0
        try:
            h.wait_until(check, timeout, f"the subject {subject} to hold the whole ledger",
                         interval=0.3)
        except AssertionError as exc:
            self.fail(f"{exc}\n{self.report(box, agent, cluster)}")
        if box.get("dead"):
            self.fail(f"agent exited {agent.proc.returncode}\n{h.tail(agent.log_path, 3000)}")
        return box["ledger"], box["msgs"], box["stats"], box["problems"]

    def report(self, box, agent, cluster):
        fails = {}
        try:
            fails = {k: v for k, v in self.failures(agent).items() if v}
        except Exception as exc:  # agent dead
            fails = repr(exc)
        return (f"ledger {len(box.get('ledger', []))} records, stream "
                f"{len(box.get('msgs', []))} messages; backlog gauge {box.get('backlog')!r}; "
                f"failures {fails}\nproblems: {box.get('problems')}\n"
                f"--- agent log ---\n{h.tail(agent.log_path, 2500)}\n"
                f"--- nats ---\n{cluster.logs(800)}")

    def failures(self, agent):
        text = agent.metrics()
        out = {}
        for line in text.splitlines():
            if line.startswith(CAUSES_METRIC + "{"):
                labels = line[line.index("{") + 1:line.index("}")]
                out[labels] = float(line.split()[-1])
        return out

    def assert_clean(self, case, stats, problems, note=""):
        ROWS.append([case, stats["records"], stats["in_stream"], stats["missing"],
                     stats["duplicates"], stats["out_of_order"], note])
        h.log(f"NATS ROW | {case} | {stats} | {note}")
        self.assertEqual(problems, [], case)

    def stop_agent(self, agent):
        code, _ = agent.stop()
        self.assertEqual(code, 0, h.tail(agent.log_path))

    def assert_log_has(self, agent, needles, what):
        text = agent.log_text().lower()
        for n in needles:
            self.assertIn(n.lower(), text, f"{what}: the log names {n!r}\n"
                          f"{h.tail(agent.log_path, 2500)}")

    def assert_no_secrets(self, agent, secrets=(PASSWORD, TOKEN, ADMIN[1])):
        text = agent.log_text() + agent.stdout_text()
        for s in secrets:
            self.assertNotIn(s, text, "a secret in the agent's log")

    def unready(self, agent, needles, what):
        """/readyz 503 with a reason naming each of `needles` (case-insensitive)."""
        def check():
            if not agent.alive():
                return "exited", ""
            s, b = agent.http_get("/readyz")
            return (s, b) if s == 503 and all(n.lower() in b.lower() for n in needles) else None
        try:
            status, body = h.wait_until(check, 30, f"/readyz 503 naming {needles}")
        except AssertionError as exc:
            self.fail(f"{what}: {exc}: /readyz {agent.http_get('/readyz')}\n"
                      f"{h.tail(agent.log_path, 2500)}")
        if status == "exited":
            self.fail(f"{what}: agent exited {agent.proc.returncode}\n"
                      f"{h.tail(agent.log_path, 3000)}")
        h.log(f"{what}: /readyz {status} {body.strip()!r}")
        return body

    # ------------------------------------------------------------------------------ tests
    def test_01_lifecycle_exactly_once_in_order(self):
        """the stream of deploy/nats/zastava-records.stream.json and the agent's default
        stream and subject: a snapshot and three container lives, every ledger record once on
        zastava.records.<host>, in ledger order, byte for byte without the newline,
        Nats-Msg-Id == eventId, Nats-Expected-Last-Subject-Sequence (when sent) == the previous
        message's sequence; then the consumer of docs/fleet.md (the durable pull consumer of
        deploy/nats/zastava-store.consumer.json) reads the same records, and its checks pass:
        the hash chain and every seal's MAC under the exported seed; metrics: delivered ==
        ledger, backlog 0, no failures; /readyz 200"""
        deploy = os.path.join(ARGS.source_dir, "deploy", "nats")
        self.nats.create_stream_from(os.path.join(deploy, "zastava-records.stream.json"))
        stream, subject = "ZASTAVA_RECORDS", f"zastava.records.{HOST_TOKEN}"
        pre = self.d.docker("run", "-d", "--name", "n1-pre", h.TEST_IMAGE, *h.IDLE_CMD)
        agent = self.agent("life", self.nats, None, None,
                           args=["--ledger-seal-interval-seconds", "1"])
        for i in range(3):
            self.life(agent, f"n1-{i}")
        self.d.docker("rm", "-f", pre)
        self.wait_delivered(agent, self.nats, stream, subject)
        time.sleep(1.5)  # the last evidence scans may still land
        self.stop_agent(agent)
        # Delivery stops before the stop's seal (and maybe the seal of the last second),
        # which wait for the next start.
        records = ledger(agent)
        msgs = self.nats.read_subject(stream, subject)
        waiting = [json.loads(x)["kind"] for x in records[len(msgs):]]
        self.assertTrue(1 <= len(waiting) <= 2 and set(waiting) == {"agent.seal"},
                        f"undelivered after the stop: {waiting}")
        stats, problems = compare(msgs, records[:len(msgs)])
        self.assert_clean("lifecycle, shipped stream and consumer", stats, problems)
        self.assertEqual([m[2].decode() for m in msgs], records[:len(msgs)],
                         "the subject != the ledger")
        kinds = {json.loads(x)["kind"] for x in records}
        for kind in ("container.snapshot", "container.destroy", "agent.seal"):
            self.assertIn(kind, kinds)
        state = self.nats.stream_info(stream)["state"]
        self.assertEqual(state["messages"], len(msgs), "messages on other subjects")

        consumed = self.nats.consume(stream, os.path.join(deploy, "zastava-store.consumer.json"),
                                     len(msgs))
        self.assertEqual([(m.subject, m.data) for m in consumed],
                         [(subject, m[2]) for m in msgs], "the consumer's reading != the stream")
        lines = [m.data.decode() for m in consumed]
        self.assertEqual(h.verify_chain(lines), [], "hash chain read by the consumer")
        _, seeds = h.export_seeds(ARGS.agent, agent.data_dir, os.path.join(self.ws.dir, "seeds"))
        checked = seal_problems(lines, seeds)
        self.assertEqual(checked["problems"], [], "seals read by the consumer")
        # How many depends on how long the lives took (one a second): at least one, not a count.
        self.assertGreater(checked["seals"], 0, "seals checked")
        h.log(f"consumer: {len(lines)} records, chain verified, {checked['seals']} seals "
              f"verified under the exported seed")

    def test_01b_agent_metrics_while_running(self):
        """with an agent running: delivered == ledger, backlog 0, no failures, /readyz 200"""
        stream, prefix, subject = self.stream(self.nats, "metrics")
        agent = self.agent("metrics", self.nats, stream, prefix)
        self.life(agent, "n1b")
        records, _, stats, problems = self.wait_delivered(agent, self.nats, stream, subject)
        self.assert_clean("running", stats, problems)
        h.wait_metric(agent, "zastava_agent_backend_delivered_records_total",
                      lambda v: v == len(records), timeout=5)
        h.wait_metric(agent, "zastava_agent_backend_backlog_records", lambda v: v == 0,
                      timeout=5)
        h.wait_metric(agent, "zastava_agent_backend_consecutive_failures", lambda v: v == 0,
                      timeout=5)
        self.assertEqual({k: v for k, v in self.failures(agent).items() if v}, {}, "failures")
        self.assertEqual(agent.http_get("/readyz")[0], 200)
        self.stop_agent(agent)

    def test_02_stream_leader_killed(self):
        """the stream's leader SIGKILLed while records are being published, twice (then
        started again): nothing missing, nothing twice, in order"""
        stream, prefix, subject = self.stream(self.nats, "leader")
        agent = self.agent("leader", self.nats, stream, prefix)
        self.life(agent, "n2-first")
        self.wait_delivered(agent, self.nats, stream, subject)
        for r in range(REPEAT):
            leader = self.nats.stream_leader(stream)
            worker = threading.Thread(target=self.life, args=(agent, f"n2-{r}", False))
            worker.start()
            time.sleep(0.3)
            self.nats.kill(leader)
            worker.join(60)
            self.life(agent, f"n2-{r}-after")
            new = self.nats.stream_leader(stream, timeout=40)
            h.log(f"round {r}: leader n{leader + 1} killed, new leader n{new + 1}")
            self.nats.start(leader)
            self.nats.wait_meta_leader()
            _, _, stats, problems = self.wait_delivered(agent, self.nats, stream, subject,
                                                        timeout=60)
            self.assert_clean(f"stream leader killed #{r + 1}", stats, problems,
                              f"n{leader + 1} -> n{new + 1}")
        self.assertEqual(h.verify_chain([m[2].decode() for m in
                                         self.nats.read_subject(stream, subject)]), [])
        self.stop_agent(agent)

    def test_03_whole_cluster_stopped(self):
        """every node stopped for a while (records pile up: backlog > 0, failures counted,
        /readyz 503 after 2 failures in a row) and started again, twice: everything arrives
        once, in order; /readyz 200 again"""
        stream, prefix, subject = self.stream(self.nats, "outage")
        agent = self.agent("outage", self.nats, stream, prefix,
                           args=["--backend-failures-before-unready", "2"])
        self.life(agent, "n3-first")
        self.wait_delivered(agent, self.nats, stream, subject)
        for r in range(REPEAT):
            self.nats.stop_all()
            self.life(agent, f"n3-{r}")
            h.wait_metric(agent, "zastava_agent_backend_backlog_records",
                          lambda v: v is not None and v > 0, timeout=10)
            self.unready(agent, [], f"cluster down #{r + 1}")
            self.nats.start_all()
            _, _, stats, problems = self.wait_delivered(agent, self.nats, stream, subject,
                                                        timeout=60)
            self.assert_clean(f"whole cluster stopped #{r + 1}", stats, problems)
            self.ready(agent, timeout=20)
        self.assertEqual(h.verify_chain([m[2].decode() for m in
                                         self.nats.read_subject(stream, subject)]), [])
        self.assertGreater(sum(self.failures(agent).values()), 0, "no failure counted")
        self.stop_agent(agent)

    def test_04_agent_killed_with_publishes_in_flight(self):
        """a backlog (recorded with delivery off), then the agent started with the stream and
        SIGKILLed as soon as the first of its records lands, twice; restarted: nothing
        missing, nothing twice, in order (Backend:NatsAckWindow 4, so the kill finds
        publishes in flight)"""
        stream, prefix, subject = self.stream(self.nats, "kill")
        base = self.ws.agent(ARGS.agent, self.d.endpoint, name="kill")
        on = None
        for r in range(REPEAT):
            off = self.ws.respawn(base, env={})
            off.start()
            self.ready(off)
            for k in range(3):
                self.life(off, f"n4-{r}-{k}")
            self.stop_agent(off)
            n_ledger = len(ledger(off))
            before = len(self.nats.read_subject(stream, subject))
            on = self.ws.respawn(base, env=self.nats_env(
                self.nats, stream, prefix, {"ZASTAVA_AGENT__Backend__NatsAckWindow": "4"}))
            on.start()
            landed = h.wait_until(
                lambda: "exited" if not on.alive() else
                self.nats.stream_info(stream)["state"]["messages"] > before,
                30, "the first record of the backlog in the stream", interval=0.005)
            if landed == "exited":
                self.fail(f"agent exited {on.proc.returncode}\n{h.tail(on.log_path, 3000)}")
            on.kill9()
            at_kill = len(self.nats.read_subject(stream, subject))
            again = self.ws.respawn(base, env=on.env)
            again.start()
            self.ready(again)
            _, _, stats, problems = self.wait_delivered(again, self.nats, stream, subject)
            self.assert_clean(f"agent SIGKILLed in flight #{r + 1}", stats, problems,
                              f"{at_kill}/{n_ledger} in the stream at the kill")
            self.stop_agent(again)
        self.assertEqual(h.verify_chain([m[2].decode() for m in
                                         self.nats.read_subject(stream, subject)]), [])

    def test_05_database_restored_from_older_copy(self):
        """the agent stopped, its zastava-agent.db and -wal restored from a copy taken
        earlier (the stream holds records the ledger no longer has), twice: the agent
        restarts and delivers what it records next; no eventId twice on the subject, and
        every eventId the agent ever wrote is there"""
        stream, prefix, subject = self.stream(self.nats, "restore")
        agent = self.agent("restore", self.nats, stream, prefix, args=NO_EVIDENCE)
        ever = {}  # every record the agent ever wrote: eventId -> line
        self.life(agent, "n5-first")
        self.wait_delivered(agent, self.nats, stream, subject)
        for r in range(REPEAT):
            self.stop_agent(agent)
            backup = os.path.join(self.ws.dir, f"restore-backup-{r}")
            os.makedirs(backup)
            db = h.db_path(agent.data_dir)
            for suffix in ("", "-wal"):
                if os.path.exists(db + suffix):
                    shutil.copy2(db + suffix, backup)
            agent = self.ws.respawn(agent)
            agent.start()
            self.ready(agent)
            self.life(agent, f"n5-{r}")
            self.wait_delivered(agent, self.nats, stream, subject)
            ever.update((eid(x), x) for x in ledger(agent))
            self.stop_agent(agent)
            for suffix in ("", "-wal", "-shm"):
                if os.path.exists(db + suffix):
                    os.remove(db + suffix)
            for suffix in ("", "-wal"):
                src = os.path.join(backup, os.path.basename(db) + suffix)
                if os.path.exists(src):
                    shutil.copy2(src, db + suffix)
            h.log(f"round {r}: database restored; {len(ever)} eventIds written so far")
            agent = self.ws.respawn(agent)
            agent.start()
            self.ready(agent)
            self.life(agent, f"n5-{r}-after")
            time.sleep(1)
            ever.update((eid(x), x) for x in ledger(agent))
            _, _, stats, problems = self.wait_delivered(agent, self.nats, stream, subject,
                                                        allowed_ids=ever, timeout=45)
            ever.update((eid(x), x) for x in ledger(agent))
            stats, problems = compare(self.nats.read_subject(stream, subject), ledger(agent),
                                      ever)
            self.assert_clean(f"database restored #{r + 1}", stats, problems)
        self.stop_agent(agent)

    # ------------------------------------------------------------------ bad input, then fixed
    def test_06_stream_does_not_exist(self):
        """Backend:NatsStream names no stream: a log line naming the stream "not found",
        /readyz 503 naming it, the records kept; the stream created: everything arrives
        without a restart"""
        stream, prefix, subject = self.stream(self.nats, "missing", create=False)
        agent = self.agent("missing", self.nats, stream, prefix, ready=False,
                           args=["--backend-failures-before-unready", "2", *NO_EVIDENCE])
        self.life(agent, "n6")
        self.unready(agent, [stream], "stream missing")
        self.assert_log_has(agent, [stream, "not found"], "stream missing")
        self.assertGreater(agent.metric_value("zastava_agent_backend_backlog_records") or 0, 0)
        self.nats.create_stream(stream, ["zt.missing.>"])
        _, _, stats, problems = self.wait_delivered(agent, self.nats, stream, subject)
        self.assert_clean("bad input: stream missing, then created", stats, problems)
        self.ready(agent, timeout=20)
        self.stop_agent(agent)

    def test_07_subject_not_covered(self):
        """the stream exists but does not cover <prefix>.<host>: a log line naming the
        subject, /readyz 503 naming it; the stream's subjects updated to cover it: everything
        arrives without a restart"""
        stream, _, _ = self.stream(self.nats, "cover")
        prefix = "zt.uncovered.records"
        subject = f"{prefix}.{HOST_TOKEN}"
        agent = self.agent("cover", self.nats, stream, prefix, ready=False,
                           args=["--backend-failures-before-unready", "2", *NO_EVIDENCE])
        self.life(agent, "n7")
        self.unready(agent, [subject], "subject not covered")
        self.assert_log_has(agent, [subject], "subject not covered")
        cfg = self.nats.stream_info(stream)["config"]
        cfg["subjects"] = cfg["subjects"] + ["zt.uncovered.>"]
        self.nats.js_retry(f"$JS.API.STREAM.UPDATE.{stream}", json.dumps(cfg))
        _, _, stats, problems = self.wait_delivered(agent, self.nats, stream, subject)
        self.assert_clean("bad input: subject not covered, then covered", stats, problems)
        self.ready(agent, timeout=20)
        self.stop_agent(agent)

    def auth_cluster(self):
        if not hasattr(type(self), "_auth"):
            nkey = nc.NKeyUser(os.path.join(self.ws.dir, "nkeys"))
            # The agent user may do only what docs/fleet.md allows a host ("Who may publish
            # what"): its own subject, the message requests of its position, the stream names
            # of its subject, replies in its inbox.
            agent_only = {"publish": [f"zt.*.records.{HOST_TOKEN}", "$JS.API.STREAM.MSG.GET.*",
                                      "$JS.API.STREAM.NAMES"],
                          "subscribe": ["_INBOX.>"]}
            c = self.cluster("nats-auth", nodes=1, auth={
                "users": {ADMIN[0]: ADMIN[1], "agent": PASSWORD}, "nkeys": [nkey],
                "permissions": {"agent": agent_only}}, admin=ADMIN)
            type(self)._auth = (c, nkey)
        return type(self)._auth

    def tls_cluster(self):
        if not hasattr(type(self), "_tls"):
            p = self.pki
            type(self)._tls = self.cluster("nats-tls", nodes=1, tls={
                "cert": p["server"], "key": p["server_key"], "ca": p["ca"],
                "verify_ca": p["client_ca"], "client_cert": p["client"],
                "client_key": p["client_key"]})
        return type(self)._tls

    def secret_file(self, name, text):
        path = os.path.join(self.ws.dir, "secret-" + name)
        with open(path, "w") as f:
            f.write(text)
        os.chmod(path, 0o600)
        return path

    def test_08_bad_password(self):
        """a wrong password: "authorization violation" logged and in /readyz, neither password
        in the log; the password file rewritten with the right one (read at each connect, no
        restart): everything arrives"""
        c, _ = self.auth_cluster()
        stream, prefix, subject = self.stream(c, "badpw")
        pw = self.secret_file("nats-password-rewritten", "wrong-" + PASSWORD + "\n")
        env = {"ZASTAVA_AGENT__Backend__NatsUser": "agent",
               "ZASTAVA_AGENT__Backend__NatsPasswordFile": pw}
        agent = self.agent("badpw", c, stream, prefix, env=env, ready=False,
                           args=["--backend-failures-before-unready", "2", *NO_EVIDENCE])
        pid = agent.proc.pid
        self.life(agent, "n8")
        self.unready(agent, ["authorization"], "bad password")
        self.assert_log_has(agent, ["authorization violation"], "bad password")
        self.assert_no_secrets(agent, ["wrong-" + PASSWORD, PASSWORD])
        with open(pw + ".new", "w") as f:
            f.write(PASSWORD + "\n")
        os.chmod(pw + ".new", 0o600)
        os.replace(pw + ".new", pw)
        _, _, stats, problems = self.wait_delivered(agent, c, stream, subject)
        self.assertEqual(agent.proc.pid, pid)
        self.assert_clean("bad input: bad password, then the right one", stats, problems)
        self.ready(agent, timeout=20)
        self.assert_no_secrets(agent, ["wrong-" + PASSWORD, PASSWORD])
        self.stop_agent(agent)

    def test_09_tls_wrong_ca(self):
        """Backend:CaFile a CA that did not sign the server's certificate: a TLS/certificate
        error logged and in /readyz; the right CA (agent restarted): everything arrives"""
        c = self.tls_cluster()
        p = self.pki
        stream, prefix, subject = self.stream(c, "badca")
        env = {"ZASTAVA_AGENT__Backend__CaFile": p["other_ca"],
               "ZASTAVA_AGENT__Backend__ClientCertFile": p["client"],
               "ZASTAVA_AGENT__Backend__ClientKeyFile": p["client_key"]}
        agent = self.agent("badca", c, stream, prefix, env=env, ready=False,
                           args=["--backend-failures-before-unready", "2", *NO_EVIDENCE])
        self.life(agent, "n9")
        body = self.unready(agent, [], "wrong CA")
        self.assertTrue("tls" in body.lower() or "certificate" in body.lower(),
                        f"/readyz does not name TLS: {body!r}")
        text = agent.log_text().lower()
        self.assertTrue("tls" in text or "certificate" in text or "ssl" in text,
                        f"no TLS error in the log\n{h.tail(agent.log_path)}")
        self.stop_agent(agent)
        fixed = self.ws.respawn(agent, env={**agent.env,
                                            "ZASTAVA_AGENT__Backend__CaFile": p["ca"]})
        fixed.start()
        self.ready(fixed)
        _, _, stats, problems = self.wait_delivered(fixed, c, stream, subject)
        self.assert_clean("bad input: wrong CA, then the right one", stats, problems)
        self.stop_agent(fixed)

    # ------------------------------------------------------------------ auth that works
    def auth_case(self, name, cluster, env, secrets=()):
        stream, prefix, subject = self.stream(cluster, name)
        agent = self.agent(name, cluster, stream, prefix, env=env, args=NO_EVIDENCE)
        self.life(agent, f"n-{name}")
        _, msgs, stats, problems = self.wait_delivered(agent, cluster, stream, subject)
        self.assert_clean(f"auth: {name}", stats, problems)
        self.assertEqual(h.verify_chain([m[2].decode() for m in msgs]), [])
        self.assert_no_secrets(agent, secrets)
        self.stop_agent(agent)

    def test_10_auth_user_password(self):
        """Backend:NatsUser + Backend:NatsPasswordFile, a user allowed only what docs/fleet.md
        allows a host: everything arrives"""
        c, _ = self.auth_cluster()
        self.auth_case("userpw", c, {
            "ZASTAVA_AGENT__Backend__NatsUser": "agent",
            "ZASTAVA_AGENT__Backend__NatsPasswordFile":
                self.secret_file("nats-password-ok", PASSWORD + "\n")}, [PASSWORD])

    def test_11_auth_token(self):
        """Backend:TokenFile against a server that wants a token: everything arrives"""
        if not hasattr(type(self), "_token"):
            type(self)._token = self.cluster("nats-token", nodes=1, auth={"token": TOKEN})
        self.auth_case("token", type(self)._token, {
            "ZASTAVA_AGENT__Backend__TokenFile": self.secret_file("nats-token", TOKEN + "\n")},
            [TOKEN])

    def test_12_auth_nkey(self):
        """Backend:NatsNkeySeedFile (an SU... user seed; the server knows the U... public
        key): everything arrives; the seed is not in the log"""
        c, nkey = self.auth_cluster()
        self.auth_case("nkey", c, {"ZASTAVA_AGENT__Backend__NatsNkeySeedFile": nkey.seed_file},
                       [nkey.seed])

    def test_13_auth_tls_client_certificate(self):
        """tls:// URLs, Backend:CaFile and a client certificate the server verifies:
        everything arrives"""
        c = self.tls_cluster()
        p = self.pki
        self.auth_case("mtls", c, {"ZASTAVA_AGENT__Backend__CaFile": p["ca"],
                                   "ZASTAVA_AGENT__Backend__ClientCertFile": p["client"],
                                   "ZASTAVA_AGENT__Backend__ClientKeyFile": p["client_key"]})


def why_skip():
    reason = h.skip_reason()
    missing = []
    if not os.path.exists(nc.NATS_SERVER):
        missing.append("nats-server")
    if not shutil.which("openssl"):
        missing.append("openssl")
    if reason is None and missing:
        reason = f"missing: {', '.join(missing)}"
    return reason


if __name__ == "__main__":
    h.main(globals(), why_skip)
