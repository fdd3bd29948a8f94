#!/usr/bin/python3
"""/metrics is clean Prometheus text with the documented names and honest values; /healthz,
/livez answer; configuration errors exit 2 naming the key; --check-config, --version, --help;
with no engine at all the agent keeps running, not ready, and says which endpoint."""

import os
import re
import socket
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402

ARGS = None


def documented_metric_names():
    """The metric names of docs/metrics.md's table."""
    with open(os.path.join(ARGS.source_dir, "docs", "metrics.md")) as f:
        return re.findall(r"^\| `(zastava_agent_\w+)`", f.read(), re.M)


class Metrics(h.WorkspaceTest):
    @classmethod
    def set_up(cls):
        cls.d = cls.ws.dockerd()
        cls.d.make_busybox_image()
        cls.d.docker("run", "-d", "--name", "pre", h.TEST_IMAGE, *h.IDLE_CMD)
        cls.agent = cls.ws.agent(ARGS.agent, cls.d.endpoint)
        cls.agent.start()
        cls.agent.wait_ready()
        # events_total counts a record once durable: committed to SQLite, then its NDJSON line
        # synced; waiting for the SQLite row alone raced with the sync
        h.wait_metric(cls.agent, "zastava_agent_events_total", lambda v: (v or 0) >= 1, 20,
                      {"kind": "container.snapshot", "source": "snapshot"})
        cls.text = cls.agent.metrics()

    def test_promtool_check_metrics(self):
        """`promtool check metrics` on /metrics: exit 0, no complaints"""
        res = subprocess.run(["promtool", "check", "metrics"], input=self.text,
                             capture_output=True, text=True, timeout=30)
        self.assertEqual((res.returncode, res.stdout.strip(), res.stderr.strip()), (0, "", ""),
                         "promtool output")

    def test_names_present(self):
        """every metric of docs/metrics.md is exposed (as a sample or # TYPE line), the backend
        ones at 0 with delivery off, and nothing undocumented is"""
        names = {n for n, _, _ in h.parse_metrics(self.text)}
        types = set(re.findall(r"^# TYPE (\S+) ", self.text, re.M))
        documented = documented_metric_names()
        self.assertGreaterEqual(len(documented), 39)
        # Documented as absent until the first engine event; this agent has only seen a snapshot.
        absent_until_event = {"zastava_agent_cursor_lag_seconds"}
        missing = [n for n in documented
                   if n not in names and n not in types and n not in absent_until_event]
        self.assertEqual(missing, [], "metrics missing from /metrics")
        self.assertEqual(sorted(types - set(documented)), [], "exposed but not in docs/metrics.md")
        self.assertEqual(h.metric_value(self.text, "zastava_agent_backend_backlog_records"), 0)

    def test_values_honest(self):
        """docker_connected 1, buffer_writable 1, a snapshot counted in events_total"""
        self.assertEqual(h.metric_value(self.text, "zastava_agent_docker_connected"), 1)
        self.assertEqual(h.metric_value(self.text, "zastava_agent_buffer_writable"), 1)
        snap = h.metric_value(self.text, "zastava_agent_events_total",
                              {"kind": "container.snapshot", "source": "snapshot"})
        self.assertIsNotNone(snap, "events_total{kind=container.snapshot,source=snapshot}")
        self.assertGreaterEqual(snap, 1)
        self.assertEqual(h.metric_value(self.text, "zastava_agent_build_info"), 1)
        self.assertEqual(h.metric_value(self.text, "zastava_agent_invariant_failures_total"), 0)

    def test_health_endpoints(self):
        """/healthz, /livez, /readyz 200 while all is well"""
        for path in ("/healthz", "/livez", "/readyz"):
            self.assertEqual(self.agent.http_get(path)[0], 200, path)


class NoEngine(h.WorkspaceTest):
    def test_unreachable_endpoint(self):
        """unix:///nonexistent.sock: keeps running, /readyz 503 naming it, /livez 200"""
        agent = self.ws.agent(ARGS.agent, "unix:///nonexistent.sock")
        agent.start()
        agent.wait_http()
        # Until its first attempt the reason is "not contacted yet"; then it names the socket.
        def names_endpoint():
            status, body = agent.http_get("/readyz")
            return (status, body) if status == 503 and "/nonexistent.sock" in body else None
        status, body = h.wait_until(names_endpoint, 10, "/readyz 503 naming the endpoint")
        h.log(f"/readyz: {status} {body.strip()[:200]!r}")
        self.assertEqual(agent.http_get("/livez")[0], 200)
        self.assertEqual(agent.http_get("/healthz")[0], 200)
        self.assertEqual(agent.metric_value("zastava_agent_docker_connected"), 0)
        self.assertTrue(agent.alive())
        code, secs = agent.stop()
        self.assertEqual(code, 0)
        self.assertLess(secs, 5.0)


class StartUp(h.WorkspaceTest):
    def test_port_taken(self):
        """a health port already taken: exit 1 at once, naming the address and the reason"""
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen(1)
            port = taken.getsockname()[1]
            data = os.path.join(self.ws.dir, "taken", "data")
            res = h.run_agent_once(ARGS.agent, ["--data-directory", data, "--docker-endpoint",
                                                "unix:///nonexistent.sock", "--health-address",
                                                "127.0.0.1", "--health-port", str(port)])
        self.assertEqual(res.returncode, 1, res.stderr)
        self.assertIn(f"cannot listen for health checks on 127.0.0.1:{port}: "
                      "Address already in use", res.stderr)

    def test_earlier_invariant_failures_counted(self):
        """the failures recorded in <data dir>/invariant-failures.log start the counter"""
        agent = self.ws.agent(ARGS.agent, "unix:///nonexistent.sock")
        os.makedirs(agent.data_dir, mode=0o750)
        line = "2026-01-01T00:00:00Z invariant failed at buffer/record.cpp:1: what broke\n"
        with open(os.path.join(agent.data_dir, "invariant-failures.log"), "w") as f:
            f.write(line * 2)
        agent.start()
        agent.wait_http()
        # The health server starts first, the data directory is read just after.
        h.wait_metric(agent, "zastava_agent_invariant_failures_total", lambda v: v == 2, 10)
        h.wait_until(lambda: "2 internal invariant failure(s) of earlier runs are recorded in"
                     in agent.log_text(), 10, "the log line about earlier failures")
        code, _ = agent.stop()
        self.assertEqual(code, 0)


class Config(unittest.TestCase):
    def run_agent(self, *args, env=None):
        base = ["--data-directory", "/tmp/zit-config-never-created", "--docker-endpoint",
                "unix:///nonexistent.sock", "--health-port", str(h.free_port())]
        return h.run_agent_once(ARGS.agent, [*base, *args], env=env)

    def assert_config_error(self, res, *names):
        self.assertEqual(res.returncode, 2, f"exit code; stderr: {res.stderr!r}")
        for name in names:
            self.assertIn(name, res.stderr, "stderr names the key")

    def test_bad_port_env(self):
        """ZASTAVA_AGENT__HealthCheck__Port=abc / 70000 -> exit 2 naming the key"""
        for value in ("abc", "70000", "0"):
            res = h.run_agent_once(ARGS.agent, ["--data-directory", "/tmp/zit-config-never"],
                                   env={"ZASTAVA_AGENT__HealthCheck__Port": value})
            self.assert_config_error(res, "ZASTAVA_AGENT__HealthCheck__Port")

    def test_bad_flag_value(self):
        """--health-port abc -> exit 2 naming the flag"""
        res = self.run_agent("--health-port", "abc")
        self.assertEqual(res.returncode, 2, res.stderr)
        self.assertRegex(res.stderr, r"health-port|HealthCheck")

    def test_unknown_key(self):
        """unknown ZASTAVA_AGENT__Foo -> exit 2 naming it"""
        res = self.run_agent(env={"ZASTAVA_AGENT__Foo": "1"})
        self.assert_config_error(res, "ZASTAVA_AGENT__Foo")

    def test_check_config(self):
        """--check-config prints the effective configuration and exits 0"""
        port = str(h.free_port())
        res = h.run_agent_once(ARGS.agent, ["--check-config", "--health-port", port,
                                            "--docker-endpoint", "tcp://127.0.0.1:2375"],
                               env={"ZASTAVA_AGENT__DataDirectory": "/tmp/zit-cfg-dd"})
        self.assertEqual(res.returncode, 0, res.stderr)
        out = res.stdout
        for needle in ("DockerEndpoint", "tcp://127.0.0.1:2375", "DataDirectory",
                       "/tmp/zit-cfg-dd", port):
            self.assertIn(needle, out)
        # docs/configuration.md: one `Key = value (source)` line per key.
        self.assertIn("flag --docker-endpoint", out)
        self.assertIn("env ZASTAVA_AGENT__DataDirectory", out)
        self.assertIn("default", out)
        self.assertFalse(os.path.exists("/tmp/zit-cfg-dd"), "--check-config must not create "
                                                            "the data directory")

    def test_docker_host_honoured(self):
        """DOCKER_HOST is used when no endpoint is configured"""
        res = h.run_agent_once(ARGS.agent, ["--check-config"],
                               env={"DOCKER_HOST": "tcp://127.0.0.1:23999"})
        self.assertEqual(res.returncode, 0, res.stderr)
        self.assertIn("tcp://127.0.0.1:23999", res.stdout)

    def test_log_levels(self):
        """log levels accepted in both spellings; a bad one is exit 2"""
        for level in ("trace", "debug", "info", "warning", "error", "critical",
                      "Verbose", "Debug", "Information", "Warning", "Error", "Fatal"):
            res = h.run_agent_once(ARGS.agent, ["--check-config", "--log-level", level])
            self.assertEqual(res.returncode, 0, f"--log-level {level}: {res.stderr}")
        res = h.run_agent_once(ARGS.agent, ["--check-config"],
                               env={"Serilog__MinimumLevel__Default": "Warning"})
        self.assertEqual(res.returncode, 0, f"Serilog__MinimumLevel__Default: {res.stderr}")
        self.assertRegex(res.stdout, r"(?i)warning")
        res = h.run_agent_once(ARGS.agent, ["--check-config"],
                               env={"ZASTAVA_AGENT__LogLevel": "loud"})
        self.assert_config_error(res, "ZASTAVA_AGENT__LogLevel")

    def test_version(self):
        """--version exits 0 and prints the project version"""
        with open(os.path.join(ARGS.source_dir, "CMakeLists.txt")) as f:
            version = re.search(r"project\(zastava-agent VERSION ([\d.]+)", f.read()).group(1)
        res = h.run_agent_once(ARGS.agent, ["--version"])
        self.assertEqual(res.returncode, 0, res.stderr)
        self.assertIn(version, res.stdout)

    def test_help(self):
        """--help exits 0 and lists the flags"""
        res = h.run_agent_once(ARGS.agent, ["--help"])
        self.assertEqual(res.returncode, 0, res.stderr)
        for flag in ("--docker-endpoint", "--data-directory", "--health-port", "--check-config"):
            self.assertIn(flag, res.stdout)


if __name__ == "__main__":
    h.main(globals())
