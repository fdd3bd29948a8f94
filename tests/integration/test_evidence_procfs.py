#!/usr/bin/python3
"""Process and library evidence from /proc on a real engine (container.evidence records):
a dynamically linked program's exe hash and exact library set; a library dlopen()ed after the
start scan caught by the re-scan; a container that exits before its scan; a process tree with
children; secrets in command lines redacted; the evidence metrics; schema; the containers table
untouched by evidence; --evidence-workers 0 turns it all off.

Each fact is compared with what the test itself reads from /proc and the image files, never
with wall-clock durations: waits are for records, metrics or /proc states."""

import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402

ARGS = None
RESCAN_SECONDS = 3
DYN_IMAGE = "zastava-test/evidence-sleep:1"
DL_IMAGE = "zastava-test/evidence-dlopen:1"
DL_PROGRAM = "/usr/bin/zastava-dlopen"  # where the image has it
LATE_LIBRARY = "libm.so.6"              # the library the program dlopen()s on SIGUSR1
SECRETS = ["hunter2-zastava", "abc123-zastava"]  # "-": never part of a hex hash by chance
# sh stays PID 1 (busybox sh execs only a last *simple* command; `wait` is a builtin) and exits
# 0 on SIGTERM; its children are two busybox sleeps.
MULTI_CMD = ["sh", "-c", "sleep 300 & sleep 301 & wait"]
SECRET_CMD = ["sh", "-c", "sleep 302 & wait", "sh", f"--password={SECRETS[0]}", "--api-key",
              SECRETS[1]]
STOPPABLE_CMD = ["sh", "-c", "trap 'exit 0' TERM; sleep 303 & wait"]

# Waits for a SIGUSR1, then dlopen()s LATE_LIBRARY, then waits for ever (exit 0 on SIGTERM).
DLOPEN_C = r"""
#include <dlfcn.h>
#include <signal.h>
#include <stdio.h>
#include <unistd.h>

static volatile sig_atomic_t go;
static void on_usr1(int sig) { (void)sig; go = 1; }
static void on_term(int sig) { (void)sig; _exit(0); }

int main(void) {
  struct sigaction sa = {0};
  sa.sa_handler = on_usr1;
  sigaction(SIGUSR1, &sa, NULL);
  sa.sa_handler = on_term;
  sigaction(SIGTERM, &sa, NULL);
  sigset_t usr1, old;
  sigemptyset(&usr1);
  sigaddset(&usr1, SIGUSR1);
  sigprocmask(SIG_BLOCK, &usr1, &old);
  while (!go) sigsuspend(&old);
  if (!dlopen("LATE_LIBRARY", RTLD_NOW)) {
    fprintf(stderr, "dlopen: %s\n", dlerror());
    return 3;
  }
  for (;;) pause();
}
""".replace("LATE_LIBRARY", LATE_LIBRARY)


# ----------------------------------------------------------------------------------------------
# What the test reads itself

def sha256_file(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_text(path):
    with open(path, "r", errors="replace") as f:
        return f.read()


def executable_paths(pid):
    """File-backed executable mappings of pid, as /proc/<pid>/maps names them (what the agent
    must list as loaded libraries)."""
    paths = set()
    for line in read_text(f"/proc/{pid}/maps").splitlines():
        parts = line.split(None, 5)
        if len(parts) == 6 and parts[1][2] == "x" and parts[4] != "0" and \
                parts[5].startswith("/"):
            paths.add(parts[5])
    return paths


def proc_state(pid):
    stat = read_text(f"/proc/{pid}/stat")
    return stat[stat.rindex(")") + 2]


def children_of(pid):
    kids = set()
    for tid in os.listdir(f"/proc/{pid}/task"):
        kids.update(int(x) for x in read_text(f"/proc/{pid}/task/{tid}/children").split())
    return kids


def ns_pid(pid):
    """The innermost NSpid of pid (its pid inside the container)."""
    for line in read_text(f"/proc/{pid}/status").splitlines():
        if line.startswith("NSpid:"):
            return int(line.split()[-1])
    raise AssertionError(f"no NSpid in /proc/{pid}/status")


def host_mapped_files(argv, after_sleeping=None, until=None):
    """Runs argv on the host until it sleeps (optionally sends after_sleeping and waits until
    until(maps paths) holds) and returns its executable mapping paths. Killed afterwards."""
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL)
    try:
        h.wait_until(lambda: proc_state(proc.pid) == "S", 10, f"{argv[0]} on the host to sleep")
        if after_sleeping is not None:
            proc.send_signal(after_sleeping)
            h.wait_until(lambda: until(executable_paths(proc.pid)), 10,
                         f"{argv[0]} on the host to load the late library")
        return executable_paths(proc.pid)
    finally:
        proc.kill()
        proc.wait(10)


def import_image(d, tag, files, extra=()):
    """An image holding only `files` (host paths, copied dereferenced to the same paths) and
    `extra` (host source, image path) pairs."""
    rootfs = os.path.join(d.dir, "rootfs-" + re.sub(r"[^a-z0-9]", "-", tag))
    os.makedirs(rootfs)
    subprocess.run(["cp", "-L", "--parents", *sorted(files), rootfs], check=True)
    for src, dst in extra:
        target = rootfs + dst
        os.makedirs(os.path.dirname(target), exist_ok=True)
        shutil.copy2(src, target)
    tar = subprocess.Popen(["tar", "-C", rootfs, "-c", "."], stdout=subprocess.PIPE)
    env = dict(os.environ, DOCKER_HOST=d.endpoint)
    res = subprocess.run([h.docker_cli(), "import", "-", tag], stdin=tar.stdout, env=env,
                         capture_output=True, text=True, timeout=120)
    tar.stdout.close()
    tar.wait()
    shutil.rmtree(rootfs, ignore_errors=True)
    if res.returncode != 0:
        raise RuntimeError(f"docker import {tag} failed: {res.stderr}")
    h.log(f"imported {tag} ({len(files) + len(extra)} files)")


def compile_dlopen_program(work_dir):
    """Compiles DLOPEN_C; returns the binary path, or None when gcc is missing (a failure
    under CI, where the README's install command provides it)."""
    if not shutil.which("gcc") or not os.path.exists("/usr/include/dlfcn.h"):
        if os.environ.get("CI"):
            raise AssertionError("gcc / libc6-dev missing: the dlopen test cannot run "
                                 "(the README's test command should have installed them)")
        return None
    src = os.path.join(work_dir, "dlopen.c")
    binary = os.path.join(work_dir, "zastava-dlopen")
    with open(src, "w") as f:
        f.write(DLOPEN_C)
    subprocess.run(["gcc", "-O2", "-o", binary, src], check=True, capture_output=True)
    return binary


# ----------------------------------------------------------------------------------------------

class EvidenceProcfs(h.WorkspaceTest):
    @classmethod
    def set_up(cls):
        d = cls.d = cls.ws.dockerd()
        # Runs before dockerd's SIGTERM (cleanups run in reverse): SIGKILL, no 10 s stop waits.
        cls.ws.on_cleanup(lambda: d.remove_all_containers())
        d.make_busybox_image()
        cls.host_sleep_sha = sha256_file("/usr/bin/sleep")
        sleep_files = host_mapped_files(["/usr/bin/sleep", "60"])
        import_image(d, DYN_IMAGE, sleep_files | {"/lib64/ld-linux-x86-64.so.2"})
        cls.dl_binary = compile_dlopen_program(d.dir)
        if cls.dl_binary:
            dl_files = host_mapped_files(
                [cls.dl_binary], after_sleeping=signal.SIGUSR1,
                until=lambda paths: any(os.path.basename(p) == LATE_LIBRARY for p in paths))
            dl_files.discard(cls.dl_binary)
            import_image(d, DL_IMAGE, dl_files | {"/lib64/ld-linux-x86-64.so.2"},
                         extra=[(cls.dl_binary, DL_PROGRAM)])

        agent = cls.agent = cls.ws.agent(ARGS.agent, d.endpoint, extra_args=[
            "--evidence-rescan-seconds", str(RESCAN_SECONDS)])
        agent.start()
        agent.wait_ready()
        ids = cls.ids = {}
        pids = cls.pids = {}

        def run(name, image, *cmd):
            ids[name] = d.docker("run", "-d", "--name", name, image, *cmd)
            pids[name] = int(d.docker("inspect", "-f", "{{.State.Pid}}", name))

        # dlopen first: its SIGUSR1 must come after its start scan and well before its re-scan.
        if cls.dl_binary:
            run("dl", DL_IMAGE, DL_PROGRAM)
            cls.wait_evidence("dl", "start")
            d.docker("kill", "-s", "USR1", "dl")
            h.wait_until(lambda: any(os.path.basename(p) == LATE_LIBRARY
                                     for p in executable_paths(pids["dl"])),
                         10, f"dl to map {LATE_LIBRARY}")
        # stopme stops after its start scan, before its re-scan is due: the re-scan must find
        # it exited and write nothing.
        run("stopme", h.TEST_IMAGE, *STOPPABLE_CMD)
        cls.wait_evidence("stopme", "start")
        d.docker("stop", "-t", "5", "stopme")
        run("dyn", DYN_IMAGE, "/usr/bin/sleep", "300")
        run("multi", h.TEST_IMAGE, *MULTI_CMD)
        run("secret", h.TEST_IMAGE, *SECRET_CMD)
        # Exits at once: its start scan finds no process (or no running container) to read, or,
        # seldom, catches it still running.
        d.docker("run", "--name", "quick", h.TEST_IMAGE, "true")
        ids["quick"] = d.docker("inspect", "-f", "{{.Id}}", "quick")
        for name in ids:
            cls.wait_evidence(name, "start")
        h.wait_until(lambda: h.read_sqlite(
            agent.data_dir, "SELECT 1 FROM events WHERE kind = 'container.die' AND "
            f"container_id = '{ids['stopme']}'"), 20, "the die record of stopme in SQLite")
        cls.running = [n for n in ("dl", "dyn", "multi", "secret") if n in ids]
        for name in cls.running:
            cls.wait_evidence(name, "rescan", timeout=RESCAN_SECONDS + 30)
        # Re-scans that find their container exited write nothing: stopme's, and quick's when
        # its start scan caught `true` still running (it then read a tree).
        [quick] = cls.evidence_records("quick", "start")
        cls.quick_read = quick["evidence"]["status"] != "exited"
        cls.exited_rescans = 1 + cls.quick_read
        h.wait_metric(agent, "zastava_agent_evidence_scans_total",
                      lambda v: v and v >= cls.exited_rescans, timeout=RESCAN_SECONDS + 30,
                      labels={"scan": "rescan", "status": "exited"})
        cls.readyz = agent.http_get("/readyz")
        cls.metrics_text = agent.metrics()
        cls.lines = h.read_ndjson(agent.data_dir)
        cls.records = [json.loads(line) for line in cls.lines]
        cls.table = {r["container_id"]: r for r in h.read_containers_table(agent.data_dir)}
        cls.log_text = agent.log_text()
        # The agent keeps running: test_workers_zero_turns_evidence_off uses it as a control.

    # ---- helpers

    @classmethod
    def evidence_records(cls, name, scan=None, records=None):
        """name: a container of set_up, or a container id."""
        if records is None:
            records = [json.loads(x) for x in h.read_ndjson(cls.agent.data_dir)]
        return [r for r in records if r.get("kind") == "container.evidence"
                and (r.get("container") or {}).get("id") == cls.ids.get(name, name)
                and (scan is None or r["evidence"]["scan"] == scan)]

    @classmethod
    def wait_evidence(cls, name, scan, timeout=30):
        return h.wait_until(lambda: cls.evidence_records(name, scan), timeout,
                            f"the {scan} evidence record of {name}")

    def one(self, name, scan):
        found = self.evidence_records(name, scan, self.records)
        self.assertEqual(len(found), 1, f"{scan} evidence records of {name}: {found}")
        return found[0]

    def assert_libraries_match_proc(self, name, record):
        """The record's libraries are exactly the executable mappings the test reads from
        /proc/<pid>/maps now, each hashed as the test hashes /proc/<pid>/root<path>."""
        pid = self.pids[name]
        libs = record["evidence"]["loadedLibraries"]["libraries"]
        expected = executable_paths(pid)
        self.assertGreaterEqual(len(expected), 3, expected)
        self.assertEqual({lib["path"] for lib in libs}, expected)
        self.assertEqual(len(libs), len(expected), "a library listed twice")
        for lib in libs:
            with self.subTest(library=lib["path"]):
                self.assertEqual(lib["sha256"], sha256_file(f"/proc/{pid}/root{lib['path']}"))
                self.assertTrue(lib["identityVerified"], lib)
                self.assertEqual(lib["openedVia"], "root", lib)
                self.assertFalse(lib["deleted"], lib)
                self.assertNotIn("whyNot", lib)
                self.assertEqual(lib["mappedBy"], [pid], lib)
        return libs

    # ---- 1. a dynamically linked program

    def test_dynamic_program_exe_and_libraries(self):
        """start scan of /usr/bin/sleep: complete, exe + host sha256, nsPid 1, cgroup, the exact
        set of mapped files each hashed as read through the container's root"""
        rec = self.one("dyn", "start")
        ev = rec["evidence"]
        pid = self.pids["dyn"]
        self.assertEqual((rec["source"] in ("stream", "replay"), ev["status"], ev["procRoot"],
                          ev["initPid"]), (True, "complete", "/proc", pid), ev.get("reason"))
        self.assertNotIn("reason", ev)
        self.assertNotIn("pid", rec["container"])  # evidence.initPid says it (schema 7)
        tree = ev["processTree"]
        self.assertEqual(len(tree["processes"]), 1, tree)
        init = tree["processes"][0]
        self.assertEqual(init["pid"], pid)
        self.assertEqual(init["exe"], "/usr/bin/sleep")
        self.assertFalse(init["exeDeleted"])
        self.assertEqual(init["exeSha256"], self.host_sleep_sha)
        self.assertEqual(init["nsPid"], 1)
        self.assertEqual(init["cmdline"], ["/usr/bin/sleep", "300"])
        self.assertIn(self.ids["dyn"], init["cgroup"])
        self.assertNotIn("unreadable", init)
        libs = self.assert_libraries_match_proc("dyn", rec)
        by_path = {lib["path"]: lib for lib in libs}
        self.assertEqual(by_path["/usr/bin/sleep"]["sha256"], self.host_sleep_sha)
        self.assertIn("/lib64/ld-linux-x86-64.so.2", by_path)
        # The re-scan lists the same files, every hash from the cache this time.
        again = self.one("dyn", "rescan")
        self.assertEqual(again["evidence"]["status"], "complete")
        relibs = self.assert_libraries_match_proc("dyn", again)
        self.assertEqual([lib["cached"] for lib in relibs], [True] * len(relibs))
        self.assertEqual(again["evidence"]["loadedLibraries"]["bytesHashed"], 0)

    # ---- 2. dlopen caught by the re-scan

    def test_dlopen_after_start_caught_by_rescan(self):
        """a library dlopen()ed after the start scan: absent from the start record, listed with
        its sha256 in the re-scan record"""
        if not self.dl_binary:
            self.skipTest("gcc or /usr/include/dlfcn.h missing (not under CI)")
        pid = self.pids["dl"]
        [late] = [p for p in executable_paths(pid) if os.path.basename(p) == LATE_LIBRARY]
        start = self.one("dl", "start")
        self.assertEqual(start["evidence"]["status"], "complete", start["evidence"].get("reason"))
        start_paths = {lib["path"] for lib in start["evidence"]["loadedLibraries"]["libraries"]}
        self.assertIn(DL_PROGRAM, start_paths)
        self.assertNotIn(late, start_paths)
        self.assertEqual(start_paths, executable_paths(pid) - {late})
        rescan = self.one("dl", "rescan")
        self.assertEqual(rescan["evidence"]["status"], "complete",
                         rescan["evidence"].get("reason"))
        libs = self.assert_libraries_match_proc("dl", rescan)
        [lib] = [x for x in libs if x["path"] == late]
        self.assertEqual(lib["sha256"], sha256_file(late))  # the host file it was copied from
        self.assertEqual(lib["size"], os.path.getsize(late))
        # First seen by the re-scan: the only file it hashed, the others came from the cache.
        self.assertFalse(lib["cached"])
        self.assertEqual([x["cached"] for x in libs if x is not lib], [True] * (len(libs) - 1))
        self.assertEqual(rescan["evidence"]["loadedLibraries"]["bytesHashed"], lib["size"])

    # ---- 3. a container that exits before its scan

    def test_container_exited_before_scan(self):
        """`docker run quick true`: one evidence record, status exited with a reason, no process
        tree; no error logged; the agent stays ready"""
        rec = self.one("quick", "start")
        ev = rec["evidence"]
        if ev["status"] != "exited":
            # The scan runs as soon as the start is recorded: it may catch `true` (or the runtime
            # before its exec) still running. All read then, nothing unreadable; its re-scan found
            # it exited (set_up waited for that).
            self.assertEqual(ev["status"], "complete", ev)
            self.assertEqual(ev["processTree"]["processes"][0]["pid"], ev["initPid"])
            h.log(f"quick: scanned while running: {ev['processTree']['processes'][0]['comm']}")
            self.skipTest("the start scan caught quick's process running")
        self.assertEqual(ev["status"], "exited", ev)
        self.assertNotIn("processTree", ev)
        self.assertNotIn("loadedLibraries", ev)
        if "initPid" not in ev:  # the inspect after `start` already said not running
            self.assertNotIn("reason", ev)
        else:  # running at the inspect, gone by the scan
            self.assertIn(f"(pid {ev['initPid']}) exited", ev["reason"])
        h.log(f"quick: initPid {ev.get('initPid')}, reason {ev.get('reason')!r}")
        self.assertEqual(self.evidence_records("quick", records=self.records), [rec])
        errors = [line for line in self.log_text.splitlines()
                  if re.match(r"^\S+ (error|critical) ", line)]
        self.assertEqual(errors, [], "error lines in the agent log")
        self.assertEqual(self.readyz[0], 200, self.readyz)

    # ---- 4. a process tree

    def test_multi_process_tree(self):
        """sh with two background sleeps: 3 processes, ppid links, nsPids, every cgroup names
        the container (the re-scan; the start scan may precede the forks or their exec)"""
        cid, pid = self.ids["multi"], self.pids["multi"]
        kids = children_of(pid)
        self.assertEqual(len(kids), 2, kids)
        for scan in ("start", "rescan"):
            rec = self.one("multi", scan)
            procs = rec["evidence"]["processTree"]["processes"]
            # The init is read before its children: it may not have exec'd sh yet when read
            # (runc's init), even though the children read later are the sleeps.
            settled = len(procs) == 3 and procs[0]["comm"] == "sh" and \
                all(p["comm"] == "sleep" for p in procs[1:])
            if scan == "start" and not settled:
                h.log(f"multi: the start scan saw {[p['comm'] for p in procs]} (before the "
                      f"forks had exec'd sleep)")
                continue
            self.assertEqual(rec["evidence"]["status"], "complete", rec["evidence"])
            self.assertEqual(len(procs), 3, procs)
            init = procs[0]
            self.assertEqual((init["pid"], init["nsPid"], init["comm"], init["cmdline"]),
                             (pid, 1, "sh", MULTI_CMD))
            self.assertEqual({p["pid"] for p in procs[1:]}, kids)
            got = sorted((p["ppid"], p["nsPid"], p["comm"], tuple(p["cmdline"]), p["exe"])
                         for p in procs[1:])
            want = sorted((pid, ns_pid(k), "sleep", tuple(read_text(f"/proc/{k}/cmdline")
                                                          .rstrip("\0").split("\0")),
                           "/bin/busybox") for k in kids)
            self.assertEqual(got, want)
            self.assertEqual(sorted(g[3] for g in got), [("sleep", "300"), ("sleep", "301")])
            for p in procs:
                self.assertIn(cid, p["cgroup"], p)
                self.assertEqual(p["namespaces"], init["namespaces"])
            self.assertEqual(rec["evidence"]["processTree"]["truncated"], False)
            # busybox-static maps nothing but itself.
            libs = rec["evidence"]["loadedLibraries"]["libraries"]
            self.assertEqual([(x["path"], sorted(x["mappedBy"])) for x in libs],
                             [("/bin/busybox", sorted([pid, *kids]))])

    # ---- 5. secrets in command lines

    def test_cmdline_secrets_redacted(self):
        """--password=VALUE and --api-key VALUE in sh's command line: redacted in the records;
        the values are in no NDJSON line, no SQLite file, not in the log"""
        for scan in ("start", "rescan"):
            rec = self.one("secret", scan)
            init = rec["evidence"]["processTree"]["processes"][0]
            self.assertEqual(init["cmdline"], ["sh", "-c", "sleep 302 & wait", "sh",
                                               "--password=<redacted>", "--api-key",
                                               "<redacted>"])
        # The process really has them (the test is not vacuous).
        raw = read_text(f"/proc/{self.pids['secret']}/cmdline")
        for secret in SECRETS:
            self.assertIn(secret, raw)
        places = {"log": self.agent.log_text()}
        for root, _, files in os.walk(self.agent.data_dir):
            for name in files:
                with open(os.path.join(root, name), "rb") as f:
                    places[name] = f.read().decode("latin-1")
        self.assertTrue(any(n.endswith(".ndjson") for n in places), places.keys())
        self.assertIn("zastava-agent.db", places)
        for where, text in places.items():
            for secret in SECRETS:
                self.assertNotIn(secret, text, f"{secret} leaked into {where}")
        for row in h.read_sqlite(self.agent.data_dir, "SELECT record FROM events"):
            for secret in SECRETS:
                self.assertNotIn(secret, row[0])

    # ---- 6. metrics

    def test_evidence_metrics(self):
        """scans counted by scan and status exactly as records were written (+ the re-scans
        that found their container exited, which write none); bytes hashed, cache hits and
        misses; no cap hit; promtool clean"""
        text = self.metrics_text
        counts = {}
        for r in self.records:
            if r["kind"] == "container.evidence":
                key = (r["evidence"]["scan"], r["evidence"]["status"])
                counts[key] = counts.get(key, 0) + 1
        want = dict(counts)
        want[("rescan", "exited")] = want.get(("rescan", "exited"), 0) + self.exited_rescans
        got = {}
        for name, labels, value in h.parse_metrics(text):
            if name == "zastava_agent_evidence_scans_total" and value:
                got[(labels["scan"], labels["status"])] = int(value)
        self.assertEqual(got, want)
        n_start = len(self.ids)
        self.assertEqual(sum(v for (s, _), v in got.items() if s == "start"), n_start)
        # all but quick, unless its scan caught it running
        self.assertEqual(got.get(("start", "complete")), n_start - 1 + self.quick_read)
        self.assertEqual(got.get(("rescan", "complete")), len(self.running))
        self.assertEqual(h.metric_value(text, "zastava_agent_evidence_scan_duration_seconds_count"),
                         sum(got.values()))
        hashed = h.metric_value(text, "zastava_agent_evidence_hashed_bytes_total")
        self.assertGreaterEqual(hashed, os.path.getsize("/usr/bin/sleep") +
                                os.path.getsize("/bin/busybox"))
        self.assertGreater(h.metric_value(text, "zastava_agent_evidence_hash_cache_hits_total"), 0)
        self.assertGreater(h.metric_value(text, "zastava_agent_evidence_hash_cache_misses_total"),
                           0)
        for cap in ("processes", "libraries", "bytes"):
            self.assertEqual(h.metric_value(text, "zastava_agent_evidence_caps_hit_total",
                                            {"cap": cap}), 0, cap)
        # Every scan asked for is done by now: a scan still queued would be a re-scan scheduled
        # by a start scan that read a tree, e.g. quick's had its exited init been taken as
        # partial.
        quick = [r["evidence"]["status"] for r in self.evidence_records("quick", "start",
                                                                         self.records)]
        self.assertEqual(h.metric_value(text, "zastava_agent_evidence_queue_depth"), 0,
                         f"scans still queued; quick's start scan: {quick}")
        res = subprocess.run(["promtool", "check", "metrics"], input=text,
                             capture_output=True, text=True, timeout=30)
        self.assertEqual((res.returncode, res.stdout.strip(), res.stderr.strip()), (0, "", ""),
                         "promtool output")

    # ---- 7. schema, and the containers table

    def test_records_validate_and_table_untouched(self):
        """every record validates against docs/record-schema.json, the chain holds; evidence
        leaves the containers table alone: stopped stopme is 'exited' after its re-scan time"""
        schema, path = h.load_schema(ARGS.source_dir)
        self.assertIsNotNone(schema, f"{path} is missing")
        evidence = [r for r in self.records if r["kind"] == "container.evidence"]
        self.assertGreaterEqual(len(evidence), len(self.ids) + len(self.running))
        self.assertEqual(h.schema_errors(schema, self.records), [])
        self.assertEqual(h.verify_chain(self.lines), [])
        ids = [r["eventId"] for r in self.records]
        self.assertEqual(len(ids), len(set(ids)), "an eventId twice")
        start_sources = {r["container"]["id"]: r["source"] for r in self.records
                         if r["kind"] == "container.start"}
        for r in evidence:
            self.assertEqual(("timeNano" in r, "action" in r), (False, False), r["eventId"])
            # What asked for the scan: the start event (a re-scan repeats it), or an inventory.
            if r["evidence"]["scan"] == "reconcile":
                self.assertIn(r["source"], ("snapshot", "reconcile"), r["eventId"])
            else:
                self.assertEqual(r["source"], start_sources.get(r["container"]["id"]),
                                 r["eventId"])
        # stopme: scanned once at start, stopped, its re-scan (counted exited) wrote nothing.
        self.assertEqual(self.one("stopme", "start")["evidence"]["status"], "complete")
        self.assertEqual(self.evidence_records("stopme", "rescan", self.records), [])
        row = self.table[self.ids["stopme"]]
        self.assertEqual((row["name"], row["state"], row["exit_code"]), ("stopme", "exited", 0))
        self.assertEqual(self.table[self.ids["quick"]]["state"], "exited")
        for name in self.running:
            self.assertEqual(self.table[self.ids[name]]["state"], "running", name)

    # ---- 8. --evidence-workers 0

    def test_workers_zero_turns_evidence_off(self):
        """a second agent with --evidence-workers 0: no evidence record for a container started
        under it (nor for those running at its start), no scan counted; the first agent, as a
        control, did scan that container"""
        d = self.d
        agent = self.ws.agent(ARGS.agent, d.endpoint, name="off", extra_args=[
            "--evidence-workers", "0", "--evidence-rescan-seconds", str(RESCAN_SECONDS)])
        agent.start()
        agent.wait_ready()
        cid = d.docker("run", "-d", "--name", "off", h.TEST_IMAGE, *STOPPABLE_CMD)

        def recorded(kind):
            return h.read_sqlite(agent.data_dir, "SELECT 1 FROM events WHERE kind = "
                                 f"'{kind}' AND container_id = '{cid}'")
        h.wait_until(lambda: recorded("container.start"), 20, "off's start record (agent off)")
        # Events are recorded in order: once its die is in, the start's evidence request (if
        # any) was made long before.
        self.wait_evidence(cid, "start")  # the control: the first agent scanned it
        d.docker("stop", "-t", "5", "off")
        h.wait_until(lambda: recorded("container.die"), 20, "off's die record (agent off)")
        text = agent.metrics()
        records = [json.loads(x) for x in h.read_ndjson(agent.data_dir)]
        self.assertEqual([r["eventId"] for r in records if r["kind"] == "container.evidence"],
                         [])
        self.assertEqual(h.read_sqlite(agent.data_dir, "SELECT event_id FROM events WHERE "
                                       "kind = 'container.evidence'"), [])
        scans = [v for n, _, v in h.parse_metrics(text)
                 if n == "zastava_agent_evidence_scans_total"]
        self.assertEqual(sum(scans), 0)
        self.assertEqual(h.metric_value(text, "zastava_agent_evidence_scan_duration_seconds_count"),
                         0)
        # It saw the containers running at its start (snapshots), yet scanned none of them.
        snapshots = {r["container"]["id"] for r in records if r["kind"] == "container.snapshot"}
        self.assertTrue({self.ids[n] for n in self.running} <= snapshots, snapshots)
        schema, _ = h.load_schema(ARGS.source_dir)
        self.assertEqual(h.schema_errors(schema, records), [])
        code, _ = agent.stop()
        self.assertEqual(code, 0)


if __name__ == "__main__":
    h.main(globals())
