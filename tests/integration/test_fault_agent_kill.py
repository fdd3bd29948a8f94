#!/usr/bin/python3
"""Fault 2: the agent killed with SIGKILL in the middle of a burst of lifecycle events
(10 containers run/stop/rm in parallel), then started again on the same data directory;
3 times. Fewer than 256 events in all, so the engine's memory still covers every resume.

Each new start must recover (a torn last NDJSON line cut, records only SQLite holds appended,
the chain continued), resume from its durable cursor (the cursor event comes again and is
dropped as a duplicate) and, as nothing was lost by the engine, write no agent.gap record.
Every complete NDJSON line written before a kill stays as it was. Ends with the ledger
against the engine's truth (containers table, every event exactly once, files), and the ledger
verified (seals every second, so kills land near seals): `zastava-agent verify` and
tests/buffer/verify_ledger.py exit 0, with and without the exported seed."""

import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402

ARGS = None
KILLS = 3
PARALLEL = 10


def burst(d, rnd, ids, errors):
    def life(i):
        try:
            name = f"b{rnd}-{i}"
            ids.append(d.docker("run", "-d", "--name", name, h.TEST_IMAGE, *h.IDLE_CMD))
            d.docker("stop", "-t", "5", name)
            d.docker("rm", name)
        except Exception as exc:  # reported by the test
            errors.append(repr(exc))
    threads = [threading.Thread(target=life, args=(i,)) for i in range(PARALLEL)]
    for t in threads:
        t.start()
    return threads


class AgentKill(h.WorkspaceTest):
    def test_sigkill_during_bursts(self):
        d = self.ws.dockerd()
        d.make_busybox_image()
        agent = self.ws.agent(ARGS.agent, d.endpoint, reconnect_max_backoff=1,
                              extra_args=["--ledger-seal-interval-seconds", "1"])
        agent.start()
        agent.wait_ready()
        t0 = time.time()
        destroyed, errors, problems = [], [], []
        kept_lines = []
        for rnd in range(KILLS):
            n0 = len(h.read_sqlite(agent.data_dir, "SELECT 1 FROM events"))
            threads = burst(d, rnd, destroyed, errors)
            # Kill once the agent is visibly in the middle of the burst.
            h.wait_until(lambda: len(h.read_sqlite(agent.data_dir, "SELECT 1 FROM events"))
                         >= n0 + 8, 30, "the agent recording the burst", interval=0.02)
            agent.kill9()
            h.log(f"round {rnd}: SIGKILL with {sum(t.is_alive() for t in threads)} of "
                  f"{PARALLEL} container lives still running")
            kept_lines = h.read_ndjson(agent.data_dir)
            for t in threads:
                t.join(60)
            agent = self.ws.respawn(agent)
            agent.start()
            agent.wait_ready()
            try:  # the resume is inclusive: the cursor event comes again and is dropped
                h.wait_metric(agent, "zastava_agent_duplicates_suppressed_total",
                              lambda v: v is not None and v >= 1, timeout=15)
            except AssertionError as exc:
                problems.append(f"round {rnd}: after the restart: {exc}")
            lines = h.read_ndjson(agent.data_dir)
            if lines[:len(kept_lines)] != kept_lines:
                problems.append(f"round {rnd}: NDJSON lines written before the kill changed"
                                + h.first_difference(kept_lines, lines))
        self.assertEqual(errors, [], "docker commands of the bursts")

        expected = d.events(t0 - 0.05, time.time() + 0.3)
        h.log(f"engine reports {len(expected)} container events")
        self.assertLess(len(expected), 256, "the test must stay inside the engine's memory")
        missing = h.wait_recorded(agent, [h.expected_event_id(e) for e in expected], timeout=30)
        problems += h.wait_table_agrees(d, agent, destroyed_ids=destroyed)
        file_problems, stats, records = h.stop_and_check_ledger(self, agent, expected, missing,
                                                                ARGS.source_dir)
        problems += file_problems
        gaps = h.gap_records(records)
        if gaps:
            problems.append(f"{len(gaps)} agent.gap records although the engine kept every "
                            f"event: {[g['gap'] for g in gaps]}")
        if len(h.segment_paths(agent.data_dir)) < KILLS + 1:
            problems.append("each start must begin a new segment")
        problems += h.seals_verify_problems(ARGS.agent, agent.data_dir, ARGS.source_dir,
                                            os.path.join(self.ws.dir, "seeds"))
        h.fault_row("2 agent SIGKILL in burst", KILLS, stats, f"{len(gaps)} gaps")
        self.assertEqual(problems, [])


if __name__ == "__main__":
    h.main(globals())
