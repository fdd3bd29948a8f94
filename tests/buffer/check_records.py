"""Runs the sample writer and checks its NDJSON output: every line is valid against
docs/record-schema.json, and the hash chain verifies across segments in seq order
(docs/records.md, "Verifying the ledger"); the Recorder seals it at stop."""
import hashlib
import json
import pathlib
import re
import subprocess
import sys
import tempfile

import jsonschema

SUFFIX = re.compile(r',"hash":"([0-9a-f]{64})"\}$')


def record_hash(line: str):
    """The record's hash: SHA-256 of its line; a line of schema 6 or older carries it as its
    last key, and then the line without it must hash to it (None when it does not)."""
    match = SUFFIX.search(line)
    if match is None:
        return hashlib.sha256(line.encode()).hexdigest()
    canonical = line[: match.start()] + "}"
    return match.group(1) if hashlib.sha256(canonical.encode()).hexdigest() == match.group(1) \
        else None


def main(sample_binary: str, schema_path: str) -> int:
    schema = json.loads(pathlib.Path(schema_path).read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sample_binary, tmp], check=True)
        segments = sorted(pathlib.Path(tmp, "runtime-events").glob("*.ndjson"),
                          key=lambda p: int(p.stem.rsplit("-", 1)[1]))
        if len(segments) < 2:
            print(f"expected several segments, got {len(segments)}")
            return 1
        previous, count = "0" * 64, 0
        evidence_statuses, kinds = set(), []
        for segment in segments:
            for line in segment.read_bytes().decode("utf-8").splitlines():
                record = json.loads(line)
                errors = list(validator.iter_errors(record))
                if errors:
                    print(f"{segment.name}: {errors[0].message}\n{line}")
                    return 1
                digest = record_hash(line)
                if digest is None:
                    print(f"{segment.name}: hash mismatch\n{line}")
                    return 1
                if record["prevHash"] != previous:
                    print(f"{segment.name}: chain broken\n{line}")
                    return 1
                if record["kind"] == "container.evidence":
                    evidence_statuses.add(record["evidence"]["status"])
                kinds.append(record["kind"])
                previous, count = digest, count + 1
        if count != 26:
            print(f"expected 26 records, got {count}")
            return 1
        if kinds[0] != "agent.seal-key" or kinds[-1] != "agent.seal":
            print(f"expected an agent.seal-key record first and an agent.seal last, got {kinds}")
            return 1
        if evidence_statuses != {"complete", "partial", "exited", "unavailable"}:
            print(f"expected evidence of every status, got {sorted(evidence_statuses)}")
            return 1
    print(f"{count} records in {len(segments)} segments: schema valid, chain verified")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
