#!/usr/bin/python3
"""Fault 7: the queue between the event stream and the enricher overflows. The agent runs with
a small queue (EventQueue:MaxEvents 16, EventQueue:MaxMb 1) and its data directory on an ext4
that is frozen with fsfreeze, so the buffer writer's writes hang in the kernel: the Recorder's
queue fills, the enricher waits for it, and the event queue fills behind it. Meanwhile
container lives (create, start, stop, rm through the engine API, in parallel threads) go on
until the Recorder's queue is full (zastava_agent_buffer_queue_depth at its 512 records) and
the stream is closed by an overflow behind it (more overflows than reopenings), a state that
lasts as long as the freeze, and a few more lives after that, which the engine has to replay.
Then the filesystem thaws and the agent catches up, its small queue overflowing again while
the engine replays. Twice, the agent catching up in between, so the queue overflows at least
twice whatever the timing; the second time with enough lives after the stream closed that the
engine forgets the last event queued: the reopened stream's replay lacks it, and the agent
writes an agent.gap record and reconciles while its small queue keeps overflowing.

A live /events reader in the test sees every event, so the events the engine forgot are known
too. At the end: zastava_agent_event_queue_overflows_total >= 2 and the "event queue full"
warning in the log; every event the live reader saw is in the ledger exactly once with the
engine's fields, or, when it is not, lies inside an agent.gap record's [from, to] span and is
one the engine no longer reports (an event it still reports, it had at every reopening since,
so a gap does not excuse it); no eventId twice, no container created or destroyed twice,
nothing dropped; NDJSON == SQLite, chain, schema; the containers table agrees with the
engine; `zastava-agent verify` and tests/buffer/verify_ledger.py exit 0, with and without the
exported seed."""

import collections
import json
import os
import shutil
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402

ARGS = None
MAX_EVENTS = 16     # EventQueue:MaxEvents, the smallest allowed
PARALLEL = 8        # threads making container lives
MIN_LIVES = 40      # container lives while frozen, at least
RECORDER_QUEUE = 512  # RecorderOptions::queueCapacity: beyond it, submit() waits for the writer
# Freezes, each ending with the stream closed behind the writer; then this many more lives,
# which the engine has to replay: 16 (96 events) it still has all of; 60 (360 events) push the
# last event queued out of its 256-event memory, so the agent must write an agent.gap record.
LIVES_AFTER = (16, 60)
ROUNDS = len(LIVES_AFTER)
CATCH_UP_SECONDS = 120
END_MARKER = "end-marker"


class LiveReader(threading.Thread):
    """Reads the engine's container events from `since` until the destroy of END_MARKER."""

    def __init__(self, d, since):
        super().__init__(daemon=True)
        self.d, self.since, self.events, self.error = d, since, [], None
        self.connected = threading.Event()

    def run(self):
        filters = h.urllib_quote(json.dumps({"type": ["container"]}))
        conn = h.UnixHTTPConnection(self.d.sock, timeout=300)
        try:
            conn.request("GET", f"/events?since={self.since:.9f}&filters={filters}")
            resp = conn.getresponse()
            self.connected.set()
            while True:
                line = resp.readline()
                if not line:
                    raise RuntimeError("engine closed the event stream")
                ev = json.loads(line)
                self.events.append(ev)
                if ev["Action"] == "destroy" and \
                        ev["Actor"]["Attributes"].get("name") == END_MARKER:
                    return
        except Exception as exc:
            self.error = exc
        finally:
            self.connected.set()
            conn.close()


class Lives:
    """Container lives (create, start, stop, rm) through the engine API on PARALLEL threads,
    until stop() or `limit` lives."""

    def __init__(self, d, prefix):
        self.d, self.prefix = d, prefix
        self.ids, self.errors = [], []
        self.lock = threading.Lock()
        self.started = 0
        self.limit = None
        self.threads = []

    def _next(self):
        with self.lock:
            if self.limit is not None and self.started >= self.limit:
                return None
            self.started += 1
            return self.started - 1

    def _call(self, method, path, want, body=None):
        status, answer = self.d.api(method, path, body)
        if status != want:
            raise RuntimeError(f"{method} {path} -> {status}: {answer}")
        return answer

    def _run(self):
        while True:
            i = self._next()
            if i is None:
                return
            try:
                created = self._call("POST", f"/containers/create?name={self.prefix}{i}", 201,
                                     {"Image": h.TEST_IMAGE, "Cmd": h.IDLE_CMD})
                cid = created["Id"]
                with self.lock:
                    self.ids.append(cid)
                self._call("POST", f"/containers/{cid}/start", 204)
                self._call("POST", f"/containers/{cid}/stop?t=5", 204)
                self._call("DELETE", f"/containers/{cid}", 204)
            except Exception as exc:  # reported by the test
                with self.lock:
                    self.errors.append(repr(exc))
                return

    def start(self):
        self.threads = [threading.Thread(target=self._run, daemon=True)
                        for _ in range(PARALLEL)]
        for t in self.threads:
            t.start()

    def stop_after(self, more):
        """No new life after `more` more have begun; waits for those running."""
        with self.lock:
            self.limit = self.started + more
        for t in self.threads:
            t.join(120)
        return not any(t.is_alive() for t in self.threads)


def loop_ext4(ws, mount):
    """An ext4 on a loop device, mounted at `mount` (made here)."""
    image = os.path.join(ws.dir, "data.img")
    os.makedirs(mount)
    with open(image, "wb") as f:
        f.truncate(256 * 1024 * 1024)
    subprocess.run(["mkfs.ext4", "-q", image], check=True)
    subprocess.run(["mount", "-o", "loop", image, mount], check=True)
    ws.on_cleanup(lambda: subprocess.run(["umount", "-l", mount], check=False))


def stream_closed_behind_writer(agent):
    """True when the Recorder's queue is full (the enricher waits for the writer) and the event
    stream is closed by an overflow (more overflows than reopenings; nothing else reopens it
    here). While the writer hangs, neither can change."""
    metrics = agent.metrics()
    value = lambda name: h.metric_value(metrics, name) or 0  # noqa: E731
    return (value("zastava_agent_buffer_queue_depth") >= RECORDER_QUEUE and
            value("zastava_agent_event_queue_overflows_total") >
            value("zastava_agent_stream_reconnects_total"))


def gap_spans(data_dir):
    """[(fromTimeNano, toTimeNano)] of the agent.gap records in SQLite."""
    rows = h.read_sqlite(data_dir, "SELECT record FROM events WHERE kind = 'agent.gap'")
    return [(g["fromTimeNano"], g["toTimeNano"])
            for g in (json.loads(r[0])["gap"] for r in rows)]


def covered(event, spans):
    return any(lo <= event["timeNano"] <= hi for lo, hi in spans)


class QueueOverflow(h.WorkspaceTest):
    def test_queue_overflows_while_the_writer_hangs(self):
        for tool in ("fsfreeze", "mkfs.ext4"):
            if not shutil.which(tool):
                self.fail(f"{tool} is missing (util-linux, e2fsprogs)")
        started = time.monotonic()
        d = self.ws.dockerd()
        d.make_busybox_image()
        data = os.path.join(self.ws.dir, "a", "data")
        loop_ext4(self.ws, data)
        agent = self.ws.agent(ARGS.agent, d.endpoint, reconnect_max_backoff=1,
                              extra_args=["--event-queue-max-events", str(MAX_EVENTS)],
                              env={"ZASTAVA_AGENT__EventQueue__MaxMb": "1"})
        self.assertEqual(agent.data_dir, data)
        # Registered after the agent, so it runs before the agent is killed and unmounted: a
        # process that hangs on a frozen filesystem does not die.
        self.ws.on_cleanup(lambda: subprocess.run(["fsfreeze", "-u", data], check=False,
                                                  stderr=subprocess.DEVNULL))
        agent.start()
        agent.wait_ready()
        t0 = time.time()
        reader = LiveReader(d, t0)
        reader.start()
        self.assertTrue(reader.connected.wait(10) and reader.error is None,
                        f"live reader: {reader.error}")
        # An event cursor to resume from: the agent has recorded an engine event.
        d.docker("run", "-d", "--name", "kept", h.TEST_IMAGE, *h.IDLE_CMD)
        before = d.events(t0 - 0.05, time.time() + 0.3)
        self.assertEqual(h.wait_recorded(agent, [h.expected_event_id(e) for e in before]),
                         set())

        destroyed, problems, rounds = [], [], 0
        for r in range(ROUNDS):
            lives = self.frozen_round(d, agent, data, f"q{r}-", LIVES_AFTER[r])
            destroyed += lives.ids
            rounds += 1
            if r + 1 < ROUNDS and not self.wait_caught_up(agent, reader.events[:]):
                problems.append(f"round {r + 1}: the agent did not catch up within "
                                f"{CATCH_UP_SECONDS} s; no more rounds")
                break
        marker = d.docker("create", "--name", END_MARKER, h.TEST_IMAGE, "true")
        d.docker("rm", marker)
        reader.join(60)
        self.assertIsNone(reader.error, "live reader")
        self.assertFalse(reader.is_alive(), "live reader did not see the end marker")
        seen = reader.events
        destroyed.append(marker)
        ring = d.events(t0 - 0.05, time.time() + 0.3)
        seen_ids = {h.expected_event_id(e) for e in seen}
        self.assertEqual([e for e in before + ring if h.expected_event_id(e) not in seen_ids],
                         [], "the live reader must have every event the engine still reports")
        h.log(f"{len(seen)} container events; the engine still reports {len(ring)}")

        # The agent catches up: every event recorded, or excused by an agent.gap record. A gap
        # excuses only what the engine forgot: an event it still reports now, it had at every
        # reopening since the event happened, so the agent could have had it.
        ring_ids = {h.expected_event_id(e) for e in ring}

        def excused(e, spans):
            return covered(e, spans) and h.expected_event_id(e) not in ring_ids
        state = {}

        def caught_up():
            have = {r[0] for r in h.read_sqlite(agent.data_dir, "SELECT event_id FROM events")}
            spans = gap_spans(agent.data_dir)
            state["left"] = [e for e in seen
                             if h.expected_event_id(e) not in have and not excused(e, spans)]
            state["spans"] = spans
            return not state["left"]
        try:
            # Not again the whole time when it already did not catch up between rounds.
            h.wait_until(caught_up, 30 if problems else CATCH_UP_SECONDS,
                         "every event recorded or excused by an agent.gap", interval=0.5)
        except AssertionError:
            pass
        if state.get("left"):
            inside = [e for e in state["left"] if covered(e, state["spans"])]
            problems.append(f"{len(state['left'])} events not recorded, {len(inside)} of them "
                            f"inside an agent.gap span although the engine still reports them; "
                            f"e.g. {describe(state['left'][:3])}")
        metrics = agent.metrics()
        overflows = h.metric_value(metrics, "zastava_agent_event_queue_overflows_total") or 0
        dropped = h.metric_value(metrics, "zastava_agent_events_dropped_total") or 0
        gaps_metric = h.metric_value(metrics, "zastava_agent_gaps_total") or 0
        spans = gap_spans(agent.data_dir)
        unknowable = [c for c in destroyed
                      if all(excused(e, spans) for e in seen if e["Actor"]["ID"] == c)]
        problems += h.wait_table_agrees(d, agent, destroyed, unknowable)
        code, _ = agent.stop()
        self.assertEqual(code, 0, h.tail(agent.log_path))

        records = [json.loads(x) for x in h.read_ndjson(agent.data_dir)]
        recorded_ids = {r.get("eventId") for r in records}
        spans = [(g["gap"]["fromTimeNano"], g["gap"]["toTimeNano"])
                 for g in h.gap_records(records)]
        must = [e for e in seen if not excused(e, spans)]
        may = [e for e in seen if excused(e, spans)]
        file_problems, _, _ = h.ledger_file_problems(agent.data_dir, must, ARGS.source_dir)
        problems += file_problems
        problems += h.seals_verify_problems(ARGS.agent, agent.data_dir, ARGS.source_dir,
                                            os.path.join(self.ws.dir, "seeds"))
        # An event the engine forgot may be missing; when it is there, it is there once, right.
        problems += h.exactly_once_problems(
            [e for e in may if h.expected_event_id(e) in recorded_ids], records, "ndjson")
        if overflows < ROUNDS:
            problems.append(f"zastava_agent_event_queue_overflows_total {overflows}, want at "
                            f"least one per round ({ROUNDS})")
        if rounds == ROUNDS and not spans:
            problems.append(f"no agent.gap record, although {LIVES_AFTER[-1] * 6} events "
                            f"pushed the last event queued out of the engine's memory")
        if gaps_metric != len(spans):
            problems.append(f"zastava_agent_gaps_total {gaps_metric}, {len(spans)} agent.gap "
                            f"records")
        if dropped:
            problems.append(f"zastava_agent_events_dropped_total {dropped}")
        if "event queue full" not in agent.log_text():
            problems.append("no 'event queue full' warning in the agent's log")

        ids = [h.expected_event_id(e) for e in seen]
        times = collections.Counter(r.get("eventId") for r in records)
        recorded = sum(1 for i in ids if times[i])
        dupes = sum(1 for i in ids if times[i] > 1)
        forgotten = sum(1 for e in may if h.expected_event_id(e) not in recorded_ids)
        lives_twice = collections.Counter(
            (r["kind"], r["container"]["id"]) for r in records
            if r.get("kind") in ("container.create", "container.destroy"))
        twice = sum(1 for n in lives_twice.values() if n > 1)
        stats = {"expected": len(seen), "recorded": recorded, "duplicates": dupes,
                 "missing": len(seen) - recorded - forgotten}
        h.log(f"agent.gap records: {[g['gap'] for g in h.gap_records(records)]}")
        h.fault_row("7 event queue overflow", int(overflows), stats,
                    f"{MAX_EVENTS}-event queue, writer frozen {rounds}x; "
                    f"{len(destroyed) - 1} container lives; "
                    f"{len(spans)} agent.gap covering {forgotten} unrecorded events the "
                    f"engine forgot; {twice} creates or destroys written twice; "
                    f"{time.monotonic() - started:.0f} s")
        self.assertEqual(problems, [])

    def frozen_round(self, d, agent, data, prefix, after):
        """Freezes the data directory, makes container lives until the stream is closed behind
        the hung writer, `after` more, and thaws. Returns the Lives."""
        subprocess.run(["fsfreeze", "-f", data], check=True)
        frozen_at = time.monotonic()
        lives = Lives(d, prefix)
        try:
            lives.start()
            h.wait_until(lambda: lives.errors or lives.started >= MIN_LIVES and
                         stream_closed_behind_writer(agent), 240,
                         "the event stream closed by an overflow while the enricher waits for "
                         "the frozen writer", interval=0.2)
            self.assertEqual(lives.errors, [], "container lives")
            overflowed_after = lives.started
            self.assertTrue(lives.stop_after(after), "container lives did not end")
            self.assertEqual(lives.errors, [], "container lives")
            self.assertTrue(agent.alive(), "the agent must survive a hung writer")
        finally:
            subprocess.run(["fsfreeze", "-u", data], check=True)
        h.log(f"thawed after {time.monotonic() - frozen_at:.1f} s: {lives.started} container "
              f"lives, the stream closed behind the writer after {overflowed_after}")
        return lives

    @staticmethod
    def wait_caught_up(agent, events):
        """Waits until each of `events` is recorded or inside an agent.gap span; False when it
        does not happen within CATCH_UP_SECONDS."""
        def done():
            have = {r[0] for r in h.read_sqlite(agent.data_dir, "SELECT event_id FROM events")}
            spans = gap_spans(agent.data_dir)
            return all(h.expected_event_id(e) in have or covered(e, spans) for e in events)
        try:
            h.wait_until(done, CATCH_UP_SECONDS, "the agent to catch up", interval=0.5)
            return True
        except AssertionError:
            return False


def describe(events):
    return [f"{e['Action']} of {e['Actor']['Attributes'].get('name')} at {e['timeNano']}"
            for e in events]


if __name__ == "__main__":
    h.main(globals())
