#!/usr/bin/python3
"""Event latency through docker-socket-proxy, driven by bench/run.sh --suite proxy.

Starts a private dockerd (bench/engine.py's, under /tmp/zbe-XXXX) and two haproxy instances in
front of its socket, both with the configuration of tecnativa/docker-socket-proxy
(tests/integration/harness.py's Haproxy: the image's haproxy.cfg with CONTAINERS=1 EVENTS=1
PING=1 VERSION=1):
  proxy           that configuration as the image ships it
  proxy+no-delay  the same plus `option http-no-delay` in its `backend docker-events`
Each repetition starts, side by side on the same engine events, one agent (`--log-level info`,
defaults otherwise, a fresh data dir) and one `curl -sN .../events` per route: direct on the
unix socket, and through each proxy. Then --lifecycles containers are driven over the engine API
one after the other (create, start, kill, die, destroy: 5 events each, the kill --hold-ms after
the start) and, per event, it takes the time from its engine timeNano until
  - the agent's record's observedAt (stamped when the event arrives from the engine),
  - its line appeared in the agent's NDJSON segment,
  - its line appeared in curl's output file (curl -N: no buffering, writes at once).
One thread polls the files every 1 ms and stamps each new line with the wall clock after the
read (the tests' harness.Tailer), so the two file figures carry up to 1 ms of polling; observedAt
does not. It prints every repetition, then a table of medians over repetitions of each
percentile, the ratios proxy ÷ direct and agent ÷ curl, the agent's figures by action, and how
many of its container.start records lack the inspect's facts (`inspectError`: the inspect came
after the container was gone).

Everything started here (containers, agents, curls, haproxies, dockerd, temp dirs) is removed at
the end, on Ctrl-C and on errors too. Run as root (dockerd); absolute times depend on the
machine.
"""
import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.parse

import engine  # bench/engine.py: the private engine, processes, percentiles
from engine import BenchError, fmt, harness, log, med, percentile, ratio

CURL = "/usr/bin/curl"
NO_DELAY = "option http-no-delay"
EVENTS_BACKEND = "backend docker-events\n"
ROUTES = ("direct", "proxy", "proxy+no-delay")
FILTERS = urllib.parse.quote('{"type":["container"]}', safe="")


class NoDelayHaproxy(harness.Haproxy):
    """The tecnativa configuration with `option http-no-delay` in the events backend only."""

    def config_text(self):
        text = super().config_text()
        if EVENTS_BACKEND not in text:
            raise BenchError("the proxy configuration has no `backend docker-events` any more")
        return text.replace(EVENTS_BACKEND, f"{EVENTS_BACKEND}    {NO_DELAY}\n", 1)


class ProxyBench(engine.Bench):
    """bench/engine.py's Bench without the evidence image, with the two proxies."""

    def __init__(self, args):
        super().__init__(args)
        self.proxies = {}
        self.api_version = None

    def start_engine(self):
        for program in ("dockerd", "haproxy", CURL):
            if not shutil.which(program):
                raise BenchError(f"{program} not found: install Debian's docker.io, haproxy and "
                                 f"curl (bench/run.sh does)")
        try:
            self.dockerd.start(timeout=90)
        except (AssertionError, RuntimeError, OSError) as exc:
            raise BenchError(f"dockerd did not start ({exc}); its log:\n"
                             f"{harness.tail(self.dockerd.log_path)}") from None
        self.dockerd.make_busybox_image()
        version = self.dockerd.api("GET", "/version")[1]
        self.api_version = version.get("ApiVersion")
        for name, cls in (("proxy", harness.Haproxy), ("proxy+no-delay", NoDelayHaproxy)):
            proxy_dir = os.path.join(self.work, name.replace("+", "-"))
            os.makedirs(proxy_dir)
            try:
                self.proxies[name] = cls(proxy_dir, self.dockerd.sock).start()
            except (AssertionError, RuntimeError, OSError) as exc:
                raise BenchError(f"haproxy ({name}) did not start: {exc}") from None
        return version

    def endpoint(self, route):
        return self.dockerd.endpoint if route == "direct" else self.proxies[route].endpoint

    def start_route_agent(self, route):
        """A fresh agent on `route`; returns (proc, data dir, port, log path)."""
        self.runs += 1
        run_dir = os.path.join(self.work, f"a{self.runs}")
        data = os.path.join(run_dir, "data")
        os.makedirs(data)
        port = harness.free_port()
        log_path = os.path.join(run_dir, "agent.log")
        cmd = [self.args.agent, "--docker-endpoint", self.endpoint(route), "--data-directory",
               data, "--health-address", "127.0.0.1", "--health-port", str(port),
               "--log-level", "info"]
        with open(log_path, "wb") as out:
            proc = self.procs.start(cmd, out, env=self.agent_env)
        return proc, data, port, log_path

    def start_curl(self, route, out_path):
        """curl -sN of the container events on `route`, into out_path."""
        path = f"/v{self.api_version}/events?filters={FILTERS}"
        if route == "direct":
            cmd = [CURL, "-sN", "--unix-socket", self.dockerd.sock, "http://localhost" + path]
        else:
            cmd = [CURL, "-sN", f"http://127.0.0.1:{self.proxies[route].port}{path}"]
        out = open(out_path, "wb")
        proc = self.procs.start(cmd, out)
        out.close()
        return proc

    def cleanup(self):
        for proxy in self.proxies.values():
            proxy.stop()
        super().cleanup()


def stream_only(agent):
    """[observedAt latency], [line latency] in ms of the agent's stream records."""
    observed = [v[1] / 1e6 for v in agent.values() if v[2] == "stream"]
    appeared = [v[0] / 1e6 for v in agent.values() if v[2] == "stream"]
    return observed, appeared


def starts_without_inspect(lines, ids):
    """(container.start stream records, those with an inspectError) among containers in ids."""
    starts = without = 0
    for raw, _ in lines:
        rec = json.loads(raw)
        if (rec.get("kind") == "container.start" and rec.get("source") == "stream" and
                (rec.get("container") or {}).get("id") in ids):
            starts += 1
            without += "inspectError" in rec
    return starts, without


def latency_run(bench, n_lifecycles, hold_s):
    """One repetition: every route's agent and curl on the same events. Returns
    {route: {"observed": [ms], "agent": [ms], "curl": [ms], "sources": {..}}, "gen_s": s}."""
    agents, curls, outs = {}, {}, {}
    tailer = None
    try:
        for route in ROUTES:
            agents[route] = bench.start_route_agent(route)
        for route in ROUTES:
            proc, _, port, _ = agents[route]
            bench.wait_ready(proc, port, f"the {route} run")
        for route in ROUTES:
            outs[route] = os.path.join(bench.work, f"curl-{route.replace('+', '-')}.out")
            curls[route] = bench.start_curl(route, outs[route])
        sources = {}
        for route in ROUTES:
            data = agents[route][1]
            sources["agent " + route] = (lambda d=data: harness.segment_paths(d))
            sources["curl " + route] = (lambda p=outs[route]: [p])
        tailer = harness.Tailer(sources)
        tailer.start()

        def complete(cids, want):
            return all(len(engine.agent_latencies(tailer.lines["agent " + r], cids)) >= want and
                       len(engine.cli_latencies(tailer.lines["curl " + r], cids)) >= want
                       for r in ROUTES)
        # Warm-up lifecycles, not measured, until every peer has all 5 events of one (curl
        # needs a moment to connect; the proxied ones arrive ~200 ms late).
        for attempt in range(20):
            warm = engine.lifecycle(bench, {"zastava-bench": "warmup"})
            try:
                harness.wait_until(lambda: complete({warm}, 5), 5,
                                   "the warm-up events at every peer", interval=0.1)
                break
            except AssertionError:
                if attempt == 19:
                    raise
        ids = set()
        t0 = time.monotonic()
        for _ in range(n_lifecycles):
            ids.add(engine.lifecycle(bench, {"zastava-bench": "proxy"}, hold_s))
        gen_s = time.monotonic() - t0
        expected = 5 * n_lifecycles
        try:
            harness.wait_until(lambda: complete(ids, expected), 30, "every event at every peer",
                               interval=0.2)
        except AssertionError:
            log("WARNING: not every event reached every peer within 30 s")
        tailer.stop()
        r = {"gen_s": gen_s, "expected": expected}
        for route in ROUTES:
            agent = engine.agent_latencies(tailer.lines["agent " + route], ids)
            observed, appeared = stream_only(agent)
            srcs, by_action = {}, {}
            for v in agent.values():
                srcs[v[2]] = srcs.get(v[2], 0) + 1
                if v[2] == "stream":
                    by_action.setdefault(v[3], []).append((v[1] / 1e6, v[0] / 1e6))
            curl = engine.cli_latencies(tailer.lines["curl " + route], ids)
            r[route] = {"observed": observed, "agent": appeared,
                        "curl": [v / 1e6 for v in curl.values()], "sources": srcs,
                        "by_action": by_action,
                        "starts": starts_without_inspect(tailer.lines["agent " + route], ids)}
    finally:
        if tailer is not None and tailer.is_alive():
            tailer.stop()
        for proc in curls.values():
            bench.procs.stop(proc)
        notes = {}
        for route, (proc, data, _, log_path) in agents.items():
            notes[route] = bench.stop_agent(proc, data, log_path)[2]
        for path in outs.values():
            try:
                os.unlink(path)
            except OSError:
                pass
    for route in ROUTES:
        r[route]["log"] = notes.get(route, [])
    return r


def p50_p99(values):
    return (percentile(values, 50), percentile(values, 99)) if values else (None, None)


KEYS = (("observed", "agent: observedAt"), ("agent", "agent: NDJSON line"),
        ("curl", "curl -N: output line"))


def run(bench, args):
    results = []
    for rep in range(1, args.repeat + 1):
        r = latency_run(bench, args.lifecycles, args.hold_ms / 1000)
        results.append(r)
        log(f"rep {rep}: {r['expected']} events generated in {r['gen_s']:.1f} s")
        for route in ROUTES:
            parts = []
            for key, name in KEYS:
                v = r[route][key]
                p50, p99 = p50_p99(v)
                parts.append(f"{name} {len(v)} events {fmt(p50, '.1f')}/{fmt(p99, '.1f')}")
            log(f"  {route:15} p50/p99 ms: " + "; ".join(parts) +
                f"; agent records by source {r[route]['sources']}; start records without the "
                f"inspect's facts {r[route]['starts'][1]} of {r[route]['starts'][0]}")
            by_action = []
            for action, v in sorted(r[route]["by_action"].items()):
                o50, o99 = p50_p99([o for o, _ in v])
                n50, n99 = p50_p99([n for _, n in v])
                by_action.append(f"{action} {o50:.1f}/{o99:.1f} and {n50:.1f}/{n99:.1f}")
            log("    agent by action, observedAt and NDJSON line p50/p99 ms: " +
                ", ".join(by_action))
            for line in r[route]["log"][:3]:
                log(f"    agent log: {line}")
        time.sleep(1)
    return results


def report(args, results, versions):
    print(f"\n{versions}")
    print(f"\nEvent latency through docker-socket-proxy (haproxy, tecnativa configuration), "
          f"{results[0]['expected']} engine events per repetition ({args.lifecycles} container "
          f"lifecycles, each killed {args.hold_ms:g} ms after its start), {len(results)} "
          f"repetitions; ms from the engine's timeNano, median over repetitions of each "
          f"percentile; every route's peers on the same events")
    print("| route | agent observedAt p50 | p99 | agent NDJSON line p50 | p99 | "
          "curl -N line p50 | p99 | agent line ÷ curl line p50 |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    table = {}
    for route in ROUTES:
        row = {}
        for key, _ in KEYS:
            ps = [p50_p99(r[route][key]) for r in results]
            row[key] = (med([p[0] for p in ps]), med([p[1] for p in ps]))
        table[route] = row
        label = {"direct": "direct (unix socket)", "proxy": "proxy (as the image ships it)",
                 "proxy+no-delay": f"proxy + `{NO_DELAY}` in backend docker-events"}[route]
        print(f"| {label} | " + " | ".join(
            f"{fmt(row[k][i], '.1f')}" for k, _ in KEYS for i in (0, 1)) +
            f" | {fmt(ratio(row['agent'][0], row['curl'][0]), '.2f')} |")
    print("\nroute ÷ direct, p50 (p99)")
    print("| route | agent observedAt | agent NDJSON line | curl -N line |")
    print("|---|---:|---:|---:|")
    for route in ROUTES[1:]:
        cells = []
        for key, _ in KEYS:
            a, d = table[route][key], table["direct"][key]
            cells.append(f"{fmt(ratio(a[0], d[0]), '.1f')}x ({fmt(ratio(a[1], d[1]), '.1f')}x)")
        print(f"| {route} | " + " | ".join(cells) + " |")
    actions = sorted({a for r in results for route in ROUTES for a in r[route]["by_action"]})
    print("\nzastava-agent by action, NDJSON line p50/p99 ms (all repetitions pooled), and its "
          "container.start records without the inspect's facts (inspectError)")
    print("| route | " + " | ".join(actions) + " | starts without inspect |")
    print("|---|" + "---:|" * (len(actions) + 1))
    for route in ROUTES:
        cells = []
        for action in actions:
            v = [n for r in results for _, n in r[route]["by_action"].get(action, [])]
            p50, p99 = p50_p99(v)
            cells.append(f"{fmt(p50, '.1f')}/{fmt(p99, '.1f')}")
        starts = sum(r[route]["starts"][0] for r in results)
        without = sum(r[route]["starts"][1] for r in results)
        print(f"| {route} | " + " | ".join(cells) + f" | {without} of {starts} |")
    print("\nadded by the proxy, p50 ms (route p50 - direct p50): " + "; ".join(
        f"{route}: agent {fmt(table[route]['observed'][0] - table['direct']['observed'][0], '.1f')}"
        f", curl {fmt(table[route]['curl'][0] - table['direct']['curl'][0], '.1f')}"
        for route in ROUTES[1:]))


def versions_line(bench, version):
    haproxy = subprocess.run(["haproxy", "-v"], capture_output=True, text=True).stdout
    curl = subprocess.run([CURL, "--version"], capture_output=True, text=True).stdout
    return (f"engine: dockerd {version.get('Version')} (API {version.get('ApiVersion')}); "
            f"{haproxy.splitlines()[0].split(' - ')[0] if haproxy else 'haproxy ?'}; "
            f"{' '.join(curl.split()[:2]) if curl else 'curl ?'}; agent {bench.args.agent} "
            f"--log-level info")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--agent", required=True, help="the zastava-agent binary")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--lifecycles", type=int, default=50,
                   help="containers per repetition (5 engine events each)")
    p.add_argument("--hold-ms", type=float, default=0,
                   help="how long each container runs before its kill")
    p.add_argument("--storage-driver", default="overlay2", choices=("overlay2", "vfs"))
    p.add_argument("--timeout", type=float, default=120, help="per agent start, s")
    args = p.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench/proxy.py starts its own dockerd and must run as root")
    if not os.access(args.agent, os.X_OK):
        sys.exit(f"agent binary {args.agent} is not executable (build it: bench/run.sh)")

    def on_signal(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)

    print(engine.machine_line(), flush=True)
    started = time.monotonic()
    bench = ProxyBench(args)
    try:
        version = bench.start_engine()
        versions = versions_line(bench, version)
        results = run(bench, args)
    except (BenchError, AssertionError) as exc:  # AssertionError: a harness.wait_until timed out
        print(f"bench/proxy.py: {exc}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # let the cleanup finish
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        bench.cleanup()
    report(args, results, versions)
    print(f"\n(total {time.monotonic() - started:.0f} s)")


if __name__ == "__main__":
    main()
