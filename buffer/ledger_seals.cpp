#include "buffer/ledger_seals.h"

#include <optional>

namespace zastava::ledger {
namespace {

// Deriving a key is one HMAC per epoch. An epoch further than this beyond the last one derived
// (years of seals at one per second) is not derived: the seal or key file claiming it is
// reported as not checkable instead of keeping the verifier busy for hours.
constexpr std::int64_t kMaxEpochSteps = 50'000'000;

constexpr std::size_t kNoSummary = static_cast<std::size_t>(-1);

struct KeyState {
  std::size_t summary = kNoSummary;  // index in report.sealKeys, from its first seal
  bool seen = false;                 // a seal or agent.seal-key record of it was seen
  std::int64_t derivedEpoch = -1;    // the epoch of `derived`; -1: none yet
  SealKey derived{};
};

// K_epoch of `seed`, stepping on from the last key derived; nullopt when too far.
std::optional<SealKey> epochKey(KeyState& state, const SealKey& seed, std::int64_t epoch) {
  if (state.derivedEpoch < 0 || epoch < state.derivedEpoch) {
    state.derived = firstEpochKey(seed);
    state.derivedEpoch = 0;
  }
  if (epoch - state.derivedEpoch > kMaxEpochSteps) return std::nullopt;
  while (state.derivedEpoch < epoch) {
    state.derived = nextEpochKey(state.derived);
    ++state.derivedEpoch;
  }
  return state.derived;
}

std::string epochs(std::int64_t first, std::int64_t last) {
  if (first == last) return "epoch " + std::to_string(first);
  return "epochs " + std::to_string(first) + "-" + std::to_string(last);
}

std::string keyChangeProblem(const SealKeyFields& sealKey) {
  std::string what;
  if (sealKey.change == "lost") {
    what =
        "sealing key lost: at start the key file was missing, unreadable or held another key "
        "than the ledger's last seal (deleted or replaced), and a new key " +
        sealKey.keyId + " began";
  } else if (sealKey.change == "rewound") {
    what =
        "key file rewound: at start it was behind the ledger's last seal (replaced by an older "
        "copy); key " +
        sealKey.keyId + " went on at epoch " + std::to_string(sealKey.epoch);
  } else if (sealKey.change == "ahead") {
    what =
        "key file ahead of the ledger: at start its epoch was beyond the ledger's last seal + "
        "1, so seals are missing (the ledger's newest records removed, or its database "
        "restored from an older copy); key " +
        sealKey.keyId + " went on at epoch " + std::to_string(sealKey.epoch);
  } else {
    return "an agent.seal-key record with an unknown change \"" + sealKey.change + "\"";
  }
  if (!sealKey.reason.empty()) what += " (the agent said: " + sealKey.reason + ")";
  return what;
}

// Walks the seals and agent.seal-key records in ledger order. Each seal is checked against the
// previous one of either kind: same key, the next epoch, the lines between counted.
class SealChecker {
 public:
  SealChecker(const GivenSeeds& seeds, LedgerReport& report, Findings& findings)
      : seeds_(seeds), report_(report), findings_(findings) {}

  void onSealKey(std::size_t position, const Entry& entry) {
    const SealKeyFields& sealKey = *entry.sealKey;
    if (previous_ && sealKey.keyId != head_.keyId && states_[sealKey.keyId].seen) {
      findings_.problemAt(position, entry,
                          "seals of key " + sealKey.keyId + " stop and start again: key " +
                              head_.keyId +
                              " sealed in between (records moved, or two ledgers spliced)");
    }
    if (sealKey.change != "new") findings_.problemAt(position, entry, keyChangeProblem(sealKey));
    states_[sealKey.keyId].seen = true;
    previous_ = Previous{position, sealKey.epoch, true};
    head_.keyId = sealKey.keyId;
    head_.lastSealEpoch = -1;
    head_.sealKeyEpoch = sealKey.epoch;
  }

  void onSeal(std::size_t position, const Entry& entry) {
    const SealFields& seal = *entry.seal;
    ++report_.seals;
    KeyState& state = states_[seal.keyId];
    if (state.summary == kNoSummary) {
      state.summary = report_.sealKeys.size();
      report_.sealKeys.push_back(
          LedgerSealKey{seal.keyId, seal.epoch, seal.epoch, 0, seeds_.contains(seal.keyId)});
    }
    LedgerSealKey& summary = report_.sealKeys[state.summary];
    ++summary.seals;
    summary.lastEpoch = seal.epoch;
    if (seal.lastHash != entry.prevHash) {
      findings_.problemAt(position, entry,
                          "seal edited: its lastHash is not its own prevHash (the hash of the "
                          "record before it)");
    }
    if (previous_ && seal.keyId != head_.keyId) {
      findings_.problemAt(
          position, entry,
          "seal of key " + seal.keyId + " follows " + previousName() + " of key " + head_.keyId +
              " with no agent.seal-key record of its own key between them: " +
              (state.seen ? "seals of key " + seal.keyId +
                                " stop and start again (records moved, or two ledgers spliced)"
                          : "that record was removed, or two ledgers spliced"));
    } else if (previous_) {
      checkSequence(position, entry);
    }
    checkMac(position, entry, state);
    state.seen = true;
    previous_ = Previous{position, seal.epoch + 1, false};
    head_.keyId = seal.keyId;
    head_.lastSealEpoch = seal.epoch;
    lastSeal_ = position;
  }

  SealingHead head() const { return head_; }
  std::optional<std::size_t> lastSeal() const { return lastSeal_; }

 private:
  // The last seal or agent.seal-key record, of head_.keyId.
  struct Previous {
    std::size_t position = 0;
    std::int64_t nextEpoch = 0;
    bool sealKey = false;
  };

  std::string previousName() const {
    return previous_->sealKey ? "an agent.seal-key record" : "a seal";
  }

  void checkSequence(std::size_t position, const Entry& entry) {
    const SealFields& seal = *entry.seal;
    const std::string previous =
        previous_->sealKey ? "its agent.seal-key record" : "the previous seal";
    if (seal.epoch > previous_->nextEpoch) {
      findings_.problemAt(position, entry,
                          "seals missing: " + epochs(previous_->nextEpoch, seal.epoch - 1) +
                              " of key " + seal.keyId +
                              (seal.epoch - 1 > previous_->nextEpoch ? " are" : " is") +
                              " not in the ledger between " + previous +
                              " and this one (removed, with the records they sealed)");
      return;
    }
    if (seal.epoch < previous_->nextEpoch) {
      findings_.problemAt(position, entry,
                          "seal epoch " + std::to_string(seal.epoch) + " of key " + seal.keyId +
                              " comes after " + previous + ", which expects epoch " +
                              std::to_string(previous_->nextEpoch) +
                              " next: a seal repeated or moved");
      return;
    }
    const auto between = static_cast<std::int64_t>(position - previous_->position - 1);
    if (seal.records != between) {
      findings_.problemAt(position, entry,
                          "seal epoch " + std::to_string(seal.epoch) + " of key " + seal.keyId +
                              " counts " + counted(seal.records, "record") + " since " + previous +
                              ", the ledger has " + std::to_string(between) +
                              " between them: records were " +
                              (between > seal.records ? "added" : "removed"));
    }
  }

  void checkMac(std::size_t position, const Entry& entry, KeyState& state) {
    const SealFields& seal = *entry.seal;
    auto seed = seeds_.find(seal.keyId);
    if (seed == seeds_.end()) {
      ++report_.sealsUnchecked;
      return;
    }
    auto key = epochKey(state, seed->second.seed, seal.epoch);
    if (!key) {
      ++report_.sealsUnchecked;
      findings_.problemAt(position, entry,
                          "seal epoch " + std::to_string(seal.epoch) + " of key " + seal.keyId +
                              " is beyond any epoch a ledger reaches: not checked (edited)");
      return;
    }
    ++report_.sealsChecked;
    const std::string message =
        sealMessage(seal.keyId, seal.epoch, seal.records, seal.lastHash, entry.time);
    if (sealMacHex(*key, message) != seal.mac) {
      findings_.problemAt(position, entry,
                          "seal epoch " + std::to_string(seal.epoch) +
                              " does not verify under key " + seal.keyId +
                              ": the records up to it were rewritten (or the seal forged)");
    }
  }

  const GivenSeeds& seeds_;
  LedgerReport& report_;
  Findings& findings_;
  std::map<std::string, KeyState> states_;
  std::optional<Previous> previous_;
  SealingHead head_;
  std::optional<std::size_t> lastSeal_;
};

}  // namespace

SealingHead checkSeals(const std::vector<Entry>& entries, const GivenSeeds& seeds,
                       LedgerReport& report, Findings& findings) {
  SealChecker checker(seeds, report, findings);
  for (std::size_t i = 0; i < entries.size(); ++i) {
    if (entries[i].seal) checker.onSeal(i, entries[i]);
    if (entries[i].sealKey) checker.onSealKey(i, entries[i]);
  }
  std::int64_t unsealed = 0;
  const std::size_t from = checker.lastSeal() ? *checker.lastSeal() + 1 : 0;
  for (std::size_t i = from; i < entries.size(); ++i) unsealed += entries[i].record ? 1 : 0;
  if (!checker.lastSeal()) {
    if (unsealed > 0) {
      findings.notice(Findings::kEnd, {"", 0, 0, "",
                                       "no seals: none of the ledger's " +
                                           counted(unsealed, "record") + " is sealed"});
    }
  } else if (unsealed > 0) {
    findings.notice(
        *checker.lastSeal() + 1,
        findingAt(entries[*checker.lastSeal() + 1],
                  counted(unsealed, "record") + " from here on " + (unsealed == 1 ? "is" : "are") +
                      " not sealed yet (after the last "
                      "seal, " +
                      placeOf(entries[*checker.lastSeal()]) + ")"));
  }
  for (const LedgerSealKey& key : report.sealKeys) {
    if (!key.seedGiven) {
      findings.notice(Findings::kEnd, {"", 0, 0, "",
                                       counted(key.seals, "seal") + " of key " + key.keyId +
                                           " not checked: no --seal-key with its seed"});
    }
  }
  for (const auto& [keyId, given] : seeds) {
    bool used = false;
    for (const LedgerSealKey& key : report.sealKeys) used = used || key.keyId == keyId;
    if (!used) {
      findings.notice(Findings::kEnd, {"", 0, 0, "",
                                       "the seed of key " + keyId + " (" + given.file.string() +
                                           ") checks no seal: the ledger has none of that key"});
    }
  }
  return checker.head();
}

Result<void> checkKeyFile(const std::filesystem::path& path, const SealingHead& head,
                          const GivenSeeds& seeds, Findings& findings) {
  const std::string file(kSealKeyFileName);
  auto state = readKeyFile(path);
  if (!state) {
    if (state.error().code == ErrorCode::kNotFound) return okResult();
    if (state.error().code == ErrorCode::kMalformed) {
      findings.notice(Findings::kEnd,
                      {file, 0, 0, "",
                       "the key file is unreadable (a torn write, or edited): not checked; the "
                       "agent treats it as missing (" +
                           state.error().message + ")"});
      return okResult();
    }
    return state.error();
  }
  const std::string fileEpoch = "key file at epoch " + std::to_string(state->epoch);
  if (head.keyId.empty()) {
    findings.notice(Findings::kEnd, {file, 0, 0, "",
                                     fileEpoch + " of key " + state->keyId +
                                         " not checked: the ledger has no seal left to check "
                                         "it against"});
  } else if (state->keyId != head.keyId) {
    findings.problem(Findings::kEnd, {file, 0, 0, "",
                                      "the key file holds key " + state->keyId +
                                          ", the ledger's last seal is "
                                          "under key " +
                                          head.keyId + ": the key file was replaced"});
  } else if (head.lastSealEpoch < 0) {
    if (state->epoch < head.sealKeyEpoch) {
      findings.problem(
          Findings::kEnd,
          {file, 0, 0, "",
           fileEpoch + " is behind the ledger's agent.seal-key record (epoch " +
               std::to_string(head.sealKeyEpoch) + "): it was replaced by an older copy"});
    } else if (state->epoch > head.sealKeyEpoch) {
      findings.problem(Findings::kEnd,
                       {file, 0, 0, "",
                        fileEpoch + " is beyond the ledger's agent.seal-key record (epoch " +
                            std::to_string(head.sealKeyEpoch) + "): the seals of " +
                            epochs(head.sealKeyEpoch, state->epoch - 1) +
                            " (and the records they sealed) were removed"});
    }
  } else if (state->epoch < head.lastSealEpoch) {
    findings.problem(Findings::kEnd, {file, 0, 0, "",
                                      fileEpoch + " is behind the ledger's last seal (epoch " +
                                          std::to_string(head.lastSealEpoch) +
                                          "): it was replaced by an older copy"});
  } else if (state->epoch > head.lastSealEpoch + 1) {
    findings.problem(Findings::kEnd, {file, 0, 0, "",
                                      fileEpoch + " is beyond the ledger's last seal (epoch " +
                                          std::to_string(head.lastSealEpoch) + "): the seals of " +
                                          epochs(head.lastSealEpoch + 1, state->epoch - 1) +
                                          " (and the records they sealed) were removed"});
  }
  auto seed = seeds.find(state->keyId);
  if (seed != seeds.end()) {
    KeyState scratch;
    auto key = epochKey(scratch, seed->second.seed, state->epoch);
    if (!key || *key != state->key) {
      findings.problem(Findings::kEnd,
                       {file, 0, 0, "",
                        "the key file's key is not key " + state->keyId + "'s key of epoch " +
                            std::to_string(state->epoch) + ": it was forged or overwritten"});
    }
  }
  return okResult();
}

}  // namespace zastava::ledger
