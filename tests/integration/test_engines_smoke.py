#!/usr/bin/python3
"""The other engines (engines.py) start and answer like an engine the agent can watch.

For Docker 26.1 (Debian 13's, fetched into the engine cache) and Podman 4.3's compat API, each
in its own workspace: /_ping answers OK with an Api-Version header, /version has ApiVersion
(1.45, 1.41), a busybox image is imported, one container lifecycle (run -d, exec, stop, rm)
runs, and /events for that window returned create, start, the exec, die with exit code and
the removal. Each engine is skipped (with the reason) when it is not available here, and
fails under CI.

    python3 tests/integration/test_engines_smoke.py [--agent BUILD/agent/zastava-agent]
        [--source-dir .] [--engine-cache DIR]

--agent and --source-dir are accepted like the other scripts' and unused, except that the
engine cache defaults to BUILD/engine-cache next to --agent (ZIT_ENGINE_CACHE overrides; with
neither, /tmp/zit-engine-cache). Not registered in CMake yet."""

import argparse
import os
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import engines  # noqa: E402
import harness as h  # noqa: E402

ARGS = None


class EngineSmoke:
    """Mixin: cls.engine(ws) starts the engine; the test is the same for each."""
    api_version = None
    exec_actions = None  # the event actions an exec produces

    @classmethod
    def set_up(cls):  # h.WorkspaceTest's: one workspace per class, closed on failure too
        cls.d = cls.engine(cls.ws)

    def test_ping_version_lifecycle_events(self):
        d = self.d
        status, headers, body = h.http_request(None, None, "GET", "/_ping", unix_path=d.sock)
        self.assertEqual((status, body), (200, b"OK"))
        self.assertEqual(headers.get("api-version"), self.api_version, headers)
        status, version = d.api("GET", "/version")
        self.assertEqual(status, 200)
        self.assertEqual(version["ApiVersion"], self.api_version, version)
        h.log(f"{d.name}: {version['Version']}, API {version['ApiVersion']}")

        d.make_busybox_image()
        t0 = time.time()
        cid = d.docker("run", "-d", "--name", "smoke", "--network", "none", h.TEST_IMAGE,
                       *h.IDLE_CMD)
        d.docker("exec", "smoke", "true")
        # -t: podman 4.3 gives a container made through the compat API a stop timeout of 0
        # (SIGKILL right after SIGTERM, exit 137) unless the request names one
        d.docker("stop", "-t", "5", "smoke")
        status, info = d.api("GET", f"/containers/{cid}/json")
        self.assertEqual(status, 200)
        self.assertEqual((info["State"]["Status"], info["State"]["ExitCode"]), ("exited", 0))
        d.docker("rm", "smoke")
        t1 = time.time() + 0.5

        def lifecycle():
            evs = d.events(t0 - 0.05, t1, {cid})
            actions = [e["Action"].split(":")[0] for e in evs]
            return evs if self.removal in actions else None
        evs = h.wait_until(lifecycle, 10, f"{d.name} events up to {self.removal}")
        actions = [e["Action"].split(":")[0] for e in evs]
        h.log(f"{d.name} events: {actions}")
        for want in ["create", "start", *self.exec_actions, "die", self.removal]:
            self.assertIn(want, actions, f"{want} missing from {actions}")
        self.assertLess(actions.index("create"), actions.index("start"))
        self.assertLess(actions.index("die"), actions.index(self.removal))
        die = evs[actions.index("die")]
        self.assertEqual(die["Actor"]["Attributes"].get("exitCode"), "0", die)
        self.assertEqual(die["Actor"]["Attributes"].get("name"), "smoke", die)


class Docker26Smoke(EngineSmoke, h.WorkspaceTest):
    api_version = "1.45"
    exec_actions = ["exec_create", "exec_start", "exec_die"]
    removal = "destroy"

    @classmethod
    def engine(cls, ws):
        return engines.start_docker26(ws, ARGS.engine_cache)


class PodmanSmoke(EngineSmoke, h.WorkspaceTest):
    api_version = "1.41"
    exec_actions = ["exec", "exec_died"]  # podman's own names, also through the compat API
    removal = "remove"  # podman says remove, never destroy

    @classmethod
    def engine(cls, ws):
        return engines.start_podman(ws)


def main():
    global ARGS
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--agent")
    parser.add_argument("--source-dir")
    parser.add_argument("--engine-cache")
    ARGS, rest = parser.parse_known_args()
    ARGS.engine_cache = ARGS.engine_cache or engines.default_cache_dir(ARGS.agent)
    if os.geteuid() != 0:
        if os.environ.get("CI"):
            print("FAIL: engines need root")
            sys.exit(1)
        print("SKIP: engines need root")
        sys.exit(77)
    prog = unittest.main(argv=[sys.argv[0]] + rest, verbosity=2, exit=False)
    result = prog.result
    if result.wasSuccessful() and result.testsRun and len(result.skipped) == result.testsRun:
        sys.exit(77)  # nothing ran: CTest's skip
    sys.exit(0 if result.wasSuccessful() else 1)


if __name__ == "__main__":
    main()
