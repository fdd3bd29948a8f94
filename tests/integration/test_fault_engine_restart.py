#!/usr/bin/python3
"""Fault 1: dockerd stopped and started again under a running agent, 3 times, while containers
change state just before each stop and after each start; one container has --restart always,
so the engine itself starts it again on start-up (an event the agent can only get from the new
engine's replay).

Each restart wipes the engine's event memory, so the agent's resume (since=cursor) cannot begin
with its cursor event: exactly one agent.gap record per restart, and reconciliation after every
reconnect. At the end the ledger is compared with the engine's truth: (a) the containers table
== inspect, destroyed ones removed; (b) every container event the engine reported (each phase's
events, read from the engine just before it was stopped, and the last phase's) exactly once;
(c) no eventId twice, NDJSON == SQLite, hash chain, schema."""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402

ARGS = None
RESTARTS = 3


class EngineRestarts(h.WorkspaceTest):
    def change_states(self, d, phase):
        """A few transitions of every kind; returns the ids removed."""
        removed = []
        d.docker("start", "steady")  # exited after each engine restart (no restart policy)
        d.docker("pause", "steady")
        d.docker("unpause", "steady")
        d.docker("run", "-d", "--name", f"run{phase}", h.TEST_IMAGE, *h.IDLE_CMD)
        d.docker("run", "--name", f"exit{phase}", h.TEST_IMAGE, "sh", "-c",
                 f"exit {phase + 2}", check=False)
        if phase > 0:
            removed.append(d.docker("inspect", "-f", "{{.Id}}", f"run{phase - 1}"))
            d.docker("rm", "-f", f"run{phase - 1}")
            d.docker("rename", f"exit{phase - 1}", f"exit{phase - 1}-renamed")
        if phase % 2:
            d.docker("restart", "-t", "5", "toggle")
        else:
            d.docker("start", "toggle")
            d.docker("kill", "toggle")  # exit 137
        d.docker("create", "--name", f"created{phase}", h.TEST_IMAGE, *h.IDLE_CMD)
        return removed

    def test_engine_restarts(self):
        d = self.ws.dockerd()
        d.make_busybox_image()
        d.docker("run", "-d", "--name", "always", "--restart", "always", h.TEST_IMAGE,
                 *h.IDLE_CMD)
        d.docker("run", "-d", "--name", "steady", h.TEST_IMAGE, *h.IDLE_CMD)
        d.docker("run", "-d", "--name", "toggle", h.TEST_IMAGE, *h.IDLE_CMD)
        agent = self.ws.agent(ARGS.agent, d.endpoint, reconnect_max_backoff=1)
        agent.start()
        agent.wait_ready()

        expected, destroyed, stops_ns = [], [], []
        phase_t0 = time.time()
        for phase in range(RESTARTS + 1):
            destroyed += self.change_states(d, phase)
            # What the engine can report of this phase, asked just before it is stopped.
            events = d.events(phase_t0 - 0.05, time.time() + 0.3)
            h.log(f"phase {phase}: engine reports {len(events)} container events")
            expected += events
            if phase == RESTARTS:
                break
            h.log(f"stopping dockerd ({phase + 1}/{RESTARTS})")
            d.stop()
            stops_ns.append(time.time_ns())  # the engine has exited: the rest is lost
            agent.wait_readyz(503, timeout=20)
            self.assertEqual(agent.metric_value("zastava_agent_docker_connected"), 0)
            phase_t0 = time.time()
            d.start()
            h.wait_until(lambda: d.docker("inspect", "-f", "{{.State.Status}}", "always")
                         == "running", 30, "the engine to start 'always' again itself")
            agent.wait_readyz(200, timeout=30)
            self.assertEqual(agent.metric_value("zastava_agent_docker_connected"), 1)

        h.wait_engine_settled(d)
        missing = h.wait_recorded(agent, [h.expected_event_id(e) for e in expected], timeout=30)
        problems = h.wait_table_agrees(d, agent, destroyed_ids=destroyed)
        reconnects = agent.metric_value("zastava_agent_stream_reconnects_total") or 0
        gaps_metric = agent.metric_value("zastava_agent_gaps_total")
        file_problems, stats, records = h.stop_and_check_ledger(self, agent, expected, missing,
                                                                ARGS.source_dir)
        problems += file_problems
        reconciled = [f"{r['kind']}({r['container']['name']})" for r in records
                      if r["source"] == "reconcile" and "container" in r
                      and r["kind"] != "container.evidence"]
        h.log(f"reconcile records: {reconciled}")
        gaps = h.gap_records(records)
        h.log(f"agent.gap records: {[r['gap'] for r in gaps]}")
        if len(gaps) != RESTARTS:
            problems.append(f"{len(gaps)} agent.gap records, want one per engine restart "
                            f"({RESTARTS})")
        # Each gap starts at the newest engine event recorded before it: the largest timeNano,
        # not the last line, since the engine may deliver events a few microseconds apart out
        # of timeNano order.
        newest_nano = None
        for r in records:
            if r["kind"] == "agent.gap" and r["gap"]["fromTimeNano"] != newest_nano:
                problems.append(f"gap {r['gap']} does not start at the newest engine event "
                                f"recorded before it ({newest_nano})")
            if h.engine_time_nano(r) is not None:
                newest_nano = max(newest_nano or 0, h.engine_time_nano(r))
        for t in stops_ns:  # each engine exit lies inside exactly one gap
            covering = [g for g in gaps
                        if g["gap"]["fromTimeNano"] <= t <= g["gap"]["toTimeNano"]]
            if len(covering) != 1:
                problems.append(f"engine exited before {h.rfc3339_nanos(t)}: {len(covering)} "
                                f"gaps cover that moment")
        if gaps_metric != RESTARTS:
            problems.append(f"zastava_agent_gaps_total {gaps_metric}, want {RESTARTS}")
        if reconnects < RESTARTS:
            problems.append(f"stream_reconnects_total {reconnects} < {RESTARTS}")
        h.fault_row("1 dockerd restarted", RESTARTS, stats,
                    f"{len(gaps)} gaps, {len(reconciled)} reconcile records")
        self.assertEqual(problems, [])


if __name__ == "__main__":
    h.main(globals())
