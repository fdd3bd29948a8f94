#!/usr/bin/python3
"""The engine goes away and comes back; the agent goes away and comes back.

EngineRestart: dockerd stopped under a running agent -> /readyz 503 naming the engine,
docker_connected 0, /livez still 200; dockerd started again -> /readyz 200, reconnect counted,
a new container's events recorded exactly once, no duplicate ids, chain intact.

AgentRestart: the agent is killed with SIGKILL, containers change while it is down, it starts
again on the same data directory -> it resumes from its cursor: the missed events are recorded
exactly once (the engine still has them in memory), nothing recorded before is repeated, and the
hash chain continues across the restart.

EngineForgot: the agent is stopped, containers change, dockerd restarts (its event memory is
gone), the agent starts again -> one agent.gap record, the lost transitions written as
source "reconcile" records (destroy; die with exit code), the containers table agrees."""

import json
import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402

ARGS = None


def run_container(d, name):
    """create+start+stop a container; returns (id, t_start, t_end) of the window."""
    t0 = time.time()
    cid = d.docker("run", "-d", "--name", name, h.TEST_IMAGE, *h.IDLE_CMD)
    d.docker("stop", name)
    return cid, t0, time.time() + 0.5


class EngineRestart(h.WorkspaceTest):
    def test_engine_down_and_back(self):
        d = self.ws.dockerd()
        d.make_busybox_image()
        agent = self.ws.agent(ARGS.agent, d.endpoint, reconnect_max_backoff=1)
        agent.start()
        agent.wait_ready()
        self.assertEqual(agent.metric_value("zastava_agent_docker_connected"), 1)

        cid1, t0, t1 = run_container(d, "before")
        before = d.events(t0 - 0.05, t1)
        missing = h.wait_recorded(agent, [h.expected_event_id(e) for e in before])
        self.assertEqual(missing, set(), "events before the engine restart not recorded")
        reconnects0 = agent.metric_value("zastava_agent_stream_reconnects_total") or 0

        h.log("stopping dockerd under the agent")
        d.stop()
        status, body = agent.wait_readyz(503, timeout=20)
        h.log(f"/readyz with engine down: {status} {body.strip()!r}")
        self.assertRegex(body, re.compile(r"engine|docker", re.I),
                         "503 body should say the engine is the problem")
        self.assertEqual(agent.metric_value("zastava_agent_docker_connected"), 0)
        self.assertEqual(agent.http_get("/livez")[0], 200, "/livez while engine is down")
        self.assertEqual(agent.http_get("/healthz")[0], 200, "/healthz while engine is down")
        self.assertTrue(agent.alive(), "agent must keep running while the engine is down")

        h.log("starting dockerd again")
        d.start()
        t_back = time.time()
        agent.wait_readyz(200, timeout=30)
        h.log(f"/readyz 200 again {time.time() - t_back:.1f}s after dockerd came back")
        self.assertEqual(agent.metric_value("zastava_agent_docker_connected"), 1)
        self.assertGreater(agent.metric_value("zastava_agent_stream_reconnects_total") or 0,
                           reconnects0, "stream_reconnects_total did not increase")

        cid2, t2, t3 = run_container(d, "after")
        after = d.events(t2 - 0.05, t3)
        self.assertTrue(after)
        missing = h.wait_recorded(agent, [h.expected_event_id(e) for e in after])
        self.assertEqual(missing, set(), "events after the engine restart not recorded")

        code, secs = agent.stop()
        self.assertEqual(code, 0, h.tail(agent.log_path))
        self.assertLess(secs, 5.0)
        lines = h.read_ndjson(agent.data_dir)
        records = [json.loads(x) for x in lines]
        self.assertEqual(h.exactly_once_problems(before + after, records, "ndjson"), [])
        ids = [r["eventId"] for r in records]
        self.assertEqual(sorted({i for i in ids if ids.count(i) > 1}), [], "duplicate eventIds")
        self.assertEqual(lines, [r[5] for r in h.read_sqlite(agent.data_dir)],
                         "NDJSON lines == SQLite records")
        self.assertEqual(h.verify_chain(lines), [])


class AgentRestart(h.WorkspaceTest):
    def test_resume_from_cursor_after_kill9(self):
        d = self.ws.dockerd()
        d.make_busybox_image()
        agent = self.ws.agent(ARGS.agent, d.endpoint, reconnect_max_backoff=1)
        agent.start()
        agent.wait_ready()
        _, t0, t1 = run_container(d, "first")
        first = d.events(t0 - 0.05, t1)
        self.assertEqual(h.wait_recorded(agent, [h.expected_event_id(e) for e in first]), set())
        lines_before = h.read_ndjson(agent.data_dir)

        h.log("SIGKILL the agent; containers change while it is down")
        agent.kill9()
        _, t2, t3 = run_container(d, "while-down")
        missed = d.events(t2 - 0.05, t3)
        self.assertTrue(missed)

        agent2 = self.ws.respawn(agent)
        agent2.start()
        agent2.wait_ready()
        missing = h.wait_recorded(agent2, [h.expected_event_id(e) for e in missed])
        self.assertEqual(missing, set(), "events that happened while the agent was down")
        code, secs = agent2.stop()
        self.assertEqual(code, 0)

        lines = h.read_ndjson(agent2.data_dir)
        records = [json.loads(x) for x in lines]
        self.assertEqual(lines[:len(lines_before)], lines_before,
                         "records written before the kill must stay as they were")
        self.assertEqual(h.exactly_once_problems(first + missed, records, "ndjson"), [])
        for e in missed:
            rec = [r for r in records if r["eventId"] == h.expected_event_id(e)][0]
            self.assertIn(rec["source"], ("replay", "stream"))
        self.assertEqual(h.verify_chain(lines), [], "hash chain across the agent restart")
        self.assertEqual(lines, [r[5] for r in h.read_sqlite(agent2.data_dir)])
        self.assertGreaterEqual(len(h.segment_paths(agent2.data_dir)), 2,
                                "each start begins a new segment (docs/records.md)")


class EngineForgot(h.WorkspaceTest):
    def test_reconcile_after_engine_forgot(self):
        """agent stopped; containers change; dockerd restarted (its event memory is gone);
        agent started again: it cannot replay, so it writes one agent.gap record, and
        list+inspect bring its ledger in line with the engine, the lost transitions written
        as source "reconcile" records (destroy of the removed one, die with exit code 0 and
        finishedAt of the stopped one)"""
        d = self.ws.dockerd()
        d.make_busybox_image()
        agent = self.ws.agent(ARGS.agent, d.endpoint, reconnect_max_backoff=1)
        agent.start()
        agent.wait_ready()
        t0 = time.time()
        gone = d.docker("run", "-d", "--name", "gone", h.TEST_IMAGE, *h.IDLE_CMD)
        stays = d.docker("run", "-d", "--name", "stays", h.TEST_IMAGE, *h.IDLE_CMD)
        started = d.events(t0 - 0.05, time.time() + 0.5)
        self.assertEqual(h.wait_recorded(agent, [h.expected_event_id(e) for e in started]), set())
        code, _ = agent.stop()
        self.assertEqual(code, 0)
        n_before = len(h.read_ndjson(agent.data_dir))

        d.docker("rm", "-f", "gone")
        d.docker("stop", "stays")  # exit 0 (the trap)
        d.restart()
        lost = d.events(t0 - 0.05, time.time() + 0.5)
        self.assertEqual(lost, [], "the restarted engine should have forgotten its events")

        agent2 = self.ws.respawn(agent)
        agent2.start()
        agent2.wait_ready()
        problems = h.wait_table_agrees(d, agent2, destroyed_ids=[gone])
        code, _ = agent2.stop()
        self.assertEqual(code, 0)
        file_problems, _, records = h.ledger_file_problems(agent2.data_dir, started,
                                                           ARGS.source_dir)
        problems += file_problems
        new = records[n_before:]
        for r in new:
            h.log(f"after restart: {r['kind']} {r['source']} "
                  f"{(r.get('container') or {}).get('name')} {r.get('gap') or ''}")
        rec = [r for r in new if r["source"] == "reconcile"
               and (r.get("container") or {}).get("id") == gone]
        if [r["kind"] for r in rec] != ["container.destroy"]:
            problems.append(f"'gone': reconcile records {[r['kind'] for r in rec]}, want "
                            f"['container.destroy']")
        rec = [r for r in new if r["source"] == "reconcile" and r["kind"] != "container.evidence"
               and (r.get("container") or {}).get("id") == stays]
        dies = [r for r in rec if r["kind"] == "container.die"]
        finished = d.docker("inspect", "-f", "{{.State.FinishedAt}}", stays)
        if len(dies) != 1:
            problems.append(f"'stays': reconcile records {[r['kind'] for r in rec]}, want one "
                            f"container.die")
        else:
            c = dies[0]["container"]
            if (c.get("exitCode"), c.get("finishedAt"), c.get("oomKilled")) != (0, finished,
                                                                                False):
                problems.append(f"'stays': die {c}, engine says exit 0, finishedAt {finished},"
                                f" oomKilled false")
        gaps = h.gap_records(new)
        if len(gaps) != 1:
            problems.append(f"{len(gaps)} agent.gap records after the engine restart, want 1")
        self.assertEqual(problems, [])


if __name__ == "__main__":
    h.main(globals())
