#include "collectors/procfs/proc_io.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace zastava {

std::string errnoReason(int err) {
  switch (err) {
    case EACCES:
    case EPERM:
      return "permission denied";
    case ENOENT:
      return "not found";
    case ESRCH:
      return "process exited";
    default:
      return std::strerror(err);
  }
}

Error errnoError(int err) {
  const ErrorCode code = (err == EACCES || err == EPERM)   ? ErrorCode::kForbidden
                         : (err == ENOENT || err == ESRCH) ? ErrorCode::kNotFound
                                                           : ErrorCode::kIo;
  return Error{code, errnoReason(err)};
}

UniqueFd::~UniqueFd() {
  if (fd_ >= 0) ::close(fd_);
}

UniqueFd& UniqueFd::operator=(UniqueFd&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = other.fd_;
    other.fd_ = -1;
  }
  return *this;
}

Result<UniqueFd> openReadOnly(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
  if (fd < 0) return errnoError(errno);
  return UniqueFd(fd);
}

Result<std::string> readProcFile(const std::string& path, std::size_t maxBytes) {
  auto fd = openReadOnly(path);
  if (!fd.ok()) return fd.error();
  std::string out;
  char buffer[16384];
  while (true) {
    const ssize_t n = ::read(fd->get(), buffer, sizeof buffer);
    if (n < 0) {
      if (errno == EINTR) continue;
      return errnoError(errno);
    }
    if (n == 0) break;
    if (out.size() + static_cast<std::size_t>(n) > maxBytes) {
      return Error{ErrorCode::kIo, "larger than " + std::to_string(maxBytes) + " bytes"};
    }
    out.append(buffer, static_cast<std::size_t>(n));
  }
  return out;
}

Result<std::string> readLinkText(const std::string& path) {
  char buffer[4096];
  const ssize_t n = ::readlink(path.c_str(), buffer, sizeof buffer);
  if (n < 0) return errnoError(errno);
  return std::string(buffer, static_cast<std::size_t>(n));
}

}  // namespace zastava
