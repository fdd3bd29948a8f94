#!/usr/bin/python3
"""Short-lived containers behind docker-socket-proxy: the project's tecnativa-style haproxy
(harness.Haproxy, defaults plus CONTAINERS=1 EVENTS=1, as shipped: no `option http-no-delay`,
so events arrive up to ~200 ms late) in front of a real dockerd, and `docker run --rm`
containers that live for milliseconds: privileged ones with the engine's socket mounted, and
plain ones.

Every one of them has a container.inspect record: its posture (privileged, docker socket
mounted: CIS 5.5 and 5.32 failed) when the engine answered, or an explicit "gone before it could be inspected". None is
silent. The agent asks at the create, which the engine answers once the start is over, so most
have their posture although they are gone by the time their start event arrives."""

import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402

ARGS = None
RISKY = 5
PLAIN = 10


class ShortLivedBehindProxy(h.WorkspaceTest):
    def test_every_short_lived_container_has_its_posture_or_says_why_not(self):
        d = self.ws.dockerd()
        d.make_busybox_image()
        proxy = self.ws.haproxy(d.sock)  # the image's defaults plus CONTAINERS=1
        agent = self.ws.agent(ARGS.agent, proxy.endpoint)
        agent.start()
        agent.wait_ready()
        t0 = time.time()
        # --user: where the agent's tests run in a container, runc may not hand a root process
        # every capability ("unable to apply caps"); privileged is recorded all the same
        risky = [d.docker("run", "-d", "--rm", "--privileged", "--user", "1000:1000", "-v",
                          f"{d.sock}:/var/run/docker.sock", h.TEST_IMAGE, "true")
                 for _ in range(RISKY)]
        plain = [d.docker("run", "-d", "--rm", h.TEST_IMAGE, "true") for _ in range(PLAIN)]
        h.wait_until(lambda: not set(risky + plain) & set(h.engine_containers(d)), 30,
                     "every --rm container removed")
        events = d.events(t0 - 0.05, time.time() + 0.5)
        missing = h.wait_recorded(agent, [h.expected_event_id(e) for e in events])
        self.assertEqual(missing, set())

        def inspects():
            found = {}
            for row in h.read_sqlite(agent.data_dir):
                record = json.loads(row[5])
                if record["kind"] == "container.inspect":
                    found.setdefault(record["container"]["id"], []).append(record)
            return found if set(risky + plain) <= set(found) else None
        found = h.wait_until(inspects, 30, "an inspect record for every container")
        with_posture = gone = 0
        for cid in risky + plain:
            records = found[cid]
            posture = [r for r in records if "security" in r["container"]]
            if posture:
                with_posture += 1
                # CIS 5.5 privileged, 5.32 the Docker socket mounted
                failed = [f["id"] for f in posture[-1]["container"]["posture"]["failed"]]
                if cid in risky:
                    self.assertIn("5.5", failed, cid)
                    self.assertIn("5.32", failed, cid)
                else:
                    self.assertNotIn("5.5", failed, cid)
                    self.assertNotIn("5.32", failed, cid)
            else:
                gone += 1
                self.assertEqual([r.get("inspectError") for r in records],
                                 ["the container was gone before it could be inspected"] *
                                 len(records), cid)
        h.log(f"{RISKY + PLAIN} short-lived containers through the proxy: {with_posture} with "
              f"their posture, {gone} gone before their inspect (said so)")
        gone_records = sum(1 for cid in risky + plain for r in found[cid]
                           if r.get("inspectError", "").startswith("the container was gone"))
        self.assertEqual(agent.metric_value("zastava_agent_inspects_total", {"result": "gone"}),
                         gone_records)
        code, _ = agent.stop()
        self.assertEqual(code, 0)
        problems, _, _ = h.ledger_file_problems(agent.data_dir, events, ARGS.source_dir)
        self.assertEqual(problems, [])


if __name__ == "__main__":
    h.main(globals())
