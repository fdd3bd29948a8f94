// The verifier on ledgers built line by line: an intact one, one trimmed by retention, and each
// way of tampering with one (docs/records.md "Verifying the ledger"); and seal.h on a fixed
// vector.
#include "buffer/ledger_verifier.h"

#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "buffer/seal.h"
#include "ledger_test_util.h"

namespace zastava {
namespace {

namespace fs = std::filesystem;
using namespace ledger_testing;
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

TEST_CASE("a last line without its newline in an older segment is tampering") {
  Fixture f;
  f.write(f.lines());
  const fs::path first = f.dir() / segment(1);
  const std::uintmax_t size = fs::file_size(first);
  fs::resize_file(first, size - 1);  // the newline of line 6 (a whole record still)
  const LedgerReport report = f.verify(true);
  INFO(describe(report));
  REQUIRE_FALSE(report.valid());
  CHECK(report.problems[0].file == segment(1));
  CHECK(report.problems[0].line == 6);
  CHECK(report.problems[0].message.find("no newline in a segment the agent had moved on from") !=
        std::string::npos);
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
}  // namespace
}  // namespace zastava
