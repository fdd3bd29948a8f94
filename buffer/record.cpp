#include "buffer/record.h"

#include <openssl/err.h>
#include <openssl/evp.h>
#include <time.h>

#include <array>
#include <cstdio>

#include "buffer/evidence_json.h"
#include "buffer/json_writer.h"
#include "common/invariant.h"

namespace zastava {
namespace {

constexpr std::int64_t kNanosPerSecond = 1'000'000'000;
constexpr std::size_t kEventIdHexChars = 32;
constexpr int kLastYear = 2261;  // nanoseconds since 1970 fit in 64 bits until 2262-04-11

// OpenSSL's newest error on this thread, for a message.
std::string openSslError() {
  const unsigned long code = ERR_get_error();
  if (code == 0) return "no OpenSSL error queued";
  std::array<char, 256> text{};
  ERR_error_string_n(code, text.data(), text.size());
  return text.data();
}

void writeSecurity(JsonWriter& out, const SecurityPosture& p) {
  out.startObject();
  out.key("risks").textArray(securityRisks(p));
  out.key("privileged").boolean(p.privileged);
  out.key("user").text(p.user);
  out.key("capAdd").textArray(p.capAdd);
  out.key("capDrop").textArray(p.capDrop);
  out.key("securityOpt").textArray(p.securityOpt);
  out.key("appArmorProfile").text(p.appArmorProfile);
  out.key("noNewPrivileges").boolean(p.noNewPrivileges);
  out.key("readOnlyRootfs").boolean(p.readOnlyRootfs);
  out.key("pidMode").text(p.pidMode);
  out.key("networkMode").text(p.networkMode);
  out.key("ipcMode").text(p.ipcMode);
  out.key("usernsMode").text(p.usernsMode);
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
  out.key("pidsLimit").integer(p.pidsLimit);
  out.key("restartPolicy").text(p.restartPolicy);
  out.key("healthcheck").textArray(p.healthcheck);
  out.key("healthStatus").text(p.healthStatus);
  out.endObject();
}

void writeContainer(JsonWriter& out, const ContainerFacts& facts) {
  out.startObject();
  out.key("id").text(facts.id);
  out.key("name").text(facts.name);
  out.key("image").text(facts.image);
  if (!facts.imageId.empty()) out.key("imageId").text(facts.imageId);
  if (facts.state) out.key("state").text(*facts.state);
  if (facts.exitCode) out.key("exitCode").integer(*facts.exitCode);
  if (facts.pid) out.key("pid").integer(*facts.pid);
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

void writeCanonical(JsonWriter& out, const Record& record, std::string_view prevHash) {
  out.startObject();
  out.key("schema").startObject();
  out.key("name").text(kSchemaName);
  out.key("version").integer(kSchemaVersion);
  out.endObject();
  out.key("eventId").text(record.eventId);
  out.key("kind").text(record.kind);
  out.key("source").text(recordSourceName(record.source));
  out.key("time").text(formatRfc3339Nanos(record.time));
  if (record.timeNano != 0) out.key("timeNano").integer(record.timeNano);
  out.key("observedAt").text(formatRfc3339Nanos(record.observedAt));
  if (!record.action.empty()) out.key("action").text(record.action);
  if (!record.actionDetail.empty()) out.key("actionDetail").text(record.actionDetail);
  if (!record.engineAction.empty()) out.key("engineAction").text(record.engineAction);
  if (!record.completes.empty()) out.key("completes").text(record.completes);
  if (!record.inspectError.empty()) out.key("inspectError").text(record.inspectError);
  if (!record.container.id.empty()) {
    out.key("container");
    writeContainer(out, record.container);
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
  }
  ZASTAVA_BUG("RecordSource out of range: " + std::to_string(static_cast<int>(source)));
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

std::string formatRfc3339Nanos(UnixNanos t) {
  std::int64_t seconds = t / kNanosPerSecond;
  std::int64_t nanos = t % kNanosPerSecond;
  if (nanos < 0) {
    nanos += kNanosPerSecond;
    seconds -= 1;
  }
  const auto asTimeT = static_cast<time_t>(seconds);
  struct tm utc {};
  if (gmtime_r(&asTimeT, &utc) == nullptr) return "1970-01-01T00:00:00.000000000Z";
  std::array<char, 64> buf{};
  std::snprintf(buf.data(), buf.size(), "%04d-%02d-%02dT%02d:%02d:%02d.%09lldZ", utc.tm_year + 1900,
                utc.tm_mon + 1, utc.tm_mday, utc.tm_hour, utc.tm_min, utc.tm_sec,
                static_cast<long long>(nanos));
  return buf.data();
}

std::optional<UnixNanos> parseRfc3339Nanos(std::string_view text) {
  // Digits exactly where the layout has them (sscanf's %d also took signs and blanks), and each
  // field in its range: timegm would carry "2261-26-06" into 2263, beyond 64-bit nanoseconds.
  constexpr std::string_view kLayout = "dddd-dd-ddTdd:dd:dd";
  if (text.size() < kLayout.size()) return std::nullopt;
  for (std::size_t i = 0; i < kLayout.size(); ++i) {
    const bool digit = text[i] >= '0' && text[i] <= '9';
    if (kLayout[i] == 'd' ? !digit : text[i] != kLayout[i]) return std::nullopt;
  }
  const auto number = [&](std::size_t at, std::size_t digits) {
    int value = 0;
    for (std::size_t i = at; i < at + digits; ++i) value = value * 10 + (text[i] - '0');
    return value;
  };
  const int year = number(0, 4), month = number(5, 2), day = number(8, 2);
  const int hour = number(11, 2), minute = number(14, 2), second = number(17, 2);
  const bool leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
  constexpr std::array<int, 12> kDays = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  if (year < 1970 || year > kLastYear || month < 1 || month > 12 || day < 1 ||
      day > kDays[static_cast<std::size_t>(month - 1)] + (month == 2 && leap ? 1 : 0) ||
      hour > 23 || minute > 59 || second > 60) {  // 60: a leap second
    return std::nullopt;
  }
  std::string_view rest = text.substr(19);
  std::int64_t nanos = 0;
  if (!rest.empty() && rest.front() == '.') {
    rest.remove_prefix(1);
    int digits = 0;
    while (!rest.empty() && rest.front() >= '0' && rest.front() <= '9') {
      if (digits++ == 9) return std::nullopt;
      nanos = nanos * 10 + (rest.front() - '0');
      rest.remove_prefix(1);
    }
    if (digits == 0) return std::nullopt;
    for (; digits < 9; ++digits) nanos *= 10;
  }
  if (rest != "Z") return std::nullopt;
  struct tm utc {};
  utc.tm_year = year - 1900;
  utc.tm_mon = month - 1;
  utc.tm_mday = day;
  utc.tm_hour = hour;
  utc.tm_min = minute;
  utc.tm_sec = second;
  const time_t seconds = timegm(&utc);
  return static_cast<UnixNanos>(seconds) * kNanosPerSecond + nanos;
}

std::string canonicalJson(const Record& record, std::string_view prevHash) {
  JsonWriter out;
  writeCanonical(out, record, prevHash);
  return std::string(out.json());
}

ChainedLine chainedLine(const Record& record, std::string_view prevHash) {
  ChainedLine chained;
  std::string canonical = canonicalJson(record, prevHash);
  chained.hash = sha256Hex(canonical);
  canonical.pop_back();  // the object's closing brace
  canonical.append(R"(,"hash":")").append(chained.hash).append("\"}");
  chained.line = std::move(canonical);
  return chained;
}

std::string sha256Hex(std::string_view bytes) {
  // Fetched once: OpenSSL 3 looks EVP_sha256() up again on every digest otherwise.
  static EVP_MD* const sha256 = EVP_MD_fetch(nullptr, "SHA256", nullptr);
  std::array<unsigned char, EVP_MAX_MD_SIZE> digest{};
  unsigned int length = 0;
  if (sha256 == nullptr) ZASTAVA_BUG("OpenSSL has no SHA-256: " + openSslError());
  if (EVP_Digest(bytes.data(), bytes.size(), digest.data(), &length, sha256, nullptr) != 1) {
    ZASTAVA_BUG("SHA-256 of " + std::to_string(bytes.size()) + " bytes failed: " + openSslError());
  }
  static constexpr char kHex[] = "0123456789abcdef";
  std::string hex;
  hex.reserve(length * 2);
  for (unsigned int i = 0; i < length; ++i) {
    hex.push_back(kHex[digest[i] >> 4]);
    hex.push_back(kHex[digest[i] & 0x0f]);
  }
  return hex;
}

}  // namespace zastava
