#!/usr/bin/python3
"""Fault 5: the disk under the data directory fills up. The data directory is a 2 MB tmpfs;
once the agent is running a filler file takes the rest of it, and containers keep changing.

While full: /readyz 503 and zastava_agent_buffer_writable 0 (the agent keeps running and keeps
the records in its bounded queue). When the filler is deleted: /readyz 200, buffer_writable 1,
every engine event exactly once (nothing dropped: events_dropped_total 0), NDJSON == SQLite,
chain intact, ledger in agreement with the engine; with a seal every second (seals fail and
resume with the disk), `zastava-agent verify` and tests/buffer/verify_ledger.py exit 0, with
and without the exported seed."""

import errno
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402

ARGS = None


def fill(path):
    """Writes zeros to path until the file system is full; returns the bytes written."""
    n = 0
    chunk = b"\0" * 65536
    with open(path, "wb", buffering=0) as f:
        while True:
            try:
                n += f.write(chunk)
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
                if len(chunk) == 1:
                    break
                chunk = chunk[:len(chunk) // 16 or 1]
    return n


class DiskFull(h.WorkspaceTest):
    def test_disk_full_then_space_again(self):
        d = self.ws.dockerd()
        d.make_busybox_image()
        data = os.path.join(self.ws.dir, "a", "data")
        os.makedirs(data)
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m,mode=0750", "tmpfs", data],
                       check=True)
        self.ws.on_cleanup(lambda: subprocess.run(["umount", "-l", data], check=False))
        filler = os.path.join(data, "filler")
        agent = self.ws.agent(ARGS.agent, d.endpoint, reconnect_max_backoff=1,
                              extra_args=["--ledger-seal-interval-seconds", "1"])
        self.assertEqual(agent.data_dir, data)
        agent.start()
        agent.wait_ready()
        t0 = time.time()
        d.docker("run", "-d", "--name", "before", h.TEST_IMAGE, *h.IDLE_CMD)
        before = d.events(t0 - 0.05, time.time() + 0.3)
        self.assertEqual(h.wait_recorded(agent, [h.expected_event_id(e) for e in before]), set())

        h.log(f"filling the data directory: {fill(filler)} bytes")
        destroyed, i = [], 0

        def churn_until_unwritable():
            nonlocal i
            name = f"full{i}"
            i += 1
            cid = d.docker("run", "-d", "--name", name, h.TEST_IMAGE, *h.IDLE_CMD)
            d.docker("stop", name)
            if i % 2:
                d.docker("rm", name)
                destroyed.append(cid)
            status = agent.http_get("/readyz")[0]
            writable = agent.metric_value("zastava_agent_buffer_writable")
            return status == 503 and writable == 0
        h.wait_until(churn_until_unwritable, 60, "/readyz 503 and buffer_writable 0 on a full "
                                                 "disk", interval=0.2)
        h.log(f"disk full noticed after {i} container lives; a few more while full")
        for j in range(3):
            d.docker("run", "-d", "--name", f"while-full{j}", h.TEST_IMAGE, *h.IDLE_CMD)
            d.docker("pause", f"while-full{j}")
        self.assertTrue(agent.alive(), "the agent must survive a full disk")
        self.assertEqual(agent.http_get("/readyz")[0], 503, "still full")
        self.assertEqual(agent.http_get("/livez")[0], 200, "/livez while the disk is full")

        os.unlink(filler)
        h.log("filler deleted")
        agent.wait_readyz(200, timeout=60)
        h.wait_metric(agent, "zastava_agent_buffer_writable", lambda v: v == 1, timeout=30)
        expected = d.events(t0 - 0.05, time.time() + 0.3)
        missing = h.wait_recorded(agent, [h.expected_event_id(e) for e in expected], timeout=30)
        problems = h.wait_table_agrees(d, agent, destroyed_ids=destroyed)
        dropped = agent.metric_value("zastava_agent_events_dropped_total") or 0
        code, _ = agent.stop()
        self.assertEqual(code, 0, h.tail(agent.log_path))
        file_problems, stats, _ = h.ledger_file_problems(agent.data_dir, expected,
                                                         ARGS.source_dir)
        problems += file_problems
        problems += h.seals_verify_problems(ARGS.agent, agent.data_dir, ARGS.source_dir,
                                            os.path.join(self.ws.dir, "seeds"))
        if missing:
            problems.append(f"{len(missing)} engine events never reached SQLite")
        if dropped:
            problems.append(f"events_dropped_total {dropped}: the queue should hold a few "
                            f"dozen records")
        h.fault_row("5 disk full", 1, stats, f"{i + 3} container lives while full")
        self.assertEqual(problems, [])


if __name__ == "__main__":
    h.main(globals())
