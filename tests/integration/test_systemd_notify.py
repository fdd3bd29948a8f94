#!/usr/bin/env python3
"""systemd's notify protocol, against a real NOTIFY_SOCKET datagram listener.

- READY=1 comes only once the agent is ready (stream open, first inventory done): not while the
  engine is down, and together with STATUS=watching containers once it is up;
- STATUS= follows /readyz's reason; WATCHDOG=1 keeps coming while the engine is down (an
  unreachable engine is no reason to restart the agent);
- a buffer writer that hangs (its data directory on an ext4 frozen with fsfreeze, so its writes
  block in the kernel) fails /livez and stops WATCHDOG=1 after HealthCheck:StallSeconds; once
  the filesystem thaws, WATCHDOG=1 comes back and nothing was lost;
- STOPPING=1 on SIGTERM.
"""

import json
import os
import shutil
import socket
import subprocess
import threading
import time

import harness as h

STALL_SECONDS = 2


class NotifyListener:
    """A NOTIFY_SOCKET: collects every datagram the agent sends, stamped with when it came."""

    def __init__(self, path):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        self.sock.settimeout(0.2)
        self.messages = []  # (monotonic time, "KEY=value")
        self.lock = threading.Lock()
        self.stopped = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stopped:
            try:
                data = self.sock.recv(4096)
            except socket.timeout:
                continue
            now = time.monotonic()
            with self.lock:
                self.messages.extend((now, line) for line in data.decode().splitlines())

    def lines(self, since=0.0):
        with self.lock:
            return [line for t, line in self.messages if t >= since]

    def close(self):
        self.stopped = True
        self.thread.join(2)
        self.sock.close()


def frozen_filesystem(ws):
    """An ext4 on a loop device mounted under the workspace; returns its mount point."""
    image = os.path.join(ws.dir, "frozen.img")
    mount = os.path.join(ws.dir, "frozen")
    os.makedirs(mount)
    with open(image, "wb") as f:
        f.truncate(64 * 1024 * 1024)
    subprocess.run(["mkfs.ext4", "-q", image], check=True)
    subprocess.run(["mount", "-o", "loop", image, mount], check=True)
    ws.on_cleanup(lambda: subprocess.run(["umount", "-l", mount], check=False))
    ws.on_cleanup(lambda: subprocess.run(["fsfreeze", "-u", mount], check=False,
                                         stderr=subprocess.DEVNULL))
    return mount


class NotifyProtocol(h.WorkspaceTest):
    @classmethod
    def set_up(cls):
        for tool in ("fsfreeze", "mkfs.ext4"):
            if not shutil.which(tool):
                raise AssertionError(f"{tool} is missing (util-linux, e2fsprogs)")
        cls.d = cls.ws.dockerd()
        cls.d.make_busybox_image()
        cls.d.stop()  # the agent starts while the engine is down
        cls.listener = NotifyListener(os.path.join(cls.ws.dir, "notify.sock"))
        cls.ws.on_cleanup(cls.listener.close)
        cls.mount = frozen_filesystem(cls.ws)
        cls.agent = h.Agent(ARGS.agent, cls.d.endpoint, os.path.join(cls.mount, "data"),
                            log_dir=os.path.join(cls.ws.dir, "a"),
                            extra_args=["--health-stall-seconds", str(STALL_SECONDS)],
                            env={"NOTIFY_SOCKET": cls.listener.path})
        cls.ws.on_cleanup(cls.agent.kill9)

    def test_notify_protocol(self):
        listener, agent = self.listener, self.agent
        agent.start()
        agent.wait_http()
        h.wait_until(lambda: listener.lines().count("WATCHDOG=1") >= 3, 20,
                     "WATCHDOG=1 while the engine is down")
        self.assertNotIn("READY=1", listener.lines())
        self.assertTrue(any(line.startswith("STATUS=docker engine unreachable")
                            for line in listener.lines()), listener.lines())
        self.assertEqual(agent.http_get("/livez")[0], 200)

        self.d.start()
        h.wait_until(lambda: "READY=1" in listener.lines(), 60, "READY=1 once the engine is up")
        self.assertEqual(agent.http_get("/readyz")[0], 200)
        after_ready = listener.lines()[listener.lines().index("READY=1"):]
        self.assertIn("STATUS=watching containers", after_ready)

        self.check_stalled_writer_stops_the_watchdog()

        agent.stop()
        h.wait_until(lambda: "STOPPING=1" in listener.lines(), 10, "STOPPING=1 on SIGTERM")

    def check_stalled_writer_stops_the_watchdog(self):
        listener, agent = self.listener, self.agent
        subprocess.run(["fsfreeze", "-f", self.mount], check=True)
        try:
            cid = self.d.docker("run", "-d", "--name", "during-freeze", h.TEST_IMAGE, "true")
            h.wait_until(lambda: agent.http_get("/livez")[0] == 503, STALL_SECONDS + 30,
                         "/livez 503 while the writer hangs on the frozen disk")
            _, reason = agent.http_get("/livez")
            self.assertIn("buffer writer stalled", reason)
            quiet_from = time.monotonic()
            time.sleep(3)
            self.assertNotIn("WATCHDOG=1", listener.lines(since=quiet_from),
                             "the watchdog was fed while the writer hung")
        finally:
            subprocess.run(["fsfreeze", "-u", self.mount], check=True)
        thawed = time.monotonic()
        h.wait_until(lambda: "WATCHDOG=1" in listener.lines(since=thawed), 20,
                     "WATCHDOG=1 again after the thaw")
        self.assertEqual(agent.http_get("/livez")[0], 200)
        h.wait_until(lambda: any(r.get("container", {}).get("id") == cid and
                                 r["kind"] == "container.die"
                                 for r in map(json.loads, h.read_ndjson(agent.data_dir))),
                     20, "the records of the container started during the freeze")
        self.assertIn("no longer feeding the systemd watchdog", agent.log_text())


if __name__ == "__main__":
    h.main(globals())
