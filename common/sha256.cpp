#include "common/sha256.h"

#include <openssl/err.h>
#include <openssl/evp.h>

#include <array>

#include "common/invariant.h"

namespace zastava {
namespace {

// OpenSSL's newest error on this thread, for a message.
std::string openSslError() {
  const unsigned long code = ERR_get_error();
  if (code == 0) return "no OpenSSL error queued";
  std::array<char, 256> text{};
  ERR_error_string_n(code, text.data(), text.size());
  return text.data();
}

// Fetched once: OpenSSL 3 looks EVP_sha256() up again on every digest otherwise.
const EVP_MD* sha256Method() {
  static EVP_MD* const method = EVP_MD_fetch(nullptr, "SHA256", nullptr);
  if (method == nullptr) ZASTAVA_BUG("OpenSSL has no SHA-256: " + openSslError());
  return method;
}

using Digest = std::array<unsigned char, EVP_MAX_MD_SIZE>;

std::string toHex(const Digest& digest, unsigned int length) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string hex;
  hex.reserve(std::size_t{2} * length);
  for (unsigned int i = 0; i < length; ++i) {
    hex.push_back(kDigits[digest[i] >> 4]);
    hex.push_back(kDigits[digest[i] & 0x0f]);
  }
  return hex;
}

}  // namespace

std::string sha256Hex(std::string_view bytes) {
  Digest digest{};
  unsigned int length = 0;
  if (EVP_Digest(bytes.data(), bytes.size(), digest.data(), &length, sha256Method(), nullptr) !=
      1) {
    ZASTAVA_BUG("SHA-256 of " + std::to_string(bytes.size()) + " bytes failed: " + openSslError());
  }
  return toHex(digest, length);
}

struct Sha256::Context {
  struct Free {
    void operator()(EVP_MD_CTX* context) const { EVP_MD_CTX_free(context); }
  };
  std::unique_ptr<EVP_MD_CTX, Free> md{EVP_MD_CTX_new()};

  void start() {
    if (!md || EVP_DigestInit_ex(md.get(), sha256Method(), nullptr) != 1) {
      ZASTAVA_BUG("SHA-256 cannot start: " + openSslError());
    }
  }
};

Sha256::Sha256() : context_(std::make_unique<Context>()) { context_->start(); }

Sha256::~Sha256() = default;

void Sha256::update(std::string_view bytes) {
  if (EVP_DigestUpdate(context_->md.get(), bytes.data(), bytes.size()) != 1) {
    ZASTAVA_BUG("SHA-256 of " + std::to_string(bytes.size()) +
                " more bytes failed: " + openSslError());
  }
}

std::string Sha256::hexDigest() {
  Digest digest{};
  unsigned int length = 0;
  if (EVP_DigestFinal_ex(context_->md.get(), digest.data(), &length) != 1) {
    ZASTAVA_BUG("SHA-256 cannot finish: " + openSslError());
  }
  context_->start();
  return toHex(digest, length);
}

}  // namespace zastava
