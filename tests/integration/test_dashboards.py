#!/usr/bin/python3
"""dashboards/: the alert rules pass `promtool check rules` and their `promtool test rules`
cases; the Grafana dashboard is well formed and every query parses; every metric the rules and
the dashboard use is exported by the real agent; a real Prometheus scrapes the agent, evaluates
every rule, and ZastavaDockerDisconnected goes pending when dockerd stops."""

import json
import os
import re
import subprocess
import sys
import tempfile
import unittest
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402

ARGS = None
JOB = "zastava-agent"  # the scrape job name the rules expect
RULES = "zastava-agent.rules.yml"
RULE_TESTS = "zastava-agent.rules.test.yml"
DASHBOARD = "zastava-observability.json"
# Grafana's variables in the dashboard queries, and values that make them plain PromQL.
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$__interval": "15s", "$__range": "1h"}
INSTANCE_SELECTOR = 'instance=~"$instance"'
# A metric name; not the middle of a recorded name such as instance:zastava_agent_x:10m.
METRIC_RE = re.compile(r"(?<![\w:])zastava_agent_\w+")
HISTOGRAM_SUFFIX_RE = re.compile(r"_(bucket|sum|count)$")


def dashboards_path(name):
    return os.path.join(ARGS.source_dir, "dashboards", name)


def read_text(path):
    with open(path) as f:
        return f.read()


def run(cmd, cwd=None):
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=120)


def metric_families(text):
    """The metric names in text, histogram series (_bucket, _sum, _count) as their family."""
    return {HISTOGRAM_SUFFIX_RE.sub("", name) for name in METRIC_RE.findall(text)}


def load_dashboard():
    with open(dashboards_path(DASHBOARD)) as f:
        return json.load(f)


def all_panels(dashboard):
    """Top-level panels and the panels inside collapsed rows."""
    top = dashboard["panels"]
    return top + [p for row in top for p in row.get("panels", [])]


def panel_exprs(dashboard):
    """[(panel title, expr)] of every query target."""
    return [(p["title"], t["expr"]) for p in all_panels(dashboard) for t in p.get("targets", [])]


def to_promql(expr, instance_regex=".*"):
    """A dashboard query with Grafana's variables replaced, ready for promtool or Prometheus."""
    expr = expr.replace("$instance", instance_regex)
    for var, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(var, value)
    assert "$" not in expr, f"unknown Grafana variable in {expr}"
    return expr


def overlap(a, b):
    return (a["x"] < b["x"] + b["w"] and b["x"] < a["x"] + a["w"] and
            a["y"] < b["y"] + b["h"] and b["y"] < a["y"] + a["h"])


def layout_problems(panels):
    """Unique ids, a type, a gridPos inside 24 columns, no two panels on the same cells."""
    problems = []
    ids = [p.get("id") for p in panels]
    if len(ids) != len(set(ids)):
        problems.append(f"panel ids not unique: {sorted(ids, key=str)}")
    for p in panels:
        g = p["gridPos"]
        if not p.get("type"):
            problems.append(f"panel {p.get('id')}: no type")
        if not (g.get("w", 0) > 0 and g.get("h", 0) > 0 and g.get("x", -1) >= 0 and
                g.get("y", -1) >= 0 and g["x"] + g["w"] <= 24):
            problems.append(f"panel {p.get('id')} {p.get('title')!r}: bad gridPos {g}")
    for i, a in enumerate(panels):
        for b in panels[i + 1:]:
            if overlap(a["gridPos"], b["gridPos"]):
                problems.append(f"panels {a['title']!r} and {b['title']!r} overlap")
    return problems


def query_problems(panels):
    """Every non-row panel and target names the datasource; every expr selects $instance."""
    problems = []
    for p in panels:
        if p["type"] == "row":
            continue
        if p.get("datasource", {}).get("uid") != "${datasource}":
            problems.append(f"panel {p['title']!r}: datasource {p.get('datasource')}")
        if not p.get("targets"):
            problems.append(f"panel {p['title']!r}: no targets")
        for t in p.get("targets", []):
            if t.get("datasource", {}).get("uid") != "${datasource}":
                problems.append(f"panel {p['title']!r} {t.get('refId')}: no datasource")
            if INSTANCE_SELECTOR not in t.get("expr", ""):
                problems.append(f"panel {p['title']!r} {t.get('refId')}: expr without "
                                f"{INSTANCE_SELECTOR}: {t.get('expr')}")
    return problems


class RulesAndDashboard(unittest.TestCase):
    def test_promtool_check_rules(self):
        """`promtool check rules` accepts the rules file"""
        res = run(["promtool", "check", "rules", dashboards_path(RULES)])
        h.log(res.stdout.strip())
        self.assertEqual(res.returncode, 0, res.stdout + res.stderr)

    def test_promtool_test_rules(self):
        """`promtool test rules`: every alert fires where it should and nowhere else"""
        res = run(["promtool", "test", "rules", RULE_TESTS], cwd=dashboards_path(""))
        h.log(res.stdout.strip())
        self.assertEqual(res.returncode, 0, res.stdout + res.stderr)

    def test_dashboard_structure(self):
        """dashboard: keys, DS_PROMETHEUS input, datasource and instance variables, layout"""
        d = load_dashboard()
        for key in ("__inputs", "panels", "templating", "title", "uid", "schemaVersion", "time"):
            self.assertIn(key, d)
        self.assertGreaterEqual(d["schemaVersion"], 36)
        self.assertIn(("DS_PROMETHEUS", "datasource", "prometheus"),
                      [(i.get("name"), i.get("type"), i.get("pluginId")) for i in d["__inputs"]])
        variables = {v["name"]: v for v in d["templating"]["list"]}
        self.assertEqual((variables["datasource"]["type"], variables["datasource"]["query"]),
                         ("datasource", "prometheus"))
        instance = variables["instance"]
        self.assertEqual(instance["type"], "query")
        self.assertEqual(instance["datasource"]["uid"], "${datasource}")
        self.assertIn("label_values(zastava_agent_build_info, instance)",
                      json.dumps(instance["query"]))
        panels = all_panels(d)
        h.log(f"dashboard: {len(panels)} panels, {len(panel_exprs(d))} queries")
        self.assertEqual(layout_problems(panels) + query_problems(panels), [])

    def test_dashboard_queries_parse(self):
        """every dashboard query parses (promtool check rules on them as recording rules)"""
        exprs = [to_promql(expr) for _, expr in panel_exprs(load_dashboard())]
        lines = ["groups:", "  - name: dashboard-queries", "    rules:"]
        for i, expr in enumerate(exprs):
            lines += [f"      - record: dashboard:query_{i}", f"        expr: {json.dumps(expr)}"]
        with tempfile.NamedTemporaryFile("w", suffix=".yml") as f:
            f.write("\n".join(lines) + "\n")
            f.flush()
            res = run(["promtool", "check", "rules", f.name])
        self.assertEqual(res.returncode, 0, res.stdout + res.stderr)
        h.log(f"promtool parsed all {len(exprs)} dashboard queries")


class LocalPrometheus:
    """Debian's prometheus on 127.0.0.1 in work_dir: scrapes one agent every second as job
    zastava-agent and evaluates rules_path every second."""

    def __init__(self, work_dir, rules_path, agent_port):
        self.dir = work_dir
        self.rules_path = rules_path
        self.target = f"127.0.0.1:{agent_port}"
        self.port = h.free_port()
        self.log_path = os.path.join(work_dir, "prometheus.log")
        self.proc = None

    def config_text(self):
        return "\n".join([
            "global:", "  scrape_interval: 1s", "  evaluation_interval: 1s",
            "rule_files:", f"  - {json.dumps(self.rules_path)}",
            "scrape_configs:", f"  - job_name: {JOB}", "    static_configs:",
            f"      - targets: ['{self.target}']", ""])

    def start(self, timeout=60):
        os.makedirs(self.dir, exist_ok=True)
        config = os.path.join(self.dir, "prometheus.yml")
        with open(config, "w") as f:
            f.write(self.config_text())
        with open(self.log_path, "ab") as logf:
            self.proc = subprocess.Popen(
                ["prometheus", f"--config.file={config}",
                 f"--storage.tsdb.path={os.path.join(self.dir, 'tsdb')}",
                 f"--web.listen-address=127.0.0.1:{self.port}"],
                stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True)
        h.wait_until(self._ready_or_died, timeout, f"prometheus /-/ready on :{self.port}")
        h.log(f"prometheus up (pid {self.proc.pid}) on :{self.port} scraping {self.target}")

    def _ready_or_died(self):
        if self.proc.poll() is not None:
            raise RuntimeError(f"prometheus exited {self.proc.returncode}:\n"
                               f"{h.tail(self.log_path)}")
        return h.http_request("127.0.0.1", self.port, "GET", "/-/ready", timeout=2)[0] == 200

    def api(self, path, **params):
        """The `data` of GET /api/v1/<path>; raises unless the status is success."""
        query = "?" + urllib.parse.urlencode(params) if params else ""
        status, _, body = h.http_request("127.0.0.1", self.port, "GET",
                                         f"/api/v1/{path}{query}", timeout=10)
        reply = json.loads(body)
        if status != 200 or reply.get("status") != "success":
            raise AssertionError(f"/api/v1/{path} {params}: {status} {reply}")
        return reply["data"]

    def query(self, expr):
        return self.api("query", query=expr)["result"]

    def rules(self):
        return [r for g in self.api("rules")["groups"] for r in g["rules"]]

    def stop(self):
        h.terminate(self.proc, 30)


class LiveAgentAndPrometheus(h.WorkspaceTest):
    @classmethod
    def set_up(cls):
        cls.d = cls.ws.dockerd()
        cls.d.make_busybox_image()
        # A seal every second: the Seals panels have data within the test's wait (the default
        # interval is a minute, and "since the last seal" has no value before the first one).
        cls.agent = cls.ws.agent(ARGS.agent, cls.d.endpoint,
                                 extra_args=["--ledger-seal-interval-seconds", "1"])
        cls.agent.start()
        cls.agent.wait_ready()
        cls.d.docker("run", "-d", "--name", "idle", h.TEST_IMAGE, *h.IDLE_CMD)
        cls.d.docker("stop", "idle")
        h.wait_metric(cls.agent, "zastava_agent_events_total", lambda v: v is not None,
                      labels={"kind": "container.stop", "source": "stream"})
        cls.scrape = cls.agent.metrics()
        cls.prom = LocalPrometheus(os.path.join(cls.ws.dir, "prom"), dashboards_path(RULES),
                                   cls.agent.port)
        cls.ws.on_cleanup(cls.prom.stop)
        cls.prom.start()
        h.wait_until(lambda: cls.prom.query(f'up{{job="{JOB}"}} == 1'), 30,
                     f'Prometheus: up{{job="{JOB}"}} == 1')

    def test_metrics_used_are_exported(self):
        """every metric the rules and the dashboard use is in the agent's /metrics"""
        used = metric_families(read_text(dashboards_path(RULES)) +
                               read_text(dashboards_path(DASHBOARD)))
        exported = {HISTOGRAM_SUFFIX_RE.sub("", n) for n, _, _ in h.parse_metrics(self.scrape)}
        missing = used - exported
        h.log(f"{len(used)} metric families used and checked against /metrics")
        self.assertEqual(sorted(missing), [], "used but not exported")

    def test_prometheus_evaluates_every_rule(self):
        """Prometheus loads every rule, evaluates it with health ok; alerts carry severity,
        summary and a description naming their metrics and the journal"""
        expected = len(re.findall(r"^\s*- (alert|record):", read_text(dashboards_path(RULES)),
                                  re.M))

        def evaluated():
            rules = self.prom.rules()
            done = all(not r["lastEvaluation"].startswith("0001-") for r in rules)
            return rules if done and len(rules) == expected else None
        rules = h.wait_until(evaluated, 30, f"{expected} rules evaluated")
        self.assertEqual([(r["name"], r["health"], r.get("lastError")) for r in rules
                          if r["health"] != "ok"], [])
        alerts = [r for r in rules if r["type"] == "alerting"]
        for rule in alerts:
            description = rule["annotations"].get("description", "")
            self.assertIn(rule["labels"].get("severity"), ("critical", "warning"), rule["name"])
            self.assertTrue(rule["annotations"].get("summary"), rule["name"])
            self.assertLessEqual(metric_families(rule["query"]), metric_families(description),
                                 f"{rule['name']}: description names the metrics it uses")
            self.assertIn("journalctl -u zastava-agent", description, rule["name"])
        h.log(f"Prometheus: {len(rules)} rules ({len(alerts)} alerts, "
              f"{len(rules) - len(alerts)} recording) evaluated, health ok")

    def test_prometheus_answers_every_panel_query(self):
        """every dashboard query, for this agent's instance, returns data from Prometheus (the
        backend ones too: their metrics are exported at 0 while delivery is off)"""
        instance = f"127.0.0.1:{self.agent.port}"
        queries = [(title, to_promql(expr, instance)) for title, expr in
                   panel_exprs(load_dashboard())]

        def without_data():
            return [f"{title}: {q}" for title, q in queries if not self.prom.query(q)]
        try:  # rate() needs two scrapes in its range
            h.wait_until(lambda: not without_data(), 30, "data for every dashboard query")
        except AssertionError:
            pass
        self.assertEqual(without_data(), [], "dashboard queries without data")
        h.log(f"Prometheus answered all {len(queries)} dashboard queries")
        values = self.prom.api("label/instance/values", **{"match[]": "zastava_agent_build_info"})
        self.assertEqual(values, [instance], "values of the $instance variable")

    def test_docker_disconnected_alert_goes_pending(self):
        """dockerd stopped: Prometheus sees zastava_agent_docker_connected 0 and
        ZastavaDockerDisconnected becomes pending for this instance"""
        instance = f"127.0.0.1:{self.agent.port}"

        def alert_state():
            for a in self.prom.api("alerts")["alerts"]:
                if (a["labels"]["alertname"], a["labels"]["instance"]) == \
                        ("ZastavaDockerDisconnected", instance):
                    return a["state"]
            return None
        self.d.stop()
        try:
            state = h.wait_until(alert_state, 30, "ZastavaDockerDisconnected in /api/v1/alerts")
            h.log(f"Prometheus: ZastavaDockerDisconnected {state} for {instance}")
            self.assertIn(state, ("pending", "firing"))
        finally:
            self.d.start()
            self.agent.wait_ready()
        h.wait_until(lambda: alert_state() is None, 30, "ZastavaDockerDisconnected to clear")


if __name__ == "__main__":
    h.REQUIRED_TOOLS = (*h.REQUIRED_TOOLS, "prometheus")  # besides promtool: a real Prometheus
    h.main(globals())
