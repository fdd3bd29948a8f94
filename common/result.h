// The one error type of the project. Every fallible function returns Result<T>; library error
// codes (CURLcode, simdjson, SQLite, errno) are converted into an Error at the seam that calls
// the library, and library exceptions are caught there too.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace zastava {

enum class ErrorCode {
  kInvalidArgument,  // bad configuration or caller input
  kNotFound,         // the thing asked for does not exist (file, container)
  kUnavailable,      // engine or peer unreachable: connection refused, socket missing, reset
  kForbidden,        // a proxy or the engine refused the request (HTTP 401/403)
  kProtocol,         // unexpected HTTP status or framing from the peer
  kMalformed,        // the peer's JSON could not be decoded
  kTimeout,          // the peer did not answer in time
  kTls,              // the TLS handshake or a certificate failed (CA, server name, client cert)
  kIo,               // a local read/write/fsync failed
  kDiskFull,         // ENOSPC/EDQUOT or SQLITE_FULL
  kCancelled,        // the caller asked to stop
  kInternal,         // the agent cannot go on here: no thread or handle (resources), a library
                     // or callback that threw; a broken invariant is ZASTAVA_BUG, not an Error
};

std::string_view errorCodeName(ErrorCode code);

struct Error {
  ErrorCode code = ErrorCode::kInternal;
  std::string message;
};

inline std::string_view errorCodeName(ErrorCode code) {
  switch (code) {
    case ErrorCode::kInvalidArgument:
      return "invalid_argument";
    case ErrorCode::kNotFound:
      return "not_found";
    case ErrorCode::kUnavailable:
      return "unavailable";
    case ErrorCode::kForbidden:
      return "forbidden";
    case ErrorCode::kProtocol:
      return "protocol";
    case ErrorCode::kMalformed:
      return "malformed";
    case ErrorCode::kTimeout:
      return "timeout";
    case ErrorCode::kTls:
      return "tls";
    case ErrorCode::kIo:
      return "io";
    case ErrorCode::kDiskFull:
      return "disk_full";
    case ErrorCode::kCancelled:
      return "cancelled";
    case ErrorCode::kInternal:
      return "internal";
  }
  return "unknown";
}

// A value or an Error. Check ok() before value(); value() on an error is a bug.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : state_(std::move(value)) {}      // NOLINT: implicit by design
  Result(Error error) : state_(std::move(error)) {}  // NOLINT

  bool ok() const { return state_.index() == 0; }
  explicit operator bool() const { return ok(); }

  T& value() & { return std::get<0>(state_); }
  const T& value() const& { return std::get<0>(state_); }
  T&& value() && { return std::get<0>(std::move(state_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

  const Error& error() const { return std::get<1>(state_); }

 private:
  std::variant<T, Error> state_;
};

template <>
class [[nodiscard]] Result<void> {
 public:
  Result() = default;
  Result(Error error) : error_(std::move(error)), ok_(false) {}  // NOLINT

  bool ok() const { return ok_; }
  explicit operator bool() const { return ok_; }
  const Error& error() const { return error_; }

 private:
  Error error_{ErrorCode::kInternal, ""};
  bool ok_ = true;
};

inline Result<void> okResult() { return {}; }

}  // namespace zastava
