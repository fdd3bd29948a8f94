// SHA-256 (OpenSSL), as lowercase hex: the record chain's hashes and event ids, and the file
// hashes of process evidence. OpenSSL failing to compute a digest is a broken invariant
// (ZASTAVA_BUG): no input can cause it, and a record must never be stored without its hash.
#pragma once

#include <memory>
#include <string>
#include <string_view>

namespace zastava {

// The SHA-256 of `bytes`, 64 lowercase hex characters. Any thread.
std::string sha256Hex(std::string_view bytes);

// A SHA-256 fed in pieces (a file read through a buffer). One thread at a time.
class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;

  void update(std::string_view bytes);
  // The digest of everything given to update(), 64 lowercase hex characters; then the object
  // starts again from nothing.
  std::string hexDigest();

 private:
  struct Context;
  std::unique_ptr<Context> context_;
};

}  // namespace zastava
