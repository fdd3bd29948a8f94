#!/usr/bin/python3
"""Fault 8: events lost without a trace, found by the periodic audit. A fault proxy
(fault_proxy.py) in front of a real dockerd cuts every event of one container out of the
/events stream, as the engine does for a subscriber that falls behind (it skips events
silently): no reconnect, no replay, nothing in the stream says so.

The agent (audit every 2 s) must find the container in the engine's list and not in the ledger,
look again, then log a warning naming it, write one agent.gap record saying the audit found
it, and reconcile: the container's create and start as `source: "reconcile"` records, with an
inspect's facts. The other container's events are recorded once each, untouched. Then audits
that agree write nothing. The ledger ends in agreement with the engine."""

import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fault_proxy  # noqa: E402
import harness as h  # noqa: E402

ARGS = None
AUDIT_SECONDS = 2


class LostEvents(h.WorkspaceTest):
    def records(self):
        return [json.loads(line) for line in h.read_ndjson(self.agent.data_dir)]

    def test_audit_finds_a_container_whose_events_never_came(self):
        d = self.ws.dockerd()
        d.make_busybox_image()
        proxy = fault_proxy.FaultProxy(os.path.join(self.ws.dir, "fault.sock"), d.sock).start()
        self.ws.on_cleanup(proxy.stop)
        agent = self.agent = self.ws.agent(ARGS.agent, proxy.endpoint, env={
            "ZASTAVA_AGENT__Reconcile__AuditIntervalSeconds": str(AUDIT_SECONDS)})
        agent.start()
        agent.wait_ready()
        t0 = time.time()
        proxy.cut_events_of("ghost")
        ghost = d.docker("run", "-d", "--name", "ghost", h.TEST_IMAGE, *h.IDLE_CMD)
        seen = d.docker("run", "-d", "--name", "seen", h.TEST_IMAGE, *h.IDLE_CMD)
        d.docker("stop", "-t", "1", "seen")

        # Both of its transitions: one reconciliation writes them, but they may land in two
        # group commits, and the first may be read alone.
        def reconciled():
            found = [r for r in self.records() if r.get("container", {}).get("id") == ghost
                     and r["source"] == "reconcile"]
            return found if "container.start" in (r["kind"] for r in found) else None
        found = h.wait_until(reconciled, 30, "reconcile records of ghost")
        h.log("reconcile records of ghost: " + ", ".join(r["kind"] for r in found))
        self.assertGreater(proxy.events_cut, 0, "the proxy cut ghost's events")
        kinds = [r["kind"] for r in found]
        self.assertEqual(kinds[:2], ["container.create", "container.start"], kinds)
        start = found[1]["container"]
        self.assertEqual(start["state"], "running")
        self.assertIn("security", start)

        gaps = h.gap_records(self.records())
        self.assertEqual(len(gaps), 1, gaps)
        self.assertIn("periodic audit", gaps[0]["gap"]["reason"])
        self.assertIn("ghost", gaps[0]["gap"]["reason"])
        self.assertEqual(h.gap_problems(self.records()), [])
        warnings = [line for line in agent.log_text().splitlines()
                    if " warning " in line and "audit" in line]
        self.assertEqual(len(warnings), 1, warnings)
        self.assertIn("ghost", warnings[0])
        self.assertGreaterEqual(agent.metric_value("zastava_agent_audit_disagreements_total"), 1)
        self.assertEqual(agent.metric_value("zastava_agent_audits_total",
                                            {"result": "disagree"}), 1)

        # Audits that agree write nothing.
        agreed = agent.metric_value("zastava_agent_audits_total", {"result": "agree"})
        written = len([r for r in self.records() if r["kind"] != "container.evidence"])
        h.wait_metric(agent, "zastava_agent_audits_total", lambda v: v >= agreed + 2,
                      timeout=30, labels={"result": "agree"})
        self.assertEqual(len([r for r in self.records() if r["kind"] != "container.evidence"]),
                         written, "an agreeing audit wrote something")

        h.wait_table_agrees(d, agent)
        t1 = time.time() + 0.5
        engine_events = [e for e in d.events(t0 - 0.05, t1) if e["Actor"]["ID"] != ghost]
        self.assertTrue(any(e["Actor"]["ID"] == seen for e in engine_events))
        code, _ = agent.stop()
        self.assertEqual(code, 0)
        problems, stats, _ = h.ledger_file_problems(agent.data_dir, engine_events,
                                                    ARGS.source_dir)
        h.fault_row("8 events cut from the stream (audit)", 1, stats,
                    f"{proxy.events_cut} events of one container cut; found by the audit: "
                    f"1 agent.gap + {len(found)} reconcile records")
        self.assertEqual(problems, [])


if __name__ == "__main__":
    h.main(globals())
