#!/usr/bin/python3
"""A private engine (ZIT_ENGINE: harness.Workspace.dockerd), containers driven through every
lifecycle transition, and the agent's NDJSON + SQLite checked against the engine's own event
list: exactly once, right fields, schema-valid, hash-chained, private file modes; then SIGTERM
exits 0 within 5 s. `zastava-agent records --follow`, started before the agent wrote anything,
printed every record once in order and stopped on SIGINT; its filters and JSON output agree
with the files. Ends with the ENGINE MATRIX comparison (harness.engine_matrix_check)."""

import json
import os
import signal
import stat
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402

ARGS = None


class Lifecycle(h.WorkspaceTest):
    @classmethod
    def set_up(cls):
        d = cls.d = cls.ws.dockerd()
        d.make_busybox_image()
        # Exists before the agent starts: must show up as a snapshot.
        cls.pre_id = d.docker("run", "-d", "--name", "pre", h.TEST_IMAGE, *h.IDLE_CMD)
        # The image's name as the engine tells it (Podman's: docker.io/zastava-test/busybox:1)
        cls.image = d.docker("inspect", "-f", "{{.Config.Image}}", cls.pre_id)

        agent = cls.agent = cls.ws.agent(ARGS.agent, d.endpoint)
        # Before the data directory exists: it waits for it, then follows.
        cls.follower = subprocess.Popen(
            [ARGS.agent, "records", "--follow", "--data-directory", agent.data_dir],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        cls.ws.on_cleanup(cls.follower.kill)
        # It says so before it follows; only then may the agent make the directory.
        cls.follower_waiting = cls.follower.stderr.readline()
        span = h.EngineSpan(d)
        agent.start()
        agent.wait_ready(timeout=30)
        h.log("agent ready; driving containers")

        ids = {}
        ids["life"] = d.docker("create", "--name", "life", h.TEST_IMAGE, *h.IDLE_CMD)
        d.docker("start", "life")
        d.docker("pause", "life")
        d.docker("unpause", "life")
        d.docker("exec", "life", "true")
        # -t: Podman's compat API gives a container a stop timeout of 0 (SIGKILL at once) else
        d.docker("stop", "-t", "5", "life")
        d.docker("start", "life")
        d.docker("restart", "-t", "5", "life")
        d.docker("kill", "life")          # SIGKILL: die with 137
        d.docker("rename", "life", "life2")
        d.docker("rm", "life2")
        # Fails with exit code 3; stays (exited) for the containers-table check.
        ids["fail"] = d.docker("create", "--name", "fail", h.TEST_IMAGE, "sh", "-c", "exit 3")
        d.docker("start", "-a", "fail", check=False)
        h.wait_until(lambda: d.docker("inspect", "-f", "{{.State.Status}}", "fail") == "exited",
                     20, "container fail exited")
        # A health check: health_status: healthy.
        ids["hc"] = d.docker("run", "-d", "--name", "hc", "--health-cmd", "true",
                             "--health-interval", "1s", h.TEST_IMAGE, *h.IDLE_CMD)

        def healthy_reported():
            if not d.schedules_health_checks:
                # Podman 4.3's first check reports `starting` even when it passed: run until
                # an event says healthy
                d.run_health_check("hc")
            return any(h.record_action(e)[:2] == ("health_status", "healthy")
                       for e in span.read() if e["Actor"]["ID"] == ids["hc"])
        h.wait_until(healthy_reported, 30, "a health_status event of hc saying healthy",
                     interval=0.5)
        d.docker("rm", "-f", "hc")
        d.docker("rm", "-f", "pre")
        cls.ids = ids
        # The engine's own list for the agent's time; `until` a moment ahead so the last are in.
        cls.engine_events = span.read()
        h.log(f"engine reported {len(cls.engine_events)} container events")
        cls.expected_ids = [h.expected_event_id(e) for e in cls.engine_events]
        cls.missing = h.wait_recorded(agent, cls.expected_ids, timeout=30)
        if cls.missing:
            h.log(f"{len(cls.missing)} engine events still missing in SQLite after 30 s")

        cls.metrics_text = agent.metrics()
        cls.exit_code, cls.stop_seconds = agent.stop(timeout=15)
        h.log(f"agent stopped: exit {cls.exit_code} in {cls.stop_seconds:.2f}s")
        cls.lines = h.read_ndjson(agent.data_dir)
        cls.records = [json.loads(line) for line in cls.lines]
        cls.followed = cls.stop_follower(len(cls.lines))
        cls.rows = h.read_sqlite(agent.data_dir)
        cls.log_text = agent.log_text()

    @classmethod
    def stop_follower(cls, expected_lines):
        """Waits until `records --follow` printed `expected_lines` lines (it polls every 0.25 s),
        then interrupts it: (exit code, stdout lines, stderr)."""
        os.set_blocking(cls.follower.stdout.fileno(), False)
        printed = []

        def caught_up():
            printed.append(cls.follower.stdout.read() or "")
            return "".join(printed).count("\n") >= expected_lines

        h.wait_until(caught_up, 10, f"records --follow printing {expected_lines} lines")
        cls.follower.send_signal(signal.SIGINT)
        rest, err = cls.follower.communicate(timeout=10)
        return cls.follower.returncode, ("".join(printed) + (rest or "")).splitlines(), err

    def records_command(self, *args):
        res = subprocess.run([ARGS.agent, "records", "--data-directory", self.agent.data_dir,
                              *args], capture_output=True, text=True, timeout=30)
        self.assertEqual((res.returncode, res.stderr), (0, ""), args)
        return res.stdout.splitlines()

    # ---- helpers

    def record_for(self, event):
        eid = h.expected_event_id(event)
        found = [r for r in self.records if r.get("eventId") == eid]
        self.assertEqual(len(found), 1, f"records with eventId {eid} for {event['Action']}")
        return found[0]

    def events_of(self, name, action):
        """The engine's events of container `name` whose action is `action` in Docker's words
        (h.record_action: Podman's remove is a destroy)."""
        cid = self.ids[name]
        return [e for e in self.engine_events
                if e["Actor"]["ID"] == cid and h.record_action(e)[0] == action]

    # ---- checks

    def test_engine_window_covers_scenario(self):
        """sanity: the engine's list has what the scenario did (otherwise the test is wrong)"""
        actions = {h.split_action(e["Action"])[0] for e in self.engine_events}
        want = ["create", "start", "pause", "unpause", *self.d.exec_actions, "kill", "die",
                "restart", "rename", self.d.removal_action, "health_status", "attach"]
        if self.d.reports_stop:
            want.append("stop")
        else:
            h.skip_part(self.d, "stop event required", "docker stop sends it only at times")
        for a in want:
            self.assertIn(a, actions)

    def test_every_engine_event_recorded_in_sqlite(self):
        """every engine container event reached SQLite (polled up to 30 s)"""
        missing = [f"{e['Action']!r} {e['Actor']['ID'][:12]} {e['timeNano']}"
                   for e in self.engine_events if h.expected_event_id(e) in self.missing]
        self.assertEqual(missing, [], "engine events the agent never recorded")

    def test_exactly_once_in_ndjson(self):
        """every engine event exactly once in NDJSON with kind/action/actionDetail/timeNano/
        time/container.id/attributes as the engine said"""
        problems = h.exactly_once_problems(self.engine_events, self.records, "ndjson")
        self.assertEqual(problems, [])

    def test_exactly_once_in_sqlite(self):
        """every engine event exactly once in SQLite; columns agree with the record"""
        recs = [json.loads(r[5]) for r in self.rows]
        self.assertEqual(h.exactly_once_problems(self.engine_events, recs, "sqlite"), [])
        for event_id, kind, container_id, time_nano, source, record in self.rows:
            rec = json.loads(record)
            self.assertEqual((event_id, kind, container_id, source),
                             (rec["eventId"], rec["kind"], (rec.get("container") or {}).get("id"),
                              rec["source"]), "SQLite columns vs record JSON")
            # docs/records.md: time_nano is the record's `time` in nanoseconds.
            self.assertEqual(time_nano, h.rfc3339_to_nanos(rec["time"]), rec["kind"])

    def test_event_ids_unique(self):
        """no eventId twice in NDJSON"""
        ids = [r["eventId"] for r in self.records]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        self.assertEqual(dupes, [])

    def test_snapshot_of_preexisting_container(self):
        """the container that existed before start has a container.snapshot record"""
        snaps = [r for r in self.records if r.get("kind") == "container.snapshot"
                 and r.get("container", {}).get("id") == self.pre_id]
        self.assertEqual(len(snaps), 1, "snapshots of the pre-existing container")
        s = snaps[0]
        self.assertEqual(s["source"], "snapshot")
        self.assertNotIn("timeNano", s)
        c = s["container"]
        self.assertEqual((c.get("name"), c.get("image"), c.get("state")),
                         ("pre", self.image, "running"))
        self.assertTrue(c.get("imageId", "").startswith("sha256:"), c)
        self.assertGreater(c.get("pid", 0), 0)

    def test_die_exit_code(self):
        """die of `sh -c 'exit 3'` carries exitCode 3; die after docker kill carries 137"""
        dies = self.events_of("fail", "die")
        self.assertEqual(len(dies), 1)
        self.assertEqual(dies[0]["Actor"]["Attributes"].get("exitCode"), "3")
        rec = self.record_for(dies[0])
        self.assertEqual(rec["container"].get("exitCode"), 3, rec["container"])
        kill_dies = [e for e in self.events_of("life", "die")
                     if e["Actor"]["Attributes"].get("exitCode") == "137"]
        self.assertTrue(kill_dies)
        self.assertEqual(self.record_for(kill_dies[-1])["container"].get("exitCode"), 137)

    def inspect_of(self, record):
        """The container.inspect record that completes `record`."""
        found = [r for r in self.records
                 if r["kind"] == "container.inspect" and r.get("completes") == record["eventId"]]
        self.assertEqual(len(found), 1, f"container.inspect completing {record['kind']}")
        return found[0]

    def test_records_from_events_then_inspect(self):
        """create, start and die records carry what their event says (name, image, state,
        exitCode), never an inspect's facts; the container.inspect record that completes the
        start adds imageId, restartCount, pid and posture"""
        for action, state in (("create", "created"), ("start", "running"), ("die", "exited")):
            c = self.record_for(self.events_of("fail", action)[0])["container"]
            self.assertEqual((c.get("name"), c.get("image"), c.get("state")),
                             ("fail", self.image, state), f"{action}: {c}")
            for key in ("security", "env", "imageDigest", "pid"):
                self.assertNotIn(key, c, f"{action}: {c}")
        self.assertEqual(self.record_for(self.events_of("fail", "die")[0])["container"]
                         ["exitCode"], 3)
        for name in ("fail", "hc"):
            start = self.record_for(self.events_of(name, "start")[0])
            inspect = self.inspect_of(start)
            c = inspect["container"]
            self.assertEqual(inspect["source"], start["source"])
            self.assertGreaterEqual(inspect["time"], start["time"])
            self.assertNotIn("inspectError", inspect)
            self.assertEqual(c.get("name"), name, c)
            self.assertTrue(c.get("imageId", "").startswith("sha256:"), c)
            self.assertIn("restartCount", c, c)
            self.assertIn("security", c, c)
            self.assertEqual(c.get("posture", {}).get("benchmark"), "CIS Docker Benchmark v1.6.0",
                             c)
            self.assertIn("imageDigest", c, c)
        # a long-running one is still running when the answer comes
        c = self.inspect_of(self.record_for(self.events_of("hc", "start")[0]))["container"]
        self.assertEqual(c.get("state"), "running", c)
        self.assertGreater(c.get("pid", 0), 0, c)

    def test_rename_has_new_name(self):
        """rename record: container.name is the new name"""
        ev = self.events_of("life", "rename")[0]
        rec = self.record_for(ev)
        self.assertEqual(rec["container"].get("name"), "life2", rec["container"])
        if self.d.rename_has_old_name:
            self.assertEqual(rec["attributes"].get("oldName"), "/life")
        else:
            h.skip_part(self.d, "rename's oldName", "its rename event has no oldName")

    def test_health_status_detail(self):
        """health_status: healthy (Docker) or health_status with HealthStatus healthy (Podman)
        -> action health_status, actionDetail healthy"""
        healthy = [e for e in self.events_of("hc", "health_status")
                   if h.record_action(e)[1] == "healthy"]
        self.assertTrue(healthy)
        rec = self.record_for(healthy[0])
        self.assertEqual((rec["kind"], rec.get("actionDetail")),
                         ("container.health_status", "healthy"))

    def test_ndjson_equals_sqlite(self):
        """NDJSON lines == SQLite record column, in order"""
        self.assertGreater(len(self.lines), 0)
        self.assertEqual(self.lines, [r[5] for r in self.rows])

    def test_schema(self):
        """every line validates against docs/record-schema.json (missing schema = failure)"""
        schema, path = h.load_schema(ARGS.source_dir)
        self.assertIsNotNone(schema, f"{path} does not exist; the schema is part of the "
                                     "record contract")
        self.assertEqual(h.schema_errors(schema, self.records), [])

    def test_schema_header_and_formats(self):
        """schema name/version, 32-hex eventId, RFC 3339 times with 9 digits"""
        import re
        t = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z$")
        for rec in self.records:
            self.assertEqual(rec["schema"], {"name": "zastava.runtime-event", "version": 9})
            self.assertRegex(rec["eventId"], r"^[0-9a-f]{32}$")
            self.assertRegex(rec["time"], t)
            # observedAt is left out where it would repeat `time`: records of no engine event.
            if h.engine_time_nano(rec) is not None:
                self.assertIn("observedAt", rec)
            if rec["kind"] in ("container.inspect", "container.evidence", "container.snapshot"):
                self.assertNotIn("observedAt", rec)
            if "observedAt" in rec:
                self.assertRegex(rec["observedAt"], t)
            self.assertIn(rec["source"], ("stream", "replay", "reconcile", "snapshot", "agent"))
            self.assertEqual(list(rec)[:3], ["schema", "eventId", "kind"], "key order")
            self.assertEqual(list(rec)[-1], "prevHash", "key order")

    def test_hash_chain(self):
        """the prevHash chain verifies from the genesis hash"""
        self.assertEqual(h.verify_chain(self.lines), [])
        self.assertEqual(self.records[0]["prevHash"], h.GENESIS_HASH)

    def test_file_modes(self):
        """zastava-agent.db 0600, segments 0640, runtime-events/ 0750 (docs/records.md)"""
        data = self.agent.data_dir
        expected = {h.db_path(data): 0o600, os.path.join(data, "runtime-events"): 0o750}
        segments = h.segment_paths(data)
        self.assertTrue(segments, "no NDJSON segments")
        expected.update({p: 0o640 for p in segments})
        for p, want in expected.items():
            mode = stat.S_IMODE(os.stat(p).st_mode)
            self.assertEqual(oct(mode), oct(want), p)

    def test_meta_cursor_and_chain_head(self):
        """meta: last_hash is the last line's hash; cursor_time_nano the largest timeNano of a
        stream/replay record"""
        meta = {r["key"]: r["value"] for r in h.read_table(self.agent.data_dir, "meta")}
        self.assertEqual(meta.get("last_hash"), h.line_hash(self.lines[-1])[0])
        cursor = max(h.engine_time_nano(r) for r in self.records
                     if h.engine_time_nano(r) is not None)
        self.assertEqual(int(meta.get("cursor_time_nano")), cursor)

    def test_events_total_matches_records(self):
        """zastava_agent_events_total{kind,source} == the records written, per kind and source;
        the seal written at stop, after the scrape, is the last record"""
        counted = {}
        for name, labels, value in h.parse_metrics(self.metrics_text):
            if name == "zastava_agent_events_total" and value:
                counted[(labels.get("kind"), labels.get("source"))] = int(value)
        written = {}
        for r in self.records:
            written[(r["kind"], r["source"])] = written.get((r["kind"], r["source"]), 0) + 1
        seal = ("agent.seal", "agent")
        # One seal at stop, and one more if an interval ended between the scrape and the stop.
        self.assertIn(written.pop(seal, 0) - counted.pop(seal, 0), (1, 2))
        self.assertEqual(counted, written)
        self.assertEqual(self.records[-1]["kind"], "agent.seal", "the seal at stop")

    def test_containers_table(self):
        """the containers table knows the exited container with exit code 3"""
        rows = h.read_containers_table(self.agent.data_dir)
        fail = [r for r in rows if r["container_id"] == self.ids["fail"]]
        self.assertEqual(len(fail), 1, rows)
        self.assertEqual((fail[0]["name"], fail[0]["state"], fail[0]["exit_code"]),
                         ("fail", "exited", 3))
        # docs/records.md: container.destroy sets state to removed.
        for name in ("life", "hc"):
            row = [r for r in rows if r["container_id"] == self.ids[name]]
            self.assertEqual([r["state"] for r in row], ["removed"], name)
        pre = [r for r in rows if r["container_id"] == self.pre_id]
        self.assertEqual([r["state"] for r in pre], ["removed"], "pre")

    def test_records_follow_printed_every_record_once_in_order(self):
        """`records --follow`: one line per record, in file order, each naming the record's
        kind and container, with the exit code of a death; SIGINT ends it with exit 0"""
        code, printed, err = self.followed
        self.assertEqual(code, 0, err)
        self.assertIn("waiting for", self.follower_waiting)  # before the agent made its directory
        self.assertEqual(len(printed), len(self.records), printed[-3:])
        for line, rec in zip(printed, self.records):
            fields = line.split()
            self.assertEqual((fields[1], fields[2]), (rec["source"], rec["kind"]), line)
            if "container" in rec:
                self.assertIn(rec["container"]["name"] or rec["container"]["id"][:12], fields)
                if "exitCode" in rec["container"]:
                    self.assertIn(f"exit={rec['container']['exitCode']}", fields)

    def test_records_filters_and_json_agree_with_the_files(self):
        """`records --output json` prints the NDJSON lines as stored; --kind and --container
        pick exactly the matching records; --since in the future prints nothing"""
        self.assertEqual(self.records_command("--output", "json"), self.lines)
        fail_die = self.records_command("--kind", "die", "--container", "fail")
        self.assertEqual(len(fail_die), 1, fail_die)
        self.assertIn("exit=3", fail_die[0])
        by_id = self.records_command("--container", self.ids["fail"][:8], "--output", "json")
        self.assertEqual(by_id, [line for line, rec in zip(self.lines, self.records)
                                 if rec.get("container", {}).get("id") == self.ids["fail"]])
        self.assertEqual(self.records_command("--since", "2200-01-01"), [])

    def test_ledger_agrees_with_engine(self):
        """ENGINE MATRIX: the ledger against the engine's /events of the agent's time (each
        once, nothing twice) and every container's final state equal"""
        self.assertEqual(h.engine_matrix_check(self.d, self.agent, self.engine_events,
                                               ARGS.source_dir), [])

    def test_sigterm_exits_0_within_5s(self):
        """SIGTERM: exit code 0 in under 5 s"""
        self.assertEqual(self.exit_code, 0, h.tail(self.agent.log_path))
        self.assertLess(self.stop_seconds, 5.0)


if __name__ == "__main__":
    h.main(globals())
