#!/usr/bin/python3
"""Security posture and secret-safe evidence on a real engine: a privileged container with an
added capability and the Docker socket mounted is flagged in its records, and the values of its
secret environment variables and labels reach none of NDJSON, SQLite, the log (at debug level)
or /metrics."""

import json
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402

ARGS = None
SECRETS = ["hunter2-zastava", "abc123-zastava", "hello-zastava", "shh-zastava"]


class EvidenceRedaction(h.WorkspaceTest):
    @classmethod
    def set_up(cls):
        cls.d = cls.ws.dockerd()
        cls.d.make_busybox_image()
        # One container before the agent starts (snapshot), one after (create/start records).
        # Not root inside: this machine's capability bounding set lacks one capability, so a
        # privileged container running as root cannot start here.
        cls.risky_args = [
            "--privileged", "--cap-add", "NET_ADMIN", "--user", "1000:1000",
            "-v", f"{cls.d.sock}:/var/run/docker.sock:ro",
            "-e", f"DB_PASSWORD={SECRETS[0]}", "-e", f"API_TOKEN={SECRETS[1]}",
            "-e", f"GREETING={SECRETS[2]}", "-e", "PATH=/bin",
            "--label", f"aws_secret_key={SECRETS[3]}", "--label", "app=demo"]
        cls.before = cls.d.docker("run", "-d", "--name", "risky-before", *cls.risky_args,
                                  h.TEST_IMAGE, *h.IDLE_CMD)
        cls.agent = cls.ws.agent(ARGS.agent, cls.d.endpoint)
        cls.agent.start()
        cls.agent.wait_ready()
        cls.after = cls.d.docker("run", "-d", "--name", "risky-after", *cls.risky_args,
                                 h.TEST_IMAGE, *h.IDLE_CMD)
        h.wait_until(lambda: any(r["container"].get("pid") for r in
                                 cls.records_of(cls.after, "container.inspect")), 20,
                     "the inspect record of risky-after's start")
        cls.metrics = cls.agent.metrics()
        cls.agent.stop()
        cls.records = [json.loads(line) for line in h.read_ndjson(cls.agent.data_dir)]

    @classmethod
    def records_of(cls, container_id, kind):
        return [r for r in map(json.loads, h.read_ndjson(cls.agent.data_dir))
                if r.get("container", {}).get("id") == container_id and r["kind"] == kind]

    def test_risky_container_is_flagged(self):
        """snapshot and inspect records' posture fails CIS 5.5 (privileged), 5.32 (docker
        socket mounted) and 5.4 (CAP_NET_ADMIN added)"""
        for cid, kind in ((self.before, "container.snapshot"), (self.after, "container.inspect")):
            # the snapshot; the inspect of risky-after's start (its create may have one too)
            record = [r for r in self.records
                      if r.get("container", {}).get("id") == cid and r["kind"] == kind][-1]
            security = record["container"]["security"]
            failed = {f["id"]: f for f in record["container"]["posture"]["failed"]}
            for check in ("5.4", "5.5", "5.32"):
                self.assertIn(check, failed, kind)
            self.assertEqual(failed["5.4"]["value"], "CapAdd=CAP_NET_ADMIN", kind)
            self.assertNotIn("risks", security, kind)
            self.assertTrue(security["mounts"][0]["dockerSocket"])
            self.assertIsNone(record["container"]["imageDigest"])  # API 1.41 does not say
            env = record["container"]["env"]
            self.assertEqual(env["DB_PASSWORD"], "<redacted>")
            self.assertEqual(env["GREETING"], "<redacted>")
            self.assertEqual(env["PATH"], "/bin")
            self.assertEqual(record["container"]["labels"]["aws_secret_key"], "<redacted>")

    def test_records_validate(self):
        """every record, posture included, validates against docs/record-schema.json"""
        schema, path = h.load_schema(ARGS.source_dir)
        self.assertIsNotNone(schema, f"{path} is missing")
        self.assertEqual(h.schema_errors(schema, self.records), [])

    def test_no_secret_value_anywhere(self):
        """no secret value in any NDJSON segment, the SQLite files, the log or /metrics"""
        places = {"log": open(self.agent.log_path, errors="replace").read(),
                  "metrics": self.metrics}
        for root, _, files in os.walk(self.agent.data_dir):
            for name in files:
                with open(os.path.join(root, name), "rb") as f:
                    places[name] = f.read().decode("latin-1")
        self.assertGreater(len(places), 3)
        for where, text in places.items():
            for secret in SECRETS:
                self.assertNotIn(secret, text, f"{secret} leaked into {where}")

    def test_policy_is_configurable(self):
        """--evidence-env-keep-values keeps GREETING's value; a secret-looking name stays
        redacted even when kept; --evidence-redact-patterns adds a pattern"""
        agent = self.ws.agent(ARGS.agent, self.d.endpoint, name="b", extra_args=[
            "--evidence-env-keep-values", "PATH,GREETING,DB_PASSWORD",
            "--evidence-redact-patterns", "*PASSWORD*,app"])
        agent.start()
        agent.wait_ready()
        agent.stop()
        records = [json.loads(line) for line in h.read_ndjson(agent.data_dir)]
        [snapshot] = [r for r in records if r["kind"] == "container.snapshot"
                      and r["container"]["id"] == self.before]
        env = snapshot["container"]["env"]
        self.assertEqual(env["GREETING"], SECRETS[2])
        self.assertEqual(env["DB_PASSWORD"], "<redacted>")
        self.assertEqual(env["API_TOKEN"], "<redacted>")
        self.assertEqual(snapshot["container"]["labels"]["app"], "<redacted>")
        # The patterns replace the defaults: this key no longer looks secret.
        self.assertEqual(snapshot["container"]["labels"]["aws_secret_key"], SECRETS[3])


if __name__ == "__main__":
    h.main(globals())
