#!/usr/bin/python3
"""Backend delivery (docs/backend.md): the real agent POSTs its ledger to a real HTTP(S)
receiver (backend_receiver.py, the oracle), while a private dockerd produces the records.

Every test ends by comparing what the receiver accepted, de-duplicated by eventId and in
arrival order, with the agent's ledger (the SQLite `record` column by rowid), byte for byte.
Faults: the backend down and up again on the same port, the agent SIGKILLed with a batch in
flight, 500s, 429 with Retry-After, a hung answer, 400 (quarantine), 401 and a rotated token,
TLS with a private CA, mTLS, 413 (halving; a single record quarantined), 408/503/404/302
(retried, the redirect not followed), delivery turned on for an existing ledger and off and on
again (resumes at the cursor). Not covered: retention expiry (agent.gap, RetentionHours >= 1 h)
and proxies."""

import gzip
import hashlib
import json
import math
import os
import shutil
import socket
import stat
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402
import backend_receiver as br  # noqa: E402

ARGS = None
CAUSES = ["connect", "tls", "timeout", "http_408", "http_429", "http_5xx", "too_large",
          "refused", "rejected", "other"]
FAILURES = "zastava_agent_backend_failures_total"
NO_EVIDENCE = ["--evidence-workers", "0"]  # fewer, steadier records where counts matter


def ledger(agent):
    """The agent's records in commit order: the SQLite record column by rowid."""
    return [r[0] for r in h.read_sqlite(agent.data_dir,
                                        "SELECT record FROM events ORDER BY rowid")]


def rowids(agent):
    return {r[1]: r[0] for r in h.read_sqlite(agent.data_dir,
                                             "SELECT rowid, event_id FROM events")}


def eid(line):
    return json.loads(line)["eventId"]


def failures(agent):
    """{cause: value} of failures_total (absent causes left out)."""
    text = agent.metrics()
    out = {}
    for c in CAUSES:
        v = h.metric_value(text, FAILURES, {"cause": c})
        if v is not None:
            out[c] = v
    return out


class BackendDelivery(h.WorkspaceTest):
    @classmethod
    def set_up(cls):
        cls.d = cls.ws.dockerd()
        cls.d.make_busybox_image()
        cls.pki = br.make_pki(os.path.join(cls.ws.dir, "pki"))
        res = h.run_agent_once(ARGS.agent, ["--version"])
        cls.version = res.stdout.split()[-1] if res.returncode == 0 and res.stdout else None

    # ------------------------------------------------------------------------------ helpers
    def receiver(self, name, **kw):
        rx = br.BackendReceiver(log_path=os.path.join(self.ws.dir, f"receiver-{name}.log"),
                                log=h.log, **kw)
        self.ws.on_cleanup(rx.stop)
        return rx.start()

    def agent(self, name, url=None, args=(), env=None, start=True):
        extra = (["--backend-url", url] if url else []) + [
            "--backend-batch-max-wait-ms", "200", "--backend-retry-max-seconds", "2", *args]
        a = self.ws.agent(ARGS.agent, self.d.endpoint, name=name, extra_args=extra, env=env)
        if start:
            a.start()
            a.wait_ready()
        return a

    def life(self, agent, name):
        """harness.container_life on the test's dockerd."""
        return h.container_life(self.d, agent, name)

    def wait_delivered(self, agent, rx, exclude=(), timeout=40):
        """Waits until the receiver's accepted records, de-duplicated by eventId, equal the
        ledger (minus the eventIds in `exclude`) in order, the ledger did not change while
        looking, and the backlog gauge is 0. Returns the ledger."""
        box = {}

        def check():
            l1 = ledger(agent)
            backlog = agent.metric_value("zastava_agent_backend_backlog_records")
            l2 = ledger(agent)
            got = rx.unique_lines()
            want = [x for x in l1 if eid(x) not in exclude]
            box.update(ledger=l2, got=got, want=want, backlog=backlog)
            return bool(l1) and l1 == l2 and got == want and backlog == 0
        try:
            h.wait_until(check, timeout, "the receiver to hold the whole ledger", interval=0.2)
        except AssertionError as exc:
            self.fail(f"{exc}\n{self.delivery_report(box, rx, agent)}")
        return box["ledger"]

    @staticmethod
    def delivery_report(box, rx, agent):
        want, got = box.get("want", []), box.get("got", [])
        want_ids = [eid(x) for x in want]
        got_ids = [eid(x) for x in got]
        missing = [i for i in want_ids if i not in set(got_ids)]
        extra = [i for i in got_ids if i not in set(want_ids)]
        order = ""
        for i, (a, b) in enumerate(zip(want, got)):
            if a != b:
                order = f"first difference at {i}: ledger {a[:100]!r} received {b[:100]!r}"
                break
        fails = {}
        try:
            fails = failures(agent)
        except Exception as exc:  # agent dead
            fails = repr(exc)
        return (f"ledger {len(want)} records (after exclusions), received {len(got)} unique; "
                f"backlog gauge {box.get('backlog')!r}; failures {fails}\n"
                f"missing {len(missing)}: {missing[:8]}\nunexpected {len(extra)}: {extra[:8]}\n"
                f"{order}\n--- receiver ---\n{rx.describe()}\n"
                f"--- agent log ---\n{h.tail(agent.log_path, 2500)}")

    def check_requests(self, rx, max_records=None):
        """What every request must be, whatever the test (docs/backend.md "The request")."""
        problems = []
        for r in rx.requests():
            tag = f"request #{r.seq}"
            if r.method != "POST":
                problems.append(f"{tag}: method {r.method}")
            if r.decode_error:
                problems.append(f"{tag}: {r.decode_error}")
            if r.header("content-type") != "application/x-ndjson":
                problems.append(f"{tag}: Content-Type {r.header('content-type')!r}")
            if r.header("x-zastava-records") != str(len(r.lines)):
                problems.append(f"{tag}: X-Zastava-Records {r.header('x-zastava-records')!r}, "
                                f"body has {len(r.lines)} records")
            if not r.lines:
                problems.append(f"{tag}: empty body")
            elif not r.ends_with_newline:
                problems.append(f"{tag}: body does not end with \\n")
            if any(line == "" for line in r.lines):
                problems.append(f"{tag}: an empty line in the body")
            if max_records is not None and len(r.lines) > max_records:
                problems.append(f"{tag}: {len(r.lines)} records > {max_records}")
            if r.lines:
                problems += self.batch_identity_problems(tag, r)
        ids = {}
        for r in rx.requests():
            ids.setdefault(r.header("x-zastava-batch-id"), set()).add(tuple(r.lines))
        for batch_id, bodies in ids.items():
            if len(bodies) > 1:
                problems.append(f"X-Zastava-Batch-Id {batch_id} names {len(bodies)} different "
                                f"batches")
        self.assertEqual(problems, [], rx.describe())

    def batch_identity_problems(self, tag, r):
        """docs/backend.md "Batch identity": X-Zastava-Batch names the first and last eventId
        and the chain hashes around the batch; X-Zastava-Batch-Id is derived from it and the
        host."""
        first, last = json.loads(r.lines[0]), json.loads(r.lines[-1])
        want = (f"first={first['eventId']}, last={last['eventId']}, "
                f"prev-hash={first['prevHash']}, "
                f"last-hash={hashlib.sha256(r.lines[-1].encode()).hexdigest()}")
        problems = []
        if r.header("x-zastava-batch") != want:
            problems.append(f"{tag}: X-Zastava-Batch {r.header('x-zastava-batch')!r}, "
                            f"expected {want!r}")
        key = f"zastava.batch\n{r.header('x-zastava-host')}\n{want}".encode()
        want_id = hashlib.sha256(key).hexdigest()[:32]
        if r.header("x-zastava-batch-id") != want_id:
            problems.append(f"{tag}: X-Zastava-Batch-Id {r.header('x-zastava-batch-id')!r}, "
                            f"expected {want_id}")
        return problems

    def assert_metric(self, agent, name, want, labels=None):
        h.wait_metric(agent, name, lambda v: v == want, timeout=5, labels=labels)

    def stop_agent(self, agent):
        code, _ = agent.stop()
        self.assertEqual(code, 0, h.tail(agent.log_path))

    # ------------------------------------------------------------------------------ tests
    def test_01_complete_in_order_with_headers(self):
        """URL from ZASTAVA_AGENT__Backend__Url (with a path and query): a snapshot, evidence
        and two container lives arrive complete, in ledger order, byte for byte, once each;
        POST to the URL exactly; headers per the contract; the hash chain continues from batch
        to batch; metrics: delivered records/batches/bytes equal what the receiver accepted,
        backlog 0, oldest age 0, no failures"""
        rx = self.receiver("complete", path="/zastava/ingest?source=zit-1")
        pre = self.d.docker("run", "-d", "--name", "c1-pre", h.TEST_IMAGE, *h.IDLE_CMD)
        agent = self.agent("complete", env={"ZASTAVA_AGENT__Backend__Url": rx.url})
        self.life(agent, "c1-a")
        self.life(agent, "c1-b")
        self.d.docker("rm", "-f", pre)
        self.wait_delivered(agent, rx)
        # The last evidence scans may still land: wait for a ledger that stays put 1.5 s.
        time.sleep(1.5)
        records = self.wait_delivered(agent, rx)

        reqs = rx.requests()
        h.log(f"{len(records)} records in {len(reqs)} requests: "
              f"{[len(r.lines) for r in reqs]}")
        self.check_requests(rx)
        self.assertEqual(rx.status_counts(), {200: len(reqs)}, rx.describe())
        self.assertEqual(rx.all_lines(), records,
                         "received lines (duplicates included) != ledger: a re-send without a "
                         "failure, or a difference")
        self.assertEqual(h.verify_chain(rx.all_lines()), [], "hash chain over the batches")
        for prev, cur in zip(reqs, reqs[1:]):
            self.assertEqual(json.loads(cur.lines[0])["prevHash"],
                             h.line_hash(prev.lines[-1])[0],
                             f"request #{cur.seq} does not continue the chain of #{prev.seq}")
        kinds = {json.loads(x)["kind"] for x in records}
        self.assertIn("container.snapshot", kinds)
        self.assertIn("container.destroy", kinds)
        hosts = {socket.gethostname(), socket.getfqdn()}
        for r in reqs:
            self.assertEqual(r.path, "/zastava/ingest?source=zit-1", "URL exactly as configured")
            self.assertTrue((r.header("user-agent") or "").startswith("zastava-agent/"),
                            f"User-Agent {r.header('user-agent')!r}")
            if self.version:
                self.assertEqual(r.header("user-agent"), f"zastava-agent/{self.version}")
            self.assertIn(r.header("x-zastava-host"), hosts, "X-Zastava-Host")
            self.assertIsNone(r.header("content-encoding"), "no gzip unless Backend:Gzip")
            self.assertIsNone(r.header("authorization"), "no token file, no Authorization")

        self.assert_metric(agent, "zastava_agent_backend_delivered_records_total", len(records))
        self.assert_metric(agent, "zastava_agent_backend_delivered_batches_total", len(reqs))
        self.assert_metric(agent, "zastava_agent_backend_delivered_bytes_total",
                           sum(len(r.raw_body) for r in reqs))
        self.assert_metric(agent, "zastava_agent_backend_backlog_records", 0)
        self.assert_metric(agent, "zastava_agent_backend_backlog_bytes", 0)
        self.assert_metric(agent, "zastava_agent_backend_oldest_undelivered_age_seconds", 0)
        self.assert_metric(agent, "zastava_agent_backend_consecutive_failures", 0)
        self.assert_metric(agent, "zastava_agent_backend_quarantined_records_total", 0)
        self.assertEqual({c: v for c, v in failures(agent).items() if v}, {}, "failures")
        self.assertEqual(ledger(agent), records, "the ledger grew while checking metrics")
        self.stop_agent(agent)

    def test_02_batch_max_records_and_gzip(self):
        """--backend-batch-max-records 5 --backend-gzip true: no request holds more than 5
        records, full batches hold exactly 5; every body is gzip (Content-Encoding: gzip,
        magic 1f 8b) and decodes to the ledger's lines; delivered bytes are compressed bytes"""
        rx = self.receiver("gzip")
        agent = self.agent("gzip", rx.url, ["--backend-batch-max-records", "5",
                                            "--backend-gzip", "true",
                                            "--backend-batch-max-wait-ms", "3000"])
        for i in range(3):
            self.life(agent, f"c2-{i}")
        self.wait_delivered(agent, rx)
        time.sleep(1.5)
        records = self.wait_delivered(agent, rx)
        reqs = rx.requests()
        sizes = [len(r.lines) for r in reqs]
        h.log(f"{len(records)} records in {len(reqs)} requests: {sizes}")
        self.check_requests(rx, max_records=5)
        self.assertGreaterEqual(len(records), 15)
        self.assertIn(5, sizes, "no full batch of 5 records")
        for r in reqs:
            self.assertEqual(r.header("content-encoding"), "gzip", f"request #{r.seq}")
            self.assertEqual(r.raw_body[:2], b"\x1f\x8b", f"request #{r.seq}: not gzip")
            self.assertEqual(gzip.decompress(r.raw_body).decode().split("\n")[:-1], r.lines)
        self.assertEqual(rx.all_lines(), records)
        self.assert_metric(agent, "zastava_agent_backend_delivered_bytes_total",
                           sum(len(r.raw_body) for r in reqs if r.accepted))
        self.assert_metric(agent, "zastava_agent_backend_delivered_records_total", len(records))
        self.stop_agent(agent)

    def test_03_batch_max_kb(self):
        """--backend-batch-max-kb 2: no body holds more than 2 KiB before compression unless it
        is a single record; everything arrives in order"""
        rx = self.receiver("kb")
        agent = self.agent("kb", rx.url, ["--backend-batch-max-kb", "2",
                                          "--backend-batch-max-wait-ms", "1000"])
        self.life(agent, "c3-a")
        self.life(agent, "c3-b")
        self.wait_delivered(agent, rx)
        time.sleep(1.5)
        records = self.wait_delivered(agent, rx)
        self.check_requests(rx)
        sizes = [(len(r.body), len(r.lines)) for r in rx.requests()]
        h.log(f"(bytes, records) per request: {sizes}")
        self.assertEqual([s for s in sizes if s[0] > 2048 and s[1] > 1], [],
                         "requests over 2 KiB with more than one record")
        self.assertGreater(len(sizes), 1)
        self.assertEqual(rx.all_lines(), records)
        self.stop_agent(agent)

    def test_04_backend_outage_and_back(self):
        """the receiver stopped: the agent keeps recording, /readyz 503 "backend connection
        failed" after 2 failed attempts, backlog > 0, failures{connect} > 0, the first failure
        logged naming the URL; the receiver started again on the same port: /readyz 200,
        everything arrives, de-duplicated == ledger, nothing lost"""
        rx = self.receiver("outage")
        agent = self.agent("outage", rx.url, ["--backend-failures-before-unready", "2"])
        self.life(agent, "c4-before")
        self.wait_delivered(agent, rx)
        n_before = len(rx.requests())

        h.log("backend down")
        rx.stop()
        self.life(agent, "c4-during")
        status, body = agent.wait_readyz(503, timeout=30,
                                         body_pred=lambda b: "backend connection failed" in b)
        h.log(f"/readyz while the backend is down: {status} {body.strip()!r}")
        backlog = h.wait_metric(agent, "zastava_agent_backend_backlog_records",
                                lambda v: v is not None and v > 0)
        h.wait_metric(agent, "zastava_agent_backend_backlog_bytes",
                      lambda v: v is not None and v > 0)
        h.wait_metric(agent, "zastava_agent_backend_oldest_undelivered_age_seconds",
                      lambda v: v is not None and v > 0, timeout=10)
        connect = h.wait_metric(agent, FAILURES, lambda v: v is not None and v > 0,
                                labels={"cause": "connect"})
        h.wait_metric(agent, "zastava_agent_backend_consecutive_failures",
                      lambda v: v is not None and v >= 2)
        h.log(f"backlog {backlog}, failures{{connect}} {connect}")
        self.assertEqual(agent.http_get("/livez")[0], 200, "/livez while the backend is down")
        self.assertIn(rx.url, agent.log_text(), "the first failure should name the URL")
        self.life(agent, "c4-during-2")  # still recording
        self.assertEqual(len(rx.requests()), n_before, "requests while the receiver was down?")

        h.log("backend up again on the same port")
        rx.start()
        agent.wait_readyz(200, timeout=30)
        records = self.wait_delivered(agent, rx)
        self.check_requests(rx)
        self.assertEqual(h.verify_chain(rx.unique_lines()), [])
        self.assertEqual(rx.unique_ids(), {eid(x) for x in records})
        self.assert_metric(agent, "zastava_agent_backend_consecutive_failures", 0)
        self.assert_metric(agent, "zastava_agent_backend_oldest_undelivered_age_seconds", 0)
        self.assert_metric(agent, "zastava_agent_backend_delivered_records_total",
                           len(rx.all_lines()))
        self.stop_agent(agent)

    def test_05_agent_killed_with_batch_in_flight(self):
        """the receiver stores each body and answers 3 s later; the agent is SIGKILLed while a
        request is in flight (body stored, no answer yet) and started again on the same data
        directory: it sends that batch again from its first record (the cursor had not moved),
        the receiver sees those eventIds a second time, and de-duplicated == ledger exactly"""
        rx = self.receiver("kill")
        rx.set_default(status=200, delay=3)
        agent = self.agent("kill", rx.url, NO_EVIDENCE)
        self.life(agent, "c5-a")
        inflight = h.wait_until(lambda: [r for r in rx.in_flight() if r.lines], 20,
                                "a request in flight")[0]
        agent.kill9()
        killed = inflight.event_ids
        h.log(f"SIGKILL with request #{inflight.seq} ({len(killed)} records) in flight")
        h.wait_until(lambda: inflight.client_gone_at or inflight.answered, 10,
                     "the receiver to see the killed connection")
        self.assertFalse(inflight.answered, "the answer was written before the kill: the "
                                            "test did not kill mid-batch")
        rx.set_default(status=200)
        self.life(None, "c5-while-down")
        n_before = len(rx.requests())

        agent2 = self.ws.respawn(agent)
        agent2.start()
        agent2.wait_ready()
        self.life(agent2, "c5-after")
        records = self.wait_delivered(agent2, rx)
        self.check_requests(rx)
        after = rx.requests()[n_before:]
        self.assertTrue(after, "no request after the restart")
        self.assertEqual(after[0].lines[0], inflight.lines[0],
                         "the restarted agent should start again with the in-flight batch")
        counts = rx.id_counts(accepted_only=False)
        self.assertEqual([i for i in killed if counts[i] < 2], [],
                         "eventIds of the killed batch not sent again")
        ids = [eid(x) for x in records]
        self.assertEqual([i for i in killed if i not in ids], [], "killed batch not in ledger")
        self.assertEqual(rx.unique_ids(), set(ids))
        self.assertEqual(h.verify_chain(rx.unique_lines()), [])
        self.stop_agent(agent2)

    def test_06_http_500_then_success(self):
        """the first 3 requests get 500: each retry sends the same records again (the previous
        batch is a prefix of the next), then everything arrives; failures{http_5xx} == 3,
        ready again, consecutive failures 0"""
        rx = self.receiver("500")
        rx.queue(status=500, body="oops\n", times=3)
        agent = self.agent("500", rx.url, NO_EVIDENCE)
        self.life(agent, "c6")
        records = self.wait_delivered(agent, rx)
        self.check_requests(rx)
        reqs = rx.requests()
        self.assertEqual([r.status for r in reqs[:4]], [500, 500, 500, 200], rx.describe())
        for a, b in zip(reqs, reqs[1:4]):
            self.assertEqual(b.lines[:len(a.lines)], a.lines,
                             f"request #{b.seq} should begin with the records of #{a.seq}")
            if b.lines == a.lines:
                self.assertEqual(b.header("x-zastava-batch-id"), a.header("x-zastava-batch-id"),
                                 "the same batch sent again keeps its X-Zastava-Batch-Id")
        self.assert_metric(agent, FAILURES, 3, {"cause": "http_5xx"})
        self.assert_metric(agent, "zastava_agent_backend_consecutive_failures", 0)
        self.assert_metric(agent, "zastava_agent_backend_delivered_records_total", len(records))
        agent.wait_readyz(200, timeout=10)
        self.stop_agent(agent)

    def test_07_http_429_retry_after(self):
        """429 with Retry-After: 2: the next attempt comes at least ~2 s after the answer
        (the back-off alone would be 0.5-1 s), then the records arrive; failures{http_429}
        == 1"""
        rx = self.receiver("429")
        rx.queue(status=429, headers={"Retry-After": "2"}, body="slow down\n")
        agent = self.agent("429", rx.url, NO_EVIDENCE)
        self.life(agent, "c7")
        self.wait_delivered(agent, rx)
        self.check_requests(rx)
        reqs = rx.requests()
        self.assertEqual(reqs[0].status, 429)
        gap = reqs[1].t_start - reqs[0].t_answered
        h.log(f"next attempt {gap:.2f} s after the 429")
        self.assertGreaterEqual(gap, 1.9, "Retry-After: 2 not honoured")
        self.assertEqual(reqs[1].lines[:len(reqs[0].lines)], reqs[0].lines)
        self.assert_metric(agent, FAILURES, 1, {"cause": "http_429"})
        self.stop_agent(agent)

    def test_08_hung_answer_times_out(self):
        """--backend-timeout-seconds 2, the receiver never answers the first request: the
        agent abandons it (not before ~2 s), counts failures{timeout}, sends the same records
        again, and everything arrives"""
        rx = self.receiver("hang")
        rx.queue(hang=True)
        agent = self.agent("hang", rx.url, [*NO_EVIDENCE, "--backend-timeout-seconds", "2"])
        self.life(agent, "c8")
        records = self.wait_delivered(agent, rx)
        self.check_requests(rx)
        reqs = rx.requests()
        hung = reqs[0]
        self.assertIsNone(hung.status, rx.describe())
        self.assertIsNotNone(hung.client_gone_at, "the agent never closed the hung request")
        waited = hung.client_gone_at - hung.t_start
        h.log(f"the agent gave up the hung request after {waited:.2f} s")
        self.assertGreaterEqual(waited, 1.5, "abandoned before Backend:TimeoutSeconds")
        self.assertEqual(reqs[1].lines[:len(hung.lines)], hung.lines)
        self.assertGreaterEqual(h.wait_metric(agent, FAILURES, lambda v: v is not None,
                                              labels={"cause": "timeout"}), 1)
        self.assertEqual(rx.unique_ids(), {eid(x) for x in records})
        self.stop_agent(agent)

    def test_09_http_400_quarantine(self):
        """the first request is answered 400: that batch is written to
        backend-quarantine/batch-<first rowid>-<last rowid>.ndjson exactly as sent (mode
        0640), quarantined_records_total counts it, the error is logged with the status, the
        answer and the file name, it is not sent again, later records arrive, readiness
        stays 200"""
        rx = self.receiver("400")
        rx.queue(status=400, body="record rejected by zit\n")
        agent = self.agent("400", rx.url, NO_EVIDENCE)
        self.life(agent, "c9-a")
        h.wait_until(lambda: rx.requests() and rx.requests()[0].status == 400, 20,
                     "the 400 answer")
        bad = rx.requests()[0]
        bad_ids = set(bad.event_ids)
        self.wait_delivered(agent, rx, exclude=bad_ids)
        self.assertEqual(agent.http_get("/readyz")[0], 200, "readiness after a quarantine")
        self.life(agent, "c9-b")
        records = self.wait_delivered(agent, rx, exclude=bad_ids)
        self.check_requests(rx)

        qdir = os.path.join(agent.data_dir, "backend-quarantine")
        files = sorted(os.listdir(qdir)) if os.path.isdir(qdir) else []
        ids = rowids(agent)
        want_name = f"batch-{ids[bad.event_ids[0]]}-{ids[bad.event_ids[-1]]}.ndjson"
        self.assertEqual(files, [want_name], "quarantine directory")
        path = os.path.join(qdir, want_name)
        with open(path, "rb") as f:
            self.assertEqual(f.read(), "".join(x + "\n" for x in bad.lines).encode(),
                             "quarantined file != the rejected body")
        self.assertEqual(stat.S_IMODE(os.stat(path).st_mode), 0o640, "quarantine file mode")
        self.assert_metric(agent, "zastava_agent_backend_quarantined_records_total",
                           len(bad.lines))
        counts = rx.id_counts(accepted_only=False)
        self.assertEqual([i for i in bad_ids if counts[i] != 1], [],
                         "quarantined records sent again")
        self.assertEqual(rx.unique_ids() | bad_ids, {eid(x) for x in records})
        log_text = agent.log_text()
        for needle in ("400", want_name, "record rejected by zit"):
            self.assertIn(needle, log_text, "the quarantine error log")
        self.assertEqual(agent.http_get("/readyz")[0], 200)
        self.assert_metric(agent, "zastava_agent_backend_consecutive_failures", 0)
        self.stop_agent(agent)

    def test_10_bearer_token_rotation(self):
        """--backend-token-file holding " tok-one \\n": requests carry Authorization: Bearer
        tok-one; the receiver then wants tok-two: 401s, retried, nothing accepted; the file
        rewritten with tok-two: delivery goes on without a restart, with the new token"""
        token_file = os.path.join(self.ws.dir, "backend-token")
        with open(token_file, "w") as f:
            f.write("  tok-one \n")
        os.chmod(token_file, 0o600)
        rx = self.receiver("token")
        rx.token = "tok-one"
        agent = self.agent("token", rx.url, [*NO_EVIDENCE, "--backend-token-file", token_file])
        pid = agent.proc.pid
        self.life(agent, "c10-a")
        self.wait_delivered(agent, rx)
        self.assertEqual(rx.status_counts(), {200: len(rx.requests())}, rx.describe())
        self.assertEqual({r.header("authorization") for r in rx.requests()}, {"Bearer tok-one"})

        rx.token = "tok-two"
        n0 = len(rx.requests())
        self.life(agent, "c10-b")
        h.wait_until(lambda: rx.status_counts().get(401, 0) >= 2, 20, "two 401 answers")
        self.assertEqual([r for r in rx.requests()[n0:] if r.accepted], [])
        fails = failures(agent)
        h.log(f"failures after 401s: {fails}")
        self.assertGreaterEqual(sum(fails.values()), 2, "401s not counted as failures")
        tmp = token_file + ".new"
        with open(tmp, "w") as f:
            f.write("tok-two\n")
        os.replace(tmp, token_file)
        n1 = len(rx.requests())
        records = self.wait_delivered(agent, rx)
        self.check_requests(rx)
        later = rx.requests()[n1:]
        self.assertTrue([r for r in later if r.accepted])
        auths = [r.header("authorization") for r in later]
        while auths and auths[0] == "Bearer tok-one":  # read before the file was replaced
            auths.pop(0)
        self.assertEqual(set(auths), {"Bearer tok-two"}, rx.describe())
        self.assertEqual(agent.proc.pid, pid)
        self.assertTrue(agent.alive())
        self.assertEqual(rx.unique_ids(), {eid(x) for x in records})
        self.stop_agent(agent)

    def test_11_tls_private_ca(self):
        """https with a certificate from a private CA: with --backend-ca-file the records
        arrive; with the system CAs only, or with a certificate for another host name, nothing
        is delivered and failures{tls} > 0"""
        pki = self.pki
        pre = self.d.docker("run", "-d", "--name", "c11-pre", h.TEST_IMAGE, *h.IDLE_CMD)
        try:
            rx = self.receiver("tls", tls=(pki["server"], pki["server_key"]))
            self.assertTrue(rx.url.startswith("https://127.0.0.1:"))
            agent = self.agent("tls", rx.url, [*NO_EVIDENCE, "--backend-ca-file", pki["ca"]])
            self.life(agent, "c11")
            records = self.wait_delivered(agent, rx)
            self.check_requests(rx)
            self.assertEqual(rx.all_lines(), records)
            self.stop_agent(agent)

            for name, server, ca_args in (
                    ("tls-system-cas", rx, []),
                    ("tls-wrong-name", None, ["--backend-ca-file", pki["ca"]])):
                target = server or self.receiver(
                    name, tls=(pki["wrong_name"], pki["wrong_name_key"]))
                n0, e0 = len(target.requests()), len(target.tls_errors())
                c0 = target.connection_count()
                bad = self.agent(name, target.url, [*NO_EVIDENCE, *ca_args])
                tls = h.wait_metric(bad, FAILURES, lambda v: v is not None and v > 0,
                                    labels={"cause": "tls"}, timeout=20)
                # The agent did reach the receiver (the handshake fails there, or the client
                # hangs up after it on a name mismatch) and sent no request.
                self.assertGreater(target.connection_count(), c0, f"{name}: no connection")
                h.log(f"{name}: failures{{tls}} {tls}; receiver: "
                      f"{[e[2] for e in target.tls_errors()[e0:]][:1]}")
                self.assertEqual(len(target.requests()), n0, f"{name}: a request got through")
                self.assert_metric(bad, "zastava_agent_backend_delivered_records_total", 0)
                self.assertGreater(
                    bad.metric_value("zastava_agent_backend_backlog_records") or 0, 0)
                self.stop_agent(bad)
        finally:
            self.d.docker("rm", "-f", pre)

    def test_12_mtls_client_certificate(self):
        """the receiver requires a client certificate from the client CA: with
        --backend-client-cert-file/--backend-client-key-file the records arrive (the receiver
        saw CN=client); without them, or with a certificate from another CA, failed attempts
        are counted as `tls` and nothing is delivered"""
        pki = self.pki
        pre = self.d.docker("run", "-d", "--name", "c12-pre", h.TEST_IMAGE, *h.IDLE_CMD)
        try:
            rx = self.receiver("mtls", tls=(pki["server"], pki["server_key"]),
                               client_ca=pki["client_ca"])
            agent = self.agent("mtls", rx.url, [
                *NO_EVIDENCE, "--backend-ca-file", pki["ca"],
                "--backend-client-cert-file", pki["client"],
                "--backend-client-key-file", pki["client_key"]])
            self.life(agent, "c12")
            records = self.wait_delivered(agent, rx)
            self.check_requests(rx)
            self.assertEqual({r.client_cert_subject.get("commonName") for r in rx.requests()},
                             {"client"})
            self.assertEqual(rx.all_lines(), records)
            self.stop_agent(agent)

            for name, cert_args in (
                    ("mtls-none", []),
                    ("mtls-stranger", ["--backend-client-cert-file", pki["stranger"],
                                       "--backend-client-key-file", pki["stranger_key"]])):
                n0, e0 = len(rx.requests()), len(rx.tls_errors())
                bad = self.agent(name, rx.url,
                                 [*NO_EVIDENCE, "--backend-ca-file", pki["ca"], *cert_args])
                h.wait_until(lambda: failures(bad).get("tls", 0) >= 2, 20,
                             f"{name}: failed attempts counted as tls")
                h.wait_until(lambda: len(rx.tls_errors()) > e0, 10,
                             f"{name}: the receiver to see a failed handshake")
                h.log(f"{name}: failures {failures(bad)}; receiver: {rx.tls_errors()[e0][2]}")
                self.assertEqual(len(rx.requests()), n0, f"{name}: a request got through")
                self.assertEqual(failures(bad).get("connect"), 0, f"{name}: counted as connect")
                self.assert_metric(bad, "zastava_agent_backend_delivered_records_total", 0)
                self.stop_agent(bad)
        finally:
            self.d.docker("rm", "-f", pre)

    def test_13_http_413_halving(self):
        """a receiver that answers 413 to any body of more than 3 records: a batch of more is
        halved (same first record, at most half the records) until it fits; everything
        arrives, no request over 3 is accepted, nothing is quarantined"""
        rx = self.receiver("413")
        rx.max_records = 3
        agent = self.agent("413", rx.url, NO_EVIDENCE, start=False)
        rx.stop()  # records pile up first, so the first batch is surely larger than 3
        agent.start()
        agent.wait_ready()
        self.life(agent, "c13")
        self.assertGreaterEqual(len(ledger(agent)), 6)
        rx.start()
        records = self.wait_delivered(agent, rx)
        self.check_requests(rx)
        reqs = rx.requests()
        h.log(f"request sizes and answers: {[(len(r.lines), r.status) for r in reqs]}")
        too_large = [r for r in reqs if r.status == 413]
        self.assertTrue(too_large, "no batch was larger than 3 records")
        for r in too_large:
            nxt = reqs[reqs.index(r) + 1]
            self.assertEqual(nxt.lines[0], r.lines[0], f"request after #{r.seq}: first record")
            self.assertLessEqual(len(nxt.lines), math.ceil(len(r.lines) / 2),
                                 f"request after #{r.seq} ({len(r.lines)} records) not halved")
        self.assertEqual([r.seq for r in reqs if r.accepted and len(r.lines) > 3], [])
        self.assertEqual(rx.unique_ids(), {eid(x) for x in records})
        self.assert_metric(agent, "zastava_agent_backend_quarantined_records_total", 0)
        qdir = os.path.join(agent.data_dir, "backend-quarantine")
        self.assertEqual(os.listdir(qdir) if os.path.isdir(qdir) else [], [])
        self.assert_metric(agent, FAILURES, len(too_large), {"cause": "too_large"})
        self.stop_agent(agent)

    def test_14_single_record_413_quarantined(self):
        """a receiver that answers 413 to every body: batches are halved down to one record,
        and each single record answered 413 is quarantined in its own batch-N-N.ndjson;
        delivery goes on (nothing accepted, nothing left waiting)"""
        rx = self.receiver("413-all")
        rx.max_records = 0
        agent = self.agent("413-all", rx.url, NO_EVIDENCE)
        self.life(agent, "c14")
        qdir = os.path.join(agent.data_dir, "backend-quarantine")

        def quarantined():
            return sorted(os.listdir(qdir)) if os.path.isdir(qdir) else []
        try:
            h.wait_until(lambda: len(quarantined()) >= len(ledger(agent)), 40,
                         "one quarantined file per record")
        except AssertionError as exc:
            self.fail(f"{exc}: {quarantined()}\n{rx.describe()}\n{h.tail(agent.log_path)}")
        h.wait_metric(agent, "zastava_agent_backend_backlog_records", lambda v: v == 0)
        records = ledger(agent)
        ids = rowids(agent)
        files = quarantined()
        want = sorted(f"batch-{ids[eid(x)]}-{ids[eid(x)]}.ndjson" for x in records)
        self.assertEqual(files, want, rx.describe())
        for x in records:
            with open(os.path.join(qdir, f"batch-{ids[eid(x)]}-{ids[eid(x)]}.ndjson")) as f:
                self.assertEqual(f.read(), x + "\n")
        self.assert_metric(agent, "zastava_agent_backend_quarantined_records_total",
                           len(records))
        self.assertEqual(rx.requests(accepted_only=True), [])
        self.assert_metric(agent, "zastava_agent_backend_delivered_records_total", 0)
        self.stop_agent(agent)


    def test_15_turned_on_later_and_off_again(self):
        """an agent that recorded without a URL (every backend metric present at 0) is
        restarted with one: the whole buffer is sent first, oldest first; restarted without a
        URL, it records more; with the URL again it resumes after the last accepted record:
        nothing is sent twice, the receiver ends with exactly the ledger"""
        rx = self.receiver("onoff")
        off = self.agent("onoff", None, NO_EVIDENCE)
        self.life(off, "c15-a")
        text = off.metrics()
        for name in ["delivered_records_total", "delivered_batches_total",
                     "delivered_bytes_total", "quarantined_records_total",
                     "expired_records_total", "backlog_records", "backlog_bytes",
                     "oldest_undelivered_age_seconds", "consecutive_failures",
                     "request_duration_seconds_count"]:
            self.assertEqual(h.metric_value(text, "zastava_agent_backend_" + name), 0,
                             f"zastava_agent_backend_{name} with delivery off")
        self.assertIn("# TYPE zastava_agent_backend_failures_total counter", text)
        self.stop_agent(off)
        self.assertEqual(rx.requests(), [], "delivery off, yet a request")

        on = self.ws.respawn(off, extra_args=[*off.extra_args, "--backend-url", rx.url])
        on.start()
        on.wait_ready()
        first = self.wait_delivered(on, rx)
        self.assertEqual(rx.all_lines(), first)
        self.stop_agent(on)

        n = len(rx.requests())
        off2 = self.ws.respawn(off)
        off2.start()
        off2.wait_ready()
        self.life(off2, "c15-b")
        self.stop_agent(off2)
        self.assertEqual(len(rx.requests()), n, "delivery off, yet a request")

        on2 = self.ws.respawn(off, extra_args=[*off.extra_args, "--backend-url", rx.url])
        on2.start()
        on2.wait_ready()
        records = self.wait_delivered(on2, rx)
        self.check_requests(rx)
        self.assertGreater(len(records), len(first))
        self.assertEqual(rx.all_lines(), records, "records sent twice, or missing")
        self.assertEqual(rx.requests()[n].lines[0], records[len(first)],
                         "delivery did not resume right after the last accepted record")
        self.assertEqual(h.verify_chain(rx.all_lines()), [])
        self.stop_agent(on2)

    def test_16_retried_statuses_and_no_redirect(self):
        """408, 503, 404 and a 302 (Location: another path) are all retried with the same
        records, none quarantined, the redirect not followed; then everything arrives;
        failures{http_408} == 1, failures{http_5xx} == 1, 4 failed attempts in all"""
        rx = self.receiver("retried")
        rx.queue(status=408)
        rx.queue(status=503)
        rx.queue(status=404)
        rx.queue(status=302, headers={"Location": f"http://127.0.0.1:{rx.port}/elsewhere"})
        agent = self.agent("retried", rx.url, NO_EVIDENCE)
        self.life(agent, "c16")
        records = self.wait_delivered(agent, rx)
        self.check_requests(rx)
        reqs = rx.requests()
        self.assertEqual([r.status for r in reqs[:5]], [408, 503, 404, 302, 200], rx.describe())
        self.assertEqual([r.seq for r in reqs if r.path != "/ingest"], [], "redirect followed")
        for a, b in zip(reqs, reqs[1:5]):
            self.assertEqual(b.lines[:len(a.lines)], a.lines,
                             f"request #{b.seq} should begin with the records of #{a.seq}")
        self.assert_metric(agent, FAILURES, 1, {"cause": "http_408"})
        self.assert_metric(agent, FAILURES, 1, {"cause": "http_5xx"})
        self.assertEqual(sum(failures(agent).values()), 4, failures(agent))
        self.assert_metric(agent, "zastava_agent_backend_quarantined_records_total", 0)
        self.assertEqual(rx.unique_ids(), {eid(x) for x in records})
        self.stop_agent(agent)


def why_skip():
    reason = h.skip_reason()
    if reason is None and not shutil.which("openssl"):
        reason = "missing: openssl (certificates for the TLS tests)"
    return reason


if __name__ == "__main__":
    h.main(globals(), why_skip)
