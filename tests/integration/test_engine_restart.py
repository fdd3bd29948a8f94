#!/usr/bin/python3
"""The engine (ZIT_ENGINE: harness.Workspace.dockerd) goes away and comes back; the agent goes
away and comes back. Each part ends with the ENGINE MATRIX comparison of the agent's ledger with
the engine's own /events of its span (harness.engine_matrix_check).

EngineRestart: dockerd stopped under a running agent -> /readyz 503 naming the engine,
docker_connected 0, /livez still 200; dockerd started again -> /readyz 200, reconnect counted,
a new container's events recorded exactly once, no duplicate ids, chain intact.

AgentRestart: the agent is killed with SIGKILL, containers change while it is down, it starts
again on the same data directory -> it resumes from its cursor: the missed events are recorded
exactly once (the engine still has them in memory), nothing recorded before is repeated, and the
hash chain continues across the restart.

EngineForgot: the agent is stopped, containers change, dockerd restarts (its event memory is
gone; Podman's events file is removed while it is down, engines.PodmanService.forget_events),
the agent starts again -> one agent.gap record, the lost transitions written as source
"reconcile" records (destroy; die with exit code), the containers table agrees."""

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
    # -t: Podman's compat API gives a container a stop timeout of 0 (SIGKILL at once) else
    d.docker("stop", "-t", "5", name)
    return cid, t0, time.time() + 0.5


def end_with_matrix_check(test, d, agent, span):
    """The end of a part: the engine's events of the span recorded, the agent stopped (exit 0),
    its ledger compared with them and with the engine's containers. Returns (problems,
    records)."""
    events = span.read()
    h.wait_recorded(agent, [h.expected_event_id(e) for e in events])  # missing: a problem below
    code, _ = agent.stop()
    test.assertEqual(code, 0, h.tail(agent.log_path))
    problems = h.engine_matrix_check(d, agent, events, ARGS.source_dir)
    return problems, [json.loads(x) for x in h.read_ndjson(agent.data_dir)]


class EngineRestart(h.WorkspaceTest):
    def test_engine_down_and_back(self):
        d = self.ws.dockerd()
        d.make_busybox_image()
        agent = self.ws.agent(ARGS.agent, d.endpoint, reconnect_max_backoff=1)
        span = h.EngineSpan(d)
        agent.start()
        agent.wait_ready()
        self.assertEqual(agent.metric_value("zastava_agent_docker_connected"), 1)

        _, t0, _ = run_container(d, "before")
        d.docker("rm", "before")  # destroyed once: the reconciliation after the restart agrees
        before = d.events(t0 - 0.05, time.time() + 0.5)
        missing = h.wait_recorded(agent, [h.expected_event_id(e) for e in before])
        self.assertEqual(missing, set(), "events before the engine restart not recorded")
        reconnects0 = agent.metric_value("zastava_agent_stream_reconnects_total") or 0

        span.read()  # before the engine stops: a restarted dockerd forgets its events
        h.log("stopping the engine under the agent")
        d.stop()
        status, body = agent.wait_readyz(503, timeout=20)
        h.log(f"/readyz with engine down: {status} {body.strip()!r}")
        self.assertRegex(body, re.compile(r"engine|docker", re.I),
                         "503 body should say the engine is the problem")
        self.assertEqual(agent.metric_value("zastava_agent_docker_connected"), 0)
        self.assertEqual(agent.http_get("/livez")[0], 200, "/livez while engine is down")
        self.assertEqual(agent.http_get("/healthz")[0], 200, "/healthz while engine is down")
        self.assertTrue(agent.alive(), "agent must keep running while the engine is down")

        h.log("starting the engine again")
        d.start()
        t_back = time.time()
        agent.wait_readyz(200, timeout=30)
        h.log(f"/readyz 200 again {time.time() - t_back:.1f}s after dockerd came back")
        self.assertEqual(agent.metric_value("zastava_agent_docker_connected"), 1)
        self.assertGreater(agent.metric_value("zastava_agent_stream_reconnects_total") or 0,
                           reconnects0, "stream_reconnects_total did not increase")

        _, t2, t3 = run_container(d, "after")
        after = d.events(t2 - 0.05, t3)
        self.assertTrue(after)
        missing = h.wait_recorded(agent, [h.expected_event_id(e) for e in after])
        self.assertEqual(missing, set(), "events after the engine restart not recorded")
        # each once with the engine's fields, no eventId twice, NDJSON == SQLite, chain
        problems, _ = end_with_matrix_check(self, d, agent, span)
        self.assertEqual(problems, [])


class AgentRestart(h.WorkspaceTest):
    def test_resume_from_cursor_after_kill9(self):
        d = self.ws.dockerd()
        d.make_busybox_image()
        agent = self.ws.agent(ARGS.agent, d.endpoint, reconnect_max_backoff=1)
        span = h.EngineSpan(d)
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
        # each once (first + missed), NDJSON == SQLite, the chain across the agent restart
        problems, records = end_with_matrix_check(self, d, agent2, span)
        self.assertEqual(problems, [])

        lines = h.read_ndjson(agent2.data_dir)
        self.assertEqual(lines[:len(lines_before)], lines_before,
                         "records written before the kill must stay as they were")
        for e in missed:
            rec = [r for r in records if r["eventId"] == h.expected_event_id(e)][0]
            self.assertIn(rec["source"], ("replay", "stream"))
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
        span = h.EngineSpan(d)
        agent.start()
        agent.wait_ready()
        gone = d.docker("run", "-d", "--name", "gone", h.TEST_IMAGE, *h.IDLE_CMD)
        stays = d.docker("run", "-d", "--name", "stays", h.TEST_IMAGE, *h.IDLE_CMD)
        started = list(span.read())
        self.assertEqual(h.wait_recorded(agent, [h.expected_event_id(e) for e in started]), set())
        code, _ = agent.stop()
        self.assertEqual(code, 0)
        n_before = len(h.read_ndjson(agent.data_dir))

        d.docker("rm", "-f", "gone")
        d.docker("stop", "-t", "5", "stays")  # exit 0 (the trap)
        d.stop()
        d.forget_events()
        d.start()
        lost = d.events(span.since_ns / 1e9, time.time() + 0.5)
        self.assertEqual(lost, [], "the restarted engine should have forgotten its events")

        agent2 = self.ws.respawn(agent)
        agent2.start()
        agent2.wait_ready()
        problems = h.wait_table_agrees(d, agent2, destroyed_ids=[gone])
        # the span's events: `started`; nothing the engine can report since
        matrix_problems, records = end_with_matrix_check(self, d, agent2, span)
        problems += matrix_problems
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
