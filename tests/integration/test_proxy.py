#!/usr/bin/python3
"""The agent behind haproxy configured like tecnativa/docker-socket-proxy.

Allowed: CONTAINERS=1 EVENTS=1 PING=1 VERSION=1 (nothing else, GET only). First prove the proxy
refuses everything else with haproxy's HTML 403; then the agent works unchanged through it
(snapshot + lifecycle recorded, /readyz 200) and haproxy's log shows it sent only the five
read-only requests (docs/architecture.md, "The promises"). With CONTAINERS=0 or EVENTS=0 the
agent stays up, is not ready, and its log names the refused endpoint and the permission needed.
The engine is ZIT_ENGINE's (harness.Workspace.dockerd); the agent through the proxy ends with
the ENGINE MATRIX comparison of its ledger with the engine's own /events
(harness.engine_matrix_check)."""

import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402

ARGS = None
AGENT_ALLOWED = re.compile(
    r"^(/v[\d.]+)?/(_ping|version|containers/json|containers/[A-Za-z0-9_.-]+/json|events)"
    r"(\?.*)?$")


class Proxy(h.WorkspaceTest):
    @classmethod
    def set_up(cls):
        cls.d = cls.ws.dockerd()
        cls.d.make_busybox_image()
        cls.pre_id = cls.d.docker("run", "-d", "--name", "pre", h.TEST_IMAGE, *h.IDLE_CMD)

    def assert_haproxy_403(self, proxy, method, path):
        status, headers, body = proxy.request(method, path, body={} if method == "POST" else None)
        self.assertEqual(status, 403, f"{method} {path} through the proxy")
        self.assertIn(b"<h1>403 Forbidden</h1>", body, f"{method} {path}: haproxy's HTML 403")
        self.assertIn("text/html", headers.get("content-type", ""))

    def test_1_allowed_proxy(self):
        d = self.d
        proxy = self.ws.haproxy(d.sock, {"CONTAINERS": 1, "EVENTS": 1, "PING": 1, "VERSION": 1})
        # The proxy really is restrictive.
        self.assert_haproxy_403(proxy, "GET", "/info")
        self.assert_haproxy_403(proxy, "GET", "/v1.41/info")
        self.assert_haproxy_403(proxy, "POST", "/containers/create")
        self.assert_haproxy_403(proxy, "POST", "/v1.41/containers/create?name=x")
        self.assert_haproxy_403(proxy, "GET", "/images/json")
        self.assertEqual(proxy.request("GET", "/_ping")[0], 200)
        self.assertEqual(proxy.request("GET", "/v1.41/containers/json")[0], 200)
        n_test_requests = len(h.wait_until(lambda: len(proxy.requests_seen()) >= 7 and
                                           proxy.requests_seen(), 5, "haproxy log lines"))

        agent = self.ws.agent(ARGS.agent, proxy.endpoint, name="allowed")
        span = h.EngineSpan(d)
        agent.start()
        agent.wait_ready()
        snaps = h.wait_until(
            lambda: [r for r in h.read_sqlite(agent.data_dir, "SELECT kind, container_id FROM "
                                              "events") if r == ("container.snapshot",
                                                                 self.pre_id)],
            20, "snapshot of the pre-existing container")
        self.assertEqual(len(snaps), 1)

        d.docker("create", "--name", "via-proxy", h.TEST_IMAGE, *h.IDLE_CMD)
        d.docker("start", "via-proxy")
        # -t: Podman's compat API gives a container a stop timeout of 0 (SIGKILL at once) else
        d.docker("stop", "-t", "5", "via-proxy")
        d.docker("rm", "via-proxy")
        events = span.read()
        self.assertTrue(events)
        missing = h.wait_recorded(agent, [h.expected_event_id(e) for e in events])
        self.assertEqual(missing, set(), "events not recorded through the proxy")
        self.assertEqual(agent.http_get("/readyz")[0], 200)
        code, _ = agent.stop()
        self.assertEqual(code, 0)
        # each once with the engine's fields, nothing twice, files agree, final states equal
        self.assertEqual(h.engine_matrix_check(d, agent, events, ARGS.source_dir), [])

        # Promise 1: only GET _ping/version/containers/json/containers/{id}/json/events.
        # haproxy logs the event stream when it closes, i.e. now that the agent has stopped.
        try:
            h.wait_until(lambda: any("/events" in r[2] for r in
                                     proxy.requests_seen()[n_test_requests:]),
                         5, "haproxy log line of the agent's event stream")
        except AssertionError as exc:
            h.log(f"note: {exc}")
        seen = proxy.requests_seen()[n_test_requests:]
        h.log(f"agent sent {len(seen)} requests through the proxy")
        self.assertTrue(seen, "haproxy logged no agent requests")
        bad = [r for r in seen if r[1] != "GET" or not AGENT_ALLOWED.match(r[2]) or r[0] == 403]
        self.assertEqual(bad, [], "requests outside the read-only set, or refused")
        proxy.stop()

    def run_refused(self, allow, needed, name):
        proxy = self.ws.haproxy(self.d.sock, allow)
        self.assert_haproxy_403(proxy, "GET", "/events" if needed == "EVENTS=1"
                                else "/containers/json")
        agent = self.ws.agent(ARGS.agent, proxy.endpoint, name=name)
        agent.start()
        agent.wait_http()
        h.wait_until(lambda: needed in agent.log_text(), 20,
                     f"agent log naming the needed permission {needed!r}")
        h.log("agent log lines naming it: " + " | ".join(
            line for line in agent.log_text().splitlines() if needed in line)[:500])
        self.assertTrue(agent.alive(), "agent must keep running behind a refusing proxy")
        status, body = agent.http_get("/readyz")
        h.log(f"/readyz: {status} {body.strip()[:200]!r}")
        self.assertEqual(status, 503, "/readyz while the proxy refuses a needed endpoint")
        self.assertEqual(agent.http_get("/livez")[0], 200)
        code, _ = agent.stop()
        self.assertEqual(code, 0)
        proxy.stop()
        return agent.log_text()

    def test_2_containers_refused(self):
        log_text = self.run_refused({"EVENTS": 1, "PING": 1, "VERSION": 1}, "CONTAINERS=1",
                                    "nocontainers")
        self.assertRegex(log_text, r"/containers/json", "log names the refused endpoint")

    def test_3_events_refused(self):
        log_text = self.run_refused({"CONTAINERS": 1, "PING": 1, "VERSION": 1}, "EVENTS=1",
                                    "noevents")
        self.assertRegex(log_text, r"/events", "log names the refused endpoint")


if __name__ == "__main__":
    h.main(globals())
