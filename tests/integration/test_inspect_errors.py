#!/usr/bin/python3
"""Inspects that fail, come late or never, through a fault proxy (fault_proxy.py) in front of a
real dockerd. Records never wait for an inspect; its answer, or why there is none, follows in a
container.inspect record.

- An inspect held by the proxy: the container's create and start records are written anyway,
  and its container.inspect record follows once the inspect is let through.
- An inspect answered with an error once is asked again: the container.inspect record has the
  facts, and nothing is logged above debug.
- An inspect that keeps failing is asked three times (back-off in between); the
  container.inspect record has no facts and its `inspectError` names the answer; the agent
  warns once for the container however often it starts; inspects_total{result="failed"}.
- A `--rm` container gone before its inspect reached the engine: the container.inspect record
  says so, and inspects_total{result="gone"} counts it.
Every engine event of the run is recorded exactly once, and every record validates."""

import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fault_proxy  # noqa: E402
import harness as h  # noqa: E402

ARGS = None


class InspectErrors(h.WorkspaceTest):
    @classmethod
    def set_up(cls):
        d = cls.d = cls.ws.dockerd()
        d.make_busybox_image()
        proxy = cls.proxy = fault_proxy.FaultProxy(os.path.join(cls.ws.dir, "fault.sock"),
                                                   d.sock).start()
        cls.ws.on_cleanup(proxy.stop)
        cls.agent = cls.ws.agent(ARGS.agent, proxy.endpoint)
        cls.agent.start()
        cls.agent.wait_ready()
        cls.t0 = time.time()

    def records(self, cid, kind):
        return [json.loads(r[5]) for r in h.read_sqlite(self.agent.data_dir)
                if r[1] == kind and r[2] == cid]

    def inspect_records(self, cid, n=1):
        """The container's first n container.inspect records, waited for."""
        return h.wait_until(lambda: (lambda found: found if len(found) >= n else None)(
            self.records(cid, "container.inspect")), 30, f"{n} inspect records of {cid[:12]}")

    def warnings_about(self, cid):
        return [line for line in self.agent.log_text().splitlines()
                if " warning " in line and cid[:12] in line]

    def test_1_records_do_not_wait_for_a_held_inspect(self):
        self.proxy.hold_inspects()
        try:
            cid = self.d.docker("run", "-d", "--name", "held", h.TEST_IMAGE, *h.IDLE_CMD)
            h.wait_until(lambda: self.records(cid, "container.start"), 30,
                         "the start record while its inspect is held")
            self.assertEqual(self.records(cid, "container.inspect"), [])
            self.assertEqual(len(self.records(cid, "container.create")), 1)
        finally:
            self.proxy.release_inspects()
        record = self.inspect_records(cid)[-1]
        self.assertIn("security", record["container"])
        start = self.records(cid, "container.start")[0]
        self.assertIn(record["completes"], (start["eventId"],
                                            self.records(cid, "container.create")[0]["eventId"]))

    def test_2_failed_once_then_answered(self):
        self.proxy.fail_inspects(fault_proxy.ANY, times=1)
        cid = self.d.docker("run", "-d", "--name", "once", h.TEST_IMAGE, *h.IDLE_CMD)
        record = h.wait_until(lambda: next((r for r in self.records(cid, "container.inspect")
                                            if r["container"].get("pid")), None), 30,
                              "the inspect record with the pid")
        self.assertGreaterEqual(self.proxy.inspects[cid], 2, "asked again after the error")
        for r in self.records(cid, "container.inspect"):
            self.assertNotIn("inspectError", r)
        self.assertTrue(record["container"]["imageId"].startswith("sha256:"), record)
        self.assertIn("security", record["container"])
        self.assertEqual(self.warnings_about(cid), [], "an answered retry is no warning")
        self.assertGreaterEqual(
            self.agent.metric_value("zastava_agent_engine_errors_total", {"kind": "protocol"}), 1)

    def test_3_failing_every_time(self):
        failed_before = self.agent.metric_value("zastava_agent_inspects_total",
                                                {"result": "failed"})
        self.proxy.fail_inspects(fault_proxy.ANY)
        try:
            cid = self.d.docker("run", "-d", "--name", "never", h.TEST_IMAGE, *h.IDLE_CMD)
            first = self.inspect_records(cid)
            self.d.docker("restart", "-t", "1", "never")
            records = self.inspect_records(cid, len(first) + 1)
        finally:
            self.proxy.fail_inspects(fault_proxy.ANY, times=0)
        self.assertEqual(self.proxy.inspects[cid], 3 * len(records), "three attempts each")
        for record in records:
            self.assertIn("503", record.get("inspectError", ""), record)
            self.assertIn("failed 3 times", record["inspectError"])
            self.assertNotIn("security", record["container"])
            self.assertEqual(record["container"]["state"], "running")
        warnings = self.warnings_about(cid)
        h.log("warnings: " + " | ".join(warnings))
        self.assertEqual(len(warnings), 1, "one warning per container")
        self.assertIn("503", warnings[0])
        self.assertEqual(self.agent.metric_value("zastava_agent_inspects_total",
                                                 {"result": "failed"}),
                         failed_before + len(records))
        self.d.docker("rm", "-f", "never")

    def test_4_gone_before_inspect(self):
        self.proxy.hold_inspects()
        try:
            cid = self.d.docker("run", "-d", "--rm", "--name", "brief", h.TEST_IMAGE, "true")
            h.wait_until(lambda: cid not in h.engine_containers(self.d), 30,
                         "the --rm container removed")
            h.wait_until(lambda: self.records(cid, "container.destroy"), 30,
                         "its destroy record, while its inspect is held")
        finally:
            self.proxy.release_inspects()
        [record] = self.inspect_records(cid)
        self.assertEqual(record.get("inspectError"),
                         "the container was gone before it could be inspected", record)
        self.assertEqual(record["container"]["state"], "removed")
        self.assertNotIn("security", record["container"])
        self.assertEqual(record["completes"], self.records(cid, "container.start")[0]["eventId"])
        self.assertGreaterEqual(self.agent.metric_value("zastava_agent_inspects_total",
                                                        {"result": "gone"}), 1)

    def test_5_every_event_once(self):
        engine_events = self.d.events(self.t0 - 0.05, time.time() + 0.5)
        missing = h.wait_recorded(self.agent, [h.expected_event_id(e) for e in engine_events])
        self.assertEqual(missing, set())
        records = [json.loads(line) for line in h.read_ndjson(self.agent.data_dir)]
        self.assertEqual(h.exactly_once_problems(engine_events, records, "ndjson"), [])
        schema, _ = h.load_schema(ARGS.source_dir)
        self.assertEqual(h.schema_errors(schema, records), [])


if __name__ == "__main__":
    h.main(globals())
