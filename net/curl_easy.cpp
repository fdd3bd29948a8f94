#include "net/curl_easy.h"

#include <strings.h>

#include <mutex>

namespace zastava {
namespace {

bool isTlsError(CURLcode code, std::string_view message) {
  switch (code) {
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_CRL_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_INVALIDCERTSTATUS:
    case CURLE_SSL_ENGINE_INITFAILED:
    case CURLE_SSL_ENGINE_NOTFOUND:
    case CURLE_SSL_ENGINE_SETFAILED:
    case CURLE_USE_SSL_FAILED:
      return true;
    case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR:
      // TLS 1.3 reports a refused client certificate on the first read after the handshake.
      return message.find("SSL") != std::string_view::npos ||
             message.find("TLS") != std::string_view::npos;
    default:
      return false;
  }
}

// A new HTTPS connection that died before any answer: its handshake failed, or the server
// closed it right after (TLS 1.3 servers refuse a client certificate once the client thinks the
// handshake is done, which libcurl reports as a broken pipe or a lost peer).
bool diedInTlsSetup(CURL* handle, CURLcode code) {
  const char* scheme = nullptr;
  curl_off_t connected = 0;
  curl_off_t handshaken = 0;
  // A failed getinfo leaves its zero or null: the connection is then not taken for a TLS one.
  (void)curl_easy_getinfo(handle, CURLINFO_SCHEME, &scheme);
  (void)curl_easy_getinfo(handle, CURLINFO_CONNECT_TIME_T, &connected);
  (void)curl_easy_getinfo(handle, CURLINFO_APPCONNECT_TIME_T, &handshaken);
  if (scheme == nullptr || strcasecmp(scheme, "https") != 0 || connected == 0) return false;
  const bool lostPeer = code == CURLE_SEND_ERROR || code == CURLE_RECV_ERROR ||
                        code == CURLE_GOT_NOTHING || code == CURLE_COULDNT_CONNECT;
  return handshaken == 0 || lostPeer;
}

std::string optionName(CURLoption option) {
  const curl_easyoption* known = curl_easy_option_by_id(option);
  if (known == nullptr) return "option " + std::to_string(static_cast<int>(option));
  return std::string("CURLOPT_") + known->name;
}

}  // namespace

Result<void> initCurlOnce() {
  static std::once_flag once;
  static CURLcode initialised = CURLE_FAILED_INIT;
  std::call_once(once, [] { initialised = curl_global_init(CURL_GLOBAL_DEFAULT); });
  if (initialised != CURLE_OK) {
    return Error{ErrorCode::kInternal,
                 std::string("libcurl cannot initialise: ") + curl_easy_strerror(initialised)};
  }
  return okResult();
}

Error curlError(CURLcode code, std::string_view detail, std::string_view request,
                std::string_view peer) {
  const std::string why = detail.empty() ? curl_easy_strerror(code) : std::string(detail);
  const std::string req(request);
  if (isTlsError(code, why)) return Error{ErrorCode::kTls, req + ": TLS failed: " + why};
  switch (code) {
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_COULDNT_CONNECT:
      return Error{ErrorCode::kUnavailable, "cannot connect to " + std::string(peer) + ": " + why};
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
      return Error{ErrorCode::kUnavailable, req + " failed, the connection broke: " + why};
    case CURLE_OPERATION_TIMEDOUT:
      return Error{ErrorCode::kTimeout, req + " timed out: " + why};
    case CURLE_ABORTED_BY_CALLBACK:
      return Error{ErrorCode::kCancelled, req + " stopped: " + why};
    case CURLE_URL_MALFORMAT:
      return Error{ErrorCode::kInvalidArgument, req + " cannot be sent: " + why};
    case CURLE_OUT_OF_MEMORY:
    case CURLE_FAILED_INIT:
      return Error{ErrorCode::kInternal, req + " failed in libcurl: " + why};
    default:
      return Error{ErrorCode::kProtocol, req + " failed: " + why};
  }
}

Result<CurlEasy> CurlEasy::create() {
  if (auto init = initCurlOnce(); !init) return init.error();
  CURL* handle = curl_easy_init();
  if (handle == nullptr) return Error{ErrorCode::kInternal, "curl_easy_init failed"};
  return CurlEasy(handle);
}

CurlEasy::CurlEasy(CURL* handle)
    : handle_(handle), errorBuffer_(std::make_unique<char[]>(CURL_ERROR_SIZE)) {}

void CurlEasy::reset() { curl_easy_reset(handle_.get()); }

void CurlEasy::refused(CURLoption option, CURLcode code) {
  if (refused_) return;
  code_ = code;
  refused_ = Error{ErrorCode::kInternal, request_ + " not sent: this libcurl refuses " +
                                             optionName(option) + ": " + curl_easy_strerror(code)};
}

void CurlEasy::start(const CurlRequest& request) {
  curl_easy_reset(handle_.get());
  request_ = request.request;
  peer_ = request.peer;
  refused_.reset();
  code_ = CURLE_OK;
  errorBuffer_[0] = '\0';
  set(CURLOPT_URL, request.url.c_str());
  set(CURLOPT_PROTOCOLS_STR, "http,https");
  set(CURLOPT_FOLLOWLOCATION, 0L);
  set(CURLOPT_NOSIGNAL, 1L);
  set(CURLOPT_ERRORBUFFER, errorBuffer_.get());
  set(CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(request.connectTimeout.count()));
  set(CURLOPT_TIMEOUT_MS, static_cast<long>(request.timeout.count()));
  if (request.tls) {
    const CurlTls& tls = *request.tls;
    if (!tls.caFile.empty()) set(CURLOPT_CAINFO, tls.caFile.c_str());
    if (!tls.certFile.empty()) set(CURLOPT_SSLCERT, tls.certFile.c_str());
    if (!tls.keyFile.empty()) set(CURLOPT_SSLKEY, tls.keyFile.c_str());
    set(CURLOPT_SSL_VERIFYPEER, tls.verifyPeer ? 1L : 0L);
    set(CURLOPT_SSL_VERIFYHOST, tls.verifyPeer ? 2L : 0L);
  }
  if (!request.userAgent.empty()) set(CURLOPT_USERAGENT, request.userAgent.c_str());
}

Result<void> CurlEasy::perform() {
  if (refused_) return *refused_;
  errorBuffer_[0] = '\0';
  code_ = curl_easy_perform(handle_.get());
  if (code_ == CURLE_OK) return okResult();
  Error error = curlError(code_, errorBuffer_.get(), request_, peer_);
  if (error.code != ErrorCode::kTimeout && error.code != ErrorCode::kTls &&
      error.code != ErrorCode::kCancelled && diedInTlsSetup(handle_.get(), code_)) {
    error.code = ErrorCode::kTls;
    error.message +=
        " (a new TLS connection closed before any answer: is the CA, the server "
        "name or the client certificate refused?)";
  }
  return error;
}

long CurlEasy::status() const {
  long status = 0;
  if (curl_easy_getinfo(handle_.get(), CURLINFO_RESPONSE_CODE, &status) != CURLE_OK) return 0;
  return status;
}

}  // namespace zastava
