#!/usr/bin/python3
"""Seals (docs/records.md "Seals: a ledger that proves itself", "Verifying the ledger") on a
real ledger, checked by both verifiers: `zastava-agent verify` and its second implementation,
tests/buffer/verify_ledger.py, written from the doc alone. They must agree on every case.

The agent seals every second (--ledger-seal-interval-seconds 1) through three runs of
container lives (create, start, stop, rm), each ended by SIGTERM (a stop seal) and each
beginning a segment of its own; a copy of the key file is kept from the first run. Then
`seal-key export` (its seed line, where the file is and `shred -u` on stderr), and for each
case a copy of the data directory, tampered, verified with and without the seed: untouched;
a line edited in NDJSON only, and in NDJSON and SQLite; a line deleted; two lines swapped;
the newest lines cut from NDJSON and SQLite; the chain rewritten from the middle with fresh
hashes everywhere (valid without the seed, the first seal after the edit named with it); the
key file replaced by the older copy; a segment from the middle moved away; the oldest segment
and its SQLite rows removed as retention does (imitated: EventBuffer:RetentionHours is at least
1 h). Each exit code is the expected one, both verifiers agree, and zastava-agent's output
names the attack. Then the agent started on the copy with the older key file writes an
`agent.seal-key` record with change `rewound`, and verify fails naming it. Last, an agent
SIGKILLed again and again (at random moments, right after a seal's row, right after the key
file's overwrite) is verified valid after every kill and after a clean stop: a kill never
looks like tampering. Prints a VERIFY CASES table."""

import json
import os
import random
import shutil
import sqlite3
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402

ARGS = None
INTERVAL = ["--ledger-seal-interval-seconds", "1"]
RUNS = 3  # agent runs (segments) in the tampered ledger
RUN_SECONDS = 3.5  # container lives per run
# One kill in each of the three modes below (more only lengthens CI: each mode is one path).
KILLS = 3
GENESIS = "0" * 64
CASES = []  # rows of the VERIFY CASES table


def lifecycles(d, prefix, seconds, stop=None):
    """Container lives (create, start, stop, rm) for about `seconds` (or until stop is set)."""
    end = time.monotonic() + seconds
    n = 0
    while time.monotonic() < end and not (stop and stop.is_set()):
        name = f"{prefix}-{n}"
        d.docker("create", "--name", name, h.TEST_IMAGE, *h.IDLE_CMD)
        d.docker("start", name)
        d.docker("stop", "-t", "2", name)
        d.docker("rm", name)
        n += 1
    return n


def dumps(record):
    return json.dumps(record, separators=(",", ":"), ensure_ascii=False)


def line_hash(line):
    return h.line_hash(line)[0]


class Ledger:
    """A data directory's NDJSON lines and SQLite rows, to tamper with."""

    def __init__(self, data_dir):
        self.dir = data_dir
        self.paths = h.segment_paths(data_dir)
        self.lines = {p: read_lines(p) for p in self.paths}

    def entries(self):
        """[(path, index in file, line, record)] in ledger order."""
        return [(p, i, line, json.loads(line)) for p in self.paths
                for i, line in enumerate(self.lines[p])]

    def save(self):
        for p in self.paths:
            with open(p, "w", encoding="utf-8") as f:
                f.write("".join(line + "\n" for line in self.lines[p]))

    def sql(self, statement, params=()):
        conn = sqlite3.connect(h.db_path(self.dir), timeout=10)
        try:
            rows = conn.execute(statement, params).fetchall()
            conn.commit()
            return rows
        finally:
            conn.close()

    def replace_row(self, old, new):
        conn = sqlite3.connect(h.db_path(self.dir), timeout=10)
        try:
            changed = conn.execute("UPDATE events SET record = ? WHERE record = ?",
                                   (new, old)).rowcount
            conn.commit()
        finally:
            conn.close()
        assert changed == 1, f"{changed} rows hold {old[:100]}"

    def set_meta(self, key, value):
        self.sql("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", (key, value))


def read_bytes(path):
    with open(path, "rb") as f:
        return f.read()


def read_lines(path):
    with open(path, "r", encoding="utf-8") as f:
        return f.read().splitlines()


def middle_container_record(ledger):
    """(ledger position, entry) of a container record in the middle segment with a seal of
    the same segment after it."""
    entries = ledger.entries()
    middle = ledger.paths[len(ledger.paths) // 2]
    for pos, (p, _, _, rec) in enumerate(entries):
        if p != middle or not rec.get("kind", "").startswith("container."):
            continue
        if any(e[0] == middle and e[3].get("kind") == "agent.seal" for e in entries[pos + 1:]):
            return pos, entries[pos]
    raise AssertionError(f"no container record followed by a seal in {middle}")


def edit(line):
    rec = json.loads(line)
    rec["container"]["name"] = rec["container"]["name"] + "-forged"
    return dumps(rec)


# The tampering cases: each takes a Ledger of a copy and returns what the expected output
# must name (keywords, any of which will do, in zastava-agent verify's output).

def tamper_edit_ndjson(ledger):
    _, (p, i, line, _) = middle_container_record(ledger)
    ledger.lines[p][i] = edit(line)
    ledger.save()


def tamper_edit_both(ledger):
    _, (p, i, line, _) = middle_container_record(ledger)
    ledger.lines[p][i] = edit(line)
    ledger.replace_row(line, ledger.lines[p][i])
    ledger.save()


def tamper_delete(ledger):
    _, (p, i, line, _) = middle_container_record(ledger)
    del ledger.lines[p][i]
    ledger.sql("DELETE FROM events WHERE record = ?", (line,))
    ledger.save()


def tamper_reorder(ledger):
    _, (p, i, line, _) = middle_container_record(ledger)
    other = ledger.lines[p][i + 1]
    ledger.lines[p][i], ledger.lines[p][i + 1] = other, line
    rows = ledger.sql("SELECT rowid, event_id, kind, container_id, time_nano, source, record "
                      "FROM events WHERE record IN (?, ?) ORDER BY rowid", (line, other))
    assert len(rows) == 2, rows
    (ra, *a), (rb, *b) = rows
    ledger.sql("UPDATE events SET event_id = 'swap-' || event_id WHERE rowid IN (?, ?)",
               (ra, rb))
    for rowid, values in ((ra, b), (rb, a)):
        ledger.sql("UPDATE events SET event_id = ?, kind = ?, container_id = ?, time_nano = ?, "
                   "source = ?, record = ? WHERE rowid = ?", (*values, rowid))
    ledger.save()


def tamper_truncate(ledger, cut=3):
    p = ledger.paths[-1]
    gone = ledger.lines[p][-cut:]
    ledger.lines[p] = ledger.lines[p][:-cut]
    for line in gone:
        ledger.sql("DELETE FROM events WHERE record = ?", (line,))
    ledger.save()


def rewrite_from(ledger, position):
    """Edits the record at ledger `position` and rewrites every later one with fresh hashes
    (seals' lastHash too) in NDJSON, SQLite and meta last_hash, as root could. Returns the
    (file name, line number) of the first seal after it."""
    prev = None
    first_seal = None
    for pos, (p, i, line, rec) in enumerate(ledger.entries()):
        if pos < position:
            prev = line_hash(line)
            continue
        if pos == position:
            rec["container"]["name"] += "-forged"
        rec["prevHash"] = prev
        if rec.get("kind") == "agent.seal":
            rec["seal"]["lastHash"] = prev
            first_seal = first_seal or (os.path.basename(p), i + 1)
        new = dumps(rec)
        if new != line:
            ledger.replace_row(line, new)
        ledger.lines[p][i] = new
        prev = line_hash(new)
    ledger.save()
    ledger.set_meta("last_hash", prev)
    return first_seal


def tamper_move_segment(ledger):
    middle = ledger.paths[len(ledger.paths) // 2]
    shutil.move(middle, os.path.join(os.path.dirname(ledger.dir), "moved-away.ndjson"))


def imitate_retention(ledger):
    """What retention does (docs/records.md "Files", "SQLite"), by hand: the oldest segment
    deleted; the SQLite rows older than its last record deleted and that cutoff recorded in
    meta pruned_before_nano. (The agent cannot be made to do it here: RetentionHours >= 1.)"""
    oldest = ledger.paths[0]
    times = [h.rfc3339_to_nanos(json.loads(line)["time"]) for line in ledger.lines[oldest]]
    cutoff = max(times) + 1
    os.unlink(oldest)
    ledger.sql("DELETE FROM events WHERE time_nano < ?", (cutoff,))
    ledger.set_meta("pruned_before_nano", str(cutoff))


class LedgerSeals(h.WorkspaceTest):
    @classmethod
    def set_up(cls):
        cls.d = cls.ws.dockerd()
        cls.d.make_busybox_image()

    def verify_case(self, case, data_dir, seeds, expected_plain, expected_seeded, words=(),
                    also=None):
        """Both verifiers without and with the seeds; returns problems (and adds the rows)."""
        problems = []
        for label, keys, expected in (("no seed", (), expected_plain),
                                      ("seed", seeds, expected_seeded)):
            results = h.run_verifiers(ARGS.agent, data_dir, ARGS.source_dir, keys)
            (cpp_code, cpp_out), (py_code, py_out) = results["cpp"], results["py"]
            named = ""
            if expected == 1:
                found = [w for w in words if w.lower() in cpp_out.lower()]
                named = ",".join(found) or "NOT NAMED"
                if not found:
                    problems.append(f"{case} ({label}): zastava-agent verify names none of "
                                    f"{list(words)}:\n{cpp_out[-2500:]}")
                if also and cpp_code == 1 and not also(cpp_out):
                    problems.append(f"{case} ({label}): zastava-agent verify's output lacks "
                                    f"{also.__doc__}:\n{cpp_out[-2500:]}")
            CASES.append([case, label, str(expected), str(cpp_code), str(py_code), named])
            h.log(f"VERIFY {case} ({label}): expected {expected}, zastava-agent {cpp_code}, "
                  f"verify_ledger.py {py_code}")
            if cpp_code != py_code:
                problems.append(f"{case} ({label}): the verifiers DISAGREE: zastava-agent "
                                f"verify {cpp_code}, verify_ledger.py {py_code}\n--- "
                                f"zastava-agent verify ---\n{cpp_out[-2500:]}\n--- "
                                f"verify_ledger.py ---\n{py_out[-2500:]}")
            elif cpp_code != expected:
                problems.append(f"{case} ({label}): both exit {cpp_code}, expected {expected}"
                                f"\n--- zastava-agent verify ---\n{cpp_out[-2500:]}\n--- "
                                f"verify_ledger.py ---\n{py_out[-2500:]}")
        return problems

    def test_tampering(self):
        d = self.d
        agent = self.ws.agent(ARGS.agent, d.endpoint, name="a", extra_args=INTERVAL)
        key_path = os.path.join(agent.data_dir, "seal-key")
        old_key = os.path.join(self.ws.dir, "seal-key.older")
        for run in range(RUNS):
            if run:
                agent = self.ws.respawn(agent)
            agent.start()
            agent.wait_ready()
            lives = lifecycles(d, f"r{run}", RUN_SECONDS)
            if run == 0:  # a key file two seals old, kept for later
                h.wait_until(lambda: h.metric_value(agent.metrics(),
                                                    "zastava_agent_seals_total") >= 2,
                             15, "two seals")
                shutil.copyfile(key_path, old_key)
                h.wait_until(lambda: read_bytes(key_path) != read_bytes(old_key), 10,
                             "the key file overwritten by the next seal")
                h.wait_until(lambda: h.metric_value(agent.metrics(),
                                                    "zastava_agent_seals_total") >= 4,
                             15, "two more seals")
            code, _ = agent.stop()
            self.assertEqual(code, 0, h.tail(agent.log_path))
            h.log(f"run {run}: {lives} container lives")
        data = agent.data_dir
        problems = []

        # The ledger itself: a stop seal at the end of each run's segment, consecutive epochs.
        ledger = Ledger(data)
        entries = ledger.entries()
        self.assertEqual(len(ledger.paths), RUNS, "each start begins a segment")
        for p in ledger.paths:
            last = json.loads(ledger.lines[p][-1])
            if last.get("kind") != "agent.seal":
                problems.append(f"{os.path.basename(p)} does not end with a stop seal: "
                                f"{last.get('kind')}")
        seals = [e[3]["seal"] for e in entries if e[3].get("kind") == "agent.seal"]
        changes = [e[3]["sealKey"] for e in entries if e[3].get("kind") == "agent.seal-key"]
        self.assertEqual([c["change"] for c in changes], ["new"], changes)
        key_id = changes[0]["keyId"]
        self.assertEqual([s["epoch"] for s in seals], list(range(len(seals))))
        self.assertEqual({s["keyId"] for s in seals}, {key_id})
        self.assertGreaterEqual(len(seals), RUNS * 3, "a seal every second")

        # seal-key export: the seed line on stdout, on stderr where it is and how to delete it.
        res, seeds = h.export_seeds(ARGS.agent, data, os.path.join(self.ws.dir, "seeds"))
        seed_file = os.path.join(data, f"seal-seed-{key_id}")
        self.assertEqual(res.returncode, 0, res.stderr)
        self.assertEqual(len(seeds), 1, res.stdout)
        self.assertRegex(res.stdout, rf"^zastava-seal-seed v1 {key_id} [0-9a-f]{{64}}\n$")
        self.assertIn(seed_file, res.stderr)
        self.assertIn(f"shred -u {seed_file}", res.stderr)
        empty = os.path.join(self.ws.dir, "empty")
        os.makedirs(empty)
        none = h.run_agent_once(ARGS.agent, ["seal-key", "export", "--data-directory", empty])
        self.assertEqual(none.returncode, 1, none.stdout + none.stderr)
        bad = h.run_agent_once(ARGS.agent, ["seal-key", "export", "--no-such-flag"])
        self.assertEqual(bad.returncode, 2, bad.stdout + bad.stderr)
        # A seed file that is not one: unusable input.
        wrong = os.path.join(self.ws.dir, "wrong-seed")
        with open(wrong, "w") as f:
            f.write("zastava-seal-seed v1 0000000000000000 " + "00" * 32 + "\n")
        problems += h.verify_problems(ARGS.agent, data, ARGS.source_dir, [wrong], 2,
                                      "with a seed file whose key id is wrong")

        cases = [
            ("untouched", None, 0, 0, ()),
            ("edited line (NDJSON only)", tamper_edit_ndjson, 1, 1, ("edited",)),
            ("edited line (NDJSON and SQLite)", tamper_edit_both, 1, 1, ("edited",)),
            ("deleted line", tamper_delete, 1, 1, ("missing", "deleted", "removed")),
            ("reordered lines", tamper_reorder, 1, 1, ("order",)),
            ("truncated (NDJSON and SQLite)", tamper_truncate, 1, 1,
             ("missing", "removed", "truncated")),
            ("key file: older copy", lambda lg: shutil.copyfile(old_key, key_path_of(lg)), 1, 1,
             ("older copy",)),
            ("segment moved away", tamper_move_segment, 1, 1, ("segment",)),
            ("retention (imitated)", imitate_retention, 0, 0, ()),
        ]
        for n, (case, tamper, plain, seeded, words) in enumerate(cases):
            copy = os.path.join(self.ws.dir, f"case{n}", "data")
            shutil.copytree(data, copy)
            if tamper:
                tamper(Ledger(copy))
            problems += self.verify_case(case, copy, seeds, plain, seeded, words)

        # The chain rewritten consistently: only the seals tell, with the seed.
        copy = os.path.join(self.ws.dir, "rewritten", "data")
        shutil.copytree(data, copy)
        ledger = Ledger(copy)
        position, _ = middle_container_record(ledger)
        first_seal = rewrite_from(ledger, position)

        def names_first_seal(out):
            """the first seal after the edit (its file and line)"""
            name, line = first_seal
            return name in out and (f":{line}" in out or f"line {line}" in out)
        problems += self.verify_case("chain rewritten from the middle", copy, seeds, 0, 1,
                                     ("does not verify",), also=names_first_seal)
        py = h.run_verifiers(ARGS.agent, copy, ARGS.source_dir, seeds)["py"][1]
        first = [x for x in py.splitlines() if x.startswith("problem:")][:1]
        if not first or f"{first_seal[0]}:{first_seal[1]}:" not in first[0]:
            problems.append(f"verify_ledger.py's first problem is not the first seal after the "
                            f"edit {first_seal}: {first}")

        # The agent started on the copy whose key file is the older one.
        rewound = self.ws.agent(ARGS.agent, d.endpoint, name="rewound", extra_args=INTERVAL)
        shutil.copytree(data, rewound.data_dir)
        shutil.copyfile(old_key, key_path_of(Ledger(rewound.data_dir)))
        rewound.start()
        rewound.wait_ready()
        h.wait_metric(rewound, "zastava_agent_seal_key_changes_total", lambda v: v == 1,
                      labels={"change": "rewound"})
        h.wait_metric(rewound, "zastava_agent_seals_total", lambda v: v and v >= 1)
        code, _ = rewound.stop()
        self.assertEqual(code, 0, h.tail(rewound.log_path))
        after = [e[3] for e in Ledger(rewound.data_dir).entries()][len(entries):]
        key_records = [r["sealKey"] for r in after if r.get("kind") == "agent.seal-key"]
        new_seals = [r["seal"] for r in after if r.get("kind") == "agent.seal"]
        if [k["change"] for k in key_records] != ["rewound"]:
            problems.append(f"after the rollback, agent.seal-key records {key_records}, want one "
                            f"'rewound'")
        elif key_records[0]["epoch"] != seals[-1]["epoch"] + 1 or \
                key_records[0]["keyId"] != key_id:
            problems.append(f"rewound record {key_records[0]}: want key {key_id}, epoch "
                            f"{seals[-1]['epoch'] + 1}")
        if not new_seals or new_seals[0]["epoch"] != seals[-1]["epoch"] + 1:
            problems.append(f"the seals after the rollback: {new_seals[:2]}, want epoch "
                            f"{seals[-1]['epoch'] + 1} first")
        problems += self.verify_case("restarted on the older key file", rewound.data_dir, seeds,
                                     1, 1, ("rewound",))
        self.assertEqual(problems, [], "\n\n".join(problems))

    def test_sigkill_during_seals(self):
        """SIGKILL at random moments, right after a seal's SQLite row, right after the key file's
        overwrite; verified after every kill and after a clean stop."""
        d = self.d
        rnd_seed = int(os.environ.get("ZIT_SEED", time.time_ns() % 1_000_000))
        rnd = random.Random(rnd_seed)
        h.log(f"random seed {rnd_seed} (ZIT_SEED)")
        agent = self.ws.agent(ARGS.agent, d.endpoint, name="k", extra_args=INTERVAL)
        key_path = os.path.join(agent.data_dir, "seal-key")
        stop = threading.Event()
        errors = []

        def churn():
            try:
                lifecycles(d, "k", 3600, stop)
            except Exception as exc:  # reported by the test
                errors.append(repr(exc))
        worker = threading.Thread(target=churn, daemon=True)
        worker.start()
        problems = []
        seeds_dir = os.path.join(self.ws.dir, "k-seeds")
        try:
            for kill in range(KILLS):
                if kill:
                    agent = self.ws.respawn(agent)
                agent.start()
                agent.wait_ready()
                mode = ("random moment", "after a seal's row", "after the key file's "
                        "overwrite")[kill % 3]
                if mode == "random moment":
                    time.sleep(rnd.uniform(0.2, 2.5))
                elif mode == "after a seal's row":
                    query = "SELECT count(*) FROM events WHERE kind = 'agent.seal'"
                    n0 = h.read_sqlite(agent.data_dir, query)[0][0]
                    h.wait_until(lambda: h.read_sqlite(agent.data_dir, query)[0][0] > n0, 10,
                                 "a seal's row", interval=0.001)
                else:
                    m0 = os.stat(key_path).st_mtime_ns
                    h.wait_until(lambda: os.stat(key_path).st_mtime_ns != m0, 10,
                                 "the key file overwritten", interval=0.001)
                agent.kill9()
                h.log(f"kill {kill}: SIGKILL {mode}")
                problems += h.seals_verify_problems(ARGS.agent, agent.data_dir,
                                                    ARGS.source_dir, seeds_dir,
                                                    f"after kill {kill} ({mode})")
            agent = self.ws.respawn(agent)
            agent.start()
            agent.wait_ready()
            h.wait_metric(agent, "zastava_agent_seals_total", lambda v: v and v >= 2)
        finally:
            stop.set()
            worker.join(60)
        code, _ = agent.stop()
        self.assertEqual(code, 0, h.tail(agent.log_path))
        self.assertEqual(errors, [], "docker commands")
        problems += h.seals_verify_problems(ARGS.agent, agent.data_dir, ARGS.source_dir,
                                            seeds_dir, "after the last clean stop")
        records = [json.loads(x) for x in h.read_ndjson(agent.data_dir)]
        changes = [r["sealKey"] for r in records if r.get("kind") == "agent.seal-key"]
        if [c["change"] for c in changes] != ["new"]:
            problems.append(f"kills are not tampering, yet agent.seal-key records {changes}")
        epochs = [r["seal"]["epoch"] for r in records if r.get("kind") == "agent.seal"]
        if epochs != list(range(len(epochs))):
            problems.append(f"seal epochs across kills: {epochs}")
        h.log(f"{KILLS} kills, {len(epochs)} seals")
        self.assertEqual(problems, [], "\n\n".join(problems))


def key_path_of(ledger):
    return os.path.join(ledger.dir, "seal-key")


def print_cases():
    if not CASES:
        return
    columns = ["case", "seed", "expected", "zastava-agent verify", "verify_ledger.py",
               "attack named"]
    widths = [max(len(c), *(len(r[i]) for r in CASES)) for i, c in enumerate(columns)]
    print("\n==== VERIFY CASES ====")
    for row in [columns] + CASES:
        print(" | ".join(c.ljust(w) for c, w in zip(row, widths)))
    print("======================", flush=True)


if __name__ == "__main__":
    try:
        h.main(globals())
    finally:
        print_cases()
