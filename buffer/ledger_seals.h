// Steps 4 to 6 of verifying the ledger (docs/records.md): the seals, the key changes and the
// key file. Internal to verifyLedger.
#pragma once

#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "buffer/ledger_entry.h"
#include "buffer/seal.h"

namespace zastava::ledger {

// The seeds given with --seal-key, by key id, and the file each came from.
struct GivenSeed {
  SealKey seed{};
  std::filesystem::path file;
};
using GivenSeeds = std::map<std::string, GivenSeed>;

// Where the ledger's sealing stands after its last seal or agent.seal-key record: what the key
// file must agree with.
struct SealingHead {
  std::string keyId;                // empty: the ledger has neither
  std::int64_t lastSealEpoch = -1;  // -1: no seal of keyId after its agent.seal-key record
  std::int64_t sealKeyEpoch = 0;    // the agent.seal-key record's epoch, when it is the last
};

// Checks every agent.seal and agent.seal-key record of `entries` in order (steps 4 and 5), and
// fills the seal counts and keys of `report`. Returns where sealing stands at the end.
SealingHead checkSeals(const std::vector<Entry>& entries, const GivenSeeds& seeds,
                       LedgerReport& report, Findings& findings);

// Step 6: the key file `path`, when there is one, against `head` (and its key against the seed,
// when given). A key file that fails its check (a torn write) is a notice. Error: kIo when it
// exists but cannot be read.
Result<void> checkKeyFile(const std::filesystem::path& path, const SealingHead& head,
                          const GivenSeeds& seeds, Findings& findings);

}  // namespace zastava::ledger
