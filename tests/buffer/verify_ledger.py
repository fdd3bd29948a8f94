#!/usr/bin/python3
"""A second, independent implementation of docs/records.md "Verifying the ledger" (steps 1-6)
and of the seal crypto ("Keys and MAC"), written from that page alone, so that two programs
agree on the documented algorithm (the first is `zastava-agent verify`).

    verify_ledger.py DATA_DIR [--seal-key SEED_FILE]...

Prints a summary and every problem with its file and line, the first one first. Exit status:
0 nothing is wrong (retention, a torn last line, an unsealed tail and seals not checked are
reported, not failures), 1 something is wrong, 2 the input cannot be used (no such directory,
nothing to read, an unreadable seed file or database). It never writes into DATA_DIR: the
database (and its -wal) is read from a private copy.

Importable: verify(data_dir, seed_paths) returns a Report (exit_code, problems, notes,
summary); the crypto helpers (key_id_of, first_key, next_key, epoch_key, seal_message,
seal_mac, key_file_text, parse_key_file, parse_seed_file) are the doc's formulas.
Python standard library only.
"""

import argparse
import hashlib
import hmac
import json
import os
import re
import shutil
import sqlite3
import sys
import tempfile
import calendar
import time

GENESIS = "0" * 64
SEGMENT_DIR = "runtime-events"
DB_NAME = "zastava-agent.db"
KEY_FILE = "seal-key"
SEED_PREFIX = "seal-seed-"
KEY_FILE_BYTES = 128
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_HEX16 = re.compile(r"^[0-9a-f]{16}$")
_OWN_HASH = re.compile(rb',"hash":"([0-9a-f]{64})"\}$')
_SEGMENT = re.compile(r"^events-.*\.ndjson$")


# ------------------------------------------------------------------------------------------
# Keys and MAC (docs/records.md "Keys and MAC", "Files")

def _hmac(key: bytes, message: bytes) -> bytes:
    return hmac.new(key, message, hashlib.sha256).digest()


def key_id_of(seed: bytes) -> str:
    """The first 16 hex characters of sha256("zastava.seal.key-id\\n" + seed)."""
    return hashlib.sha256(b"zastava.seal.key-id\n" + seed).hexdigest()[:16]


def first_key(seed: bytes) -> bytes:
    """K_0 = HMAC(seed, "zastava.seal.first-key")."""
    return _hmac(seed, b"zastava.seal.first-key")


def next_key(key: bytes) -> bytes:
    """K_{e+1} = HMAC(K_e, "zastava.seal.next-key")."""
    return _hmac(key, b"zastava.seal.next-key")


def epoch_key(seed: bytes, epoch: int) -> bytes:
    key = first_key(seed)
    for _ in range(epoch):
        key = next_key(key)
    return key


def seal_message(key_id: str, epoch: int, records: int, last_hash: str, time_text: str) -> bytes:
    return ("zastava.seal.v1\n" + key_id + "\n" + str(epoch) + "\n" + str(records) + "\n" +
            last_hash + "\n" + time_text).encode("utf-8")


def seal_mac(key: bytes, message: bytes) -> str:
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def key_file_text(key_id: str, epoch: int, key: bytes) -> bytes:
    """The 128-byte key file line."""
    head = f"zastava-seal-key v1 {key_id} {epoch:010d} {key.hex()} "
    line = head + hashlib.sha256(head.encode()).hexdigest()[:8]
    return (line.ljust(KEY_FILE_BYTES - 1) + "\n").encode()


def parse_key_file(data: bytes):
    """(keyId, epoch, key bytes), or None when it is not a key file line or its check fails."""
    m = re.fullmatch(rb"(zastava-seal-key v1 ([0-9a-f]{16}) ([0-9]{10}) ([0-9a-f]{64}) )"
                     rb"([0-9a-f]{8}) *\n?", data)
    if not m or len(data) not in (KEY_FILE_BYTES, KEY_FILE_BYTES - 1):
        return None
    if hashlib.sha256(m.group(1)).hexdigest()[:8].encode() != m.group(5):
        return None
    return m.group(2).decode(), int(m.group(3)), bytes.fromhex(m.group(4).decode())


def seed_file_text(seed: bytes) -> str:
    return f"zastava-seal-seed v1 {key_id_of(seed)} {seed.hex()}\n"


def parse_seed_file(text: str):
    """(keyId, seed bytes). Raises ValueError saying what is wrong."""
    line = text[:-1] if text.endswith("\n") else text
    parts = line.split(" ")
    if len(parts) != 4 or parts[0] != "zastava-seal-seed" or parts[1] != "v1":
        raise ValueError("not a seed file line (zastava-seal-seed v1 <keyId> <64 hex>)")
    if not _HEX16.match(parts[2]) or not _HEX64.match(parts[3]):
        raise ValueError("the key id must be 16 and the seed 64 lowercase hex characters")
    seed = bytes.fromhex(parts[3])
    if key_id_of(seed) != parts[2]:
        raise ValueError(f"key id {parts[2]} is not the seed's ({key_id_of(seed)})")
    return parts[2], seed


class KeyChain:
    """Epoch keys of one seed, computed forward from the last one asked for."""

    def __init__(self, seed: bytes):
        self.seed = seed
        self.epoch = 0
        self.key = first_key(seed)

    def key_of(self, epoch: int) -> bytes:
        if epoch < self.epoch:
            self.epoch, self.key = 0, first_key(self.seed)
        while self.epoch < epoch:
            self.key = next_key(self.key)
            self.epoch += 1
        return self.key


# ------------------------------------------------------------------------------------------
# The ledger's pieces

def record_hash(line: bytes):
    """(hash, ok): the SHA-256 of the line; a line of schema 6 or older ends with its own hash
    (,"hash":"<64 hex>"}), which is its hash, and the line without it must hash to it."""
    m = _OWN_HASH.search(line)
    if m is None:
        return hashlib.sha256(line).hexdigest(), True
    own = m.group(1).decode()
    return own, hashlib.sha256(line[:m.start()] + b"}").hexdigest() == own


def time_nanos(text):
    """RFC 3339 UTC with up to 9 fractional digits -> nanoseconds; None when it is not one."""
    if not isinstance(text, str):
        return None
    m = re.fullmatch(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?Z", text)
    if not m:
        return None
    try:
        secs = calendar.timegm(time.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S"))
    except ValueError:
        return None
    return secs * 1_000_000_000 + int((m.group(2) or "0").ljust(9, "0"))


class Entry:
    """One record of the ledger: its bytes, where it is, what it says."""

    def __init__(self, raw: bytes, where: str, record: dict):
        self.raw = raw
        self.where = where
        self.record = record
        self.hash, self.own_hash_ok = record_hash(raw)
        event_id = record.get("eventId")
        self.key = event_id if isinstance(event_id, str) else "hash:" + self.hash


def parse_line(raw: bytes):
    """The JSON object of a line with a string prevHash, or None."""
    try:
        value = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None
    if not isinstance(value, dict) or not isinstance(value.get("prevHash"), str):
        return None
    return value


class Report:
    def __init__(self):
        self.problems = []  # (position, where, message): tampering
        self.notes = []  # (where, message): said, not failures
        self.summary = []
        self.unusable = None  # why the input cannot be used (exit 2)

    def problem(self, position, where, message):
        self.problems.append((position, where, message))

    def note(self, where, message):
        self.notes.append((where, message))

    @property
    def exit_code(self):
        if self.unusable:
            return 2
        return 1 if self.problems else 0

    def problem_lines(self):
        """The problems as printed, the first (in ledger order) first."""
        ordered = sorted(enumerate(self.problems), key=lambda p: (p[1][0], p[0]))
        return [f"{where}: {message}" for _, (_, where, message) in ordered]

    def text(self):
        out = list(self.summary)
        if self.unusable:
            out.append(f"cannot verify: {self.unusable}")
            return "\n".join(out)
        for where, message in self.notes:
            out.append(f"note: {where}: {message}")
        for line in self.problem_lines():
            out.append(f"problem: {line}")
        out.append("result: " + (f"TAMPERED: {len(self.problems)} problem(s)" if self.problems
                                 else "valid"))
        return "\n".join(out)


def _segment_seq(name):
    numbers = re.findall(r"\d+", name)
    return int(numbers[-1]) if numbers else None


def _read_segments(data_dir, report):
    """Step 1: the NDJSON lines in ledger order, as Entry objects; segments and gaps."""
    directory = os.path.join(data_dir, SEGMENT_DIR)
    names = []
    if os.path.isdir(directory):
        for name in os.listdir(directory):
            if _SEGMENT.match(name) and _segment_seq(name) is not None:
                names.append(name)
    names.sort(key=lambda n: (_segment_seq(n), n))
    entries = []
    seqs = [_segment_seq(n) for n in names]
    sizes = [os.path.getsize(os.path.join(directory, name)) for name in names]
    newest_non_empty = max((i for i, size in enumerate(sizes) if size > 0), default=-1)
    for i, name in enumerate(names):
        rel = f"{SEGMENT_DIR}/{name}"
        seq = seqs[i]
        position = len(entries)
        if i > 0 and seq == seqs[i - 1]:
            report.problem(position, rel, f"a second segment with sequence number {seq}")
        elif i > 0 and seq > seqs[i - 1] + 1:
            missing = (f"{seqs[i - 1] + 1}" if seq == seqs[i - 1] + 2
                       else f"{seqs[i - 1] + 1} to {seq - 1}")
            report.problem(position, rel, f"segment {missing} missing between {names[i - 1]} "
                                          f"and {name}: moved away or deleted by hand "
                                          f"(retention only deletes the oldest)")
        with open(os.path.join(directory, name), "rb") as f:
            data = f.read()
        parts = data.split(b"\n")
        newest = i == newest_non_empty
        for n, raw in enumerate(parts):
            last = n == len(parts) - 1
            if last and raw == b"":
                break
            where = f"{rel}:{n + 1}"
            if last and newest:
                report.note(where, "the last line has no newline: a write cut short by a "
                                   "crash (the agent cuts it off at its next start); not read")
                break
            if last:
                report.problem(len(entries), where, "the last line has no newline in a segment "
                                                    "the agent has moved on from (it cuts a torn "
                                                    "line off before it writes the next segment)")
            record = parse_line(raw)
            if record is None:
                report.problem(len(entries), where, "not a JSON object with a prevHash "
                                                    "(edited or inserted by hand)")
                continue
            entries.append(Entry(raw, where, record))
    return names, entries


def _copy_database(data_dir, tmp):
    """The database and its -wal copied into tmp; the copy's path, or None when absent."""
    source = os.path.join(data_dir, DB_NAME)
    if not os.path.exists(source):
        return None
    target = os.path.join(tmp, DB_NAME)
    shutil.copyfile(source, target)
    if os.path.exists(source + "-wal"):
        shutil.copyfile(source + "-wal", target + "-wal")
    return target


def _read_database(path):
    """(rows [(rowid, event_id, record bytes)], meta {key: value}). Raises sqlite3.Error."""
    conn = sqlite3.connect(path)
    try:
        conn.text_factory = bytes
        rows = [(rowid, event_id.decode("utf-8", "replace") if event_id is not None else None,
                 record if isinstance(record, bytes) else str(record).encode())
                for rowid, event_id, record in
                conn.execute("SELECT rowid, event_id, record FROM events ORDER BY rowid")]
        meta = {}
        for key, value in conn.execute("SELECT key, value FROM meta"):
            if key is not None:
                meta[key.decode()] = value.decode() if isinstance(value, bytes) else value
        return rows, meta
    finally:
        conn.close()


# ------------------------------------------------------------------------------------------
# The algorithm

def _compare_with_sqlite(entries, rows, meta, report):
    """Step 3: NDJSON against SQLite. Returns the records only SQLite holds after the last
    NDJSON line (the ledger's tail), as Entry objects."""
    sql_at = {}  # key -> index in rows
    sql_entries = []
    for index, (rowid, event_id, raw) in enumerate(rows):
        where = f"{DB_NAME} events rowid {rowid}"
        record = parse_line(raw)
        if record is None:
            report.problem(len(entries), where, "record is not a JSON object with a prevHash")
            record = {"eventId": event_id, "prevHash": ""}
        entry = Entry(raw, where, record)
        if isinstance(event_id, str) and entry.key != event_id:
            report.problem(len(entries), where, f"event_id {event_id} is not the record's "
                                                f"eventId {entry.key}: edited")
        if entry.key in sql_at:
            report.problem(len(entries), where, f"eventId {entry.key} a second time in SQLite")
        else:
            sql_at[entry.key] = index
        sql_entries.append(entry)
    nd_at = {}
    for position, entry in enumerate(entries):
        if entry.key in nd_at:
            report.problem(position, entry.where, f"eventId {entry.key} a second time in NDJSON "
                                                  f"(first at {entries[nd_at[entry.key]].where})")
        else:
            nd_at[entry.key] = position

    cutoff = meta.get("pruned_before_nano")
    try:
        cutoff = int(cutoff) if cutoff is not None else None
    except ValueError:
        report.problem(len(entries), f"{DB_NAME} meta pruned_before_nano",
                       f"not a number: {cutoff!r}")
        cutoff = None
    # Records in both: same bytes, same order. Records only in NDJSON: pruned, or deleted.
    previous_sql = -1
    common = []
    for position, entry in enumerate(entries):
        index = sql_at.get(entry.key)
        if index is None:
            t = time_nanos(entry.record.get("time"))
            if cutoff is not None and t is not None and t < cutoff:
                continue
            report.problem(position, entry.where, "only in NDJSON: deleted from SQLite "
                           + ("(no retention run explains it)" if cutoff is None else
                              "(its time is not before pruned_before_nano)"))
            continue
        if nd_at.get(entry.key) != position:
            continue
        sql_entry = sql_entries[index]
        if sql_entry.raw != entry.raw:
            report.problem(position, entry.where, f"edited: SQLite ({sql_entry.where}) holds "
                                                  f"other bytes for eventId {entry.key}")
        if index < previous_sql:
            report.problem(position, entry.where, f"order: SQLite has this record "
                                                  f"({sql_entry.where}) before the previous "
                                                  f"line's; lines were reordered")
        previous_sql = max(previous_sql, index)
        common.append(index)
    first_common = min(common) if common else None
    last_common = max(common) if common else None
    tail = []
    missing = []  # runs of rows only in SQLite between NDJSON lines: [(index, entry)]
    for index, entry in enumerate(sql_entries):
        if sql_at.get(entry.key) != index or entry.key in nd_at:
            continue  # a duplicate row (reported above), or in both
        if not entries:
            tail.append(entry)  # nothing in NDJSON yet: everything is the tail
        elif first_common is not None and index < first_common:
            continue  # before the first NDJSON line: its segment was deleted by retention
        elif last_common is None or index > last_common:
            tail.append(entry)
        elif missing and missing[-1][-1][0] == index - 1:
            missing[-1].append((index, entry))
        else:
            missing.append([(index, entry)])
    # Each run is reported where it belongs: before the NDJSON line SQLite has after it.
    nd_position_of = {sql_at[e.key]: nd_at[e.key] for e in entries
                      if e.key in sql_at and nd_at.get(e.key) is not None}
    for run in missing:
        after = min((i for i in nd_position_of if i > run[-1][0]), default=None)
        position = nd_position_of[after] if after is not None else len(entries)
        where = entries[position].where if position < len(entries) else run[0][1].where
        first, last = run[0][1], run[-1][1]
        rows = first.where if len(run) == 1 else f"{first.where} to rowid {last.where.split()[-1]}"
        report.problem(position, where, f"{len(run)} record(s) before this line only in SQLite "
                                        f"({rows}, eventIds {first.key}"
                                        + (f" .. {last.key}" if len(run) > 1 else "")
                                        + "): deleted from NDJSON")
    if not common and entries and tail:
        # Nothing in both: the rows continue the NDJSON (a tail) or precede it (retention).
        if tail[0].record.get("prevHash") != entries[-1].hash:
            if tail[-1].hash == entries[0].record.get("prevHash"):
                tail = []
    return tail


def _check_chain(ledger, report):
    """Step 2: each prevHash is the previous line's hash."""
    by_hash = {}
    for position, entry in enumerate(ledger):
        by_hash.setdefault(entry.hash, position)
    for position, entry in enumerate(ledger):
        if not entry.own_hash_ok:
            report.problem(position, entry.where, "edited: the line's own hash (schema 6 and "
                                                  "older) is not the hash of its bytes")
        prev = entry.record.get("prevHash")
        if position == 0:
            if prev != GENESIS:
                report.note(entry.where, "the records before this one were deleted by "
                                         "retention (its prevHash is not the first record's)")
            continue
        expected = ledger[position - 1].hash
        if prev == expected:
            continue
        found = by_hash.get(prev)
        if found is not None and found > position:
            why = (f"order: its prevHash is the hash of a later line ({ledger[found].where}); "
                   f"lines were reordered")
        elif found is not None and found < position - 1:
            why = (f"its prevHash is the hash of {ledger[found].where}: the lines after that "
                   f"one up to this were inserted or moved here")
        else:
            why = ("its prevHash is not the previous line's hash: the previous line "
                   f"({ledger[position - 1].where}) was edited, or records before this one "
                   f"are missing")
        report.problem(position, entry.where, why)


def _int(value):
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _check_seals(ledger, seeds, report):
    """Steps 4 and 5. Returns (seal count, checked, not checked, {keyId: [first, last
    epoch]}, the last seal or seal-key record as (kind, keyId, epoch) or None)."""
    chains = {seed_id: KeyChain(seed) for seed_id, seed in seeds.items()}
    count = checked = unchecked = 0
    epochs = {}
    active = None  # keyId of the latest seal or seal-key record
    finished = set()  # keys that another key followed
    anchor = None  # the previous seal or seal-key record: (position, kind, keyId, epoch)
    last_seal_position = None
    for position, entry in enumerate(ledger):
        kind = entry.record.get("kind")
        if kind not in ("agent.seal", "agent.seal-key"):
            continue
        name = "seal" if kind == "agent.seal" else "sealKey"
        block = entry.record.get(name)
        if not isinstance(block, dict) or not isinstance(block.get("keyId"), str) or \
                _int(block.get("epoch")) is None:
            report.problem(position, entry.where, f"{kind} without a valid {name}")
            continue
        key_id, epoch = block["keyId"], block["epoch"]
        if key_id != active:
            if key_id in finished:
                report.problem(position, entry.where, f"seals of key {key_id} start again "
                                                      f"after key {active}'s")
            if active is not None:
                finished.add(active)
            active = key_id
        if kind == "agent.seal-key":
            change = block.get("change")
            if change in ("lost", "rewound", "ahead"):
                report.problem(position, entry.where, f"agent.seal-key {change}: the key file "
                                                      f"or the ledger was tampered with: "
                                                      f"{block.get('reason')}")
            elif change != "new":
                report.problem(position, entry.where, f"agent.seal-key with unknown change "
                                                      f"{change!r}")
            anchor = (position, kind, key_id, epoch)
            continue
        count += 1
        last_seal_position = position
        records, last_hash, mac = block.get("records"), block.get("lastHash"), block.get("mac")
        if _int(records) is None or not isinstance(last_hash, str) or not isinstance(mac, str):
            report.problem(position, entry.where, "agent.seal without records, lastHash or mac")
            anchor = (position, kind, key_id, epoch)
            continue
        span = epochs.setdefault(key_id, [epoch, epoch])
        span[1] = epoch
        if last_hash != entry.record.get("prevHash"):
            report.problem(position, entry.where, "seal.lastHash is not its prevHash")
        if anchor is None:
            if ledger[0].record.get("prevHash") == GENESIS:
                report.problem(position, entry.where, f"seal under key {key_id} with no "
                                                      f"agent.seal-key record beginning the key")
        else:
            anchor_position, anchor_kind, anchor_key, anchor_epoch = anchor
            anchor_where = ledger[anchor_position].where
            expected_epoch = anchor_epoch + 1 if anchor_kind == "agent.seal" else anchor_epoch
            if key_id != anchor_key:
                report.problem(position, entry.where,
                               f"seal under key {key_id} follows the {anchor_kind} of key "
                               f"{anchor_key} ({anchor_where}) with no agent.seal-key record "
                               f"beginning key {key_id}")
            elif epoch != expected_epoch:
                report.problem(position, entry.where,
                               f"epoch {epoch} where {expected_epoch} is due after "
                               f"{anchor_where}: "
                               + ("seals are missing" if epoch > expected_epoch
                                  else "seals out of order or repeated"))
            between = position - anchor_position - 1
            if records != between:
                report.problem(position, entry.where,
                               f"the seal says {records} records since {anchor_where}, the "
                               f"ledger has {between}: records were "
                               f"{'removed' if between < records else 'added'}")
        anchor = (position, kind, key_id, epoch)
        chain = chains.get(key_id)
        if chain is None:
            unchecked += 1
            continue
        checked += 1
        time_text = entry.record.get("time")
        want = seal_mac(chain.key_of(epoch), seal_message(key_id, epoch, records, last_hash,
                                                          time_text if isinstance(time_text, str)
                                                          else ""))
        if not hmac.compare_digest(want, mac):
            report.problem(position, entry.where, f"seal (key {key_id}, epoch {epoch}) does "
                                                  f"not verify: the records it seals or the "
                                                  f"seal were changed")
    if unchecked:
        report.note("seals", f"{unchecked} seal(s) not checked: no --seal-key with the seed of "
                    + ", ".join(sorted(k for k in epochs if k not in chains)))
    if ledger:
        after = len(ledger) - 1 - (last_seal_position if last_seal_position is not None else -1)
        if after > 0:
            report.note(ledger[-1].where, f"{after} record(s) after the last seal: not sealed yet")
    last = None if anchor is None else anchor[1:]
    return count, checked, unchecked, epochs, last


def _check_key_file(data_dir, seeds, last_anchor, report, position):
    """Step 6."""
    path = os.path.join(data_dir, KEY_FILE)
    if not os.path.exists(path):
        return "no key file"
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        report.note(KEY_FILE, f"unreadable ({exc.strerror}): not checked")
        return "key file unreadable"
    parsed = parse_key_file(data)
    if parsed is None:
        report.note(KEY_FILE, "not a key file line or its check fails (a torn write): "
                              "treated as missing")
        return "key file unreadable"
    key_id, epoch, key = parsed
    if last_anchor is None:
        report.problem(position, KEY_FILE, f"the key file holds key {key_id} epoch {epoch}, "
                                           f"but the ledger has no seal: its seals were removed")
        return f"key file: key {key_id}, epoch {epoch}"
    kind, last_id, last_epoch = last_anchor
    if key_id != last_id:
        report.problem(position, KEY_FILE, f"the key file holds key {key_id}, the ledger's last "
                                           f"seal is under key {last_id}: replaced")
    else:
        low, high = (last_epoch, last_epoch + 1) if kind == "agent.seal" else \
            (last_epoch, last_epoch)
        what = "last seal's" if kind == "agent.seal" else "agent.seal-key record's"
        if epoch < low:
            report.problem(position, KEY_FILE, f"epoch {epoch} is behind the ledger's {what} "
                                               f"epoch {last_epoch}: the file was replaced by "
                                               f"an older copy")
        elif epoch > high:
            report.problem(position, KEY_FILE, f"epoch {epoch} is beyond the ledger's {what} "
                                               f"epoch {last_epoch}: the seals in between (and "
                                               f"the records they sealed) were removed")
    if key_id in seeds and epoch_key(seeds[key_id], epoch) != key:
        report.problem(position, KEY_FILE, f"the key is not epoch {epoch}'s key of seed "
                                           f"{key_id}: forged or corrupt")
    return f"key file: key {key_id}, epoch {epoch}"


def verify(data_dir, seed_paths=()):
    """Verifies the ledger in data_dir; seed_paths are seed files (--seal-key). Returns a
    Report: exit_code, problems (problem_lines() for the text), notes, summary."""
    report = Report()
    report.summary.append(f"ledger: {data_dir}")
    if not os.path.isdir(data_dir):
        report.unusable = f"{data_dir}: no such directory"
        return report
    seeds = {}
    for path in seed_paths:
        try:
            with open(path, "r", encoding="utf-8") as f:
                key_id, seed = parse_seed_file(f.read())
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            report.unusable = f"seed file {path}: {exc}"
            return report
        seeds[key_id] = seed
    names, entries = _read_segments(data_dir, report)
    with tempfile.TemporaryDirectory(prefix="verify-ledger-") as tmp:
        try:
            copy = _copy_database(data_dir, tmp)
            rows, meta = _read_database(copy) if copy else ([], {})
        except (OSError, sqlite3.Error) as exc:
            report.unusable = f"{DB_NAME}: {exc}"
            return report
    if not names and copy is None:
        report.unusable = f"{data_dir}: nothing to read (no {SEGMENT_DIR}/*.ndjson, no {DB_NAME})"
        return report
    if copy is None:
        report.problem(0, DB_NAME, "missing: the directory has NDJSON segments but no database "
                                   "(deleted?); the records are not checked against SQLite")
        tail = []
    else:
        tail = _compare_with_sqlite(entries, rows, meta, report)
    if tail:
        report.note(tail[0].where, f"{len(tail)} record(s) from here on only in SQLite, after "
                                   f"the last NDJSON line: committed, not yet appended (the agent "
                                   f"appends them at its next start); part of the ledger")
    ledger = entries + tail
    _check_chain(ledger, report)
    if ledger:
        last_hash = meta.get("last_hash")
        if copy is not None and last_hash != ledger[-1].hash:
            report.problem(len(ledger) - 1, f"{DB_NAME} meta last_hash",
                           f"{last_hash} is not the hash of the last record "
                           f"({ledger[-1].where}): the newest records were removed or changed")
    count, checked, unchecked, epochs, last_anchor = _check_seals(ledger, seeds, report)
    key_text = _check_key_file(data_dir, seeds, last_anchor, report, len(ledger))

    seqs = [_segment_seq(n) for n in names]
    times = [t for t in (time_nanos(e.record.get("time")) for e in ledger) if t is not None]
    span = (f", {_rfc3339(min(times))} to {_rfc3339(max(times))}" if times else "")
    report.summary.append(
        f"records: {len(ledger)} ({len(entries)} in {len(names)} segment(s)"
        + (f" {seqs[0]}..{seqs[-1]}" if seqs else "")
        + f", {len(tail)} only in SQLite){span}")
    keys = "; ".join(f"key {k} epochs {a}..{b}" for k, (a, b) in epochs.items())
    report.summary.append(f"seals: {count} ({checked} checked, {unchecked} not checked)"
                          + (f": {keys}" if keys else "") + f"; {key_text}")
    return report


def _rfc3339(nanos):
    secs, rest = divmod(nanos, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + f".{rest:09d}Z"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data_dir", metavar="DATA_DIR")
    parser.add_argument("--seal-key", action="append", default=[], metavar="FILE",
                        help="a seed file (zastava-seal-seed v1 ...); repeatable")
    args = parser.parse_args(argv)
    report = verify(args.data_dir, args.seal_key)
    print(report.text())
    return report.exit_code


if __name__ == "__main__":
    sys.exit(main())
