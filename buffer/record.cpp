#include "buffer/record.h"

#include "buffer/evidence_json.h"
#include "buffer/json_writer.h"
#include "common/invariant.h"
#include "common/rfc3339.h"
#include "common/sha256.h"

namespace zastava {
namespace {

constexpr std::size_t kEventIdHexChars = 32;

void writeSecurity(JsonWriter& out, const SecurityPosture& p) {
  out.startObject();
  out.key("privileged").boolean(p.privileged);
  out.key("user").text(p.user);
  out.key("capAdd").textArray(p.capAdd);
  out.key("capDrop").textArray(p.capDrop);
  out.key("securityOpt").textArray(p.securityOpt);
  out.key("appArmorProfile").text(p.appArmorProfile);
  out.key("processLabel").text(p.processLabel);
  out.key("noNewPrivileges").boolean(p.noNewPrivileges);
  out.key("readOnlyRootfs").boolean(p.readOnlyRootfs);
  out.key("pidMode").text(p.pidMode);
  out.key("networkMode").text(p.networkMode);
  out.key("ipcMode").text(p.ipcMode);
  out.key("usernsMode").text(p.usernsMode);
  out.key("utsMode").text(p.utsMode);
  out.key("devices").textArray(p.devices);
  out.key("mounts").startArray();
  for (const MountFacts& m : p.mounts) {
    out.startObject();
    out.key("type").text(m.type);
    out.key("source").text(m.source);
    out.key("destination").text(m.destination);
    out.key("mode").text(m.mode);
    out.key("propagation").text(m.propagation);
    out.key("readWrite").boolean(m.readWrite);
    out.key("dockerSocket").boolean(m.dockerSocket);
    out.endObject();
  }
  out.endArray();
  out.key("ports").textArray(p.ports);
  out.key("memoryBytes").integer(p.memoryBytes);
  out.key("nanoCpus").integer(p.nanoCpus);
  out.key("cpuShares").integer(p.cpuShares);
  out.key("cpuQuota").integer(p.cpuQuota);
  out.key("pidsLimit").integer(p.pidsLimit);
  out.key("restartPolicy").text(p.restartPolicy);
  out.key("ulimits").textArray(p.ulimits);
  out.key("cgroupParent").text(p.cgroupParent);
  out.key("healthcheck").textArray(p.healthcheck);
  out.key("healthStatus").text(p.healthStatus);
  out.endObject();
}

// A failed finding, or (with the label that waived it) a waived one.
void writeFinding(JsonWriter& out, const CheckFinding& finding, std::string_view waiver) {
  out.startObject();
  out.key("id").text(finding.id);
  out.key("severity").text(severityName(finding.severity));
  out.key("title").text(finding.title);
  if (finding.waived) out.key("result").text(checkResultName(finding.result));
  if (finding.result == CheckResult::kFailed) out.key("value").text(finding.value);
  if (finding.waived) out.key("waiver").text(waiver);
  out.endObject();
}

// The ids of the findings not waived with `result`.
void writeIds(JsonWriter& out, const PostureFindings& findings, CheckResult result) {
  out.startArray();
  for (const CheckFinding& finding : findings.checks) {
    if (!finding.waived && finding.result == result) out.text(finding.id);
  }
  out.endArray();
}

void writePosture(JsonWriter& out, const PostureFindings& findings) {
  out.startObject();
  out.key("benchmark").text(kPostureBenchmark);
  out.key("failed").startArray();
  for (const CheckFinding& finding : findings.checks) {
    if (PostureFindings::counts(finding)) writeFinding(out, finding, {});
  }
  out.endArray();
  if (!findings.waiver.empty()) {
    out.key("waived").startArray();
    for (const CheckFinding& finding : findings.checks) {
      if (finding.waived) writeFinding(out, finding, findings.waiver);
    }
    out.endArray();
  }
  out.key("passed");
  writeIds(out, findings, CheckResult::kPassed);
  out.key("notApplicable");
  writeIds(out, findings, CheckResult::kNotApplicable);
  if (!findings.skipped.empty()) {
    out.key("skipped").startArray();
    for (std::string_view id : findings.skipped) out.text(id);
    out.endArray();
  }
  out.endObject();
}

// `withPid` is false on evidence records, whose evidence.initPid says which process was read.
void writeContainer(JsonWriter& out, const ContainerFacts& facts, bool withPid) {
  out.startObject();
  out.key("id").text(facts.id);
  out.key("name").text(facts.name);
  out.key("image").text(facts.image);
  if (!facts.imageId.empty()) out.key("imageId").text(facts.imageId);
  if (facts.state) out.key("state").text(*facts.state);
  if (facts.exitCode) out.key("exitCode").integer(*facts.exitCode);
  if (facts.pid && withPid) out.key("pid").integer(*facts.pid);
  if (facts.restartCount) out.key("restartCount").integer(*facts.restartCount);
  if (facts.oomKilled) out.key("oomKilled").boolean(*facts.oomKilled);
  if (facts.startedAt) out.key("startedAt").text(*facts.startedAt);
  if (facts.finishedAt) out.key("finishedAt").text(*facts.finishedAt);
  if (!facts.labels.empty()) out.key("labels").textMap(facts.labels);
  if (facts.security) {
    out.key("imageDigest").optionalText(facts.imageDigest);
    if (!facts.env.empty()) out.key("env").textMap(facts.env);
    out.key("security");
    writeSecurity(out, *facts.security);
  }
  if (facts.posture) {
    out.key("posture");
    writePosture(out, *facts.posture);
  }
  out.endObject();
}

void writeGap(JsonWriter& out, const GapFacts& gap) {
  out.startObject();
  out.key("from").text(formatRfc3339Nanos(gap.from));
  out.key("to").text(formatRfc3339Nanos(gap.to));
  out.key("fromTimeNano").integer(gap.from);
  out.key("toTimeNano").integer(gap.to);
  out.key("reason").text(gap.reason);
  if (gap.undeliveredRecords) out.key("undeliveredRecords").integer(*gap.undeliveredRecords);
  out.endObject();
}

void writeSeal(JsonWriter& out, const SealFacts& seal) {
  out.startObject();
  out.key("keyId").text(seal.keyId);
  out.key("epoch").integer(seal.epoch);
  out.key("records").integer(seal.records);
  out.key("lastHash").text(seal.lastHash);
  out.key("mac").text(seal.mac);
  out.endObject();
}

void writeSealKey(JsonWriter& out, const SealKeyFacts& sealKey) {
  out.startObject();
  out.key("keyId").text(sealKey.keyId);
  out.key("epoch").integer(sealKey.epoch);
  out.key("change").text(sealKeyChangeName(sealKey.change));
  out.key("reason").text(sealKey.reason);
  out.endObject();
}

void writeLine(JsonWriter& out, const Record& record, std::string_view prevHash) {
  out.startObject();
  out.key("schema").startObject();
  out.key("name").text(kSchemaName);
  out.key("version").integer(kSchemaVersion);
  out.endObject();
  out.key("eventId").text(record.eventId);
  out.key("kind").text(record.kind);
  out.key("source").text(recordSourceName(record.source));
  out.key("time").text(recordTimeText(record.time));
  if (record.observedAt != record.time) {
    out.key("observedAt").text(formatRfc3339Nanos(record.observedAt));
  }
  if (!record.actionDetail.empty()) out.key("actionDetail").text(record.actionDetail);
  if (!record.engineAction.empty()) out.key("engineAction").text(record.engineAction);
  if (!record.completes.empty()) out.key("completes").text(record.completes);
  if (!record.inspectError.empty()) out.key("inspectError").text(record.inspectError);
  if (!record.container.id.empty()) {
    out.key("container");
    writeContainer(out, record.container, /*withPid=*/!record.evidence);
  }
  if (!record.attributes.empty()) out.key("attributes").textMap(record.attributes);
  if (record.gap) {
    out.key("gap");
    writeGap(out, *record.gap);
  }
  if (record.evidence) {
    out.key("evidence");
    writeEvidence(out, *record.evidence);
  }
  if (record.seal) {
    out.key("seal");
    writeSeal(out, *record.seal);
  }
  if (record.sealKey) {
    out.key("sealKey");
    writeSealKey(out, *record.sealKey);
  }
  out.key("prevHash").text(prevHash);
  out.endObject();
}

std::string sha256Prefix(std::string_view bytes, std::size_t hexChars) {
  std::string hex = sha256Hex(bytes);
  if (hex.size() > hexChars) hex.resize(hexChars);
  return hex;
}

}  // namespace

std::string_view recordSourceName(RecordSource source) {
  switch (source) {
    case RecordSource::kStream:
      return "stream";
    case RecordSource::kReplay:
      return "replay";
    case RecordSource::kReconcile:
      return "reconcile";
    case RecordSource::kSnapshot:
      return "snapshot";
    case RecordSource::kAgent:
      return "agent";
  }
  ZASTAVA_BUG("RecordSource out of range: " + std::to_string(static_cast<int>(source)));
}

std::string_view sealKeyChangeName(SealKeyChange change) {
  switch (change) {
    case SealKeyChange::kNew:
      return "new";
    case SealKeyChange::kLost:
      return "lost";
    case SealKeyChange::kRewound:
      return "rewound";
    case SealKeyChange::kAhead:
      return "ahead";
  }
  ZASTAVA_BUG("SealKeyChange out of range: " + std::to_string(static_cast<int>(change)));
}

std::string_view evidenceScanName(EvidenceScan scan) {
  switch (scan) {
    case EvidenceScan::kStart:
      return "start";
    case EvidenceScan::kReconcile:
      return "reconcile";
    case EvidenceScan::kRescan:
      return "rescan";
  }
  ZASTAVA_BUG("EvidenceScan out of range: " + std::to_string(static_cast<int>(scan)));
}

std::string_view evidenceStatusName(EvidenceStatus status) {
  switch (status) {
    case EvidenceStatus::kComplete:
      return "complete";
    case EvidenceStatus::kPartial:
      return "partial";
    case EvidenceStatus::kExited:
      return "exited";
    case EvidenceStatus::kUnavailable:
      return "unavailable";
  }
  ZASTAVA_BUG("EvidenceStatus out of range: " + std::to_string(static_cast<int>(status)));
}

std::string eventIdForEngineEvent(std::string_view type, std::string_view rawAction,
                                  std::string_view actorId, std::int64_t timeNano) {
  std::string input = "engine\n";
  input.append(type).append("\n").append(rawAction).append("\n").append(actorId).append("\n");
  input.append(std::to_string(timeNano));
  return sha256Prefix(input, kEventIdHexChars);
}

std::string eventIdForSnapshot(std::string_view containerId, UnixNanos observedAt) {
  std::string input = "snapshot\n";
  input.append(containerId).append("\n").append(std::to_string(observedAt));
  return sha256Prefix(input, kEventIdHexChars);
}

std::string eventIdForReconcile(std::string_view containerId, std::string_view action,
                                std::string_view discriminator) {
  std::string input = "reconcile\n";
  input.append(containerId).append("\n").append(action).append("\n").append(discriminator);
  return sha256Prefix(input, kEventIdHexChars);
}

std::string eventIdForInspect(std::string_view containerId, std::string_view completedEventId) {
  std::string input = "inspect\n";
  input.append(containerId).append("\n").append(completedEventId);
  return sha256Prefix(input, kEventIdHexChars);
}

std::string eventIdForGap(UnixNanos from, UnixNanos to) {
  std::string input = "gap\n";
  input.append(std::to_string(from)).append("\n").append(std::to_string(to));
  return sha256Prefix(input, kEventIdHexChars);
}

std::string eventIdForEvidence(std::string_view containerId, EvidenceScan scan,
                               UnixNanos observedAt) {
  std::string input = "evidence\n";
  input.append(containerId).append("\n").append(evidenceScanName(scan)).append("\n");
  input.append(std::to_string(observedAt));
  return sha256Prefix(input, kEventIdHexChars);
}

Record gapRecord(GapFacts gap, UnixNanos time, UnixNanos observedAt) {
  Record record;
  record.eventId = eventIdForGap(gap.from, gap.to);
  record.kind = "agent.gap";
  record.source = RecordSource::kReconcile;
  record.time = time;
  record.observedAt = observedAt;
  record.gap = std::move(gap);
  return record;
}

Record sealRecord(SealFacts seal, UnixNanos time) {
  Record record;
  std::string input = "seal\n";
  input.append(seal.keyId).append("\n").append(std::to_string(seal.epoch));
  record.eventId = sha256Prefix(input, kEventIdHexChars);
  record.kind = kSealKind;
  record.source = RecordSource::kAgent;
  record.time = time;
  record.observedAt = time;
  record.seal = std::move(seal);
  return record;
}

Record sealKeyRecord(SealKeyFacts sealKey, UnixNanos time) {
  Record record;
  std::string input = "seal-key\n";
  input.append(sealKey.keyId).append("\n").append(std::to_string(sealKey.epoch)).append("\n");
  input.append(sealKeyChangeName(sealKey.change));
  record.eventId = sha256Prefix(input, kEventIdHexChars);
  record.kind = kSealKeyKind;
  record.source = RecordSource::kAgent;
  record.time = time;
  record.observedAt = time;
  record.sealKey = std::move(sealKey);
  return record;
}

std::string recordTimeText(UnixNanos time) { return formatRfc3339Nanos(time); }

ChainedLine chainedLine(const Record& record, std::string_view prevHash) {
  JsonWriter out;
  writeLine(out, record, prevHash);
  ChainedLine chained;
  chained.line = out.json();
  chained.hash = sha256Hex(chained.line);
  return chained;
}
}  // namespace zastava
