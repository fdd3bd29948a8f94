#!/usr/bin/python3
"""Inspects that fail or come too late, through a fault proxy (fault_proxy.py) in front of a real
dockerd: every such start is still recorded, and says what it lacks.

- An inspect answered with an error once is asked again: the start record has the inspect's
  facts, and nothing is logged above debug.
- An inspect that keeps failing is asked three times (back-off in between); the start record is
  written without the facts and its `inspectError` names the answer; the agent warns once for
  the container however often it starts; records_without_inspect_total{reason="failed"} counts.
- A `--rm` container gone before its inspect reached the engine: the start record says so in
  `inspectError`, and records_without_inspect_total{reason="gone"} counts it.
Every engine event of the run is recorded exactly once."""

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

    def start_record(self, cid, n=1):
        """The container's n-th container.start record, waited for."""
        def found():
            starts = [json.loads(r[5]) for r in h.read_sqlite(self.agent.data_dir)
                      if r[1] == "container.start" and r[2] == cid]
            return starts[n - 1] if len(starts) >= n else None
        return h.wait_until(found, 30, f"start record {n} of {cid[:12]}")

    def warnings_about(self, cid):
        return [line for line in self.agent.log_text().splitlines()
                if " warning " in line and cid[:12] in line]

    def test_1_failed_once_then_answered(self):
        cid = self.d.docker("create", "--name", "once", h.TEST_IMAGE, *h.IDLE_CMD)
        self.proxy.fail_inspects(cid, times=1)
        self.d.docker("start", "once")
        record = self.start_record(cid)
        self.assertEqual(self.proxy.inspects[cid], 2, "asked again after the error")
        self.assertNotIn("inspectError", record)
        self.assertTrue(record["container"]["imageId"].startswith("sha256:"), record)
        self.assertIn("security", record["container"])
        self.assertEqual(self.warnings_about(cid), [], "an answered retry is no warning")
        self.assertGreaterEqual(
            self.agent.metric_value("zastava_agent_engine_errors_total", {"kind": "protocol"}), 1)

    def test_2_failing_every_time(self):
        cid = self.d.docker("create", "--name", "never", h.TEST_IMAGE, *h.IDLE_CMD)
        self.proxy.fail_inspects(cid)
        self.d.docker("start", "never")
        first = self.start_record(cid, 1)
        self.d.docker("restart", "-t", "1", "never")
        second = self.start_record(cid, 2)
        self.assertEqual(self.proxy.inspects[cid], 6, "three attempts for each start")
        for record in (first, second):
            self.assertIn("503", record.get("inspectError", ""), record)
            self.assertIn("3 times", record["inspectError"])
            self.assertNotIn("security", record["container"])
            self.assertEqual(record["container"]["state"], "running")
        warnings = self.warnings_about(cid)
        h.log("warnings: " + " | ".join(warnings))
        self.assertEqual(len(warnings), 1, "one warning per container")
        self.assertIn("503", warnings[0])
        self.assertEqual(self.agent.metric_value("zastava_agent_records_without_inspect_total",
                                                 {"reason": "failed"}), 2)
        self.d.docker("rm", "-f", "never")

    def test_3_gone_before_inspect(self):
        self.proxy.hold_inspects()
        try:
            cid = self.d.docker("run", "-d", "--rm", "--name", "brief", h.TEST_IMAGE, "true")
            h.wait_until(lambda: cid not in h.engine_containers(self.d), 30,
                         "the --rm container removed")
        finally:
            self.proxy.release_inspects()
        record = self.start_record(cid)
        self.assertEqual(record.get("inspectError"),
                         "the container was gone before it could be inspected", record)
        self.assertNotIn("security", record["container"])
        self.assertEqual(self.agent.metric_value("zastava_agent_records_without_inspect_total",
                                                 {"reason": "gone"}), 1)

    def test_4_every_event_once(self):
        engine_events = self.d.events(self.t0 - 0.05, time.time() + 0.5)
        missing = h.wait_recorded(self.agent, [h.expected_event_id(e) for e in engine_events])
        self.assertEqual(missing, set())
        records = [json.loads(line) for line in h.read_ndjson(self.agent.data_dir)]
        self.assertEqual(h.exactly_once_problems(engine_events, records, "ndjson"), [])
        schema, _ = h.load_schema(ARGS.source_dir)
        self.assertEqual(h.schema_errors(schema, records), [])


if __name__ == "__main__":
    h.main(globals())
