#!/usr/bin/python3
"""The agent as an unprivileged user (docs/operations.md "Access modes"), USER created for the
test with `useradd --system` when missing and removed afterwards.

ACL mode: a private dockerd's socket (0660, root and group docker) in a directory closed to
others, as /run/user/UID is. The agent starts, stays up, is not ready, and says why: first the directory
(no search permission), then, with `setfacl -m u:USER:x DIR`, the socket itself (permission
denied on it, with the fix). After `setfacl -m u:USER:rw SOCKET` it becomes ready without a
restart (reconnect backoff) and records a container's lifecycle.

Rootless mode: a real rootless engine, Debian's dockerd-rootless.sh run by USER (rootlesskit
from `rootlesskit`, newuidmap/newgidmap from `uidmap`, subordinate ids added for USER when it
has none). rootlesskit uses the host network (`--net=host`), so slirp4netns is not needed: the
containers have no network (`--bridge=none`), which the agent does not need. The agent runs as
the same user against unix://$XDG_RUNTIME_DIR/docker.sock and records a container's lifecycle."""

import grp
import json
import os
import pwd
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402

ARGS = None
USER = "zit-agent"
ROOTLESS_SH = (shutil.which("dockerd-rootless.sh") or
               "/usr/share/docker.io/contrib/dockerd-rootless.sh")  # Debian's docker.io
TOOLS = ("setfacl", "setpriv", "useradd", "userdel", "usermod", "rootlesskit", "newuidmap",
         "newgidmap")
CREATED_USER = False


def run(*cmd):
    subprocess.run(cmd, check=True, capture_output=True, text=True)


def setUpModule():
    global CREATED_USER
    try:
        pwd.getpwnam(USER)
    except KeyError:
        run("useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", USER)
        CREATED_USER = True
        h.log(f"created user {USER}")


def tearDownModule():
    if CREATED_USER:
        run("userdel", USER)
        h.log(f"removed user {USER}")


def as_user():
    """setpriv execs the command (same pid, so signals reach it) as USER with USER's groups."""
    pw = pwd.getpwnam(USER)
    return ["setpriv", f"--reuid={pw.pw_uid}", f"--regid={pw.pw_gid}", "--init-groups"]


def give_to_user(path, mode=0o755):
    os.makedirs(path, exist_ok=True)
    pw = pwd.getpwnam(USER)
    os.chown(path, pw.pw_uid, pw.pw_gid)
    os.chmod(path, mode)


class UserAgent(h.Agent):
    def args(self):
        return as_user() + super().args()


def user_agent(ws, endpoint, name):
    data = os.path.join(ws.dir, name, "data")
    give_to_user(data, 0o750)
    agent = UserAgent(ARGS.agent, endpoint, data, log_dir=os.path.join(ws.dir, name))
    ws.on_cleanup(agent.kill9)
    return agent


def check_lifecycle(test, d, agent):
    """create/start/stop of a container: each engine event exactly once in the NDJSON files,
    every file the agent wrote owned by USER. Stops the agent (exit 0)."""
    t0 = time.time()
    d.docker("create", "--name", "seen", h.TEST_IMAGE, *h.IDLE_CMD)
    d.docker("start", "seen")
    d.docker("stop", "seen")
    events = d.events(t0 - 0.05, time.time() + 0.5)
    test.assertEqual([e["Action"] for e in events][:2], ["create", "start"])
    missing = h.wait_recorded(agent, [h.expected_event_id(e) for e in events])
    test.assertEqual(missing, set(), h.tail(agent.log_path))
    code, _ = agent.stop()
    test.assertEqual(code, 0, h.tail(agent.log_path))
    records = [json.loads(x) for x in h.read_ndjson(agent.data_dir)]
    test.assertEqual(h.exactly_once_problems(events, records, "ndjson"), [])
    uid = pwd.getpwnam(USER).pw_uid
    for root, _, files in os.walk(agent.data_dir):
        for p in [root] + [os.path.join(root, f) for f in files]:
            test.assertEqual(os.stat(p).st_uid, uid, p)
    h.log(f"{len(records)} records written by the agent as {USER}")


class UserWorkspaceTest(h.WorkspaceTest):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        os.chmod(cls.ws.dir, 0o711)  # mkdtemp makes it 0700: USER must reach into it


class AclMode(UserWorkspaceTest):
    def test_socket_acl(self):
        d = self.ws.dockerd()
        d.make_busybox_image()
        sock_dir = d.dir
        os.chmod(sock_dir, 0o700)
        self.ws.on_cleanup(lambda: run("setfacl", "-b", sock_dir, d.sock))
        st = os.stat(d.sock)
        h.log(f"socket {oct(st.st_mode & 0o777)} uid {st.st_uid} gid {st.st_gid}")
        self.assertEqual(st.st_mode & 0o007, 0, "the socket must be closed to others")

        agent = user_agent(self.ws, d.endpoint, "acl").start()
        agent.wait_http()
        # 1. No search permission on the socket's directory.
        _, body = agent.wait_readyz(503, body_pred=lambda b: d.sock in b)
        h.log(f"/readyz (directory closed): {body.strip()}")
        self.assertEqual(body.strip(),
                         f"docker engine unreachable: cannot connect to {d.endpoint}: user "
                         f"{USER} may not enter {sock_dir} on the way to {d.sock} (grant it: "
                         f"setfacl -m u:{USER}:x {sock_dir})")
        warning = h.wait_until(lambda: [line for line in agent.log_text().splitlines()
                                        if " warning docker engine: " in line], 10,
                               "the agent's warning about the engine")[0]
        h.log(f"agent log: {warning}")
        self.assertIn(f"cannot connect to {d.endpoint}: ", warning)
        self.assertTrue(agent.alive())
        self.assertEqual(agent.http_get("/livez")[0], 200)
        self.assertEqual(agent.metric_value("zastava_agent_docker_connected"), 0)
        self.assertGreater(agent.metric_value("zastava_agent_engine_errors_total",
                                              {"kind": "unavailable"}), 0)

        # 2. The directory opened to USER, the socket still closed: the reason names it and the fix.
        run("setfacl", "-m", f"u:{USER}:x", sock_dir)
        group = grp.getgrgid(st.st_gid).gr_name
        denied = (f"permission denied on {d.sock} (root:{group} 0660) for user {USER}: add it "
                  f"to group {group} or grant an ACL: setfacl -m u:{USER}:rw {d.sock}")
        _, body = agent.wait_readyz(503, body_pred=lambda b: denied in b)
        h.log(f"/readyz (socket closed): {body.strip()}")
        self.assertIn(denied, agent.log_text())  # a debug line: "still failing (attempt N)"

        # 3. An ACL on the socket: ready without a restart.
        run("setfacl", "-m", f"u:{USER}:rw", d.sock)
        agent.wait_ready(timeout=15)
        self.assertRegex(agent.log_text(), r"info docker engine reachable again \(API [\d.]+\) "
                                           r"after \d+ failed attempts; resuming")
        self.assertEqual(agent.metric_value("zastava_agent_docker_connected"), 1)
        check_lifecycle(self, d, agent)


class RootlessDockerd(h.PrivateDockerd):
    """dockerd-rootless.sh run by USER with XDG_RUNTIME_DIR = base_dir, so its socket is
    base_dir/docker.sock (the rootless default $XDG_RUNTIME_DIR/docker.sock). self.proc is
    rootlesskit, which passes SIGTERM on to dockerd."""

    def __init__(self, base_dir):
        super().__init__(base_dir)
        give_to_user(base_dir, 0o700)
        give_to_user(os.path.join(base_dir, "home"), 0o700)

    def command(self):
        return as_user() + [
            "env", f"HOME={self.dir}/home", f"XDG_RUNTIME_DIR={self.dir}",
            "DOCKERD_ROOTLESS_ROOTLESSKIT_NET=host",
            "DOCKERD_ROOTLESS_ROOTLESSKIT_PORT_DRIVER=none",
            ROOTLESS_SH, "--data-root", self.dir + "/root", "--storage-driver=vfs",
            "--iptables=false", "--bridge=none"]


def subid_ranges(path):
    with open(path) as f:
        return [line.strip().split(":") for line in f if line.count(":") == 2]


class RootlessMode(UserWorkspaceTest):
    @classmethod
    def set_up(cls):
        files = ("/etc/subuid", "/etc/subgid")
        uid = str(pwd.getpwnam(USER).pw_uid)
        if not all(any(r[0] in (USER, uid) for r in subid_ranges(f)) for f in files):
            start = max([100000] + [int(r[1]) + int(r[2]) for f in files for r in subid_ranges(f)])
            ids = f"{start}-{start + 65535}"
            run("usermod", "--add-subuids", ids, "--add-subgids", ids, USER)
            cls.ws.on_cleanup(lambda: run("usermod", "--del-subuids", ids, "--del-subgids", ids,
                                          USER))
            h.log(f"subordinate ids {ids} added for {USER}")

    def test_rootless_engine(self):
        d = RootlessDockerd(os.path.join(self.ws.dir, "rl"))
        self.ws.on_cleanup(d.stop)
        d.start()
        uid = pwd.getpwnam(USER).pw_uid
        self.assertEqual(os.stat(f"/proc/{d.proc.pid}").st_uid, uid, "rootlesskit runs as USER")
        self.assertEqual(os.stat(d.sock).st_uid, uid)
        self.assertIn("name=rootless", d.docker("info", "--format", "{{json .SecurityOptions}}"))
        d.make_busybox_image()
        d.docker("run", "-d", "--name", "pre", h.TEST_IMAGE, *h.IDLE_CMD)

        agent = user_agent(self.ws, d.endpoint, "rootless").start()
        agent.wait_ready()
        self.assertIn(f"docker endpoint {d.endpoint},", agent.log_text())
        snapshot = h.wait_until(
            lambda: h.read_sqlite(agent.data_dir, "SELECT record FROM events WHERE kind = "
                                                  "'container.snapshot'"), 10, "snapshot of pre")
        self.assertEqual(json.loads(snapshot[0][0])["container"]["name"], "pre")
        # Where rootless containers get no cgroup of their own (cgroup v1, or no systemd), the
        # agent ties the init to its container by its start time (docs/operations.md).
        evidence = h.wait_until(
            lambda: h.read_sqlite(agent.data_dir, "SELECT record FROM events WHERE kind = "
                                                  "'container.evidence'"), 10, "evidence of pre")
        ev = json.loads(evidence[0][0])["evidence"]
        h.log(f"evidence of pre: {ev['status']}: {ev.get('reason', '')}")
        self.assertIn(ev["status"], ("complete", "partial"), ev.get("reason"))
        self.assertEqual(ev["processTree"]["processes"][0]["cmdline"], list(h.IDLE_CMD))
        check_lifecycle(self, d, agent)


if __name__ == "__main__":
    missing = [t for t in TOOLS if not shutil.which(t)]
    if not os.path.exists(ROOTLESS_SH):
        missing.append("dockerd-rootless.sh (docker.io)")
    if os.geteuid() == 0 and missing:
        print(f"{'FAIL' if os.environ.get('CI') else 'SKIP'}: missing: {', '.join(missing)} "
              f"(Debian packages acl, rootlesskit, uidmap)")
        sys.exit(1 if os.environ.get("CI") else 77)
    h.main(globals())
