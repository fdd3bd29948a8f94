// Sealing through the real Recorder: the seals it writes verify under the seed's epoch keys, the
// key file moves one way, and a key file that is missing, older or ahead is said in an
// agent.seal-key record.
#include "buffer/sealer.h"

#include <doctest/doctest.h>
#include <sqlite3.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "buffer/commit_observer.h"
#include "buffer/recorder.h"
#include "buffer/seal.h"
#include "buffer/segment_writer.h"
#include "buffer_test_util.h"
#include "common/sha256.h"
#include "health/health_state.h"
#include "health/metrics.h"
#include "tests/support/manual_clock.h"

namespace zastava {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;
using testing::allSegmentLines;
using testing::engineRecord;
using testing::kSecond;
using testing::kStart;
using testing::metricValue;

struct Fixture {
  testing::TempDir tmp;
  std::filesystem::path dataDir = tmp.path() / "data";
  ManualClock clock{kStart};
  Metrics metrics{testing::testBuild()};
  HealthState health{metrics, clock};

  std::unique_ptr<Recorder> open() {
    RecorderOptions options;
    options.dataDirectory = dataDir;
    options.sealInterval = 60s;
    auto recorder = Recorder::open(options, clock, metrics, health);
    REQUIRE_MESSAGE(recorder.ok(), (recorder.ok() ? "" : recorder.error().message));
    return std::move(*recorder);
  }

  // One run of the agent: open, `records` engine records, stop (which seals).
  void run(int records) {
    auto recorder = open();
    for (int i = 0; i < records; ++i) {
      recorder->submit(engineRecord("c" + std::to_string(i), "start", clock.now() + i));
    }
    recorder->flush();
    recorder->stop();
    clock.advance(1s);
  }

  std::vector<json> records() {
    std::vector<json> parsed;
    for (const std::string& line : allSegmentLines(dataDir / "runtime-events")) {
      parsed.push_back(json::parse(line));
    }
    return parsed;
  }

  std::vector<json> ofKind(std::string_view kind) {
    std::vector<json> found;
    for (json& record : records()) {
      if (record["kind"] == kind) found.push_back(std::move(record));
    }
    return found;
  }

  SealSeed seed(const std::string& keyId) {
    auto seed = readSeedFile(dataDir / sealSeedFileName(keyId));
    REQUIRE_MESSAGE(seed.ok(), (seed.ok() ? "" : seed.error().message));
    return *seed;
  }

  SealKeyState keyFile() {
    auto state = readKeyFile(dataDir / kSealKeyFileName);
    REQUIRE_MESSAGE(state.ok(), (state.ok() ? "" : state.error().message));
    return *state;
  }
};

// True when the seal's MAC is the one the seed's key of its epoch makes.
bool sealVerifies(const json& record, const SealSeed& seed) {
  const json& seal = record["seal"];
  const SealKey key = epochKeyOf(seed.seed, seal["epoch"].get<std::int64_t>());
  const std::string message =
      sealMessage(seal["keyId"].get<std::string>(), seal["epoch"].get<std::int64_t>(),
                  seal["records"].get<std::int64_t>(), seal["lastHash"].get<std::string>(),
                  record["time"].get<std::string>());
  return sealMacHex(key, message) == seal["mac"].get<std::string>();
}

// Fixed vectors: computed independently with Python's hmac and hashlib, e.g.
//   python3 -c 'import hmac,hashlib; s=bytes(range(32));
//     k0=hmac.new(s,b"zastava.seal.first-key",hashlib.sha256).digest(); print(k0.hex())'
TEST_CASE("epoch keys and MACs match the documented algorithm on fixed vectors") {
  SealKey seed{};
  for (std::size_t i = 0; i < seed.size(); ++i) seed[i] = static_cast<unsigned char>(i);
  auto hex = [](const SealKey& key) {
    std::string out;
    for (unsigned char byte : key) {
      out.push_back("0123456789abcdef"[byte >> 4]);
      out.push_back("0123456789abcdef"[byte & 0x0f]);
    }
    return out;
  };
  CHECK(sealKeyIdOf(seed) == "fc54c4c07610c388");
  CHECK(hex(firstEpochKey(seed)) ==
        "aedb74b27444211c691a05ba0fb8b67f60feab69dc9cea9f6e858c05ed425239");
  CHECK(hex(nextEpochKey(firstEpochKey(seed))) ==
        "10ac19895d1c2323e5985de57f036842dbfe88680be81eba6eee0869472c8054");
  CHECK(epochKeyOf(seed, 1) == nextEpochKey(firstEpochKey(seed)));
  CHECK(sealMessage("fc54c4c07610c388", 7, 3, std::string(64, 'a'),
                    "2026-12-07T06:40:00.000000123Z") ==
        "zastava.seal.v1\nfc54c4c07610c388\n7\n3\n" + std::string(64, 'a') +
            "\n2026-12-07T06:40:00.000000123Z");
  CHECK(sealMacHex(epochKeyOf(seed, 7), sealMessage("fc54c4c07610c388", 7, 3, std::string(64, 'a'),
                                                    "2026-12-07T06:40:00.000000123Z")) ==
        "ce2f05c6d6304809394885ee710ff57442b7501b742ba867c8a5239a00cc94d0");
}

TEST_CASE("the seed and key files round-trip, and a torn or edited one is refused") {
  auto seed = newSealSeed();
  REQUIRE(seed.ok());
  auto parsed = parseSeedFile(seedFileText(*seed));
  REQUIRE(parsed.ok());
  CHECK(parsed->seed == seed->seed);
  CHECK(parsed->keyId == seed->keyId);
  std::string edited = seedFileText(*seed);
  edited[edited.size() - 2] = edited[edited.size() - 2] == '0' ? '1' : '0';
  CHECK(parseSeedFile(edited).error().code == ErrorCode::kMalformed);

  const SealKeyState state{seed->keyId, 42, firstEpochKey(seed->seed)};
  const std::string text = keyFileText(state);
  CHECK(text.size() == kSealKeyFileBytes);
  auto back = parseKeyFile(text);
  REQUIRE(back.ok());
  CHECK(back->epoch == 42);
  CHECK(back->key == state.key);
  CHECK(parseKeyFile(text.substr(0, 60)).error().code == ErrorCode::kMalformed);
  std::string flipped = text;
  flipped[45] = flipped[45] == '0' ? '1' : '0';  // inside the epoch
  CHECK(parseKeyFile(flipped).error().code == ErrorCode::kMalformed);
}

TEST_CASE("a new ledger begins a key, and each run's seals verify under the seed") {
  Fixture f;
  f.run(3);
  auto keys = f.ofKind("agent.seal-key");
  REQUIRE(keys.size() == 1);
  CHECK(keys[0]["sealKey"]["change"] == "new");
  CHECK(keys[0]["source"] == "agent");
  const std::string keyId = keys[0]["sealKey"]["keyId"];
  const SealSeed seed = f.seed(keyId);
  auto seals = f.ofKind("agent.seal");
  REQUIRE(seals.size() == 1);
  CHECK(seals[0]["seal"]["epoch"] == 0);
  CHECK(seals[0]["seal"]["records"] == 3);
  CHECK(seals[0]["seal"]["lastHash"] == seals[0]["prevHash"]);
  CHECK(sealVerifies(seals[0], seed));
  CHECK(f.keyFile().epoch == 1);
  CHECK(f.keyFile().key == epochKeyOf(seed.seed, 1));
  CHECK(metricValue(f.metrics, "zastava_agent_seals_total") == 1);
  CHECK(metricValue(f.metrics, "zastava_agent_seal_seeds_on_host") == 1);
  CHECK(metricValue(f.metrics, "zastava_agent_seal_key_changes_total{change=\"new\"}") == 1);

  f.run(2);
  seals = f.ofKind("agent.seal");
  REQUIRE(seals.size() == 2);
  CHECK(f.ofKind("agent.seal-key").size() == 1);  // the key file was as the ledger expects
  CHECK(seals[1]["seal"]["epoch"] == 1);
  CHECK(seals[1]["seal"]["records"] == 2);
  CHECK(sealVerifies(seals[1], seed));
  // The MAC binds the epoch: epoch 1's MAC under epoch 0's key does not verify.
  json forged = seals[1];
  forged["seal"]["epoch"] = 0;
  CHECK_FALSE(sealVerifies(forged, seed));
}

// Counts what the writer tells of its commits, as delivery's backlog does.
struct CountingObserver final : CommitObserver {
  std::atomic<std::size_t> records{0};
  void recordsCommitted(std::size_t committed, std::uint64_t) override { records += committed; }
};

TEST_CASE("the agent.seal-key record is committed when open() returns, before delivery counts") {
  Fixture f;
  CountingObserver observer;
  RecorderOptions options;
  options.dataDirectory = f.dataDir;
  options.sealInterval = 60s;
  options.commitObserver = &observer;
  auto recorder = Recorder::open(options, f.clock, f.metrics, f.health);
  REQUIRE(recorder.ok());
  // Delivery counts its backlog from the ledger after this: the record must be in it already,
  // or it would be counted twice.
  CHECK(observer.records == 1);
  CHECK(f.ofKind("agent.seal-key").size() == 1);
  (*recorder)->stop();
}

TEST_CASE("a seal is written every interval, also when nothing happened") {
  Fixture f;
  auto recorder = f.open();
  recorder->flush();
  for (int i = 0; i < 3; ++i) {
    REQUIRE(f.clock.awaitWaits(1));  // the writer waits for work: the advance wakes it
    f.clock.advance(61s);
    for (int tries = 0; tries < 500 && f.ofKind("agent.seal").size() < std::size_t(i + 1);
         ++tries) {
      std::this_thread::sleep_for(10ms);
    }
  }
  auto seals = f.ofKind("agent.seal");
  REQUIRE(seals.size() == 3);
  const SealSeed seed = f.seed(seals[0]["seal"]["keyId"]);
  for (int i = 0; i < 3; ++i) {
    CHECK(seals[i]["seal"]["epoch"] == i);
    CHECK(seals[i]["seal"]["records"] == 0);
    CHECK(sealVerifies(seals[i], seed));
  }
  recorder->stop();
}

TEST_CASE("a key file replaced by an older copy is recorded as rewound, and sealing goes on") {
  Fixture f;
  f.run(1);
  const std::string older = testing::readFile(f.dataDir / kSealKeyFileName);  // epoch 1
  f.run(1);
  f.run(1);  // the key file is at epoch 3 now
  {
    std::ofstream out(f.dataDir / kSealKeyFileName, std::ios::binary | std::ios::trunc);
    out << older;
  }
  f.run(1);
  auto keys = f.ofKind("agent.seal-key");
  REQUIRE(keys.size() == 2);
  CHECK(keys[1]["sealKey"]["change"] == "rewound");
  CHECK(keys[1]["sealKey"]["epoch"] == 3);
  CHECK(keys[1]["sealKey"]["reason"].get<std::string>().find("older copy") != std::string::npos);
  auto seals = f.ofKind("agent.seal");
  REQUIRE(seals.size() == 4);
  CHECK(seals[3]["seal"]["epoch"] == 3);
  CHECK(seals[3]["seal"]["records"] == 1);  // since the agent.seal-key record
  CHECK(sealVerifies(seals[3], f.seed(keys[0]["sealKey"]["keyId"])));
  CHECK(metricValue(f.metrics, "zastava_agent_seal_key_changes_total{change=\"rewound\"}") == 1);
}

TEST_CASE("a missing key file begins a new key, recorded as lost") {
  Fixture f;
  f.run(1);
  std::filesystem::remove(f.dataDir / kSealKeyFileName);
  f.run(1);
  auto keys = f.ofKind("agent.seal-key");
  REQUIRE(keys.size() == 2);
  CHECK(keys[1]["sealKey"]["change"] == "lost");
  CHECK(keys[1]["sealKey"]["keyId"] != keys[0]["sealKey"]["keyId"]);
  CHECK(keys[1]["sealKey"]["reason"].get<std::string>().find("missing") != std::string::npos);
  auto seals = f.ofKind("agent.seal");
  REQUIRE(seals.size() == 2);
  CHECK(seals[1]["seal"]["epoch"] == 0);
  CHECK(sealVerifies(seals[1], f.seed(keys[1]["sealKey"]["keyId"])));
  CHECK(metricValue(f.metrics, "zastava_agent_seal_seeds_on_host") == 2);  // both still here
}

TEST_CASE("a key file ahead of the ledger is recorded: the seals in between are missing") {
  Fixture f;
  f.run(1);
  SealKeyState state = f.keyFile();  // epoch 1
  const SealSeed seed = f.seed(state.keyId);
  state.epoch = 5;
  state.key = epochKeyOf(seed.seed, 5);
  REQUIRE(overwriteKeyFile(f.dataDir / kSealKeyFileName, state).ok());
  f.run(0);
  auto keys = f.ofKind("agent.seal-key");
  REQUIRE(keys.size() == 2);
  CHECK(keys[1]["sealKey"]["change"] == "ahead");
  CHECK(keys[1]["sealKey"]["epoch"] == 5);
  auto seals = f.ofKind("agent.seal");
  REQUIRE(seals.size() == 2);
  CHECK(seals[1]["seal"]["epoch"] == 5);
  CHECK(sealVerifies(seals[1], seed));
}

TEST_CASE("the newest records removed, meta left as it was: the key file is ahead of the ledger") {
  Fixture f;
  f.run(1);  // seal-key, a record, seal 0: rowids 1-3
  f.run(1);  // a record, seal 1, in a second segment; the key file is at epoch 2
  const auto segments = listSegments(f.dataDir / "runtime-events");
  REQUIRE(segments.ok());
  REQUIRE(segments->size() == 2);
  std::filesystem::remove(segments->back().path);
  sqlite3* db = nullptr;
  REQUIRE(sqlite3_open((f.dataDir / "zastava-agent.db").c_str(), &db) == SQLITE_OK);
  CHECK(sqlite3_exec(db, "DELETE FROM events WHERE rowid > 3", nullptr, nullptr, nullptr) ==
        SQLITE_OK);
  sqlite3_close(db);
  f.run(0);
  auto keys = f.ofKind("agent.seal-key");
  REQUIRE(keys.size() == 2);
  CHECK(keys[1]["sealKey"]["change"] == "ahead");
  CHECK(keys[1]["sealKey"]["epoch"] == 2);
  CHECK(metricValue(f.metrics, "zastava_agent_seal_key_changes_total{change=\"ahead\"}") == 1);
}

TEST_CASE("a stop between a seal and its key replacement is caught up without a record") {
  Fixture f;
  f.run(1);
  SealKeyState state = f.keyFile();  // epoch 1 after seal 0
  const SealSeed seed = f.seed(state.keyId);
  state.epoch = 0;
  state.key = epochKeyOf(seed.seed, 0);
  REQUIRE(overwriteKeyFile(f.dataDir / kSealKeyFileName, state).ok());
  f.run(0);
  CHECK(f.ofKind("agent.seal-key").size() == 1);
  auto seals = f.ofKind("agent.seal");
  REQUIRE(seals.size() == 2);
  CHECK(seals[1]["seal"]["epoch"] == 1);
  CHECK(sealVerifies(seals[1], seed));
  CHECK(f.keyFile().epoch == 2);
}

}  // namespace
}  // namespace zastava
