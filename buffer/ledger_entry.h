// The pieces of verifyLedger (buffer/ledger_verifier.h) that its steps share: one ledger line
// as the verifier reads it, and the findings in ledger order. Internal to the verifier.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "buffer/ledger_verifier.h"
#include "common/clock.h"

namespace zastava::ledger {

inline constexpr std::string_view kSealKind = "agent.seal";
inline constexpr std::string_view kSealKeyKind = "agent.seal-key";

struct SealFields {
  std::string keyId;
  std::int64_t epoch = 0;
  std::int64_t records = 0;
  std::string lastHash;
  std::string mac;
};

struct SealKeyFields {
  std::string keyId;
  std::int64_t epoch = 0;
  std::string change;
  std::string reason;
};

// One line of the ledger: an NDJSON line, or a record only SQLite holds (rowid set).
struct Entry {
  std::string file;  // relative to the data directory
  std::uint64_t line = 0;
  std::int64_t rowid = 0;
  bool record = false;  // a JSON object with a prevHash; otherwise only `hash` is set
  std::string eventId;
  std::string kind;
  std::string time;  // as written
  std::optional<UnixNanos> timeNanos;
  std::string prevHash;
  std::string bytesHash;  // SHA-256 of the line
  std::string hash;       // its hash in the chain: bytesHash, or a version 6 line's own hash
  // Set when the line is a record but not a valid one of its kind, or a version 6 line whose
  // own hash is not the hash of its bytes: what is wrong.
  std::string defect;
  std::optional<SealFields> seal;
  std::optional<SealKeyFields> sealKey;
  std::optional<std::size_t> sqliteRow;  // index of the same record in SQLite's rows
};

// The hash a line of schema version 6 or older ends with (,"hash":"<64 hex>"}); nullopt for
// any other line.
std::optional<std::string_view> ownHashOf(std::string_view line);

// Reads `line` (without its newline) into an Entry with file and line (or rowid) unset.
Entry parseEntry(std::string_view line);

// "1 record", "3 records".
std::string counted(std::int64_t count, std::string_view noun);

// "runtime-events/x.ndjson:12" or "zastava-agent.db rowid 7".
std::string placeOf(const Entry& entry);

// Problems and notices, each with the ledger position it belongs to, so that the report lists
// them in ledger order whatever step found them.
class Findings {
 public:
  // A position after every entry: for what concerns the database or key file as a whole.
  static constexpr std::size_t kEnd = static_cast<std::size_t>(-1);

  void problem(std::size_t position, LedgerFinding finding) {
    problems_.emplace_back(position, std::move(finding));
  }
  void notice(std::size_t position, LedgerFinding finding) {
    notices_.emplace_back(position, std::move(finding));
  }
  // At `entry` (entries[position]), with its file, line or rowid and eventId.
  void problemAt(std::size_t position, const Entry& entry, std::string message);
  void noticeAt(std::size_t position, const Entry& entry, std::string message);

  // Moves them into `report`, each list sorted by position (stable).
  void moveInto(LedgerReport& report);

 private:
  std::vector<std::pair<std::size_t, LedgerFinding>> problems_;
  std::vector<std::pair<std::size_t, LedgerFinding>> notices_;
};

LedgerFinding findingAt(const Entry& entry, std::string message);

}  // namespace zastava::ledger
