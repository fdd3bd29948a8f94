// The agent's one libcurl layer, used by the engine client (collectors/curl_transfer.cpp) and
// the backend client (delivery/backend_client.cpp): curl_global_init once per process, an easy
// handle that sets the options every request shares and checks every curl_easy_setopt, and the
// one mapping from a CURLcode (with libcurl's error text) to an Error. What a request sends and
// what its answer means stay with its client.
#pragma once

#include <curl/curl.h>

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "common/result.h"

namespace zastava {

// curl_global_init(CURL_GLOBAL_DEFAULT), once per process; CurlEasy::create() calls it.
// Errors: kInternal when libcurl cannot initialise (then every later call says so too). Any
// thread.
Result<void> initCurlOnce();

// The TLS files of a request; an empty path is not set (libcurl's default: the system's CA
// store, no client certificate).
struct CurlTls {
  std::string caFile;
  std::string certFile;
  std::string keyFile;
  bool verifyPeer = true;  // false: neither the certificate nor the host name is checked
};

// The options every request sets, and how its messages name it.
struct CurlRequest {
  std::string url;      // http:// or https://; no other protocol is allowed, no redirect followed
  std::string request;  // the request in messages: "GET /_ping to unix:///run/docker.sock"
  std::string peer;     // whom it goes to in messages: "unix:///run/docker.sock", "the backend"
  std::chrono::milliseconds connectTimeout{0};  // 0: libcurl's default (300 s)
  std::chrono::milliseconds timeout{0};         // the whole request; 0: none (a stream)
  std::optional<CurlTls> tls;                   // none: libcurl's defaults
  std::string userAgent;                        // empty: no User-Agent header
};

// The Error for a failed transfer. `detail` is libcurl's error buffer (empty: curl's text for
// `code` is used); `request` and `peer` name what failed, as in CurlRequest.
//   kUnavailable  the peer cannot be reached (resolve, connect: "cannot connect to PEER: ...") or
//                 the connection broke (send, receive, nothing or part of an answer)
//   kTimeout      the connect or the whole request took longer than its timeout
//   kTls          the TLS handshake or a certificate failed, on either side
//   kCancelled    a callback of the caller stopped the transfer
//   kInvalidArgument  the URL is malformed
//   kInternal     libcurl ran out of memory or could not start
//   kProtocol     anything else: the peer's answer was not HTTP as libcurl expects it ("Received
//                 HTTP/0.9 when not allowed"), or a protocol other than http and https
// Any thread.
Error curlError(CURLcode code, std::string_view detail, std::string_view request,
                std::string_view peer);

// One libcurl easy handle and its error buffer; it keeps its connection between requests. Not
// thread-safe: one thread at a time uses it, which owns what its callbacks point to for the
// duration of perform().
class CurlEasy {
 public:
  // A new handle. Errors: kInternal when libcurl cannot initialise or make a handle.
  static Result<CurlEasy> create();

  // Starts a new request: forgets every option of the previous one (the connection cache stays)
  // and sets `request`'s: URL, http and https only, no redirect, no signals, the error buffer,
  // the timeouts, TLS, User-Agent.
  void start(const CurlRequest& request);

  // Sets one more option of the request start() began. libcurl refuses an option only when it
  // was built without the feature or the value is out of range: the first refusal is kept, and
  // perform() returns it instead of sending a half-configured request.
  template <typename T>
  void set(CURLoption option, T value) {
    const CURLcode code = curl_easy_setopt(handle_.get(), option, value);
    if (code != CURLE_OK) refused(option, code);
  }

  // Sends the request. Ok when an answer arrived, whatever its HTTP status (status()).
  // Errors: kInternal naming the option libcurl refused (nothing was sent); otherwise
  // curlError() of the transfer's CURLcode; a new HTTPS connection that closed before any answer
  // is kTls (its handshake failed, or the server refused the client certificate just after it).
  Result<void> perform();

  // The CURLcode of the last perform() (or of the refused option); CURLE_OK after a success.
  CURLcode code() const { return code_; }
  // The HTTP status of the last answer; 0 when none arrived.
  long status() const;
  CURL* get() const { return handle_.get(); }

  // Drops the options of the last request (callbacks and pointers into the caller's state) and
  // keeps the connection, for a handle that waits in a pool.
  void reset();

 private:
  explicit CurlEasy(CURL* handle);
  void refused(CURLoption option, CURLcode code);

  struct Cleanup {
    void operator()(CURL* handle) const { curl_easy_cleanup(handle); }
  };
  std::unique_ptr<CURL, Cleanup> handle_;
  std::unique_ptr<char[]> errorBuffer_;  // CURL_ERROR_SIZE; its address outlives moves
  std::string request_;
  std::string peer_;
  std::optional<Error> refused_;  // the first option libcurl refused since start()
  CURLcode code_ = CURLE_OK;
};

}  // namespace zastava
