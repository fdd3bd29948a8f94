#include "buffer/sealer.h"

#include <spdlog/spdlog.h>

#include "health/metrics.h"

namespace zastava {

Sealer::Sealer(std::filesystem::path dataDirectory, Metrics& metrics)
    : dataDirectory_(std::move(dataDirectory)),
      keyFile_(dataDirectory_ / kSealKeyFileName),
      metrics_(metrics) {}

Sealer::~Sealer() { eraseSealKey(state_.key); }

Result<std::unique_ptr<Sealer>> Sealer::open(const std::filesystem::path& dataDirectory,
                                             const LedgerSealState& ledger, UnixNanos now,
                                             Metrics& metrics, std::vector<Record>& records) {
  std::unique_ptr<Sealer> sealer(new Sealer(dataDirectory, metrics));
  const std::string keyFile = sealer->keyFile_.string();
  auto say = [&](Result<Record> record) -> Result<std::unique_ptr<Sealer>> {
    if (!record) return record.error();
    metrics.countSealKeyChange(sealKeyChangeName(record->sealKey->change));
    records.push_back(std::move(record).value());
    sealer->countSeedsOnHost(/*warn=*/true);
    return std::move(sealer);
  };
  if (ledger.keyId.empty()) {
    return say(sealer->beginNewKey(SealKeyChange::kNew, "sealing begins for this ledger", now));
  }
  const std::string lastSeal = "the ledger's seals are under key " + ledger.keyId +
                               ", next epoch " + std::to_string(ledger.nextEpoch);
  auto file = readKeyFile(sealer->keyFile_);
  if (!file && file.error().code == ErrorCode::kIo) return file.error();
  if (!file || file->keyId != ledger.keyId) {
    const std::string what = !file ? (file.error().code == ErrorCode::kNotFound
                                          ? "the key file " + keyFile + " is missing"
                                          : file.error().message)
                                   : "the key file " + keyFile + " holds key " + file->keyId;
    spdlog::error("sealing: {}, but {}; a new sealing key begins, recorded as lost", what,
                  lastSeal);
    return say(sealer->beginNewKey(SealKeyChange::kLost, what + "; " + lastSeal, now));
  }
  sealer->state_ = std::move(file).value();
  const std::int64_t found = sealer->state_.epoch;
  const bool stoppedDuringSeal = ledger.lastWasSeal && found + 1 == ledger.nextEpoch;
  if (found == ledger.nextEpoch || stoppedDuringSeal) {
    if (stoppedDuringSeal) {
      spdlog::info(
          "sealing: the agent stopped before replacing the key of sealed epoch {}; "
          "replacing it now",
          found);
    }
    while (sealer->state_.epoch < ledger.nextEpoch) sealer->advance();
    sealer->countSeedsOnHost(/*warn=*/true);
    return sealer;
  }
  if (found < ledger.nextEpoch) {
    const std::string reason =
        "the key file " + keyFile + " was at epoch " + std::to_string(found) +
        ", behind the ledger's next epoch " + std::to_string(ledger.nextEpoch) +
        ": it was replaced by an older copy; the key was evolved forward to the ledger's epoch";
    spdlog::error("sealing: {}", reason);
    while (sealer->state_.epoch < ledger.nextEpoch) sealer->advance();
    return say(Result<Record>(sealKeyRecord(
        SealKeyFacts{ledger.keyId, ledger.nextEpoch, SealKeyChange::kRewound, reason}, now)));
  }
  const std::string reason =
      "the key file " + keyFile + " is at epoch " + std::to_string(found) +
      ", beyond the ledger's next epoch " + std::to_string(ledger.nextEpoch) +
      ": the seals of epochs " + std::to_string(ledger.nextEpoch) + " to " +
      std::to_string(found - 1) +
      " are missing (the ledger's newest records were removed, or its database restored from an "
      "older copy)";
  spdlog::error("sealing: {}", reason);
  return say(Result<Record>(
      sealKeyRecord(SealKeyFacts{ledger.keyId, found, SealKeyChange::kAhead, reason}, now)));
}

Result<Record> Sealer::beginNewKey(SealKeyChange change, std::string reason, UnixNanos now) {
  auto seed = newSealSeed();
  if (!seed) return seed.error();
  auto written = writeSeedFile(dataDirectory_, *seed);
  if (!written) {
    eraseSealKey(seed->seed);
    return written.error();
  }
  eraseSealKey(state_.key);
  state_ = SealKeyState{seed->keyId, 0, firstEpochKey(seed->seed)};
  eraseSealKey(seed->seed);
  auto keyWritten = writeKeyFile();
  if (!keyWritten) return keyWritten.error();
  spdlog::info("sealing: key {} begins; its seed is {}", state_.keyId,
               (dataDirectory_ / sealSeedFileName(state_.keyId)).string());
  return sealKeyRecord(SealKeyFacts{state_.keyId, 0, change, std::move(reason)}, now);
}

Result<void> Sealer::writeKeyFile() { return overwriteKeyFile(keyFile_, state_); }

Record Sealer::seal(UnixNanos now, std::string_view lastHash, std::int64_t records) const {
  Record record = sealRecord(
      SealFacts{state_.keyId, state_.epoch, records, std::string(lastHash), std::string()}, now);
  record.seal->mac = sealMacHex(
      state_.key, sealMessage(state_.keyId, state_.epoch, records, lastHash, recordTimeText(now)));
  return record;
}

void Sealer::advance() {
  SealKey next = nextEpochKey(state_.key);
  eraseSealKey(state_.key);
  state_.key = next;
  eraseSealKey(next);
  ++state_.epoch;
  auto written = writeKeyFile();
  if (!written) {
    metrics_.countSealKeyWriteFailure();
    spdlog::error(
        "sealing: cannot replace the key file with the key of epoch {}: {}; the old key stays on "
        "disk until a later seal writes it",
        state_.epoch, written.error().message);
  }
}

void Sealer::countSeedsOnHost(bool warn) {
  auto seeds = listSeedFiles(dataDirectory_);
  if (!seeds) {
    spdlog::warn("sealing: {}", seeds.error().message);
    return;
  }
  metrics_.setSealSeedsOnHost(seeds->size());
  if (!warn) return;
  for (const std::filesystem::path& seed : *seeds) {
    spdlog::warn(
        "sealing: the seed {} is still on this host: whoever gets root here can forge every seal. "
        "Export it (zastava-agent seal-key export), keep it off the host, and delete the file",
        seed.string());
  }
}

}  // namespace zastava
