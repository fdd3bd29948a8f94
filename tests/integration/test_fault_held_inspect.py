#!/usr/bin/python3
"""Fault 9: one container's inspect held for the agent's whole request timeout (30 s), as the
engine holds a container it is busy with (or stuck on). A fault proxy (fault_proxy.py) in front
of a real dockerd holds the first inspect after the agent is ready; meanwhile 20 other
containers go through their lifecycles (run, stop, rm).

While the inspect is still held, every event of the 20 others is recorded, each with its
container.inspect record, and the held container's own create and start records are there
too: no record waits for another container's inspect. When the agent gives up (30 s), the held
container's container.inspect record says the inspect timed out. Every engine event is
recorded exactly once and the ledger agrees with the engine. The row's note gives the others'
event-to-record latency (the time each line appeared in the NDJSON segment, polled every 1 ms,
less the event's timeNano), beside the same 20 lifecycles run just before with no inspect held:
reported side by side, not asserted."""

import concurrent.futures
import json
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fault_proxy  # noqa: E402
import harness as h  # noqa: E402

ARGS = None
OTHERS = 20


def percentile(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))] if values else float("nan")


def line_latencies(lines, engine_events, ids):
    """Milliseconds from each engine event of the containers in ids to its line appearing in the
    agent's segment."""
    wanted = {h.expected_event_id(e): e["timeNano"] for e in engine_events
              if e["Actor"]["ID"] in set(ids)}
    out = []
    for raw, seen in lines:
        record = json.loads(raw)
        if record.get("eventId") in wanted:
            out.append((seen - wanted[record["eventId"]]) / 1e6)
    return out


def summary(values):
    return f"{statistics.median(values):.1f}/{percentile(values, 0.99):.1f}" if values else "-"


class HeldInspect(h.WorkspaceTest):
    def test_one_held_inspect_delays_nobody_else(self):
        d = self.ws.dockerd()
        d.make_busybox_image()
        proxy = fault_proxy.FaultProxy(os.path.join(self.ws.dir, "fault.sock"), d.sock).start()
        self.ws.on_cleanup(proxy.stop)
        agent = self.ws.agent(ARGS.agent, proxy.endpoint)
        agent.start()
        agent.wait_ready()
        tailer = h.Tailer({"agent": lambda: h.segment_paths(agent.data_dir)})
        tailer.start()
        self.ws.on_cleanup(tailer.stop)

        def lifecycle(name):
            cid = d.docker("run", "-d", "--name", name, h.TEST_IMAGE, *h.IDLE_CMD)
            d.docker("stop", "-t", "1", name)
            d.docker("rm", name)
            return cid

        def lifecycles(prefix):
            with concurrent.futures.ThreadPoolExecutor(4) as pool:
                return list(pool.map(lifecycle, [f"{prefix}{i}" for i in range(OTHERS)]))
        t0 = time.time()
        control = lifecycles("c")  # the same load with no inspect held, for comparison
        t_held = time.time()
        proxy.hold_next_inspect()
        slow = d.docker("run", "-d", "--name", "slow", h.TEST_IMAGE, *h.IDLE_CMD)
        h.wait_until(lambda: proxy.held_id == slow, 20, "the slow container's inspect held")
        held_at = time.time()
        others = lifecycles("o")
        h.log(f"{OTHERS} lifecycles in {time.time() - held_at:.1f} s while the inspect of "
              f"'slow' was held")

        def records():
            return [json.loads(r[5]) for r in h.read_sqlite(agent.data_dir)]
        slow_kinds = [r["kind"] for r in records() if r.get("container", {}).get("id") == slow]
        self.assertIn("container.create", slow_kinds)
        self.assertIn("container.start", slow_kinds)

        def slow_inspect():
            return next((r for r in records() if r["kind"] == "container.inspect"
                         and r["container"]["id"] == slow), None)
        record = h.wait_until(slow_inspect, 60, "slow's inspect record after the timeout")
        proxy.release_held()
        self.assertIn("timed out", record.get("inspectError", ""), record)
        self.assertNotIn("security", record["container"])
        self.assertEqual(record["completes"],
                         next(r["eventId"] for r in records() if r["kind"] == "container.start"
                              and r["container"]["id"] == slow))
        # Everything the others did before the agent gave up on the held inspect (with a second
        # for an event in flight) is in the ledger before the held container's inspect record,
        # container.inspect records included: nothing waited for it.
        ledger = records()
        position = {r["eventId"]: i for i, r in enumerate(ledger)}
        held_until = h.rfc3339_to_nanos(record["time"]) - 1_000_000_000
        before = [e for e in d.events(t_held - 0.05, time.time() + 0.5)
                  if e["Actor"]["ID"] in set(others) and e["timeNano"] < held_until]
        self.assertGreater(len(before), OTHERS, "nothing happened while the inspect was held")
        late = [f"{e['Action']} of {e['Actor']['Attributes'].get('name')}" for e in before
                if position.get(h.expected_event_id(e), len(ledger)) > position[record["eventId"]]]
        self.assertEqual(late, [], "records written only after the held inspect ended")
        inspected_before = {r["container"]["id"] for r in ledger[:position[record["eventId"]]]
                            if r["kind"] == "container.inspect"}
        started_before = {e["Actor"]["ID"] for e in before if e["Action"] == "start"}
        self.assertEqual(started_before - inspected_before, set(),
                         "others' inspects waited for the held one")
        h.log(f"{len(before)} events of others before the held inspect ended, all recorded "
              f"before it")

        h.wait_table_agrees(d, agent)
        engine_events = d.events(t0 - 0.05, time.time() + 0.5)
        tailer.stop()
        control_ms = line_latencies(tailer.lines["agent"], engine_events, control)
        held_ms = line_latencies(tailer.lines["agent"], engine_events, others)
        code, _ = agent.stop()
        self.assertEqual(code, 0)
        problems, stats, _ = h.ledger_file_problems(agent.data_dir, engine_events,
                                                    ARGS.source_dir)
        h.fault_row("9 one inspect held 30 s", 1, stats,
                    f"{OTHERS} other containers recorded meanwhile, event to NDJSON line "
                    f"p50/p99 {summary(held_ms)} ms ({summary(control_ms)} ms for {OTHERS} "
                    f"before, nothing held); the held one's inspect record says it timed out")
        self.assertEqual(problems, [])


if __name__ == "__main__":
    h.main(globals())
