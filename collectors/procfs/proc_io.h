// Small system-call helpers shared by the procfs readers: read a /proc file, read a link, turn
// errno into the Error and the short reason that evidence records carry. Any thread.
#pragma once

#include <cstddef>
#include <string>

#include "common/result.h"

namespace zastava {

// The short, stable reason recorded for an errno: "permission denied" (EACCES, EPERM),
// "not found" (ENOENT), "process exited" (ESRCH), otherwise strerror's text.
std::string errnoReason(int err);

// The Error for a failed system call on `path`: kForbidden for EACCES/EPERM, kNotFound for
// ENOENT/ESRCH, kIo otherwise. The message is errnoReason(err), so it can be recorded as is.
Error errnoError(int err);

// The whole file (procfs files report size 0, so it reads until EOF), at most maxBytes; a file
// longer than that is kIo "larger than <n> bytes" so a cut-off never passes for the real content.
// On failure: errnoError of open/read.
Result<std::string> readProcFile(const std::string& path, std::size_t maxBytes);

// readlink(2) of `path`. On failure: errnoError.
Result<std::string> readLinkText(const std::string& path);

// Owns a file descriptor; closes it on destruction. Only read-only descriptors are kept here,
// so the result of close() is not checked: a failed close loses nothing.
class UniqueFd {
 public:
  explicit UniqueFd(int fd = -1) : fd_(fd) {}
  ~UniqueFd();
  UniqueFd(UniqueFd&& other) noexcept : fd_(other.fd_) { other.fd_ = -1; }
  UniqueFd& operator=(UniqueFd&& other) noexcept;
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

// open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK). On failure: errnoError.
Result<UniqueFd> openReadOnly(const std::string& path);

}  // namespace zastava
