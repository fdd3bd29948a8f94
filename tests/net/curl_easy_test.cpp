// net/'s CurlEasy and curlError on real transfers: every CURLcode here comes from libcurl talking
// to a real socket on this host (a closed port, a missing unix socket, a listener that answers
// bytes that are not HTTP or not TLS, one that never answers), nothing is invented.

#include "net/curl_easy.h"

#include <doctest/doctest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <optional>
#include <string>
#include <thread>

namespace zastava {
namespace {

using namespace std::chrono_literals;

// A TCP listener on 127.0.0.1. With an answer, a thread accepts one connection, reads the
// request, writes `answer` and closes; without, nothing accepts (the kernel completes the
// connect, nobody answers).
class Listener {
 public:
  explicit Listener(std::optional<std::string> answer = std::nullopt) {
    fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    REQUIRE(fd_ >= 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(bind(fd_, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0);
    REQUIRE(listen(fd_, 4) == 0);
    socklen_t length = sizeof(address);
    REQUIRE(getsockname(fd_, reinterpret_cast<sockaddr*>(&address), &length) == 0);
    port_ = ntohs(address.sin_port);
    if (answer) thread_ = std::thread([this, text = *answer] { serveOnce(text); });
  }
  ~Listener() {
    shutdown(fd_, SHUT_RDWR);  // wakes an accept() still waiting
    if (thread_.joinable()) thread_.join();
    close(fd_);
  }
  Listener(const Listener&) = delete;
  Listener& operator=(const Listener&) = delete;

  std::string url(std::string_view scheme = "http") const {
    return std::string(scheme) + "://127.0.0.1:" + std::to_string(port_) + "/path";
  }

 private:
  void serveOnce(const std::string& answer) {
    const int connection = accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (connection < 0) return;
    std::array<char, 4096> request{};
    // The request is not checked; a short write shows as the client's error.
    if (read(connection, request.data(), request.size()) > 0 && !answer.empty() &&
        write(connection, answer.data(), answer.size()) < 0) {
      // nothing to do: the client sees the connection close without an answer
    }
    close(connection);
  }

  int fd_ = -1;
  int port_ = 0;
  std::thread thread_;
};

// A port on 127.0.0.1 that nothing listens on: bound, then closed.
std::string closedPortUrl() {
  std::string url;
  { url = Listener().url(); }
  return url;
}

CurlRequest requestFor(std::string url) {
  CurlRequest request;
  request.url = std::move(url);
  request.request = "GET /path to the test peer";
  request.peer = "the test peer";
  request.connectTimeout = 5s;
  request.timeout = 10s;
  return request;
}

Result<void> get(CurlEasy& handle, const CurlRequest& request) {
  handle.start(request);
  handle.set(CURLOPT_HTTPGET, 1L);
  return handle.perform();
}

TEST_CASE("curl: an answer is ok whatever its status") {
  Listener peer(
      "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
  auto handle = CurlEasy::create();
  REQUIRE(handle.ok());
  const auto done = get(*handle, requestFor(peer.url()));
  REQUIRE(done.ok());
  CHECK(handle->status() == 503);
  CHECK(handle->code() == CURLE_OK);
}

TEST_CASE("curl: a closed loopback port is kUnavailable, cannot connect to the peer") {
  auto handle = CurlEasy::create();
  REQUIRE(handle.ok());
  const auto done = get(*handle, requestFor(closedPortUrl()));
  REQUIRE_FALSE(done.ok());
  CHECK(handle->code() == CURLE_COULDNT_CONNECT);
  CHECK(done.error().code == ErrorCode::kUnavailable);
  CHECK(done.error().message.starts_with("cannot connect to the test peer: "));
  CHECK(handle->status() == 0);
}

TEST_CASE("curl: a unix socket path that does not exist is kUnavailable") {
  const std::filesystem::path missing =
      std::filesystem::temp_directory_path() / ("zastava-no-socket-" + std::to_string(getpid()));
  auto handle = CurlEasy::create();
  REQUIRE(handle.ok());
  handle->start(requestFor("http://localhost/_ping"));
  handle->set(CURLOPT_UNIX_SOCKET_PATH, missing.c_str());
  const auto done = handle->perform();
  REQUIRE_FALSE(done.ok());
  CHECK(handle->code() == CURLE_COULDNT_CONNECT);
  CHECK(done.error().code == ErrorCode::kUnavailable);
  CHECK(done.error().message.starts_with("cannot connect to the test peer: "));
}

TEST_CASE("curl: an unresolvable host is kUnavailable naming the host") {
  auto handle = CurlEasy::create();
  REQUIRE(handle.ok());
  // .invalid never resolves (RFC 2606).
  const auto done = get(*handle, requestFor("http://zastava-test.invalid/path"));
  REQUIRE_FALSE(done.ok());
  CHECK(handle->code() == CURLE_COULDNT_RESOLVE_HOST);
  CHECK(done.error().code == ErrorCode::kUnavailable);
  CHECK(done.error().message.find("zastava-test.invalid") != std::string::npos);
}

TEST_CASE("curl: a peer that closes without answering is kUnavailable, the connection broke") {
  Listener peer("");
  auto handle = CurlEasy::create();
  REQUIRE(handle.ok());
  const auto done = get(*handle, requestFor(peer.url()));
  REQUIRE_FALSE(done.ok());
  CHECK(handle->code() == CURLE_GOT_NOTHING);
  CHECK(done.error().code == ErrorCode::kUnavailable);
  CHECK(done.error().message.starts_with("GET /path to the test peer failed, the connection "));
}

TEST_CASE("curl: a peer that answers no HTTP is kProtocol") {
  Listener peer("hello there\r\n\r\n");
  auto handle = CurlEasy::create();
  REQUIRE(handle.ok());
  const auto done = get(*handle, requestFor(peer.url()));
  REQUIRE_FALSE(done.ok());
  CHECK(handle->code() == CURLE_UNSUPPORTED_PROTOCOL);  // "Received HTTP/0.9 when not allowed"
  CHECK(done.error().code == ErrorCode::kProtocol);
  CHECK(done.error().message.starts_with("GET /path to the test peer failed: "));
}

TEST_CASE("curl: https to a peer that does not speak TLS is kTls") {
  Listener peer("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
  auto handle = CurlEasy::create();
  REQUIRE(handle.ok());
  auto request = requestFor(peer.url("https"));
  request.tls = CurlTls{};
  const auto done = get(*handle, request);
  REQUIRE_FALSE(done.ok());
  CHECK(handle->code() == CURLE_SSL_CONNECT_ERROR);
  CHECK(done.error().code == ErrorCode::kTls);
  CHECK(done.error().message.starts_with("GET /path to the test peer: TLS failed: "));
}

TEST_CASE("curl: a peer that never answers is kTimeout after the request's timeout") {
  Listener peer;  // connects (the kernel's backlog), never answers
  auto handle = CurlEasy::create();
  REQUIRE(handle.ok());
  auto request = requestFor(peer.url());
  request.timeout = 200ms;
  const auto done = get(*handle, request);
  REQUIRE_FALSE(done.ok());
  CHECK(handle->code() == CURLE_OPERATION_TIMEDOUT);
  CHECK(done.error().code == ErrorCode::kTimeout);
  CHECK(done.error().message.starts_with("GET /path to the test peer timed out: "));
}

int stopAtOnce(void*, curl_off_t, curl_off_t, curl_off_t, curl_off_t) { return 1; }

TEST_CASE("curl: a callback that stops the transfer is kCancelled") {
  Listener peer;
  auto handle = CurlEasy::create();
  REQUIRE(handle.ok());
  handle->start(requestFor(peer.url()));
  handle->set(CURLOPT_NOPROGRESS, 0L);
  handle->set(CURLOPT_XFERINFOFUNCTION, stopAtOnce);
  const auto done = handle->perform();
  REQUIRE_FALSE(done.ok());
  CHECK(handle->code() == CURLE_ABORTED_BY_CALLBACK);
  CHECK(done.error().code == ErrorCode::kCancelled);
}

TEST_CASE("curl: a refused option is kInternal naming it, and nothing is sent") {
  Listener peer;
  auto handle = CurlEasy::create();
  REQUIRE(handle.ok());
  auto request = requestFor(peer.url());
  request.timeout = 2s;  // were it sent, the listener would never answer
  handle->start(request);
  handle->set(CURLOPT_MAXREDIRS, -2L);    // out of range
  handle->set(CURLOPT_SSLVERSION, 999L);  // refused too; the first one is named
  const auto done = handle->perform();
  REQUIRE_FALSE(done.ok());
  CHECK(handle->code() == CURLE_BAD_FUNCTION_ARGUMENT);
  CHECK(done.error().code == ErrorCode::kInternal);
  CHECK(done.error().message ==
        "GET /path to the test peer not sent: this libcurl refuses CURLOPT_MAXREDIRS: " +
            std::string(curl_easy_strerror(CURLE_BAD_FUNCTION_ARGUMENT)));

  // start() forgets the refusal: the handle works again.
  Listener answering("HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n");
  CHECK(get(*handle, requestFor(answering.url())).ok());
  CHECK(handle->status() == 204);
}

TEST_CASE("curl: only http and https are allowed") {
  auto handle = CurlEasy::create();
  REQUIRE(handle.ok());
  const auto done = get(*handle, requestFor("file:///etc/hostname"));
  REQUIRE_FALSE(done.ok());
  CHECK(handle->code() == CURLE_UNSUPPORTED_PROTOCOL);
  CHECK(done.error().code == ErrorCode::kProtocol);
}

TEST_CASE("curl: a malformed URL is kInvalidArgument") {
  auto handle = CurlEasy::create();
  REQUIRE(handle.ok());
  const auto done = get(*handle, requestFor("http://exa mple/"));
  REQUIRE_FALSE(done.ok());
  CHECK(handle->code() == CURLE_URL_MALFORMAT);
  CHECK(done.error().code == ErrorCode::kInvalidArgument);
}

TEST_CASE("curlError: libcurl's own text when the error buffer is empty") {
  const Error error = curlError(CURLE_OPERATION_TIMEDOUT, "", "GET /x to peer", "peer");
  CHECK(error.code == ErrorCode::kTimeout);
  CHECK(error.message ==
        "GET /x to peer timed out: " + std::string(curl_easy_strerror(CURLE_OPERATION_TIMEDOUT)));
  // TLS 1.3 reports a refused client certificate as a receive error with OpenSSL's text.
  CHECK(curlError(CURLE_RECV_ERROR, "OpenSSL SSL_read: tlsv13 alert certificate required", "r", "p")
            .code == ErrorCode::kTls);
  CHECK(curlError(CURLE_RECV_ERROR, "Connection reset by peer", "r", "p").code ==
        ErrorCode::kUnavailable);
}

TEST_CASE("curl: a moved handle keeps working, with its error buffer") {
  auto created = CurlEasy::create();
  REQUIRE(created.ok());
  CurlEasy handle = std::move(created).value();
  const auto done = get(handle, requestFor(closedPortUrl()));
  REQUIRE_FALSE(done.ok());
  CHECK(done.error().message.find("127.0.0.1") != std::string::npos);  // the buffer's text
}

}  // namespace
}  // namespace zastava
