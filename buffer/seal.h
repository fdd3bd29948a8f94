// Sealing keys and seals (docs/records.md, "Seals"): the seed and its key id, the one-way
// evolution of epoch keys, a seal's MAC, and the two files that hold them (the seed file, written
// once for the operator to take off the host, and the key file, overwritten at every seal).
// Pure functions and small file reads and writes; used by the Sealer (the writer side) and by
// `zastava-agent verify`.
#pragma once

#include <array>
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"

namespace zastava {

// A seed or an epoch key: 32 raw bytes.
using SealKey = std::array<unsigned char, 32>;

// The seed file of key <keyId> is <dataDir>/seal-seed-<keyId>; the key file <dataDir>/seal-key.
inline constexpr std::string_view kSealSeedFilePrefix = "seal-seed-";
inline constexpr std::string_view kSealKeyFileName = "seal-key";
// The key file is one line of exactly this many bytes, newline included.
inline constexpr std::size_t kSealKeyFileBytes = 128;

struct SealSeed {
  std::string keyId;  // 16 lowercase hex
  SealKey seed{};
};

// The current epoch key as the key file holds it.
struct SealKeyState {
  std::string keyId;
  std::int64_t epoch = 0;
  SealKey key{};
};

// A new seed from OpenSSL's RAND_bytes. Error: kInternal when OpenSSL has no entropy.
Result<SealSeed> newSealSeed();
// The first 16 hex characters of sha256("zastava.seal.key-id\n" + seed).
std::string sealKeyIdOf(const SealKey& seed);
// K_0 = HMAC(seed, "zastava.seal.first-key").
SealKey firstEpochKey(const SealKey& seed);
// K_{e+1} = HMAC(K_e, "zastava.seal.next-key").
SealKey nextEpochKey(const SealKey& key);
// K_epoch from the seed (epoch >= 0): epoch + 1 HMACs.
SealKey epochKeyOf(const SealKey& seed, std::int64_t epoch);
// "zastava.seal.v1\n" + keyId + "\n" + epoch + "\n" + records + "\n" + lastHash + "\n" + time.
std::string sealMessage(std::string_view keyId, std::int64_t epoch, std::int64_t records,
                        std::string_view lastHash, std::string_view time);
// Lowercase hex of HMAC-SHA-256(key, message).
std::string sealMacHex(const SealKey& key, std::string_view message);
// Overwrites `key` with zeros in a way the compiler keeps (OPENSSL_cleanse).
void eraseSealKey(SealKey& key);

// "seal-seed-<keyId>".
std::string sealSeedFileName(std::string_view keyId);
// "zastava-seal-seed v1 <keyId> <64 hex>\n".
std::string seedFileText(const SealSeed& seed);
// The seed in a seed file's text (one line, the newline optional). Error: kMalformed saying
// what is wrong, or that the key id is not the seed's.
Result<SealSeed> parseSeedFile(std::string_view text);
// The 128-byte key file line of `state` (docs/records.md).
std::string keyFileText(const SealKeyState& state);
// The state in a key file's text. Error: kMalformed when it is not a key file line or its check
// fails (a torn write).
Result<SealKeyState> parseKeyFile(std::string_view text);

// Reads and parses a seed file. Errors: kNotFound, kIo naming the path, kMalformed naming it.
Result<SealSeed> readSeedFile(const std::filesystem::path& path);
// Reads and parses the key file. Errors: kNotFound, kIo naming the path, kMalformed naming it.
Result<SealKeyState> readKeyFile(const std::filesystem::path& path);
// The seed files in `directory` (seal-seed-*), sorted by name. Error: kIo naming the directory.
Result<std::vector<std::filesystem::path>> listSeedFiles(const std::filesystem::path& directory);

// Writes a new seed file (mode 0600, O_EXCL) and fsyncs it and its directory. Errors: kIo or
// kDiskFull naming the path.
Result<void> writeSeedFile(const std::filesystem::path& directory, const SealSeed& seed);
// Overwrites the key file in place (created 0600 when missing, its directory then synced) with
// `state` and fdatasyncs it: the previous key's bytes are overwritten, not left in a freed
// block. Errors: kIo or kDiskFull naming the path.
Result<void> overwriteKeyFile(const std::filesystem::path& path, const SealKeyState& state);

}  // namespace zastava
