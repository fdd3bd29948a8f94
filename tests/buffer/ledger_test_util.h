// Ledgers for the verifier's tests, built as docs/records.md describes them: records chained
// with chainedLine(), agent.seal-key and agent.seal records written by hand with seal.h, then
// NDJSON segments, SQLite rows and the key file written from them, tampered with or not.
#pragma once

#include <doctest/doctest.h>
#include <sqlite3.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "buffer/ledger_verifier.h"
#include "buffer/record.h"
#include "buffer/recorder.h"
#include "buffer/seal.h"
#include "buffer/segment_writer.h"
#include "buffer/sqlite_connection.h"
#include "buffer/sqlite_store.h"
#include "buffer_test_util.h"
#include "common/rfc3339.h"
#include "common/sha256.h"

namespace zastava::ledger_testing {

namespace fs = std::filesystem;
using testing::kSecond;
using testing::kStart;

inline SealSeed fixedSeed(unsigned char first) {
  SealSeed seed;
  for (std::size_t i = 0; i < seed.seed.size(); ++i) {
    seed.seed[i] = static_cast<unsigned char>(first + i);
  }
  seed.keyId = sealKeyIdOf(seed.seed);
  return seed;
}

// The expected values were computed apart from this code base, from docs/records.md "Keys and
// MAC" alone, with Python's standard library:
//   python3 -c 'import hmac,hashlib
//   seed=bytes(range(32)); kid=hashlib.sha256(b"zastava.seal.key-id\n"+seed).hexdigest()[:16]
//   k0=hmac.new(seed,b"zastava.seal.first-key",hashlib.sha256).digest()
//   k1=hmac.new(k0,b"zastava.seal.next-key",hashlib.sha256).digest()
//   msg=("zastava.seal.v1\n%s\n1\n17\n%s\n2026-12-07T06:40:00.000000123Z"%(kid,"9c"*32)).encode()
//   print(kid, k0.hex(), k1.hex(), hmac.new(k1,msg,hashlib.sha256).hexdigest())'
// One ledger line and what SQLite's row says of it.
struct Line {
  std::string text;
  std::string eventId;
  std::string kind;
  std::string source;
  UnixNanos time = 0;
};

inline std::string hashOf(const Line& line) { return sha256Hex(line.text); }

// Ledgers as the agent writes them: records chained with chainedLine(), agent.seal-key and
// agent.seal records written by hand as docs/records.md says, then NDJSON segments, SQLite and
// the key file written from them, tampered with or not.
class Ledger {
 public:
  void records(int count) {
    for (int i = 0; i < count; ++i) {
      tick();
      Record record =
          testing::engineRecord("c0ffee" + std::to_string(lines_.size()), "start", time_);
      ChainedLine chained = chainedLine(record, head_);
      push({chained.line, record.eventId, record.kind, "stream", time_});
    }
  }

  void sealKey(const SealSeed& seed, std::int64_t epoch, const std::string& change,
               const std::string& reason = "") {
    tick();
    const std::string epochText = std::to_string(epoch);
    const std::string eventId =
        sha256Hex("seal-key\n" + seed.keyId + "\n" + epochText + "\n" + change).substr(0, 32);
    push({head("agent.seal-key", eventId) + R"(,"sealKey":{"keyId":")" + seed.keyId +
              R"(","epoch":)" + epochText + R"(,"change":")" + change + R"(","reason":")" + reason +
              R"("},"prevHash":")" + head_ + "\"}",
          eventId, "agent.seal-key", "agent", time_});
    lastKeyRecord_ = lines_.size() - 1;
    nextEpoch_[seed.keyId] = epoch;
  }

  // The next seal of `seed`'s key, over the lines since its last seal or agent.seal-key.
  void seal(const SealSeed& seed) {
    tick();
    const std::int64_t epoch = nextEpoch_[seed.keyId]++;
    const std::int64_t count = static_cast<std::int64_t>(lines_.size() - lastKeyRecord_ - 1);
    const std::string time = formatRfc3339Nanos(time_);
    const std::string mac = sealMacHex(epochKeyOf(seed.seed, epoch),
                                       sealMessage(seed.keyId, epoch, count, head_, time));
    const std::string eventId =
        sha256Hex("seal\n" + seed.keyId + "\n" + std::to_string(epoch)).substr(0, 32);
    push({head("agent.seal", eventId) + R"(,"seal":{"keyId":")" + seed.keyId + R"(","epoch":)" +
              std::to_string(epoch) + R"(,"records":)" + std::to_string(count) +
              R"(,"lastHash":")" + head_ + R"(","mac":")" + mac + R"("},"prevHash":")" + head_ +
              "\"}",
          eventId, "agent.seal", "agent", time_});
    lastKeyRecord_ = lines_.size() - 1;
  }

  std::vector<Line>& lines() { return lines_; }
  std::int64_t nextEpoch(const SealSeed& seed) { return nextEpoch_[seed.keyId]; }

 private:
  void tick() { time_ += kSecond; }
  std::string head(std::string_view kind, const std::string& eventId) const {
    return R"({"schema":{"name":"zastava.runtime-event","version":9},"eventId":")" + eventId +
           R"(","kind":")" + std::string(kind) + R"(","source":"agent","time":")" +
           formatRfc3339Nanos(time_) + "\"";
  }
  void push(Line line) {
    head_ = hashOf(line);
    lines_.push_back(std::move(line));
  }

  std::vector<Line> lines_;
  std::string head_{kGenesisHash};
  UnixNanos time_ = kStart;
  std::size_t lastKeyRecord_ = 0;
  std::map<std::string, std::int64_t> nextEpoch_;
};

// Points `line`'s prevHash (and a seal's lastHash) at `prevHash`.
inline void rechainLine(Line& line, const std::string& prevHash) {
  const std::size_t at = line.text.rfind(R"("prevHash":")") + 12;
  const std::string old = line.text.substr(at, 64);
  line.text.replace(at, 64, prevHash);
  const std::string lastHash = R"("lastHash":")" + old + "\"";
  if (auto found = line.text.find(lastHash); found != std::string::npos) {
    line.text.replace(found + 12, 64, prevHash);
  }
}

// Rechains every line from `from` on after the one before it: what an attacker who rewrites
// the ledger with fresh hashes does.
inline void rechainFrom(std::vector<Line>& lines, std::size_t from) {
  for (std::size_t i = std::max<std::size_t>(from, 1); i < lines.size(); ++i) {
    rechainLine(lines[i], hashOf(lines[i - 1]));
  }
}

inline std::string replaced(std::string text, const std::string& what, const std::string& with) {
  const auto at = text.find(what);
  REQUIRE(at != std::string::npos);
  return text.replace(at, what.size(), with);
}

// Writes `lines` as segments: a new one at each index of `starts`, seq numbers from `firstSeq`
// up, `tail` (a torn line) after the last line.
inline void writeSegments(const fs::path& dataDir, const std::vector<Line>& lines,
                          std::vector<std::size_t> starts, std::uint64_t firstSeq = 1,
                          const std::string& tail = "") {
  const fs::path dir = dataDir / "runtime-events";
  fs::create_directories(dir);
  starts.push_back(lines.size());
  std::uint64_t seq = firstSeq;
  std::size_t from = 0;
  for (std::size_t end : starts) {
    if (end <= from && from != 0) continue;
    std::ofstream out(dir / segmentFileName(kStart + static_cast<UnixNanos>(seq) * kSecond, seq),
                      std::ios::binary);
    for (std::size_t i = from; i < end; ++i) out << lines[i].text << '\n';
    if (end == lines.size()) out << tail;
    from = end;
    ++seq;
  }
}

inline void writeDatabase(const fs::path& dataDir, const std::vector<Line>& lines,
                          const std::string& lastHash, std::optional<UnixNanos> prunedBefore = {}) {
  const fs::path path = dataDir / kDatabaseFileName;
  { REQUIRE(SqliteStore::open(path).ok()); }
  SqliteConnection db(path);
  REQUIRE(db.open(SQLITE_OPEN_READWRITE).ok());
  auto insert = db.prepare(
      "INSERT INTO events(event_id, kind, container_id, time_nano, source, record) "
      "VALUES(?1, ?2, NULL, ?3, ?4, ?5)",
      "insert");
  REQUIRE(insert.ok());
  for (const Line& line : lines) {
    insert->reset();
    insert->bindText(1, line.eventId);
    insert->bindText(2, line.kind);
    insert->bindInt(3, line.time);
    insert->bindText(4, line.source);
    insert->bindText(5, line.text);
    REQUIRE(insert->step() == SQLITE_DONE);
  }
  auto meta = db.prepare(kSetMeta, "meta");
  REQUIRE(meta.ok());
  meta->bindText(1, "last_hash");
  meta->bindText(2, lastHash);
  REQUIRE(meta->step() == SQLITE_DONE);
  if (prunedBefore) {
    meta->reset();
    meta->bindText(1, "pruned_before_nano");
    meta->bindText(2, std::to_string(*prunedBefore));
    REQUIRE(meta->step() == SQLITE_DONE);
  }
}

inline void writeKeyFile(const fs::path& dataDir, const SealSeed& seed, std::int64_t epoch) {
  REQUIRE(overwriteKeyFile(dataDir / kSealKeyFileName,
                           SealKeyState{seed.keyId, epoch, epochKeyOf(seed.seed, epoch)})
              .ok());
}

// An intact ledger of one key: its agent.seal-key record, then 4 seals of 3 records each, then
// 2 records not sealed yet: 19 lines in 3 segments (lines 0-5, 6-12 and 13-18; the seals are
// lines 4, 8, 12 and 16).
struct Fixture {
  testing::TempDir tmp;
  testing::TempDir seeds;
  SealSeed seed = fixedSeed(7);
  Ledger ledger;
  std::vector<std::size_t> segmentStarts{6, 13};

  Fixture() {
    ledger.sealKey(seed, 0, "new");
    for (int i = 0; i < 4; ++i) {
      ledger.records(3);
      ledger.seal(seed);
    }
    ledger.records(2);
  }
  std::vector<Line>& lines() { return ledger.lines(); }
  const fs::path& dir() const { return tmp.path(); }

  // NDJSON and SQLite from `ndjson` and `sqlite`, the key file at the epoch after the last seal.
  void write(const std::vector<Line>& ndjson, const std::vector<Line>& sqlite) {
    writeSegments(dir(), ndjson, segmentStarts);
    writeDatabase(dir(), sqlite, hashOf(sqlite.back()));
    writeKeyFile(dir(), seed, ledger.nextEpoch(seed));
  }
  void write(const std::vector<Line>& both) { write(both, both); }

  LedgerReport verify(bool withSeed) {
    LedgerVerifyOptions options{dir(), {}};
    if (withSeed) {
      const fs::path file = seeds.path() / sealSeedFileName(seed.keyId);
      if (!fs::exists(file)) REQUIRE(writeSeedFile(seeds.path(), seed).ok());
      options.sealKeyFiles.push_back(file);
    }
    auto report = verifyLedger(options);
    REQUIRE_MESSAGE(report.ok(), (report.ok() ? std::string() : report.error().message));
    return *report;
  }
};

inline std::string segment(std::uint64_t seq) {
  return "runtime-events/" + segmentFileName(kStart + static_cast<UnixNanos>(seq) * kSecond, seq);
}

inline bool hasFinding(const std::vector<LedgerFinding>& findings, const std::string& text) {
  return std::any_of(findings.begin(), findings.end(), [&](const LedgerFinding& finding) {
    return finding.message.find(text) != std::string::npos;
  });
}

inline std::string describe(const LedgerReport& report) {
  std::string text;
  for (const auto& problem : report.problems) {
    text += "problem " + findingPlace(problem) + ": " + problem.message + "\n";
  }
  for (const auto& notice : report.notices) {
    text += "notice " + findingPlace(notice) + ": " + notice.message + "\n";
  }
  return text;
}

}  // namespace zastava::ledger_testing
