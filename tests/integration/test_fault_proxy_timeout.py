#!/usr/bin/python3
"""Fault 4: the event stream cut again and again by a proxy timeout. haproxy in front of the
engine, configured like tecnativa/docker-socket-proxy but with `timeout client 2s` and
`timeout server 2s` (the events backend included), so every silence of 2 s closes the stream.
Bursts of container events with silences in between, about 15-20 s in all.

The agent must reconnect each time (stream_reconnects_total >= 3), resume with since=cursor
(the cursor event comes again and is dropped: duplicates_suppressed_total > 0), write no gap
(the engine still has every event), and end with every event exactly once and the ledger in
agreement with the engine."""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402

ARGS = None
BURSTS = 5


class ProxyTimeout(h.WorkspaceTest):
    def test_stream_cut_by_proxy_timeouts(self):
        d = self.ws.dockerd()
        d.make_busybox_image()
        proxy = self.ws.haproxy(d.sock, stream_timeout="2s")
        agent = self.ws.agent(ARGS.agent, proxy.endpoint, reconnect_max_backoff=1)
        agent.start()
        agent.wait_ready()
        t0 = time.time()
        destroyed = []
        reconnects = agent.metric_value("zastava_agent_stream_reconnects_total") or 0
        for i in range(BURSTS):
            cid = d.docker("run", "-d", "--name", f"p{i}", h.TEST_IMAGE, *h.IDLE_CMD)
            d.docker("pause", f"p{i}")
            d.docker("unpause", f"p{i}")
            d.docker("stop", f"p{i}")
            if i % 2:
                d.docker("rm", f"p{i}")
                destroyed.append(cid)
            # Silence: haproxy closes the stream after 2 s; wait for the agent to come back.
            reconnects = h.wait_metric(agent, "zastava_agent_stream_reconnects_total",
                                       lambda v, r=reconnects: (v or 0) > r, timeout=20)
            agent.wait_readyz(200, timeout=20)
        h.log(f"{time.time() - t0:.1f} s of bursts, {reconnects:.0f} reconnects")
        expected = d.events(t0 - 0.05, time.time() + 0.3)
        missing = h.wait_recorded(agent, [h.expected_event_id(e) for e in expected], timeout=30)
        problems = h.wait_table_agrees(d, agent, destroyed_ids=destroyed)
        metrics = agent.metrics()
        file_problems, stats, records = h.stop_and_check_ledger(self, agent, expected, missing,
                                                                ARGS.source_dir)
        problems += file_problems
        reconnects = h.metric_value(metrics, "zastava_agent_stream_reconnects_total") or 0
        dups = h.metric_value(metrics, "zastava_agent_duplicates_suppressed_total") or 0
        if reconnects < 3:
            problems.append(f"stream_reconnects_total {reconnects} < 3")
        if not dups > 0:
            problems.append(f"duplicates_suppressed_total {dups}: the resumed streams should "
                            f"have brought the cursor event again")
        gaps = h.gap_records(records)
        if gaps:
            problems.append(f"{len(gaps)} agent.gap records although the engine kept every "
                            f"event: {[g['gap'] for g in gaps]}")
        since_requests = [r for r in proxy.requests_seen() if "/events" in r[2]
                          and "since=" in r[2]]
        h.log(f"haproxy saw {len(since_requests)} resumed /events requests")
        h.fault_row("4 stream cut by proxy timeout", int(reconnects), stats,
                    f"{dups:.0f} duplicates suppressed, {len(gaps)} gaps")
        self.assertEqual(problems, [])


if __name__ == "__main__":
    h.main(globals())
