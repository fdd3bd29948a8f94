#include "buffer/ledger_verifier.h"

#include <doctest/doctest.h>
#include <sqlite3.h>

#include <algorithm>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "buffer/record.h"
#include "buffer/recorder.h"
#include "buffer/seal.h"
#include "buffer/segment_writer.h"
#include "buffer/sqlite_connection.h"
#include "buffer/sqlite_store.h"
#include "buffer_test_util.h"
#include "common/rfc3339.h"
#include "common/sha256.h"
#include "health/health_state.h"
#include "health/metrics.h"
#include "tests/support/manual_clock.h"

namespace zastava {
namespace {

namespace fs = std::filesystem;
using testing::kSecond;
using testing::kStart;

std::string hexOf(const SealKey& key) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string hex;
  for (unsigned char byte : key) {
    hex.push_back(kDigits[byte >> 4]);
    hex.push_back(kDigits[byte & 0x0f]);
  }
  return hex;
}

SealSeed fixedSeed(unsigned char first) {
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
TEST_CASE("seal.h: key id, epoch keys and MAC of a fixed seed match an independent computation") {
  const SealSeed seed = fixedSeed(0);
  CHECK(seed.keyId == "fc54c4c07610c388");
  const SealKey k0 = firstEpochKey(seed.seed);
  CHECK(hexOf(k0) == "aedb74b27444211c691a05ba0fb8b67f60feab69dc9cea9f6e858c05ed425239");
  const SealKey k1 = nextEpochKey(k0);
  CHECK(hexOf(k1) == "10ac19895d1c2323e5985de57f036842dbfe88680be81eba6eee0869472c8054");
  CHECK(epochKeyOf(seed.seed, 1) == k1);
  const std::string message = sealMessage(seed.keyId, 1, 17, std::string(64, ' '), "x");
  CHECK(message == "zastava.seal.v1\nfc54c4c07610c388\n1\n17\n" + std::string(64, ' ') + "\nx");
  std::string lastHash;
  for (int i = 0; i < 32; ++i) lastHash += "9c";
  CHECK(
      sealMacHex(k1, sealMessage(seed.keyId, 1, 17, lastHash, "2026-12-07T06:40:00.000000123Z")) ==
      "fe4845b6667cbddb26e38209786d1fd48dfff19429c0efd76db3253b79b9d40b");
}

// One ledger line and what SQLite's row says of it.
struct Line {
  std::string text;
  std::string eventId;
  std::string kind;
  std::string source;
  UnixNanos time = 0;
};

std::string hashOf(const Line& line) { return sha256Hex(line.text); }

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
void rechainLine(Line& line, const std::string& prevHash) {
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
void rechainFrom(std::vector<Line>& lines, std::size_t from) {
  for (std::size_t i = std::max<std::size_t>(from, 1); i < lines.size(); ++i) {
    rechainLine(lines[i], hashOf(lines[i - 1]));
  }
}

std::string replaced(std::string text, const std::string& what, const std::string& with) {
  const auto at = text.find(what);
  REQUIRE(at != std::string::npos);
  return text.replace(at, what.size(), with);
}

// Writes `lines` as segments (a new one at each index of `starts`; seq numbers from
// `firstSeq`, one up each, skipping those in `skipSeqs`).
void writeSegments(const fs::path& dataDir, const std::vector<Line>& lines,
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

void writeDatabase(const fs::path& dataDir, const std::vector<Line>& lines,
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

void writeKeyFile(const fs::path& dataDir, const SealSeed& seed, std::int64_t epoch) {
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

std::string segment(std::uint64_t seq) {
  return "runtime-events/" + segmentFileName(kStart + static_cast<UnixNanos>(seq) * kSecond, seq);
}

bool hasFinding(const std::vector<LedgerFinding>& findings, const std::string& text) {
  return std::any_of(findings.begin(), findings.end(), [&](const LedgerFinding& finding) {
    return finding.message.find(text) != std::string::npos;
  });
}

std::string describe(const LedgerReport& report) {
  std::string text;
  for (const auto& problem : report.problems) {
    text += "problem " + findingPlace(problem) + ": " + problem.message + "\n";
  }
  for (const auto& notice : report.notices) {
    text += "notice " + findingPlace(notice) + ": " + notice.message + "\n";
  }
  return text;
}

TEST_CASE("an intact ledger is valid, its seals checked with the seed") {
  Fixture f;
  f.write(f.lines());
  const LedgerReport report = f.verify(true);
  INFO(describe(report));
  CHECK(report.valid());
  CHECK(report.records == 19);
  CHECK(report.segments == 3);
  CHECK(report.sqliteRows == 19);
  CHECK(report.seals == 4);
  CHECK(report.sealsChecked == 4);
  CHECK(report.sealsUnchecked == 0);
  REQUIRE(report.sealKeys.size() == 1);
  CHECK(report.sealKeys[0].keyId == f.seed.keyId);
  CHECK(report.sealKeys[0].firstEpoch == 0);
  CHECK(report.sealKeys[0].lastEpoch == 3);
  CHECK(report.firstTime == formatRfc3339Nanos(kStart + kSecond));
  CHECK(report.lastTime == formatRfc3339Nanos(kStart + 19 * kSecond));
  CHECK(hasFinding(report.notices, "2 records from here on are not sealed yet"));
  CHECK(report.notices.size() == 1);
}

TEST_CASE("without the seed the seals are counted as not checked, still valid") {
  Fixture f;
  f.write(f.lines());
  const LedgerReport report = f.verify(false);
  INFO(describe(report));
  CHECK(report.valid());
  CHECK(report.sealsChecked == 0);
  CHECK(report.sealsUnchecked == 4);
  CHECK(hasFinding(report.notices, "4 seals of key " + f.seed.keyId + " not checked"));
}

TEST_CASE("a ledger trimmed by retention is valid, and says what retention deleted") {
  Fixture f;
  std::vector<Line> ndjson(f.lines().begin() + 6, f.lines().end());
  SUBCASE("the oldest segment deleted, SQLite still holding its last records") {
    std::vector<Line> sqlite(f.lines().begin() + 4, f.lines().end());
    writeSegments(f.dir(), ndjson, {7}, 2);
    writeDatabase(f.dir(), sqlite, hashOf(sqlite.back()));
    const LedgerReport report = f.verify(true);
    INFO(describe(report));
    CHECK(report.valid());
    CHECK(report.records == 13);
    CHECK(hasFinding(report.notices, "the records before it were deleted by retention"));
    CHECK(hasFinding(report.notices, "2 records only in SQLite (rowids 1-2) come before"));
  }
  SUBCASE("SQLite pruned before the segments") {
    std::vector<Line> sqlite(f.lines().begin() + 9, f.lines().end());
    writeSegments(f.dir(), ndjson, {7}, 2);
    writeDatabase(f.dir(), sqlite, hashOf(sqlite.back()), f.lines()[9].time);
    const LedgerReport report = f.verify(true);
    INFO(describe(report));
    CHECK(report.valid());
    CHECK(hasFinding(report.notices,
                     "3 records only in NDJSON are older than SQLite's last "
                     "retention cutoff"));
  }
}

TEST_CASE("an edited line differs from SQLite and breaks the chain") {
  Fixture f;
  std::vector<Line> ndjson = f.lines();
  ndjson[9].text = replaced(ndjson[9].text, R"("name":"web")", R"("name":"wab")");
  f.write(ndjson, f.lines());
  const LedgerReport report = f.verify(false);
  INFO(describe(report));
  REQUIRE_FALSE(report.valid());
  CHECK(report.problems[0].file == segment(2));
  CHECK(report.problems[0].line == 4);
  CHECK(report.problems[0].eventId == f.lines()[9].eventId);
  CHECK(report.problems[0].message.starts_with(
      "line edited: its bytes differ from the same record in SQLite"));
  CHECK(report.problems[0].message.find("the line in NDJSON was edited") != std::string::npos);
  CHECK(hasFinding(report.problems, "chain broken"));
}

TEST_CASE("a line deleted from NDJSON is named with the eventId SQLite holds") {
  Fixture f;
  std::vector<Line> ndjson = f.lines();
  ndjson.erase(ndjson.begin() + 9);
  f.write(ndjson, f.lines());
  const LedgerReport report = f.verify(false);
  INFO(describe(report));
  REQUIRE_FALSE(report.valid());
  CHECK(report.problems[0].file == segment(2));
  CHECK(report.problems[0].line == 4);
  CHECK(report.problems[0].message.find("a record is missing before this line: SQLite holds "
                                        "eventId " +
                                        f.lines()[9].eventId) != std::string::npos);
  CHECK(report.problems[0].message.find("deleted from NDJSON") != std::string::npos);
}

TEST_CASE("reordered lines are out of order") {
  Fixture f;
  std::vector<Line> ndjson = f.lines();
  std::swap(ndjson[9], ndjson[10]);
  f.write(ndjson, f.lines());
  const LedgerReport report = f.verify(false);
  INFO(describe(report));
  REQUIRE_FALSE(report.valid());
  CHECK(report.problems[0].line == 4);
  CHECK(report.problems[0].message.starts_with("out of order"));
  CHECK(hasFinding(report.problems, "it is the hash of a later line"));
}

TEST_CASE("a truncated tail: NDJSON behind SQLite is a crash, SQLite behind NDJSON tampering") {
  Fixture f;
  std::vector<Line> shorter(f.lines().begin(), f.lines().end() - 3);
  SUBCASE("NDJSON lacks the newest records, and ends with a torn line") {
    writeSegments(f.dir(), shorter, f.segmentStarts, 1, f.lines()[16].text.substr(0, 40));
    writeDatabase(f.dir(), f.lines(), hashOf(f.lines().back()));
    const LedgerReport report = f.verify(true);
    INFO(describe(report));
    CHECK(report.valid());
    CHECK(report.records == 19);
    CHECK(hasFinding(report.notices, "a write cut short by a crash"));
    CHECK(hasFinding(report.notices, "3 records from here on are only in SQLite"));
  }
  SUBCASE("SQLite lacks the newest records") {
    writeSegments(f.dir(), f.lines(), f.segmentStarts);
    writeDatabase(f.dir(), shorter, hashOf(f.lines().back()));
    const LedgerReport report = f.verify(false);
    INFO(describe(report));
    REQUIRE(report.problems.size() == 3);
    CHECK(report.problems[0].file == segment(3));
    CHECK(report.problems[0].line == 4);
    CHECK(report.problems[0].message.find("deleted from SQLite") != std::string::npos);
  }
  SUBCASE("both lack them, last_hash and key file left as they were") {
    writeSegments(f.dir(), shorter, f.segmentStarts);
    writeDatabase(f.dir(), shorter, hashOf(f.lines().back()));
    writeKeyFile(f.dir(), f.seed, 4);
    const LedgerReport report = f.verify(false);
    INFO(describe(report));
    CHECK(hasFinding(report.problems, "meta last_hash is not the hash of the ledger's last"));
    CHECK(hasFinding(report.problems,
                     "key file at epoch 4 is beyond the ledger's last seal "
                     "(epoch 2): the seals of epoch 3"));
  }
}

TEST_CASE("a row deleted from SQLite") {
  Fixture f;
  std::vector<Line> sqlite = f.lines();
  sqlite.erase(sqlite.begin() + 10);
  f.write(f.lines(), sqlite);
  const LedgerReport report = f.verify(false);
  INFO(describe(report));
  REQUIRE(report.problems.size() == 1);
  CHECK(report.problems[0].line == 5);
  CHECK(report.problems[0].message.starts_with("a record is missing from SQLite"));
}

TEST_CASE("a segment in the middle moved away") {
  Fixture f;
  f.write(f.lines());
  fs::remove(f.dir() / segment(2));
  const LedgerReport report = f.verify(false);
  INFO(describe(report));
  REQUIRE_FALSE(report.valid());
  CHECK(report.problems[0].file == segment(3));
  CHECK(report.problems[0].message.starts_with("segment seq 2 is missing between"));
  CHECK(report.problems[0].message.find("retention only deletes the oldest") != std::string::npos);
  REQUIRE(report.problems.size() == 4);
  CHECK(report.problems[1].line == 1);
  CHECK(report.problems[1].message.starts_with("7 records are missing before this line"));
  CHECK(report.problems[1].message.find("rowids 7-13") != std::string::npos);
  CHECK(report.problems[2].message.starts_with("chain broken"));
  CHECK(report.problems[3].message.starts_with("seals missing: epochs 1-2 of key " + f.seed.keyId +
                                               " are not in the ledger"));
}

TEST_CASE("the chain rewritten from the middle with fresh hashes: only the seed tells") {
  Fixture f;
  std::vector<Line> rewritten = f.lines();
  rewritten[5].text = replaced(rewritten[5].text, R"("name":"web")", R"("name":"wab")");
  rechainFrom(rewritten, 6);
  f.write(rewritten);
  SUBCASE("without the seed it looks intact") {
    const LedgerReport report = f.verify(false);
    INFO(describe(report));
    CHECK(report.valid());
  }
  SUBCASE("with the seed the first seal after the edit does not verify") {
    const LedgerReport report = f.verify(true);
    INFO(describe(report));
    REQUIRE_FALSE(report.valid());
    CHECK(report.problems[0].file == segment(2));
    CHECK(report.problems[0].line == 3);  // line 8: epoch 1
    CHECK(report.problems[0].message ==
          "seal epoch 1 does not verify under key " + f.seed.keyId +
              ": the records up to it were rewritten (or the seal forged)");
  }
}

TEST_CASE("a seal with a bad MAC") {
  Fixture f;
  std::vector<Line> lines = f.lines();
  const std::size_t at = lines[12].text.find(R"("mac":")") + 7;
  lines[12].text[at] = lines[12].text[at] == '0' ? '1' : '0';
  rechainFrom(lines, 13);
  f.write(lines);
  CHECK(f.verify(false).valid());
  const LedgerReport report = f.verify(true);
  INFO(describe(report));
  REQUIRE(report.problems.size() == 2);  // epoch 3 seals the rechained lines
  CHECK(report.problems[0].line == 7);
  CHECK(report.problems[0].message.starts_with("seal epoch 2 does not verify"));
  CHECK(report.problems[1].message.starts_with("seal epoch 3 does not verify"));
}

TEST_CASE("seals removed leave missing epochs") {
  Fixture f;
  std::vector<Line> lines = f.lines();
  lines.erase(lines.begin() + 8);  // the seal of epoch 1
  rechainFrom(lines, 8);
  f.write(lines);
  const LedgerReport report = f.verify(false);
  INFO(describe(report));
  REQUIRE_FALSE(report.valid());
  CHECK(report.problems[0].message.starts_with("seals missing: epoch 1 of key " + f.seed.keyId +
                                               " is not in the ledger"));
}

TEST_CASE("the key file against the ledger's last seal") {
  Fixture f;
  f.write(f.lines());
  SUBCASE("rolled back to an older copy") {
    writeKeyFile(f.dir(), f.seed, 1);
    const LedgerReport report = f.verify(false);
    INFO(describe(report));
    REQUIRE(report.problems.size() == 1);
    CHECK(report.problems[0].file == "seal-key");
    CHECK(report.problems[0].message ==
          "key file at epoch 1 is behind the ledger's last seal (epoch 3): it was replaced by an "
          "older copy");
  }
  SUBCASE("beyond it: seals removed") {
    writeKeyFile(f.dir(), f.seed, 7);
    const LedgerReport report = f.verify(false);
    INFO(describe(report));
    REQUIRE(report.problems.size() == 1);
    CHECK(report.problems[0].message.find("the seals of epochs 4-6") != std::string::npos);
  }
  SUBCASE("at the last seal's epoch: the agent stopped before replacing it") {
    writeKeyFile(f.dir(), f.seed, 3);
    CHECK(f.verify(true).valid());
  }
  SUBCASE("a key that is not the seed's") {
    REQUIRE(overwriteKeyFile(f.dir() / kSealKeyFileName,
                             SealKeyState{f.seed.keyId, 4, epochKeyOf(fixedSeed(9).seed, 4)})
                .ok());
    CHECK(f.verify(false).valid());
    const LedgerReport report = f.verify(true);
    REQUIRE(report.problems.size() == 1);
    CHECK(report.problems[0].message.find("it was forged or overwritten") != std::string::npos);
  }
  SUBCASE("torn: a notice") {
    std::ofstream(f.dir() / kSealKeyFileName) << "zastava-seal-key v1 torn";
    const LedgerReport report = f.verify(true);
    CHECK(report.valid());
    CHECK(hasFinding(report.notices, "the key file is unreadable"));
  }
}

TEST_CASE("agent.seal-key records of a lost or rewound key are reported with their reason") {
  Fixture f;
  const SealSeed second = fixedSeed(40);
  f.ledger.sealKey(second, 0, "lost", "key 1 at epoch 4: the key file is missing");
  f.ledger.records(1);
  f.ledger.seal(second);
  f.ledger.sealKey(second, 1, "rewound", "the key file was at epoch 0");
  f.ledger.seal(second);
  writeSegments(f.dir(), f.lines(), f.segmentStarts);
  writeDatabase(f.dir(), f.lines(), hashOf(f.lines().back()));
  writeKeyFile(f.dir(), second, 2);
  const LedgerReport report = f.verify(false);
  INFO(describe(report));
  REQUIRE(report.problems.size() == 2);
  CHECK(report.problems[0].message.starts_with("sealing key lost"));
  CHECK(report.problems[0].message.find("key 1 at epoch 4: the key file is missing") !=
        std::string::npos);
  CHECK(report.problems[1].message.starts_with("key file rewound"));
  REQUIRE(report.sealKeys.size() == 2);
  CHECK(report.sealKeys[1].keyId == second.keyId);
  CHECK(report.sealKeys[1].lastEpoch == 1);
}

TEST_CASE("a seal whose key's agent.seal-key record was removed") {
  Fixture f;
  const SealSeed second = fixedSeed(40);
  f.ledger.sealKey(second, 0, "new");
  f.ledger.records(1);
  f.ledger.seal(second);
  std::vector<Line> lines = f.lines();
  lines.erase(lines.begin() + 19);
  rechainFrom(lines, 19);
  writeSegments(f.dir(), lines, f.segmentStarts);
  writeDatabase(f.dir(), lines, hashOf(lines.back()));
  const LedgerReport report = f.verify(false);
  INFO(describe(report));
  REQUIRE(report.problems.size() == 1);
  CHECK(report.problems[0].message.starts_with("seal of key " + second.keyId +
                                               " follows a seal of key " + f.seed.keyId +
                                               " with no agent.seal-key record"));
}

// The ledger the agent's own Recorder and Sealer write: the verifier reads what the writer
// wrote, as docs/records.md describes both.
TEST_CASE("a ledger written by the Recorder, sealed by the Sealer, verifies with its seed") {
  using namespace std::chrono_literals;
  testing::TempDir tmp;
  const fs::path dataDir = tmp.path() / "data";
  ManualClock clock{kStart};
  Metrics metrics{testing::testBuild()};
  HealthState health{metrics, clock};
  auto run = [&](int records) {
    RecorderOptions options;
    options.dataDirectory = dataDir;
    options.sealInterval = 60s;
    auto recorder = Recorder::open(options, clock, metrics, health);
    REQUIRE_MESSAGE(recorder.ok(), (recorder.ok() ? std::string() : recorder.error().message));
    for (int i = 0; i < records; ++i) {
      (*recorder)->submit(testing::engineRecord("c" + std::to_string(i), "start", clock.now() + i));
    }
    (*recorder)->flush();
    (*recorder)->stop();
    clock.advance(1s);
  };
  run(5);
  run(3);
  run(0);
  auto seeds = listSeedFiles(dataDir);
  REQUIRE(seeds.ok());
  REQUIRE(seeds->size() == 1);
  auto report = verifyLedger({dataDir, *seeds});
  REQUIRE(report.ok());
  INFO(describe(*report));
  CHECK(report->valid());
  CHECK(report->segments == 3);
  CHECK(report->seals == 3);
  CHECK(report->sealsChecked == 3);
  CHECK(report->records == 1 + 5 + 1 + 3 + 1 + 1);

  SUBCASE("the key file lost: a new key, and the verifier says so") {
    fs::remove(dataDir / kSealKeyFileName);
    run(1);
    report = verifyLedger({dataDir, *seeds});
    REQUIRE(report.ok());
    INFO(describe(*report));
    REQUIRE(report->problems.size() == 1);
    CHECK(report->problems[0].message.starts_with("sealing key lost"));
    CHECK(hasFinding(report->notices, "1 seal of key"));
  }
  SUBCASE("the key file replaced by an older copy") {
    const std::string atEpoch3 = testing::readFile(dataDir / kSealKeyFileName);
    run(1);
    run(1);
    std::ofstream(dataDir / kSealKeyFileName, std::ios::trunc) << atEpoch3;
    report = verifyLedger({dataDir, *seeds});
    REQUIRE(report.ok());
    INFO(describe(*report));
    REQUIRE(report->problems.size() == 1);
    CHECK(report->problems[0].message ==
          "key file at epoch 3 is behind the ledger's last seal (epoch 4): it was replaced by an "
          "older copy");
  }
}

TEST_CASE("records of schema version 6 carry their own hash; the chain runs through them") {
  testing::TempDir tmp;
  const std::string body = R"({"schema":{"name":"zastava.runtime-event","version":6},)"
                           R"("eventId":"e1","kind":"container.start","source":"stream",)"
                           R"("time":"2026-11-22T14:34:47.782735455Z","prevHash":")" +
                           std::string(kGenesisHash) + "\"}";
  const std::string own = sha256Hex(body);
  Line old{body.substr(0, body.size() - 1) + R"(,"hash":")" + own + "\"}", "e1", "container.start",
           "stream", kStart};
  Record record = testing::engineRecord("c0ffee", "die", kStart + kSecond);
  ChainedLine chained = chainedLine(record, own);
  std::vector<Line> lines{old, {chained.line, record.eventId, record.kind, "stream", kStart}};
  SUBCASE("intact") {
    writeSegments(tmp.path(), lines, {});
    writeDatabase(tmp.path(), lines, chained.hash);
    auto report = verifyLedger({tmp.path(), {}});
    REQUIRE(report.ok());
    INFO(describe(*report));
    CHECK(report->valid());
  }
  SUBCASE("edited in both NDJSON and SQLite, its own hash kept") {
    lines[0].text = replaced(lines[0].text, "container.start", "container.stop");
    writeSegments(tmp.path(), lines, {});
    writeDatabase(tmp.path(), lines, chained.hash);
    auto report = verifyLedger({tmp.path(), {}});
    REQUIRE(report.ok());
    REQUIRE(report->problems.size() == 1);
    CHECK(report->problems[0].message.find("do not hash to its own \"hash\" key") !=
          std::string::npos);
  }
}

TEST_CASE("a line that is not a record, and segments without a database") {
  Fixture f;
  std::vector<Line> ndjson = f.lines();
  ndjson.insert(ndjson.begin() + 3, Line{"hello", "", "", "", 0});
  writeSegments(f.dir(), ndjson, f.segmentStarts);
  const LedgerReport report = f.verify(false);
  INFO(describe(report));
  REQUIRE_FALSE(report.valid());
  CHECK(report.problems[0].line == 4);
  CHECK(report.problems[0].message.starts_with("not a record"));
  CHECK(report.problems.back().file == kDatabaseFileName);
  CHECK(report.problems.back().message.starts_with("missing"));
}

TEST_CASE("input that cannot be used is an error, not a verdict") {
  Fixture f;
  SUBCASE("no such directory") {
    auto report = verifyLedger({f.dir() / "nope", {}});
    REQUIRE_FALSE(report.ok());
    CHECK(report.error().code == ErrorCode::kNotFound);
  }
  SUBCASE("nothing to read") {
    auto report = verifyLedger({f.dir(), {}});
    REQUIRE_FALSE(report.ok());
    CHECK(report.error().code == ErrorCode::kNotFound);
    CHECK(report.error().message.starts_with("nothing to read"));
  }
  SUBCASE("a bad seed file") {
    f.write(f.lines());
    const fs::path bad = f.seeds.path() / "seed";
    std::ofstream(bad) << "zastava-seal-seed v1 0123456789abcdef nothex\n";
    auto report = verifyLedger({f.dir(), {bad}});
    REQUIRE_FALSE(report.ok());
    CHECK(report.error().code == ErrorCode::kMalformed);
    CHECK(report.error().message.find(bad.string()) != std::string::npos);
  }
  SUBCASE("a seed file that does not exist") {
    f.write(f.lines());
    auto report = verifyLedger({f.dir(), {f.seeds.path() / "none"}});
    REQUIRE_FALSE(report.ok());
    CHECK(report.error().message.find("--seal-key") != std::string::npos);
  }
  SUBCASE("a database that is not one") {
    writeSegments(f.dir(), f.lines(), f.segmentStarts);
    std::ofstream(f.dir() / kDatabaseFileName) << "not a database, of course";
    auto report = verifyLedger({f.dir(), {}});
    REQUIRE_FALSE(report.ok());
    CHECK(report.error().code == ErrorCode::kIo);
    CHECK(report.error().message.find((f.dir() / kDatabaseFileName).string()) != std::string::npos);
  }
}

TEST_CASE("the data directory is never written") {
  Fixture f;
  f.write(f.lines());
  std::vector<std::string> before;
  for (const auto& entry : fs::recursive_directory_iterator(f.dir())) {
    before.push_back(entry.path().string() + " " +
                     std::to_string(fs::last_write_time(entry).time_since_epoch().count()));
  }
  CHECK(f.verify(true).valid());
  std::vector<std::string> after;
  for (const auto& entry : fs::recursive_directory_iterator(f.dir())) {
    after.push_back(entry.path().string() + " " +
                    std::to_string(fs::last_write_time(entry).time_since_epoch().count()));
  }
  std::sort(before.begin(), before.end());
  std::sort(after.begin(), after.end());
  CHECK(before == after);
}

}  // namespace
}  // namespace zastava
