#!/usr/bin/python3
"""Self-test of verify_ledger.py: the seal crypto on a fixed vector (computed apart with
`openssl mac -digest SHA256 -macopt hexkey:... HMAC`), then a small ledger built here as
docs/records.md describes it (NDJSON segments, SQLite, meta, seed and key files, a schema 6
line at the start), verified untouched and after each kind of tampering."""

import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import verify_ledger as v  # noqa: E402

SEED = bytes(range(32))
VECTOR = {  # openssl, not this code
    "keyId": "fc54c4c07610c388",
    "K0": "aedb74b27444211c691a05ba0fb8b67f60feab69dc9cea9f6e858c05ed425239",
    "K1": "10ac19895d1c2323e5985de57f036842dbfe88680be81eba6eee0869472c8054",
    # message: keyId, epoch 1, records 3, lastHash "ab" * 32, time below
    "time": "2026-12-07T06:40:00.000000123Z",
    "mac": "84d9260fc5f45859273eb3dac76a55ae846ef0f0bd6b99ee9bb8d5b404086237",
}
BASE_NANOS = 1_796_624_000_000_000_000  # 2026-12-07T06:13:20Z


def dumps(obj):
    return json.dumps(obj, separators=(",", ":"))


class Ledger:
    """Builds a ledger the way docs/records.md says the agent writes one."""

    def __init__(self, seed=SEED):
        self.seed = seed
        self.key_id = v.key_id_of(seed)
        self.segments = [[]]  # lists of line strings
        self.prev = v.GENESIS
        self.count = 0
        self.epoch = 0
        self.since_anchor = 0

    def _time(self):
        self.count += 1
        return v._rfc3339(BASE_NANOS + self.count * 1_000_000_123)

    def _append(self, line, own_hash=None):
        self.segments[-1].append(line)
        self.prev = own_hash or hashlib.sha256(line.encode()).hexdigest()
        self.since_anchor += 1

    def old_record(self):
        """A schema 6 line, ending with its own hash."""
        t = self._time()
        body = dumps({"schema": {"name": "zastava.runtime-event", "version": 6},
                      "eventId": hashlib.sha256(t.encode()).hexdigest()[:32],
                      "kind": "container.start", "source": "stream", "time": t,
                      "prevHash": self.prev})
        own = hashlib.sha256(body.encode()).hexdigest()
        self._append(body[:-1] + f',"hash":"{own}"}}', own)

    def record(self, name="web"):
        t = self._time()
        self._append(dumps({"schema": {"name": "zastava.runtime-event", "version": 9},
                            "eventId": hashlib.sha256(t.encode()).hexdigest()[:32],
                            "kind": "container.start", "source": "stream", "time": t,
                            "container": {"id": "c" * 64, "name": name, "image": "busybox:1",
                                          "state": "running"},
                            "prevHash": self.prev}))

    def seal_key(self, change="new", epoch=0, reason="a new ledger"):
        t = self._time()
        event_id = hashlib.sha256(f"seal-key\n{self.key_id}\n{epoch}\n{change}".encode())
        self._append(dumps({"schema": {"name": "zastava.runtime-event", "version": 9},
                            "eventId": event_id.hexdigest()[:32], "kind": "agent.seal-key",
                            "source": "agent", "time": t,
                            "sealKey": {"keyId": self.key_id, "epoch": epoch,
                                        "change": change, "reason": reason},
                            "prevHash": self.prev}))
        self.epoch = epoch
        self.since_anchor = 0

    def seal(self):
        t = self._time()
        records = self.since_anchor
        mac = v.seal_mac(v.epoch_key(self.seed, self.epoch),
                         v.seal_message(self.key_id, self.epoch, records, self.prev, t))
        event_id = hashlib.sha256(f"seal\n{self.key_id}\n{self.epoch}".encode())
        self._append(dumps({"schema": {"name": "zastava.runtime-event", "version": 9},
                            "eventId": event_id.hexdigest()[:32], "kind": "agent.seal",
                            "source": "agent", "time": t,
                            "seal": {"keyId": self.key_id, "epoch": self.epoch,
                                     "records": records, "lastHash": self.prev, "mac": mac},
                            "prevHash": self.prev}))
        self.epoch += 1
        self.since_anchor = 0

    def new_segment(self):
        self.segments.append([])

    def write(self, directory):
        """The data directory: segments, database, seed file and key file."""
        events = os.path.join(directory, v.SEGMENT_DIR)
        os.makedirs(events)
        lines = []
        for i, segment in enumerate(self.segments):
            with open(os.path.join(events, f"events-20261207T061320Z-{i + 1:06d}.ndjson"),
                      "w") as f:
                f.write("".join(line + "\n" for line in segment))
            lines += segment
        conn = sqlite3.connect(os.path.join(directory, v.DB_NAME))
        conn.executescript("PRAGMA journal_mode=WAL;"
                           "CREATE TABLE events(event_id TEXT NOT NULL, kind TEXT NOT NULL, "
                           "container_id TEXT, time_nano INTEGER NOT NULL, source TEXT NOT NULL,"
                           " record TEXT NOT NULL);"
                           "CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT);")
        for line in lines:
            r = json.loads(line)
            conn.execute("INSERT INTO events VALUES (?,?,?,?,?,?)",
                         (r["eventId"], r["kind"], None, v.time_nanos(r["time"]), r["source"],
                          line))
        conn.executemany("INSERT INTO meta VALUES (?,?)",
                         [("last_hash", self.prev), ("seal_key_id", self.key_id),
                          ("seal_next_epoch", str(self.epoch))])
        conn.commit()
        conn.close()
        seed_path = os.path.join(directory, v.SEED_PREFIX + self.key_id)
        with open(seed_path, "w") as f:
            f.write(v.seed_file_text(self.seed))
        with open(os.path.join(directory, v.KEY_FILE), "wb") as f:
            f.write(v.key_file_text(self.key_id, self.epoch,
                                    v.epoch_key(self.seed, self.epoch)))
        return seed_path


def segment_files(directory):
    events = os.path.join(directory, v.SEGMENT_DIR)
    return [os.path.join(events, n) for n in sorted(os.listdir(events))]


def read_lines(path):
    with open(path) as f:
        return f.read().splitlines()


def write_lines(path, lines):
    with open(path, "w") as f:
        f.write("".join(line + "\n" for line in lines))


def sql(directory, statement, params=()):
    conn = sqlite3.connect(os.path.join(directory, v.DB_NAME))
    try:
        rows = conn.execute(statement, params).fetchall()
        conn.commit()
        return rows
    finally:
        conn.close()


def line_hash(line):
    return hashlib.sha256(line.encode()).hexdigest()


class Crypto(unittest.TestCase):
    def test_fixed_vector(self):
        self.assertEqual(v.key_id_of(SEED), VECTOR["keyId"])
        self.assertEqual(v.first_key(SEED).hex(), VECTOR["K0"])
        self.assertEqual(v.next_key(v.first_key(SEED)).hex(), VECTOR["K1"])
        self.assertEqual(v.epoch_key(SEED, 1).hex(), VECTOR["K1"])
        message = v.seal_message(VECTOR["keyId"], 1, 3, "ab" * 32, VECTOR["time"])
        self.assertEqual(v.seal_mac(v.epoch_key(SEED, 1), message), VECTOR["mac"])
        self.assertNotEqual(v.seal_mac(v.epoch_key(SEED, 2), message), VECTOR["mac"],
                            "each epoch has its own key")

    def test_files(self):
        text = v.key_file_text(VECTOR["keyId"], 1, v.epoch_key(SEED, 1))
        self.assertEqual(len(text), 128)
        self.assertEqual(v.parse_key_file(text), (VECTOR["keyId"], 1, v.epoch_key(SEED, 1)))
        torn = text[:60] + b"0" + text[61:]
        self.assertIsNone(v.parse_key_file(torn), "a failed check is a torn write")
        self.assertEqual(v.parse_seed_file(v.seed_file_text(SEED)), (VECTOR["keyId"], SEED))
        with self.assertRaises(ValueError):
            v.parse_seed_file(f"zastava-seal-seed v1 {'0' * 16} {SEED.hex()}\n")


class Verify(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="verify-ledger-test-")
        self.dir = os.path.join(self.tmp, "data")
        ledger = Ledger()
        ledger.old_record()  # written before sealing existed
        ledger.seal_key()
        for _ in range(3):
            ledger.record()
        ledger.seal()  # epoch 0
        ledger.record()
        ledger.record()
        ledger.new_segment()
        ledger.seal()  # epoch 1
        ledger.record()
        ledger.record()
        ledger.seal()  # epoch 2
        ledger.new_segment()
        ledger.record()
        ledger.seal()  # epoch 3
        self.ledger = ledger
        self.seed = ledger.write(self.dir)

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def check(self, code, words=(), seeds=None):
        report = v.verify(self.dir, [self.seed] if seeds is None else seeds)
        text = report.text()
        self.assertEqual(report.exit_code, code, text)
        problems = "\n".join(report.problem_lines())
        for word in words:
            self.assertIn(word, problems, text)
        return report

    def test_untouched(self):
        report = self.check(0)
        self.assertIn("seals: 4 (4 checked, 0 not checked)", report.text())
        report = self.check(0, seeds=[])
        self.assertIn("seals: 4 (0 checked, 4 not checked)", report.text())

    def test_edited_line_in_ndjson(self):
        path = segment_files(self.dir)[0]
        lines = read_lines(path)
        lines[3] = lines[3].replace('"name":"web"', '"name":"wab"')
        write_lines(path, lines)
        report = self.check(1, ["edited", f"{os.path.basename(path)}:4"])
        self.assertTrue(report.problem_lines()[0].startswith(
            f"runtime-events/{os.path.basename(path)}:4: edited"), report.text())

    def test_edited_line_in_both(self):
        path = segment_files(self.dir)[0]
        lines = read_lines(path)
        edited = lines[3].replace('"name":"web"', '"name":"wab"')
        sql(self.dir, "UPDATE events SET record = ? WHERE record = ?", (edited, lines[3]))
        lines[3] = edited
        write_lines(path, lines)
        self.check(1, ["events-20261207T061320Z-000001.ndjson:5", "was edited"])

    def test_deleted_line_in_both(self):
        path = segment_files(self.dir)[0]
        lines = read_lines(path)
        sql(self.dir, "DELETE FROM events WHERE record = ?", (lines[3],))
        del lines[3]
        write_lines(path, lines)
        self.check(1, ["missing", "records were removed"])

    def test_reordered_lines(self):
        path = segment_files(self.dir)[0]
        lines = read_lines(path)
        lines[3], lines[4] = lines[4], lines[3]
        write_lines(path, lines)
        self.check(1, ["order"])

    def rewrite_from(self, index):
        """Edits ledger line `index` (over all segments) and rewrites everything after it with
        fresh hashes (seals' lastHash too) in NDJSON, SQLite and meta last_hash."""
        paths = segment_files(self.dir)
        all_lines = [(p, n) for p in paths for n in range(len(read_lines(p)))]
        contents = {p: read_lines(p) for p in paths}
        prev = None
        for i, (p, n) in enumerate(all_lines):
            line = contents[p][n]
            if i < index:
                prev = line_hash(line)
                continue
            record = json.loads(line)
            if i == index:
                record["container"]["name"] = "forged"
            record["prevHash"] = prev
            if record["kind"] == "agent.seal":
                record["seal"]["lastHash"] = prev
            new = dumps(record)
            sql(self.dir, "UPDATE events SET record = ? WHERE record = ?", (new, line))
            contents[p][n] = new
            prev = line_hash(new)
        for p in paths:
            write_lines(p, contents[p])
        sql(self.dir, "UPDATE meta SET value = ? WHERE key = 'last_hash'", (prev,))

    def test_consistent_rewrite(self):
        self.rewrite_from(7)  # the second record after seal 0
        self.check(0, seeds=[])
        report = self.check(1, ["does not verify"])
        self.assertEqual(len(report.problems), 3, report.text())  # seals 1, 2, 3
        self.assertIn("epoch 1", report.problem_lines()[0])

    def test_key_file_older_copy(self):
        with open(os.path.join(self.dir, v.KEY_FILE), "wb") as f:
            f.write(v.key_file_text(self.ledger.key_id, 2, v.epoch_key(SEED, 2)))
        self.check(1, ["older copy"])

    def test_key_file_just_before_its_overwrite(self):
        with open(os.path.join(self.dir, v.KEY_FILE), "wb") as f:
            f.write(v.key_file_text(self.ledger.key_id, 3, v.epoch_key(SEED, 3)))
        self.check(0)

    def test_key_file_forged(self):
        with open(os.path.join(self.dir, v.KEY_FILE), "wb") as f:
            f.write(v.key_file_text(self.ledger.key_id, 4, bytes(32)))
        self.check(0, seeds=[])
        self.check(1, ["forged"])

    def test_truncated(self):
        path = segment_files(self.dir)[-1]
        lines = read_lines(path)
        sql(self.dir, "DELETE FROM events WHERE record = ?", (lines[-1],))
        write_lines(path, lines[:-1])
        self.check(1, ["last_hash", "were removed"])

    def test_segment_moved_away(self):
        os.rename(segment_files(self.dir)[1], os.path.join(self.tmp, "moved"))
        self.check(1, ["segment 2 missing"])

    def test_retention(self):
        first = segment_files(self.dir)[0]
        cutoff = v.time_nanos(json.loads(read_lines(first)[-1])["time"]) + 1
        os.unlink(first)
        sql(self.dir, "DELETE FROM events WHERE time_nano < ?", (cutoff,))
        sql(self.dir, "INSERT INTO meta VALUES ('pruned_before_nano', ?)", (str(cutoff),))
        report = self.check(0)
        self.assertIn("deleted by retention", report.text())
        self.assertIn("seals: 3 (3 checked", report.text())

    def test_retention_segment_only(self):
        os.unlink(segment_files(self.dir)[0])  # its rows are still in SQLite
        self.check(0)

    def test_deleted_from_sqlite_only(self):
        sql(self.dir, "DELETE FROM events WHERE rowid = 4")
        self.check(1, ["deleted from SQLite"])

    def test_torn_last_line_and_sqlite_tail(self):
        path = segment_files(self.dir)[-1]
        lines = read_lines(path)
        with open(path, "w") as f:  # the last record committed, not yet appended, torn
            f.write(lines[0] + "\n" + lines[1][:40])
        report = self.check(0)
        self.assertIn("cut short by a crash", report.text())
        self.assertIn("1 only in SQLite", report.text())

    def test_deleted_from_ndjson_only(self):
        path = segment_files(self.dir)[1]
        lines = read_lines(path)
        write_lines(path, lines[:1] + lines[2:])
        self.check(1, ["deleted from NDJSON"])

    def test_not_a_record(self):
        path = segment_files(self.dir)[1]
        write_lines(path, read_lines(path) + ["not json"])
        self.check(1, ["not a JSON object"])

    def test_key_change_reported(self):
        ledger = Ledger()
        ledger.seal_key()
        ledger.record()
        ledger.seal()
        ledger.seal_key("rewound", 1, "the key file's epoch 0 is behind the last seal's 0")
        ledger.record()
        ledger.seal()
        shutil.rmtree(self.dir)
        self.seed = ledger.write(self.dir)
        self.check(1, ["rewound"])

    def two_keys(self, with_key_record=True):
        """A ledger whose key file was lost: a second key begins (agent.seal-key lost)."""
        first = Ledger()
        first.seal_key()
        first.record()
        first.seal()
        second = Ledger(bytes(range(1, 33)))
        second.segments, second.prev, second.count = first.segments, first.prev, first.count
        second.new_segment()
        if with_key_record:
            second.seal_key("lost", 0, f"the key file of key {first.key_id} (last epoch 0) is "
                                       f"missing")
        second.record()
        second.seal()
        shutil.rmtree(self.dir)
        self.seed = second.write(self.dir)
        first_seed = os.path.join(self.tmp, "first-seed")
        with open(first_seed, "w") as f:
            f.write(v.seed_file_text(first.seed))
        return [first_seed, self.seed]

    def test_second_key(self):
        seeds = self.two_keys()
        report = self.check(1, ["agent.seal-key lost"], seeds=seeds)
        self.assertEqual(len(report.problems), 1, report.text())
        self.assertIn("seals: 2 (2 checked", report.text())

    def test_second_key_without_its_record(self):
        self.check(1, ["no agent.seal-key record beginning key"], seeds=self.two_keys(False))

    def test_unusable(self):
        self.assertEqual(v.verify(os.path.join(self.tmp, "nothing")).exit_code, 2)
        empty = os.path.join(self.tmp, "empty")
        os.mkdir(empty)
        self.assertEqual(v.verify(empty).exit_code, 2)
        bad = os.path.join(self.tmp, "bad-seed")
        with open(bad, "w") as f:
            f.write("zastava-seal-seed v1 nonsense\n")
        self.assertEqual(v.verify(self.dir, [bad]).exit_code, 2)

    def test_command_line(self):
        script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "verify_ledger.py")
        ok = subprocess.run([sys.executable, script, self.dir, "--seal-key", self.seed],
                            capture_output=True, text=True)
        self.assertEqual(ok.returncode, 0, ok.stdout + ok.stderr)
        self.assertIn("result: valid", ok.stdout)
        path = segment_files(self.dir)[0]
        lines = read_lines(path)
        lines[2] = lines[2].replace('"name":"web"', '"name":"wab"')
        write_lines(path, lines)
        bad = subprocess.run([sys.executable, script, self.dir], capture_output=True, text=True)
        self.assertEqual(bad.returncode, 1, bad.stdout + bad.stderr)
        self.assertIn(f"problem: runtime-events/{os.path.basename(path)}:3: edited", bad.stdout)
        self.assertEqual(subprocess.run([sys.executable, script], capture_output=True).returncode,
                         2)


if __name__ == "__main__":
    unittest.main(verbosity=2)
