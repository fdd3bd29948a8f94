#include "collectors/curl_transfer.h"

#include <grp.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <exception>
#include <filesystem>

#include "collectors/api_paths.h"
#include "collectors/decoders.h"

namespace zastava {
namespace {

constexpr std::chrono::milliseconds kConnectTimeout{5'000};
constexpr std::chrono::milliseconds kRequestTimeout{30'000};
constexpr std::size_t kMaxBodyBytes = 256u << 20;      // a list of many thousands of containers
constexpr std::size_t kMaxErrorBodyBytes = 64u << 10;  // the body of a refused stream
constexpr std::size_t kMaxEventLineBytes = 16u << 20;

std::string_view trimEnd(std::string_view text) {
  while (!text.empty() && (text.back() == '\r' || text.back() == '\n' || text.back() == ' ' ||
                           text.back() == '\t')) {
    text.remove_suffix(1);
  }
  return text;
}

bool streamingOk(const Transfer& t) { return t.stream && t.status == 200; }

// Runs a user callback; an exception is kept as an Error instead of unwinding through libcurl.
template <typename F>
bool guarded(Transfer& t, F&& call) {
  try {
    call();
    return true;
  } catch (const std::exception& e) {
    t.callbackError = Error{ErrorCode::kInternal, std::string("event callback threw: ") + e.what()};
  } catch (...) {
    t.callbackError = Error{ErrorCode::kInternal, "event callback threw"};
  }
  return false;
}

bool openOnce(Transfer& t) {
  if (t.opened || !streamingOk(t)) return true;
  t.opened = true;
  const auto* onOpen = t.stream->onOpen;
  return onOpen == nullptr || !*onOpen || guarded(t, [&] { (*onOpen)(); });
}

size_t onHeader(char* data, size_t size, size_t count, void* user) {
  auto& t = *static_cast<Transfer*>(user);
  const size_t bytes = size * count;
  const std::string_view line = trimEnd(std::string_view(data, bytes));
  if (line.substr(0, 5) == "HTTP/") {  // a new response (after a 100 or a redirect)
    if (const auto status = decodeStatusLine(line)) t.status = *status;
    t.apiVersionHeader.clear();
    t.headersDone = false;
    return bytes;
  }
  if (line.empty()) {
    t.headersDone = true;
    return openOnce(t) ? bytes : 0;
  }
  if (auto value = decodeApiVersionHeader(line)) t.apiVersionHeader = std::move(*value);
  return bytes;
}

// Passes every complete line in t.partialLine to onEvent and keeps the unfinished rest.
bool deliverLines(Transfer& t) {
  std::size_t start = 0;
  bool ok = true;
  for (auto end = t.partialLine.find('\n'); ok && end != std::string::npos;
       end = t.partialLine.find('\n', start)) {
    const std::string_view line =
        trimEnd(std::string_view(t.partialLine).substr(start, end - start));
    start = end + 1;
    if (!line.empty()) ok = guarded(t, [&] { (*t.stream->onEvent)(decodeEvent(line)); });
  }
  t.partialLine.erase(0, start);
  return ok;
}

size_t onBody(char* data, size_t size, size_t count, void* user) {
  auto& t = *static_cast<Transfer*>(user);
  const size_t bytes = size * count;
  if (t.stream && t.stream->stop->load()) return 0;
  if (t.stream) t.lastByteAt = t.stream->clock->monotonic();
  if (!streamingOk(t)) {
    const std::size_t limit = t.stream ? kMaxErrorBodyBytes : kMaxBodyBytes;
    if (t.body.size() + bytes > limit) {
      if (t.stream) return bytes;  // enough of an error body to diagnose it
      t.bodyTooLarge = true;
      return 0;
    }
    t.body.append(data, bytes);
    return bytes;
  }
  if (!openOnce(t)) return 0;
  t.partialLine.append(data, bytes);
  if (!deliverLines(t)) return 0;
  if (t.partialLine.size() > kMaxEventLineBytes) {
    t.bodyTooLarge = true;
    return 0;
  }
  return bytes;
}

// Called by libcurl about once a second while the stream is idle.
int onProgress(void* user, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
  auto& t = *static_cast<Transfer*>(user);
  if (!t.stream) return 0;
  if (t.stream->stop->load()) return 1;
  const auto silence = t.stream->silenceCheck;
  if (silence.count() == 0 || !t.opened) return 0;
  const MonoTime now = t.stream->clock->monotonic();
  if (now - t.lastByteAt < silence) return 0;
  auto alive = t.stream->engineAlive();
  if (alive.ok()) {
    t.lastByteAt = now;
    return 0;
  }
  t.silenceError =
      Error{alive.error().code, "no event for " + std::to_string(silence.count()) +
                                    " s and the engine does not answer: " + alive.error().message};
  return 1;
}

std::string baseUrl(const Endpoint& endpoint) {
  if (endpoint.kind == Endpoint::Kind::kUnix) return "http://localhost";
  const bool ipv6 = endpoint.host.find(':') != std::string::npos;
  return std::string(endpoint.tls ? "https://" : "http://") + (ipv6 ? "[" : "") + endpoint.host +
         (ipv6 ? "]" : "") + ":" + std::to_string(endpoint.port);
}

std::string userName(uid_t uid) {
  passwd entry{};
  passwd* found = nullptr;
  std::array<char, 4096> buffer{};
  if (getpwuid_r(uid, &entry, buffer.data(), buffer.size(), &found) == 0 && found != nullptr) {
    return found->pw_name;
  }
  return "uid " + std::to_string(uid);
}

std::string groupName(gid_t gid) {
  group entry{};
  group* found = nullptr;
  std::array<char, 4096> buffer{};
  if (getgrgid_r(gid, &entry, buffer.data(), buffer.size(), &found) == 0 && found != nullptr) {
    return found->gr_name;
  }
  return "gid " + std::to_string(gid);
}

// The first directory on the way to `path` that this process may not enter.
std::string unsearchableDirectory(const std::string& path) {
  std::filesystem::path directory;
  for (const auto& part : std::filesystem::path(path).parent_path()) {
    directory /= part;
    if (access(directory.c_str(), X_OK) != 0) return directory.string();
  }
  return std::filesystem::path(path).parent_path().string();
}

// Why a unix socket refused a connection, in words that point at the fix (curl would only say
// "Failed to connect to localhost port 80").
std::string unixSocketProblem(const std::string& socketPath) {
  const std::string user = userName(geteuid());
  struct stat info {};
  if (stat(socketPath.c_str(), &info) != 0) {
    if (errno == EACCES) {
      const std::string directory = unsearchableDirectory(socketPath);
      return "user " + user + " may not enter " + directory + " on the way to " + socketPath +
             " (grant it: setfacl -m u:" + user + ":x " + directory + ")";
    }
    return "no socket at " + socketPath + " (" + std::strerror(errno) +
           "): is the Docker engine running, and is this its socket?";
  }
  if (!S_ISSOCK(info.st_mode)) return socketPath + " is not a socket";
  if (access(socketPath.c_str(), R_OK | W_OK) != 0) {
    std::array<char, 8> mode{};
    std::snprintf(mode.data(), mode.size(), "%04o", info.st_mode & 07777U);
    const std::string owner = userName(info.st_uid) + ":" + groupName(info.st_gid);
    return "permission denied on " + socketPath + " (" + owner + " " + mode.data() + ") for user " +
           user + ": add it to group " + groupName(info.st_gid) +
           " or grant an ACL: setfacl -m u:" + user + ":rw " + socketPath;
  }
  return "connection refused by " + socketPath +
         ": nothing listens on it (the engine stopped, or the file is stale)";
}

// The engine's words added to net/'s Error for a connection that could not be made: for a unix
// socket why it refused, instead of curl's "Failed to connect to localhost port 80"; for an
// address where to look.
Error engineError(const Endpoint& endpoint, CURLcode code, Error error) {
  if (code == CURLE_COULDNT_CONNECT && endpoint.kind == Endpoint::Kind::kUnix) {
    return Error{ErrorCode::kUnavailable, "cannot connect to " + endpoint.uri + ": " +
                                              unixSocketProblem(endpoint.socketPath)};
  }
  if (code == CURLE_COULDNT_CONNECT || code == CURLE_COULDNT_RESOLVE_HOST ||
      code == CURLE_COULDNT_RESOLVE_PROXY) {
    error.message += "; is the Docker engine (or its proxy) running and reachable from here?";
  }
  return error;
}

}  // namespace

Result<void> perform(const Endpoint& endpoint, CurlEasy& handle, std::string_view path,
                     Transfer& transfer) {
  CurlRequest request;
  request.url = baseUrl(endpoint) + std::string(path);
  request.request = "GET " + std::string(path) + " to " + endpoint.uri;
  request.peer = endpoint.uri;
  request.connectTimeout = kConnectTimeout;
  request.timeout = transfer.stream ? std::chrono::milliseconds(0) : kRequestTimeout;
  if (endpoint.tls) {
    const TlsFiles& tls = *endpoint.tls;
    request.tls = CurlTls{tls.caFile, tls.certFile, tls.keyFile, tls.verifyPeer};
  }
  handle.start(request);
  handle.set(CURLOPT_HTTPGET, 1L);
  handle.set(CURLOPT_HEADERFUNCTION, onHeader);
  handle.set(CURLOPT_HEADERDATA, &transfer);
  handle.set(CURLOPT_WRITEFUNCTION, onBody);
  handle.set(CURLOPT_WRITEDATA, &transfer);
  if (endpoint.kind == Endpoint::Kind::kUnix) {
    handle.set(CURLOPT_UNIX_SOCKET_PATH, endpoint.socketPath.c_str());
  }
  if (transfer.stream) {
    handle.set(CURLOPT_LOW_SPEED_TIME, 0L);
    handle.set(CURLOPT_TCP_KEEPALIVE, 1L);
    handle.set(CURLOPT_NOPROGRESS, 0L);
    handle.set(CURLOPT_XFERINFOFUNCTION, onProgress);
    handle.set(CURLOPT_XFERINFODATA, &transfer);
  }

  const auto done = handle.perform();
  if (transfer.stream && transfer.stream->stop->load()) {
    return Error{ErrorCode::kCancelled, "GET " + std::string(path) + " stopped on request"};
  }
  if (transfer.callbackError) return *transfer.callbackError;
  if (transfer.silenceError) return *transfer.silenceError;
  if (transfer.bodyTooLarge) {
    return Error{ErrorCode::kProtocol, "GET " + std::string(path) + " to " + endpoint.uri +
                                           " answered with more data than the agent accepts"};
  }
  if (!done) return engineError(endpoint, handle.code(), done.error());
  if (const long status = handle.status(); status != 0) transfer.status = status;
  if (transfer.stream && !transfer.partialLine.empty() && streamingOk(transfer)) {
    const std::string rest = std::move(transfer.partialLine);
    transfer.partialLine.clear();
    if (!guarded(transfer, [&] { (*transfer.stream->onEvent)(decodeEvent(rest)); })) {
      return *transfer.callbackError;
    }
  }
  return okResult();
}

Error statusError(const Endpoint& endpoint, std::string_view path, const Transfer& transfer) {
  if (transfer.status == 401 || transfer.status == 403) {
    return Error{ErrorCode::kForbidden,
                 diagnoseForbidden(path, transfer.body, endpoint.uri, transfer.status)};
  }
  std::string message = "GET " + std::string(path) + " to " + endpoint.uri + " answered HTTP " +
                        std::to_string(transfer.status);
  if (const std::string engine = decodeErrorMessage(transfer.body); !engine.empty()) {
    message += ": " + engine;
  }
  return Error{ErrorCode::kProtocol, message};
}

}  // namespace zastava
