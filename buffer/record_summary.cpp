#include "buffer/record_summary.h"

#include <simdjson.h>

#include "buffer/record.h"
#include "common/rfc3339.h"

namespace zastava {
namespace {

using simdjson::dom::element;
using simdjson::dom::object;

std::string textOr(const object& parent, std::string_view key) {
  std::string_view value;
  if (parent[key].get(value) != simdjson::SUCCESS) return {};
  return std::string(value);
}

UnixNanos timeOr(const object& parent, std::string_view key) {
  return parseRfc3339Nanos(textOr(parent, key)).value_or(0);
}

void readContainer(const object& container, RecordSummary& summary) {
  summary.containerId = textOr(container, "id");
  summary.containerName = textOr(container, "name");
  summary.state = textOr(container, "state");
  std::int64_t exitCode = 0;
  if (container["exitCode"].get(exitCode) == simdjson::SUCCESS) summary.exitCode = exitCode;
  simdjson::dom::array failed;
  if (container["posture"]["failed"].get(failed) != simdjson::SUCCESS) return;
  for (element finding : failed) {
    std::string_view id;
    if (finding["id"].get(id) == simdjson::SUCCESS) summary.failedChecks.emplace_back(id);
  }
}

}  // namespace

Result<RecordSummary> summarizeRecord(std::string_view line) {
  thread_local simdjson::dom::parser parser;  // reused: one allocation per thread, not per line
  object record;
  if (auto error = parser.parse(line.data(), line.size()).get(record); error) {
    return Error{ErrorCode::kMalformed,
                 std::string("not a JSON object: ") + simdjson::error_message(error)};
  }
  RecordSummary summary;
  summary.source = textOr(record, "source");
  summary.kind = textOr(record, "kind");
  const std::string time = textOr(record, "time");
  const auto parsedTime = parseRfc3339Nanos(time);
  if (summary.source.empty() || summary.kind.empty() || !parsedTime) {
    return Error{ErrorCode::kMalformed, "not a record: no time, source or kind"};
  }
  summary.time = *parsedTime;
  summary.actionDetail = textOr(record, "actionDetail");
  summary.inspectError = textOr(record, "inspectError");
  object part;
  if (record["container"].get(part) == simdjson::SUCCESS) readContainer(part, summary);
  if (record["evidence"].get(part) == simdjson::SUCCESS) {
    summary.evidenceScan = textOr(part, "scan");
    summary.evidenceStatus = textOr(part, "status");
  }
  if (record["gap"].get(part) == simdjson::SUCCESS) {
    summary.gapFrom = timeOr(part, "from");
    summary.gapTo = timeOr(part, "to");
    summary.gapReason = textOr(part, "reason");
  }
  if (record["seal"].get(part) == simdjson::SUCCESS ||
      record["sealKey"].get(part) == simdjson::SUCCESS) {
    summary.sealKeyId = textOr(part, "keyId");
    if (part["epoch"].get(summary.sealEpoch) != simdjson::SUCCESS) summary.sealEpoch = 0;
    if (part["records"].get(summary.sealRecords) != simdjson::SUCCESS) summary.sealRecords = 0;
    summary.sealKeyChange = textOr(part, "change");
    summary.sealKeyReason = textOr(part, "reason");
  }
  return summary;
}

}  // namespace zastava
