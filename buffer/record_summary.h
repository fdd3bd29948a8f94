// What a reader of the ledger wants at a glance from one NDJSON record line: when, where from,
// what kind, which container in which state, and the posture checks it failed. Decoded from the
// line alone, so it works on any copy of a data directory.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/clock.h"
#include "common/result.h"

namespace zastava {

struct RecordSummary {
  UnixNanos time = 0;
  std::string source;  // stream|replay|reconcile|snapshot
  std::string kind;    // container.start, container.evidence, agent.gap, ...
  std::string actionDetail;
  // Empty on agent.* records.
  std::string containerId;
  std::string containerName;
  std::string state;  // empty when the record does not say
  std::optional<std::int64_t> exitCode;
  std::vector<std::string> failedChecks;  // the ids in container.posture.failed
  std::string inspectError;               // container.inspect records without an inspect's facts
  // container.evidence records: what started the scan and how much of it could be read.
  std::string evidenceScan;
  std::string evidenceStatus;
  // agent.gap records.
  UnixNanos gapFrom = 0;
  UnixNanos gapTo = 0;
  std::string gapReason;
  // agent.seal and agent.seal-key records: the key, the epoch, and what sealed or changed.
  std::string sealKeyId;
  std::int64_t sealEpoch = 0;
  std::int64_t sealRecords = 0;
  std::string sealKeyChange;  // agent.seal-key: new|lost|rewound|ahead
  std::string sealKeyReason;
};

// The summary of one record line. Error: kMalformed naming what is wrong when the line is not
// JSON or lacks `time`, `source` or `kind`. Any thread.
Result<RecordSummary> summarizeRecord(std::string_view line);

}  // namespace zastava
