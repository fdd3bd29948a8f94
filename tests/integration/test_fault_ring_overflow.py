#!/usr/bin/python3
"""Fault 3: the agent is down (SIGTERM) while more than 300 container events happen, so the
engine's 256-event memory overflows and the agent's cursor event is gone when it comes back.

While it is down, the containers it knew change (stopped, removed, started, paused, renamed,
restarted), new ones appear (running, exited 3, created), then cheap churn (pause/unpause of
one container, create/rm of throw-away ones) pushes all of that out of the engine's memory.
A live /events reader in the test sees every event, so the lost ones are known exactly.

Then the agent starts again: exactly one agent.gap record, covering every lost event;
source "reconcile" records for the transitions the engine can no longer tell (die with exit
code and finishedAt, destroy, start, pause, rename, restart, create) counted in
zastava_agent_reconciled_transitions_total{action}; the events the engine still has exactly
once; the containers table agrees with the engine."""

import json
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402

ARGS = None
CHURN_PAIRS = 140   # pause+unpause: 280 events
THROWAWAY = 20      # create+destroy: 40 events


class LiveReader(threading.Thread):
    """Reads the engine's /events (containers) from `since` until the destroy of `stop_id`."""

    def __init__(self, d, since):
        super().__init__(daemon=True)
        self.d, self.since, self.events, self.error = d, since, [], None
        self.stop_name = None

    def run(self):
        filters = h.urllib_quote(json.dumps({"type": ["container"]}))
        conn = h.UnixHTTPConnection(self.d.sock, timeout=120)
        try:
            conn.request("GET", f"/events?since={self.since:.9f}&filters={filters}")
            resp = conn.getresponse()
            while True:
                line = resp.readline()
                if not line:
                    raise RuntimeError("engine closed the event stream")
                ev = json.loads(line)
                self.events.append(ev)
                if ev["Action"] == "destroy" and \
                        ev["Actor"]["Attributes"].get("name") == "end-marker":
                    return
        except Exception as exc:
            self.error = exc
        finally:
            conn.close()


class RingOverflow(h.WorkspaceTest):
    @classmethod
    def set_up(cls):
        cls.d = cls.ws.dockerd()
        cls.d.make_busybox_image()

    def test_1_agent_down_while_ring_overflows(self):
        d = self.d
        run = lambda name: d.docker("run", "-d", "--name", name, h.TEST_IMAGE,  # noqa: E731
                                    *h.IDLE_CMD)
        agent = self.ws.agent(ARGS.agent, d.endpoint, reconnect_max_backoff=1)
        agent.start()
        agent.wait_ready()
        t0 = time.time()
        # Made while the agent watches, so it has a cursor (an engine event) to resume from.
        k = {n: run(n) for n in ("k-stop", "k-rm", "k-pause", "k-rename", "k-restart",
                                 "churn")}
        k["k-start"] = d.docker("create", "--name", "k-start", h.TEST_IMAGE, *h.IDLE_CMD)
        before = d.events(t0 - 0.05, time.time() + 0.3)
        self.assertEqual(h.wait_recorded(agent, [h.expected_event_id(e) for e in before]),
                         set())
        self.assertEqual(h.wait_table_agrees(d, agent), [], "the agent's first view")
        code, _ = agent.stop()
        self.assertEqual(code, 0)
        n_before = len(h.read_ndjson(agent.data_dir))
        t_down = time.time()
        reader = LiveReader(d, t_down)
        reader.start()
        h.wait_until(lambda: reader.is_alive(), 5, "live reader")
        time.sleep(0.2)  # the reader's request is in before anything happens

        h.log("agent down: changing the containers it knew, adding new ones")
        d.docker("stop", "k-stop")
        d.docker("rm", "-f", "k-rm")
        d.docker("start", "k-start")
        d.docker("pause", "k-pause")
        d.docker("rename", "k-rename", "k-renamed")
        d.docker("restart", "-t", "5", "k-restart")
        n = {"n-run": run("n-run")}
        n["n-exit"] = d.docker("create", "--name", "n-exit", h.TEST_IMAGE, "sh", "-c", "exit 3")
        d.docker("start", "-a", "n-exit", check=False)
        n["n-created"] = d.docker("create", "--name", "n-created", h.TEST_IMAGE, *h.IDLE_CMD)
        h.log("churn to overflow the engine's memory")
        throwaway = []
        churn = k["churn"]
        for i in range(CHURN_PAIRS):
            for verb in ("pause", "unpause"):
                # The engine updates its paused flag asynchronously: "already paused" (409)
                # or "is not paused" (500) right after the opposite call means "not yet".
                for _ in range(200):
                    status, body = d.api("POST", f"/containers/{churn}/{verb}")
                    if status == 204 or "paused" not in str(body):
                        break
                    time.sleep(0.01)
                self.assertEqual(status, 204, body)
            if i % (CHURN_PAIRS // THROWAWAY) == 0 and len(throwaway) < THROWAWAY:
                status, body = d.api("POST", f"/containers/create?name=t{i}",
                                     {"Image": h.TEST_IMAGE, "Cmd": ["true"]})
                self.assertEqual(status, 201, body)
                throwaway.append(body["Id"])
                status, body = d.api("DELETE", f"/containers/{body['Id']}")
                self.assertEqual(status, 204, body)
        marker = d.docker("create", "--name", "end-marker", h.TEST_IMAGE, "true")
        d.docker("rm", marker)
        throwaway.append(marker)
        reader.join(60)
        self.assertIsNone(reader.error, "live reader")
        self.assertFalse(reader.is_alive(), "live reader did not see the end marker")
        seen = reader.events
        ring = d.events(t_down, time.time() + 0.3)
        ring_ids = {h.expected_event_id(e) for e in ring}
        lost = [e for e in seen if h.expected_event_id(e) not in ring_ids]
        h.log(f"while the agent was down: {len(seen)} container events, the engine still "
              f"reports {len(ring)}, {len(lost)} it cannot")
        self.assertGreater(len(seen), 300, "the scenario must make more than 300 events")
        self.assertTrue(lost, "the scenario must overflow the engine's memory")
        lost_actors = {e["Actor"]["ID"] for e in lost}
        for name, cid in {**k, **n}.items():
            if name != "churn":
                self.assertIn(cid, lost_actors, f"{name}'s change must be lost by the engine")

        agent2 = self.ws.respawn(agent)
        agent2.start()
        agent2.wait_ready(timeout=60)
        destroyed = [k["k-rm"], *throwaway]
        in_ring = {e["Actor"]["ID"] for e in ring}
        unknowable = [c for c in throwaway if c not in in_ring]
        problems = h.wait_table_agrees(d, agent2, destroyed, unknowable)
        missing = h.wait_recorded(agent2, ring_ids, timeout=30)
        metrics = agent2.metrics()
        code, _ = agent2.stop()
        self.assertEqual(code, 0, h.tail(agent2.log_path))
        file_problems, stats, records = h.ledger_file_problems(agent2.data_dir,
                                                               before + ring, ARGS.source_dir)
        problems += file_problems
        if missing:
            problems.append(f"{len(missing)} events the engine still has never reached SQLite")
        new = records[n_before:]

        # exactly one gap, covering every event the engine lost
        gaps = h.gap_records(new)
        h.log(f"agent.gap records: {[g['gap'] for g in gaps]}")
        if len(gaps) != 1:
            problems.append(f"{len(gaps)} agent.gap records, want exactly 1")
        else:
            g = gaps[0]["gap"]
            lo, hi = min(e["timeNano"] for e in lost), max(e["timeNano"] for e in lost)
            if not g["fromTimeNano"] <= lo <= hi <= g["toTimeNano"]:
                problems.append(f"gap {g['from']}..{g['to']} does not cover the lost events "
                                f"{h.rfc3339_nanos(lo)}..{h.rfc3339_nanos(hi)}")
        gaps_metric = h.metric_value(metrics, "zastava_agent_gaps_total")
        if gaps_metric != 1:
            problems.append(f"zastava_agent_gaps_total {gaps_metric}, want 1")

        # the transitions the engine lost, as reconcile records
        rec = {}
        for r in new:  # transitions: an evidence scan a reconciliation asked for is none
            if (r["source"] == "reconcile" and "container" in r
                    and r["kind"] != "container.evidence"):
                rec.setdefault(r["container"]["id"], []).append(r)
        for cid, rs in rec.items():
            h.log(f"reconcile {rs[0]['container']['name']}: {[r['kind'] for r in rs]}")
        inspect = h.engine_containers(d)

        def need(name, cid, kinds, check=None):
            got = [r["kind"] for r in rec.get(cid, [])]
            if not any(kd in got for kd in kinds):
                problems.append(f"{name}: reconcile records {got}, want one of {kinds}")
            elif check:
                r = [r for r in rec[cid] if r["kind"] in kinds][0]
                msg = check(r["container"])
                if msg:
                    problems.append(f"{name}: {r['kind']}: {msg}")

        def died_with(code):
            def check(c):
                want = (code, inspect[c["id"]]["State"]["FinishedAt"], False)
                got = (c.get("exitCode"), c.get("finishedAt"), c.get("oomKilled"))
                return None if got == want else f"(exitCode, finishedAt, oomKilled) {got} " \
                                                f"!= engine's {want}"
            return check
        need("k-stop", k["k-stop"], ["container.die"], died_with(0))
        need("k-rm", k["k-rm"], ["container.destroy"])
        need("k-start", k["k-start"], ["container.start"])
        need("k-pause", k["k-pause"], ["container.pause"])
        need("k-rename", k["k-rename"], ["container.rename"],
             lambda c: None if c["name"] == "k-renamed" else f"name {c['name']!r}")
        need("k-restart", k["k-restart"], ["container.restart", "container.start"])
        need("n-run", n["n-run"], ["container.create"])
        need("n-run", n["n-run"], ["container.start"])
        need("n-exit", n["n-exit"], ["container.create"])
        need("n-exit", n["n-exit"], ["container.die"], died_with(3))
        need("n-created", n["n-created"], ["container.create"])
        counted = {}
        for rs in rec.values():
            for r in rs:
                a = r["kind"].split(".", 1)[1]
                counted[a] = counted.get(a, 0) + 1
        for a, cnt in counted.items():
            v = h.metric_value(metrics, "zastava_agent_reconciled_transitions_total",
                               {"action": a})
            if v != cnt:
                problems.append(f"reconciled_transitions_total{{action={a}}} {v}, "
                                f"{cnt} records")
        n_rec = sum(counted.values())
        stats = dict(stats, expected=stats["expected"] - len(before),
                     recorded=stats["recorded"] - len(before))  # the table counts the window
        h.fault_row("3 agent down, ring overflow", 1, stats,
                    f"{len(lost)} events the engine could not report, covered by "
                    f"{len(gaps)} agent.gap + {n_rec} reconcile records")
        self.assertEqual(problems, [])

    def test_2_resume_without_an_engine_event_yet(self):
        """an agent that has seen only snapshots (no engine event, so no event cursor) is
        stopped; a few events happen (a known container paused, unpaused, stopped; a new one
        runs and exits 3); started again it must still get them from the engine
        (which has them all): nothing missed, no gap"""
        d = self.d
        d.docker("run", "-d", "--name", "quiet", h.TEST_IMAGE, *h.IDLE_CMD)
        agent = self.ws.agent(ARGS.agent, d.endpoint, name="b", reconnect_max_backoff=1)
        agent.start()
        agent.wait_ready()
        self.assertEqual(h.wait_table_agrees(d, agent), [], "the agent's first view")
        code, _ = agent.stop()
        self.assertEqual(code, 0)
        t0 = time.time()
        d.docker("pause", "quiet")
        d.docker("unpause", "quiet")
        d.docker("stop", "quiet")
        d.docker("run", "--name", "quiet-exit", h.TEST_IMAGE, "sh", "-c", "exit 3", check=False)
        events = d.events(t0 - 0.05, time.time() + 0.3)
        agent2 = self.ws.respawn(agent)
        agent2.start()
        agent2.wait_ready()
        missing = h.wait_recorded(agent2, [h.expected_event_id(e) for e in events], timeout=15)
        problems = h.wait_table_agrees(d, agent2)
        code, _ = agent2.stop()
        self.assertEqual(code, 0)
        file_problems, stats, records = h.ledger_file_problems(agent2.data_dir, events,
                                                               ARGS.source_dir)
        h.fault_row("3b agent down, no cursor yet", 1, stats)
        self.assertEqual(problems + file_problems, [],
                         f"{len(missing)} of {len(events)} events the engine still had while "
                         f"the agent was down, with no event recorded before it, are missing")


if __name__ == "__main__":
    h.main(globals())
