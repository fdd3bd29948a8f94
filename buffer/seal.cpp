#include "buffer/seal.h"

#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>

#include "buffer/segment_writer.h"
#include "common/invariant.h"
#include "common/sha256.h"

namespace zastava {
namespace {

namespace fs = std::filesystem;

constexpr std::string_view kSeedMagic = "zastava-seal-seed v1 ";
constexpr std::string_view kKeyMagic = "zastava-seal-key v1 ";
constexpr std::size_t kKeyIdChars = 16;
constexpr std::size_t kEpochDigits = 10;
constexpr std::size_t kCheckChars = 8;
constexpr mode_t kSecretFileMode = 0600;

SealKey hmac(const unsigned char* key, std::size_t keyLength, std::string_view message) {
  SealKey out{};
  unsigned int length = 0;
  if (HMAC(EVP_sha256(), key, static_cast<int>(keyLength),
           reinterpret_cast<const unsigned char*>(message.data()), message.size(), out.data(),
           &length) == nullptr ||
      length != out.size()) {
    ZASTAVA_BUG("OpenSSL could not compute an HMAC-SHA-256");
  }
  return out;
}

std::string hexOf(const unsigned char* bytes, std::size_t length) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string hex;
  hex.reserve(2 * length);
  for (std::size_t i = 0; i < length; ++i) {
    hex.push_back(kDigits[bytes[i] >> 4]);
    hex.push_back(kDigits[bytes[i] & 0x0f]);
  }
  return hex;
}

bool isLowerHex(std::string_view text) {
  return std::all_of(text.begin(), text.end(),
                     [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

// 64 lowercase hex characters as 32 bytes; false when `hex` is not that.
bool keyFromHex(std::string_view hex, SealKey& key) {
  if (hex.size() != 2 * key.size() || !isLowerHex(hex)) return false;
  for (std::size_t i = 0; i < key.size(); ++i) {
    auto nibble = [](char c) { return c <= '9' ? c - '0' : c - 'a' + 10; };
    key[i] = static_cast<unsigned char>(nibble(hex[2 * i]) << 4 | nibble(hex[2 * i + 1]));
  }
  return true;
}

std::string withoutNewline(std::string_view text) {
  if (!text.empty() && text.back() == '\n') text.remove_suffix(1);
  return std::string(text);
}

Error fileError(const fs::path& path, std::string_view what, int err) {
  return Error{(err == ENOSPC || err == EDQUOT) ? ErrorCode::kDiskFull : ErrorCode::kIo,
               std::string(what) + " " + path.string() + ": " + std::strerror(err)};
}

// The whole of a small file. Errors: kNotFound, kIo naming it.
Result<std::string> readSmallFile(const fs::path& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    const int err = errno;
    if (err == ENOENT) return Error{ErrorCode::kNotFound, path.string() + " does not exist"};
    return fileError(path, "cannot open", err);
  }
  std::string text;
  char buffer[512];
  for (;;) {
    const ssize_t got = ::read(fd, buffer, sizeof buffer);
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) {
      const int err = errno;
      ::close(fd);
      return fileError(path, "cannot read", err);
    }
    if (got == 0 || text.size() > 4096) break;
    text.append(buffer, static_cast<std::size_t>(got));
  }
  ::close(fd);
  return text;
}

// Writes all of `bytes` at offset 0 and fdatasyncs. Errors as fileError.
Result<void> writeAllAndSync(int fd, const fs::path& path, std::string_view bytes) {
  std::size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t wrote =
        ::pwrite(fd, bytes.data() + done, bytes.size() - done, static_cast<off_t>(done));
    if (wrote < 0 && errno == EINTR) continue;
    if (wrote < 0) return fileError(path, "cannot write", errno);
    done += static_cast<std::size_t>(wrote);
  }
  if (::fdatasync(fd) != 0) return fileError(path, "cannot fdatasync", errno);
  return okResult();
}

void eraseText(std::string& text) {
  if (!text.empty()) OPENSSL_cleanse(text.data(), text.size());
  text.clear();
}

}  // namespace

Result<SealSeed> newSealSeed() {
  SealSeed seed;
  if (RAND_bytes(seed.seed.data(), static_cast<int>(seed.seed.size())) != 1) {
    return Error{ErrorCode::kInternal, "OpenSSL could not make a random sealing seed"};
  }
  seed.keyId = sealKeyIdOf(seed.seed);
  return seed;
}

std::string sealKeyIdOf(const SealKey& seed) {
  std::string input = "zastava.seal.key-id\n";
  input.append(reinterpret_cast<const char*>(seed.data()), seed.size());
  std::string id = sha256Hex(input);
  eraseText(input);
  id.resize(kKeyIdChars);
  return id;
}

SealKey firstEpochKey(const SealKey& seed) {
  return hmac(seed.data(), seed.size(), "zastava.seal.first-key");
}

SealKey nextEpochKey(const SealKey& key) {
  return hmac(key.data(), key.size(), "zastava.seal.next-key");
}

SealKey epochKeyOf(const SealKey& seed, std::int64_t epoch) {
  SealKey key = firstEpochKey(seed);
  for (std::int64_t e = 0; e < epoch; ++e) {
    SealKey next = nextEpochKey(key);
    eraseSealKey(key);
    key = next;
    eraseSealKey(next);
  }
  return key;
}

std::string sealMessage(std::string_view keyId, std::int64_t epoch, std::int64_t records,
                        std::string_view lastHash, std::string_view time) {
  std::string message = "zastava.seal.v1\n";
  message.append(keyId).append("\n").append(std::to_string(epoch)).append("\n");
  message.append(std::to_string(records)).append("\n").append(lastHash).append("\n");
  message.append(time);
  return message;
}

std::string sealMacHex(const SealKey& key, std::string_view message) {
  const SealKey mac = hmac(key.data(), key.size(), message);
  return hexOf(mac.data(), mac.size());
}

void eraseSealKey(SealKey& key) { OPENSSL_cleanse(key.data(), key.size()); }

std::string sealSeedFileName(std::string_view keyId) {
  return std::string(kSealSeedFilePrefix) + std::string(keyId);
}

std::string seedFileText(const SealSeed& seed) {
  return std::string(kSeedMagic) + seed.keyId + " " + hexOf(seed.seed.data(), seed.seed.size()) +
         "\n";
}

Result<SealSeed> parseSeedFile(std::string_view text) {
  std::string line = withoutNewline(text);
  std::string_view rest = line;
  auto malformed = [&](std::string_view why) {
    eraseText(line);
    return Error{ErrorCode::kMalformed, "not a sealing seed: " + std::string(why)};
  };
  if (!rest.starts_with(kSeedMagic)) {
    return malformed("it does not begin with \"zastava-seal-seed v1 \"");
  }
  rest.remove_prefix(kSeedMagic.size());
  const std::size_t space = rest.find(' ');
  if (space != kKeyIdChars || !isLowerHex(rest.substr(0, space))) {
    return malformed("the key id is not 16 lowercase hex characters");
  }
  SealSeed seed;
  seed.keyId = std::string(rest.substr(0, space));
  if (!keyFromHex(rest.substr(space + 1), seed.seed)) {
    return malformed("the seed is not 64 lowercase hex characters");
  }
  eraseText(line);
  if (sealKeyIdOf(seed.seed) != seed.keyId) {
    const std::string keyId = seed.keyId;
    eraseSealKey(seed.seed);
    return Error{ErrorCode::kMalformed, "not a sealing seed: the seed's key id is not " + keyId +
                                            " (the file was edited)"};
  }
  return seed;
}

std::string keyFileText(const SealKeyState& state) {
  std::string epoch = std::to_string(state.epoch);
  if (epoch.size() < kEpochDigits) epoch.insert(0, kEpochDigits - epoch.size(), '0');
  std::string line = std::string(kKeyMagic) + state.keyId + " " + epoch + " " +
                     hexOf(state.key.data(), state.key.size()) + " ";
  std::string check = sha256Hex(line).substr(0, kCheckChars);
  line += check;
  line.resize(kSealKeyFileBytes - 1, ' ');
  line.push_back('\n');
  return line;
}

Result<SealKeyState> parseKeyFile(std::string_view text) {
  std::string line = withoutNewline(text);
  while (!line.empty() && line.back() == ' ') line.pop_back();
  auto malformed = [&](std::string_view why) {
    eraseText(line);
    return Error{ErrorCode::kMalformed, "not a sealing key file: " + std::string(why)};
  };
  // magic, key id, epoch, key, check: fixed widths.
  const std::size_t checkAt = kKeyMagic.size() + kKeyIdChars + 1 + kEpochDigits + 1 + 64 + 1;
  if (!std::string_view(line).starts_with(kKeyMagic) || line.size() != checkAt + kCheckChars) {
    return malformed("its line is not \"zastava-seal-key v1 <key id> <epoch> <key> <check>\"");
  }
  if (sha256Hex(std::string_view(line).substr(0, checkAt)).substr(0, kCheckChars) !=
      line.substr(checkAt)) {
    return malformed("its check does not match (a torn or edited write)");
  }
  SealKeyState state;
  std::string_view rest = std::string_view(line).substr(kKeyMagic.size());
  state.keyId = std::string(rest.substr(0, kKeyIdChars));
  const std::string_view epoch = rest.substr(kKeyIdChars + 1, kEpochDigits);
  const auto parsed = std::from_chars(epoch.data(), epoch.data() + epoch.size(), state.epoch);
  if (parsed.ec != std::errc() || parsed.ptr != epoch.data() + epoch.size() ||
      !keyFromHex(rest.substr(kKeyIdChars + 1 + kEpochDigits + 1, 64), state.key) ||
      !isLowerHex(state.keyId)) {
    return malformed("its key id, epoch or key is not what the format says");
  }
  eraseText(line);
  return state;
}

Result<SealSeed> readSeedFile(const fs::path& path) {
  auto text = readSmallFile(path);
  if (!text) return text.error();
  auto seed = parseSeedFile(*text);
  eraseText(*text);
  if (!seed) return Error{ErrorCode::kMalformed, path.string() + ": " + seed.error().message};
  return seed;
}

Result<SealKeyState> readKeyFile(const fs::path& path) {
  auto text = readSmallFile(path);
  if (!text) return text.error();
  auto state = parseKeyFile(*text);
  eraseText(*text);
  if (!state) return Error{ErrorCode::kMalformed, path.string() + ": " + state.error().message};
  return state;
}

Result<std::vector<fs::path>> listSeedFiles(const fs::path& directory) {
  std::error_code ec;
  std::vector<fs::path> seeds;
  for (fs::directory_iterator it(directory, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (name.starts_with(kSealSeedFilePrefix)) seeds.push_back(it->path());
  }
  if (ec) return Error{ErrorCode::kIo, "cannot list " + directory.string() + ": " + ec.message()};
  std::sort(seeds.begin(), seeds.end());
  return seeds;
}

Result<void> writeSeedFile(const fs::path& directory, const SealSeed& seed) {
  const fs::path path = directory / sealSeedFileName(seed.keyId);
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, kSecretFileMode);
  if (fd < 0) return fileError(path, "cannot create", errno);
  std::string text = seedFileText(seed);
  Result<void> written = writeAllAndSync(fd, path, text);
  eraseText(text);
  if (::close(fd) != 0 && written) written = fileError(path, "cannot close", errno);
  if (!written) return written;
  return syncDirectory(directory);
}

Result<void> overwriteKeyFile(const fs::path& path, const SealKeyState& state) {
  const bool existed = ::access(path.c_str(), F_OK) == 0;
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, kSecretFileMode);
  if (fd < 0) return fileError(path, "cannot open", errno);
  std::string text = keyFileText(state);
  Result<void> written = writeAllAndSync(fd, path, text);
  eraseText(text);
  if (written && ::ftruncate(fd, static_cast<off_t>(kSealKeyFileBytes)) != 0) {
    written = fileError(path, "cannot truncate", errno);
  }
  if (::close(fd) != 0 && written) written = fileError(path, "cannot close", errno);
  if (!written) return written;
  if (!existed) return syncDirectory(path.parent_path());
  return okResult();
}

}  // namespace zastava
