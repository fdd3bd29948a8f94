#!/usr/bin/python3
"""Posture findings (CIS Docker Benchmark v1.6.0, section 5) on a real engine (ZIT_ENGINE:
harness.Workspace.dockerd). The agent starts; then containers each started with one risky (or
one hardening) setting, a hardened one, a container whose process is named sshd, and waived
ones (label zastava.posture.ignore). Two exist before the agent: a privileged one only created
(a root process with every capability cannot start on machines whose bounding set lacks one)
and a running one with the host's PID namespace; the start-up snapshot inspects both.

Every record that carries container.security carries container.posture, and its failed,
waived, passed and notApplicable ids, severities, titles and values are exactly what the
container was started with (the expectation is written from the options below, not read
back from the agent; only whether the host applies AppArmor or SELinux, and the label=disable
an engine adds by itself for --pid host, --ipc host and --privileged, come from the engine's
inspect). 5.7 is decided from /proc only: failed in the sshd container's container.evidence
records, passed in the others'. /metrics (promtool-clean): the failing-containers gauge
counts the running containers failing each check (waived and created ones not), the critical
starts counter the starts the agent saw (not the snapshot's). A second agent with
--posture-skip-checks 5.19 --posture-severity-overrides 5.13=critical: 5.19 skipped and not
exported, 5.13 critical everywhere, its starts counted. Bad values exit 2 naming the key.
Prints a per-container findings table."""

import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402

ARGS = None
BENCHMARK = "CIS Docker Benchmark v1.6.0"
WAIVER_KEY = "zastava.posture.ignore"
RESCAN_SECONDS = 4  # the sshd container's rescan sees sshd even if its start scan saw sh

# (id, default severity, title): the catalogue, in its order.
CATALOGUE = [
    ("4.1", "medium", "Ensure that a user for the container has been created"),
    ("5.2", "high", "Ensure that, if applicable, an AppArmor Profile is enabled"),
    ("5.3", "high", "Ensure that, if applicable, SELinux security options are set"),
    ("5.4", "high", "Ensure that Linux kernel capabilities are restricted within containers"),
    ("5.5", "critical", "Ensure that privileged containers are not used"),
    ("5.6", "high", "Ensure sensitive host system directories are not mounted on containers"),
    ("5.7", "medium", "Ensure sshd is not run within containers"),
    ("5.8", "low", "Ensure privileged ports are not mapped within containers"),
    ("5.10", "critical", "Ensure that the host's network namespace is not shared"),
    ("5.11", "low", "Ensure that the memory usage for containers is limited"),
    ("5.12", "low", "Ensure that CPU priority is set appropriately on containers"),
    ("5.13", "medium", "Ensure that the container's root filesystem is mounted as read only"),
    ("5.14", "low",
     "Ensure that incoming container traffic is bound to a specific host interface"),
    ("5.15", "low", "Ensure that the 'on-failure' container restart policy is set to '5'"),
    ("5.16", "critical", "Ensure that the host's process namespace is not shared"),
    ("5.17", "medium", "Ensure that the host's IPC namespace is not shared"),
    ("5.18", "high", "Ensure that host devices are not directly exposed to containers"),
    ("5.19", "info", "Ensure that the default ulimit is overwritten at runtime if needed"),
    ("5.20", "medium", "Ensure mount propagation mode is not set to shared"),
    ("5.21", "medium", "Ensure that the host's UTS namespace is not shared"),
    ("5.22", "high", "Ensure the default seccomp profile is not Disabled"),
    ("5.25", "info", "Ensure that cgroup usage is confirmed"),
    ("5.26", "medium",
     "Ensure that the container is restricted from acquiring additional privileges"),
    ("5.27", "low", "Ensure that container health is checked at runtime"),
    ("5.29", "low", "Ensure that the PIDs cgroup limit is used"),
    ("5.31", "high", "Ensure that the host's user namespaces are not shared"),
    ("5.32", "critical", "Ensure that the Docker socket is not mounted inside any containers"),
]
IDS = [c[0] for c in CATALOGUE]
SEVERITY = {c[0]: c[1] for c in CATALOGUE}
TITLE = {c[0]: c[2] for c in CATALOGUE}
INSPECT_IDS = [i for i in IDS if i != "5.7"]  # 5.7 is decided from /proc only
CRITICAL = [i for i in IDS if SEVERITY[i] == "critical"]

# What a failed finding's value must be: ("=", exact), ("~", substring), ("^", prefix),
# ("caps", set of CAP_ names in "CapAdd=" and a comma-separated list), or None (any non-empty
# text).
# Exact where SPEC fixes the text, a substring naming the fact elsewhere.
F = "failed"
P = "passed"
NA = "notApplicable"
# A container without any option on this engine (5.2 and 5.3 depend on the host: engine_facts).
BASELINE = {
    "4.1": (F, ("^", "User=")), "5.4": P, "5.5": P, "5.6": P, "5.8": NA, "5.10": P,
    "5.11": (F, None), "5.12": (F, None), "5.13": (F, ("=", "ReadonlyRootfs=false")),
    "5.14": NA, "5.15": P, "5.16": P, "5.17": P, "5.18": P, "5.19": (F, None), "5.20": P,
    "5.21": P, "5.22": P, "5.25": P, "5.26": (F, None), "5.27": (F, None), "5.29": (F, None),
    "5.31": P, "5.32": P,
}
SSHD_CMD = ["sh", "-c", "ln -s /bin/busybox /tmp/sshd && exec -a sleep /tmp/sshd 300"]


class C:
    """A container of the test: docker run (or create) options and how its findings differ
    from BASELINE."""

    def __init__(self, name, opts, diff=None, cmd=None, before=False, create=False,
                 waiver=None, host_config=None):
        self.name, self.opts, self.diff = name, opts, dict(diff or {})
        self.cmd = cmd or h.IDLE_CMD
        self.before, self.create, self.waiver = before, create, waiver
        self.host_config = host_config  # made through the engine API, not the CLI
        self.refused = None  # what the engine said when it refused to start it
        self.id = None
        self.facts = None
        self.reported = {}  # where the engine's inspect says other than it was asked
        self.notes = []


def containers(d, ws_dir, port):
    hardened = ["--read-only", "--memory", "64m", "--cpu-shares", "512", "--pids-limit", "100",
                "--security-opt", "no-new-privileges", "--health-cmd", "true",
                "--health-interval", "2s", "--user", "1000", "--cap-drop", "ALL",
                "--restart", "on-failure:3", "--ulimit", "nofile=1024:2048"]
    link = os.path.join(ws_dir, "link", "docker.sock")
    shared = os.path.join(ws_dir, "shared")
    return [
        C("pre-privileged", ["--privileged"], {"5.5": (F, None)}, before=True, create=True),
        C("pre-hostpid", ["--pid", "host"], {"5.16": (F, ("~", "host"))}, before=True),
        C("default", []),
        C("hardened", hardened,
          {k: P for k in ("4.1", "5.11", "5.12", "5.13", "5.19", "5.26", "5.27", "5.29")}),
        C("host-network", ["--network", "host"], {"5.10": (F, ("=", "NetworkMode=host"))}),
        C("host-pid", ["--pid", "host"], {"5.16": (F, ("~", "host"))}),
        C("host-ipc", ["--ipc", "host"], {"5.17": (F, ("~", "host"))}),
        C("host-uts", ["--uts", "host"], {"5.21": (F, ("~", "host"))}),
        C("host-userns", ["--userns", "host"], {"5.31": (F, ("~", "host"))}),
        C("cap-add", ["--cap-add", "NET_ADMIN", "--cap-add", "SYS_ADMIN"],
          {"5.4": (F, ("caps", {"CAP_NET_ADMIN", "CAP_SYS_ADMIN"}))}),
        C("cap-add-default", ["--cap-add", "CHOWN"]),
        C("etc-rw", ["-v", "/etc:/host-etc"], {"5.6": (F, ("=", "/etc -> /host-etc (rw)"))}),
        C("etc-file-ro", ["-v", "/etc/hostname:/x:ro"]),
        C("socket", ["-v", f"{d.sock}:/var/run/docker.sock"], {"5.32": (F, ("~", d.sock))}),
        C("socket-link", ["-v", f"{link}:/run/docker.sock"], {"5.32": (F, ("~", link))}),
        C("port-80", ["-p", "80:80"], {"5.8": (F, ("~", "80")), "5.14": (F, ("~", "80"))}),
        C("port-loopback", ["-p", f"127.0.0.1:{port}:80"], {"5.8": P, "5.14": P}),
        # Through the API: the docker CLI 20.10 refuses --device against podman ("unknown
        # server OS": its /_ping names no OSType) before asking it.
        C("device", ["--device", "/dev/null:/dev/xnull"], {"5.18": (F, ("~", "/dev/null"))},
          host_config={"Devices": [{"PathOnHost": "/dev/null", "PathInContainer": "/dev/xnull",
                                    "CgroupPermissions": "rwm"}]}),
        C("rshared", ["--mount", f"type=bind,source={shared},target=/shared,"
                      "bind-propagation=rshared"], {"5.20": (F, ("~", "rshared"))}),
        C("read-only", ["--read-only"], {"5.13": P}),
        C("seccomp", ["--security-opt", "seccomp=unconfined"],
          {"5.22": (F, ("~", "unconfined"))}),
        C("no-new-privs", ["--security-opt", "no-new-privileges"], {"5.26": P}),
        C("restart-always", ["--restart", "always"], {"5.15": (F, ("~", "always"))}),
        C("restart-10", ["--restart", "on-failure:10"], {"5.15": (F, ("~", "10"))}),
        C("restart-3", ["--restart", "on-failure:3"]),
        C("health", ["--health-cmd", "true", "--health-interval", "2s"], {"5.27": P}),
        C("pids", ["--pids-limit", "50"], {"5.29": P}),
        C("sshd", [], cmd=SSHD_CMD),
        C("waived", ["--label", f"{WAIVER_KEY}=5.13,5.11"], waiver="5.13,5.11"),
        C("waived-pass", ["--label", f"{WAIVER_KEY}=5.10,9.99"], waiver="5.10,9.99"),
    ]


def engine_facts(inspect):
    """5.2 and 5.3 as the engine applied them: whether the host has AppArmor (the engine
    names a profile) or SELinux (a process label), and the label=disable Docker adds by itself
    for --pid host, --ipc host and --privileged."""
    opts = inspect["HostConfig"].get("SecurityOpt") or []
    profile = inspect.get("AppArmorProfile", "")
    facts = {"5.2": NA if profile == "" else
             (F, ("~", "unconfined")) if profile == "unconfined" else P}
    if any(o in ("label=disable", "label:disable") for o in opts):
        facts["5.3"] = (F, ("~", "disable"))
    elif inspect.get("ProcessLabel") or any(o.startswith(("label=", "label:")) for o in opts):
        facts["5.3"] = P
    else:
        facts["5.3"] = NA
    return facts


def engine_reported(c, inspect):
    """Where the engine's inspect says other than what c asked for. The agent decides from the
    inspect, so the expectation follows the engine; each difference becomes a note (printed
    with the table). Podman 4.3: a --ipc host container does share the host's IPC namespace
    but inspects as IpcMode "shareable", --userns host as UsernsMode ""; a container created
    through the API without PidsLimit gets podman's default pids limit."""
    hc = inspect["HostConfig"]
    for opt, check, key in (("--ipc", "5.17", "IpcMode"), ("--userns", "5.31", "UsernsMode")):
        if opt in c.opts and c.opts[c.opts.index(opt) + 1] == "host" and hc.get(key) != "host":
            c.reported[check] = P
            c.notes.append(f"{opt} host inspects as {key}={hc.get(key)!r}")
    if "5.29" not in c.diff and (hc.get("PidsLimit") or 0) > 0:
        c.reported["5.29"] = P
        c.notes.append(f"PidsLimit={hc['PidsLimit']} although not asked for")


def expected(c):
    """{id: (result, value check)} of an inspect-based posture, and the waived ids."""
    exp = dict(BASELINE)
    exp.update(c.facts)
    exp.update(c.diff)
    exp.update(c.reported)
    out = {i: (e, None) if isinstance(e, str) else e for i, e in exp.items()}
    named = (c.waiver or "").split(",")
    waived = [i for i in INSPECT_IDS if i in named]  # catalogue order; unknown ids ignored
    return out, waived


def value_problem(check, value):
    if not isinstance(value, str) or not value:
        return f"no value: {value!r}"
    if check is None:
        return None
    kind, want = check
    if kind == "=" and value != want or kind == "~" and want not in value or \
            kind == "^" and not value.startswith(want):
        return f"value {value!r}, want {kind} {want!r}"
    if kind == "caps" and (not value.startswith("CapAdd=") or
                           set(v.strip() for v in value[len("CapAdd="):].split(",")) != want):
        return f"value {value!r}, want the capabilities {sorted(want)}"
    return None


def posture_problems(c, posture, overrides=None, skipped=()):
    """What in one record's posture differs from c's expectation (an empty list when none)."""
    sev = dict(SEVERITY, **(overrides or {}))
    exp, waived = expected(c)
    for s in skipped:
        exp.pop(s, None)
    problems = []
    if posture.get("benchmark") != BENCHMARK:
        problems.append(f"benchmark {posture.get('benchmark')!r}")
    want = {r: [i for i in INSPECT_IDS if i in exp and exp[i][0] == r and i not in waived]
            for r in (F, P, NA)}
    got = {r: [f["id"] for f in posture.get(r, [])] if r == F else posture.get(r, [])
           for r in (F, P, NA)}
    for r in (F, P, NA):
        if got[r] != want[r]:
            problems.append(f"{r}: {got[r]}, want {want[r]}")
    for f in posture.get(F, []):
        i = f.get("id")
        if (f.get("severity"), f.get("title")) != (sev.get(i), TITLE.get(i)):
            problems.append(f"{i}: severity/title {f.get('severity')!r} {f.get('title')!r}")
        if i in exp and exp[i][0] == F:
            p = value_problem(exp[i][1], f.get("value"))
            if p:
                problems.append(f"{i}: {p}")
    got_waived = posture.get("waived")
    if waived:
        if not got_waived or [w.get("id") for w in got_waived] != waived:
            problems.append(f"waived {got_waived}, want ids {waived}")
        else:
            for w in got_waived:
                i = w["id"]
                result, check = exp[i]
                if (w.get("result"), w.get("severity"), w.get("title"), w.get("waiver")) != \
                        (result, sev[i], TITLE[i], f"{WAIVER_KEY}={c.waiver}"):
                    problems.append(f"waived {w}")
                if result == F:
                    p = value_problem(check, w.get("value"))
                    if p:
                        problems.append(f"waived {i}: {p}")
                elif "value" in w:
                    problems.append(f"waived {i} has a value but did not fail: {w}")
    elif got_waived is not None:
        problems.append(f"waived {got_waived}, want no key")
    if skipped:
        if posture.get("skipped") != list(skipped):
            problems.append(f"skipped {posture.get('skipped')}, want {list(skipped)}")
    elif "skipped" in posture:
        problems.append(f"skipped {posture['skipped']}, want no key")
    return problems


def comms(evidence_record):
    tree = evidence_record["evidence"].get("processTree") or {}
    return [p.get("comm") for p in tree.get("processes", [])]


class Posture(h.WorkspaceTest):
    @classmethod
    def set_up(cls):
        ws_dir = cls.ws.dir
        shared = os.path.join(ws_dir, "shared")
        os.makedirs(shared)
        # rshared needs its source on a shared mount. Registered first: undone last, after
        # the engine and its containers are gone.
        cls.ws.on_cleanup(lambda: subprocess.run(["umount", shared], capture_output=True))
        subprocess.run(["mount", "--bind", shared, shared], check=True)
        subprocess.run(["mount", "--make-shared", shared], check=True)
        d = cls.d = cls.ws.dockerd()
        cls.ws.on_cleanup(lambda: d.remove_all_containers())  # before the engine's stop
        d.make_busybox_image()
        os.makedirs(os.path.join(ws_dir, "link"))
        os.symlink(d.sock, os.path.join(ws_dir, "link", "docker.sock"))
        cls.cs = containers(d, ws_dir, h.free_port())
        for c in cls.cs:
            if c.before:
                cls.start(c)

        agent = cls.agent = cls.ws.agent(ARGS.agent, d.endpoint, extra_args=[
            "--evidence-rescan-seconds", str(RESCAN_SECONDS)])
        agent.start()
        agent.wait_ready()
        cls.metrics_at_start = agent.metrics()
        for c in cls.cs:
            if not c.before:
                cls.start(c)
        for c in cls.cs:
            inspect = d.api("GET", f"/containers/{c.id}/json")[1]
            c.facts = engine_facts(inspect)
            engine_reported(c, inspect)
        by_id = {c.id: c for c in cls.cs}
        sshd_id = next(c.id for c in cls.cs if c.name == "sshd")

        def recorded():
            recs = [json.loads(x) for x in h.read_ndjson(agent.data_dir)]
            have = {r["container"]["id"] for r in recs
                    if r["kind"] in ("container.inspect", "container.snapshot")
                    and "security" in (r.get("container") or {})}
            sshd = [r for r in recs if r["kind"] == "container.evidence"
                    and (r.get("container") or {}).get("id") == sshd_id and "sshd" in comms(r)]
            return recs if set(by_id) <= have and sshd else None
        cls.records = h.wait_until(recorded, 60, "a posture for every container and an "
                                   "evidence record of the sshd container naming sshd")
        cls.by_id, cls.by_name = by_id, {c.name: c for c in cls.cs}
        cls.running = [c for c in cls.cs if not c.create]
        want = cls.expected_gauges()

        def gauges_settled():
            got = cls.gauges(agent.metrics())
            return got if got == want else None
        try:
            h.wait_until(gauges_settled, 30, "the failing-containers gauges")
        except AssertionError:
            pass  # test_failing_containers_gauge says how they differ
        cls.metrics_text = agent.metrics()
        cls.records = [json.loads(x) for x in h.read_ndjson(agent.data_dir)]
        cls.print_table()

    @classmethod
    def start(cls, c):
        """docker run -d (or create). When the runtime refuses to start it (this machine's
        limits: podman 4.3 adds RLIMIT_NPROC=1048576 next to a --ulimit, and raising it needs
        the CAP_SYS_RESOURCE this machine lacks), it is removed and made again with docker
        create, and counts as created."""
        d = cls.d
        if c.host_config is not None:
            st, body = d.api("POST", f"/containers/create?name={c.name}",
                             {"Image": h.TEST_IMAGE, "Cmd": c.cmd,
                              "HostConfig": c.host_config})
            assert st == 201, f"create {c.name}: {st} {body}"
            c.id = body["Id"]
            if not c.create:
                st, body = d.api("POST", f"/containers/{c.id}/start")
                assert st == 204, f"start {c.name}: {st} {body}"
            return
        if c.create:
            c.id = d.docker("create", "--name", c.name, *c.opts, h.TEST_IMAGE, *c.cmd)
            return
        try:
            c.id = d.docker("run", "-d", "--name", c.name, *c.opts, h.TEST_IMAGE, *c.cmd)
        except RuntimeError as exc:
            if "runc" not in str(exc):
                raise
            c.refused = str(exc).split("Error response from daemon: ")[-1].strip()
            h.log(f"{c.name}: the engine refused to start it ({c.refused}); created instead")
            d.docker("rm", "-f", c.name)
            c.id = d.docker("create", "--name", c.name, *c.opts, h.TEST_IMAGE, *c.cmd)
            c.create = True

    @classmethod
    def expected_gauges(cls):
        """{(check, severity): running containers failing it, waived not counted}, 5.7
        included."""
        out = {}
        for i in INSPECT_IDS:
            n = 0
            for c in cls.running:
                exp, waived = expected(c)
                n += exp[i][0] == F and i not in waived
            out[(i, SEVERITY[i])] = n
        # 5.7 from the processes: the sshd container (set_up waited for its evidence)
        out[("5.7", SEVERITY["5.7"])] = sum(c.name == "sshd" for c in cls.running)
        return out

    @staticmethod
    def gauges(text):
        return {(lab.get("check"), lab.get("severity")): v for n, lab, v in
                h.parse_metrics(text) if n == "zastava_agent_posture_failing_containers"}

    @classmethod
    def latest_posture(cls, c):
        recs = [r for r in cls.records if r.get("container", {}).get("id") == c.id
                and "security" in r["container"]]
        return recs[-1]["container"].get("posture") if recs else None

    @classmethod
    def print_table(cls):
        rows = [("container", "options", "failed", "waived", "notApplicable")]
        for c in cls.cs:
            p = cls.latest_posture(c) or {}
            ev = [r for r in cls.records if r["kind"] == "container.evidence"
                  and r["container"]["id"] == c.id and r["container"].get("posture")]
            ev_failed = {f["id"] for r in ev for f in r["container"]["posture"].get(F, [])}
            failed = [f["id"] for f in p.get(F, [])] + sorted(ev_failed)
            state = " (created)" if c.create else ""
            if c.refused:
                state = " (refused: created)"
            rows.append((c.name + state, " ".join(c.opts)[:48] or "-",
                         ",".join(failed) or "-",
                         ",".join(f"{w['id']}:{w['result']}" for w in p.get("waived", []))
                         or "-", ",".join(p.get(NA, [])) or "-"))
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        print(f"\nPOSTURE FINDINGS ({cls.d.label})", flush=True)
        for r in rows:
            print("| " + " | ".join(x.ljust(w) for x, w in zip(r, widths)) + " |")
        for c in cls.cs:
            if c.refused:
                print(f"{c.name}: the engine refused to start it: {c.refused}")
            for note in c.notes:
                print(f"{c.name}: the engine's inspect differs from what was asked: {note}")
        print(flush=True)

    # ---- records

    def test_every_security_record_has_the_expected_posture(self):
        """every snapshot/inspect record with container.security: posture == expectation"""
        seen = set()
        for r in self.records:
            c = self.by_id.get(r.get("container", {}).get("id"))
            if c is None or "security" not in r["container"]:
                continue
            seen.add(c.name)
            posture = r["container"].get("posture")
            self.assertIsNotNone(posture, f"{c.name} {r['kind']}: no posture")
            self.assertNotIn("risks", r["container"]["security"], "schema 8 removed it")
            self.assertEqual(posture_problems(c, posture), [], f"{c.name} {r['kind']}")
        self.assertEqual(seen, {c.name for c in self.cs})

    def test_snapshot_and_start_records(self):
        """pre-agent containers through container.snapshot, the others container.inspect"""
        for c in self.cs:
            kinds = {r["kind"] for r in self.records if r.get("container", {}).get("id") == c.id
                     and "posture" in r.get("container", {})
                     and r["kind"] != "container.evidence"}
            self.assertIn("container.snapshot" if c.before else "container.inspect", kinds,
                          c.name)

    def test_raw_security_facts(self):
        """container.security's new raw facts: utsMode, cpuShares, cpuQuota, ulimits,
        cgroupParent, processLabel"""
        sec = {c.name: [r for r in self.records if r.get("container", {}).get("id") == c.id
                        and "security" in r["container"]][-1]["container"]["security"]
               for c in self.cs}
        for key in ("utsMode", "cpuShares", "cpuQuota", "ulimits", "cgroupParent",
                    "processLabel"):
            self.assertIn(key, sec["default"], key)
        # Docker names it nofile; podman 4.3 RLIMIT_NOFILE (and adds RLIMIT_NPROC)
        self.assertTrue({"nofile=1024:2048", "RLIMIT_NOFILE=1024:2048"} &
                        set(sec["hardened"]["ulimits"]), sec["hardened"]["ulimits"])
        self.assertEqual(sec["hardened"]["cpuShares"], 512)
        self.assertEqual(sec["host-uts"]["utsMode"], "host")
        self.assertEqual(sec["default"]["ulimits"], [])

    def test_sshd_evidence(self):
        """5.7 from /proc: failed in the sshd container's evidence naming sshd, passed in the
        others' that read a process, notApplicable where none was read; only 5.7 there"""
        ev = [r for r in self.records if r["kind"] == "container.evidence"]
        self.assertTrue(ev)
        sshd = self.by_name["sshd"].id
        for r in ev:
            posture = r["container"].get("posture")
            self.assertIsNotNone(posture, r["container"]["id"])
            names = comms(r)
            ids = [f["id"] for f in posture.get(F, [])] + posture.get(P, []) + \
                posture.get(NA, [])
            self.assertEqual(ids, ["5.7"], posture)
            if "sshd" in names:
                self.assertEqual(r["container"]["id"], sshd)
                [f] = posture[F]
                self.assertEqual((f["severity"], f["title"]), (SEVERITY["5.7"], TITLE["5.7"]))
                self.assertIn("sshd", f.get("value", ""))
            elif names:
                self.assertEqual(posture.get(P), ["5.7"], (names, posture))
            else:
                self.assertEqual(posture.get(NA), ["5.7"], posture)
        self.assertTrue(any("sshd" in comms(r) for r in ev if r["container"]["id"] == sshd))

    def test_records_validate(self):
        """every record validates against docs/record-schema.json (schema 9)"""
        schema, path = h.load_schema(ARGS.source_dir)
        self.assertIsNotNone(schema, f"{path} is missing")
        self.assertEqual(h.schema_errors(schema, self.records), [])
        for r in self.records:
            self.assertEqual(r["schema"]["version"], 9)

    # ---- metrics

    def test_promtool_check_metrics(self):
        res = subprocess.run(["promtool", "check", "metrics"], input=self.metrics_text,
                             capture_output=True, text=True, timeout=30)
        self.assertEqual((res.returncode, res.stdout.strip(), res.stderr.strip()), (0, "", ""))

    def test_series_exported_from_the_start(self):
        """at ready: a failing-containers series per evaluated check, a critical-starts series
        per critical check, all at 0 before any container started (the pre-agent ones are
        no starts)"""
        text = self.metrics_at_start
        starts = {lab["check"]: v for n, lab, v in h.parse_metrics(text)
                  if n == "zastava_agent_posture_critical_starts_total"}
        self.assertEqual(starts, {i: 0 for i in CRITICAL})
        gauges = self.gauges(text)
        self.assertEqual(set(gauges), {(i, SEVERITY[i]) for i in IDS})

    def test_failing_containers_gauge(self):
        """zastava_agent_posture_failing_containers == running containers failing each check
        (created and waived ones not counted; 5.7: the sshd container)"""
        self.assertEqual(self.gauges(self.metrics_text), self.expected_gauges())

    def test_critical_starts(self):
        """zastava_agent_posture_critical_starts_total: each start the agent saw failing a
        critical check, once per check"""
        want = {i: 0 for i in CRITICAL}
        for c in self.cs:
            if c.before or c.create:
                continue
            exp, waived = expected(c)
            for i in CRITICAL:
                want[i] += exp[i][0] == F and i not in waived
        got = {lab["check"]: v for n, lab, v in h.parse_metrics(self.metrics_text)
               if n == "zastava_agent_posture_critical_starts_total"}
        self.assertEqual(got, want)
        self.assertGreater(sum(want.values()), 0)

    # ---- configuration

    def test_skip_and_severity_override(self):
        """--posture-skip-checks 5.19 --posture-severity-overrides 5.13=critical: every
        snapshot says skipped [5.19] and 5.13 critical; no 5.19 series; 5.13 has a critical
        starts series, at 0, then 1 after a start failing it"""
        agent = self.ws.agent(ARGS.agent, self.d.endpoint, name="b", extra_args=[
            "--posture-skip-checks", "5.19", "--posture-severity-overrides", "5.13=critical"])
        agent.start()
        agent.wait_ready()
        text = agent.metrics()
        self.assertEqual(h.metric_value(text, "zastava_agent_posture_critical_starts_total",
                                        {"check": "5.13"}), 0)
        self.assertIsNone(h.metric_value(text, "zastava_agent_posture_failing_containers",
                                         {"check": "5.19"}))
        self.assertIsNotNone(h.metric_value(text, "zastava_agent_posture_failing_containers",
                                            {"check": "5.13", "severity": "critical"}))
        extra = C("default-b", [])
        extra.id = self.d.docker("run", "-d", "--name", extra.name, h.TEST_IMAGE, *extra.cmd)
        inspect = self.d.api("GET", f"/containers/{extra.id}/json")[1]
        extra.facts = engine_facts(inspect)
        engine_reported(extra, inspect)

        def started():
            recs = [json.loads(x) for x in h.read_ndjson(agent.data_dir)]
            return recs if any(r["kind"] == "container.inspect" and
                               r["container"]["id"] == extra.id and
                               "security" in r["container"] for r in recs) else None
        records = h.wait_until(started, 30, "the inspect record of default-b")
        h.wait_metric(agent, "zastava_agent_posture_critical_starts_total", lambda v: v == 1,
                      10, {"check": "5.13"})
        code, _ = agent.stop()
        self.assertEqual(code, 0)
        by_id = dict(self.by_id, **{extra.id: extra})
        checked = 0
        for r in records:
            c = by_id.get(r.get("container", {}).get("id"))
            if c is None or "security" not in r["container"]:
                continue
            checked += 1
            self.assertEqual(posture_problems(c, r["container"]["posture"],
                                              overrides={"5.13": "critical"},
                                              skipped=["5.19"]), [], f"{c.name} {r['kind']}")
        self.assertGreater(checked, len(self.cs))

    def test_bad_configuration_exits_2(self):
        """good values pass --check-config; an unknown check id or level: exit 2 naming the
        key (not as an unknown flag or key)"""
        base = ["--data-directory", "/tmp/zit-posture-never-created", "--docker-endpoint",
                "unix:///nonexistent.sock", "--health-port", str(h.free_port())]
        good = h.run_agent_once(
            ARGS.agent, ["--check-config", *base, "--posture-skip-checks", "5.19,5.22",
                         "--posture-severity-overrides", "5.13=high,5.25=low"],
            env={"ZASTAVA_AGENT__Posture__SkipChecks": "5.19"})
        self.assertEqual(good.returncode, 0, good.stderr)
        self.assertIn("SkipChecks", good.stdout)
        self.assertIn("SeverityOverrides", good.stdout)
        for args, env, key in (
                (["--posture-skip-checks", "9.99"], None, r"posture-skip-checks|SkipChecks"),
                (["--posture-skip-checks", "5.19,5.7x"], None,
                 r"posture-skip-checks|SkipChecks"),
                (["--posture-severity-overrides", "5.13=urgent"], None,
                 r"posture-severity-overrides|SeverityOverrides"),
                (["--posture-severity-overrides", "9.99=high"], None,
                 r"posture-severity-overrides|SeverityOverrides"),
                ([], {"ZASTAVA_AGENT__Posture__SkipChecks": "5.19,9.99"},
                 r"ZASTAVA_AGENT__Posture__SkipChecks")):
            res = h.run_agent_once(ARGS.agent, [*base, *args], env=env)
            self.assertEqual(res.returncode, 2, f"{args} {env}: {res.stderr!r}")
            self.assertRegex(res.stderr, key)
            self.assertNotIn("unexpected argument", res.stderr)


if __name__ == "__main__":
    h.main(globals())
