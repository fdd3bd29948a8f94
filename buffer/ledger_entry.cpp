#include "buffer/ledger_entry.h"

#include <simdjson.h>

#include <algorithm>

#include "common/rfc3339.h"
#include "common/sha256.h"

namespace zastava::ledger {
namespace {

using simdjson::dom::object;

// A version 6 line ends with its own hash: ,"hash":"<64 hex>"}
constexpr std::string_view kOwnHashKey = R"(,"hash":")";
constexpr std::size_t kHexHashSize = 64;
constexpr std::size_t kOwnHashSuffix = kOwnHashKey.size() + kHexHashSize + 2;

bool isLowerHex(std::string_view text, std::size_t size) {
  return text.size() == size && std::all_of(text.begin(), text.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
         });
}

std::optional<std::string> textOf(const object& parent, std::string_view key) {
  std::string_view value;
  if (parent[key].get(value) != simdjson::SUCCESS) return std::nullopt;
  return std::string(value);
}

std::optional<std::int64_t> numberOf(const object& parent, std::string_view key) {
  std::int64_t value = 0;
  if (parent[key].get(value) != simdjson::SUCCESS) return std::nullopt;
  return value;
}

// The seal block, or what is wrong with it.
void readSeal(const object& record, Entry& entry) {
  object block;
  if (record["seal"].get(block) != simdjson::SUCCESS) {
    entry.defect = "an agent.seal record without its seal block";
    return;
  }
  SealFields seal;
  auto keyId = textOf(block, "keyId");
  auto epoch = numberOf(block, "epoch");
  auto records = numberOf(block, "records");
  auto lastHash = textOf(block, "lastHash");
  auto mac = textOf(block, "mac");
  if (!keyId || !isLowerHex(*keyId, 16) || !epoch || *epoch < 0 || !records || *records < 0 ||
      !lastHash || !mac || !isLowerHex(*mac, kHexHashSize)) {
    entry.defect =
        "not a valid seal: keyId (16 hex), epoch, records, lastHash and mac (64 hex) are not all "
        "there";
    return;
  }
  entry.seal = SealFields{*keyId, *epoch, *records, *lastHash, *mac};
}

void readSealKey(const object& record, Entry& entry) {
  object block;
  if (record["sealKey"].get(block) != simdjson::SUCCESS) {
    entry.defect = "an agent.seal-key record without its sealKey block";
    return;
  }
  auto keyId = textOf(block, "keyId");
  auto epoch = numberOf(block, "epoch");
  auto change = textOf(block, "change");
  if (!keyId || !isLowerHex(*keyId, 16) || !epoch || *epoch < 0 || !change) {
    entry.defect =
        "not a valid agent.seal-key record: keyId (16 hex), epoch and change are not "
        "all there";
    return;
  }
  entry.sealKey = SealKeyFields{*keyId, *epoch, *change, textOf(block, "reason").value_or("")};
}

// A version 6 line's own hash must be the hash of the line without it.
void checkOwnHash(std::string_view line, std::string_view own, Entry& entry) {
  const std::size_t keyAt = line.size() - kOwnHashSuffix;
  if (sha256Hex(std::string(line.substr(0, keyAt)) + "}") != own) {
    entry.defect =
        "line edited: its bytes do not hash to its own \"hash\" key (a record of schema "
        "version 6 or older)";
  }
}

}  // namespace

std::optional<std::string_view> ownHashOf(std::string_view line) {
  if (line.size() <= kOwnHashSuffix || !line.ends_with("\"}")) return std::nullopt;
  const std::size_t keyAt = line.size() - kOwnHashSuffix;
  if (line.substr(keyAt, kOwnHashKey.size()) != kOwnHashKey) return std::nullopt;
  const std::string_view own = line.substr(keyAt + kOwnHashKey.size(), kHexHashSize);
  if (!isLowerHex(own, kHexHashSize)) return std::nullopt;
  return own;
}

Entry parseEntry(std::string_view line) {
  thread_local simdjson::dom::parser parser;  // reused: one allocation per thread, not per line
  Entry entry;
  entry.bytesHash = sha256Hex(line);
  const auto own = ownHashOf(line);
  entry.hash = own ? std::string(*own) : entry.bytesHash;
  object record;
  if (parser.parse(line.data(), line.size()).get(record) != simdjson::SUCCESS) return entry;
  auto prevHash = textOf(record, "prevHash");
  if (!prevHash) return entry;
  entry.record = true;
  entry.prevHash = *prevHash;
  entry.eventId = textOf(record, "eventId").value_or("");
  entry.kind = textOf(record, "kind").value_or("");
  entry.time = textOf(record, "time").value_or("");
  entry.timeNanos = parseRfc3339Nanos(entry.time);
  if (own) checkOwnHash(line, *own, entry);
  if (!entry.defect.empty()) return entry;
  if (entry.kind == kSealKind) readSeal(record, entry);
  if (entry.kind == kSealKeyKind) readSealKey(record, entry);
  return entry;
}

std::string counted(std::int64_t count, std::string_view noun) {
  return std::to_string(count) + " " + std::string(noun) + (count == 1 ? "" : "s");
}

std::string placeOf(const Entry& entry) {
  if (entry.rowid != 0) return entry.file + " rowid " + std::to_string(entry.rowid);
  return entry.file + ":" + std::to_string(entry.line);
}

LedgerFinding findingAt(const Entry& entry, std::string message) {
  return LedgerFinding{entry.file, entry.line, entry.rowid, entry.eventId, std::move(message)};
}

void Findings::problemAt(std::size_t position, const Entry& entry, std::string message) {
  problem(position, findingAt(entry, std::move(message)));
}

void Findings::noticeAt(std::size_t position, const Entry& entry, std::string message) {
  notice(position, findingAt(entry, std::move(message)));
}

void Findings::moveInto(LedgerReport& report) {
  auto byPosition = [](const auto& a, const auto& b) { return a.first < b.first; };
  std::stable_sort(problems_.begin(), problems_.end(), byPosition);
  std::stable_sort(notices_.begin(), notices_.end(), byPosition);
  for (auto& [position, finding] : problems_) report.problems.push_back(std::move(finding));
  for (auto& [position, finding] : notices_) report.notices.push_back(std::move(finding));
  problems_.clear();
  notices_.clear();
}

}  // namespace zastava::ledger
