#include "delivery/backend_client.h"

#include <curl/curl.h>
#include <strings.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <fstream>
#include <mutex>

#include "common/version.h"

namespace zastava {
namespace {

constexpr long kConnectTimeoutMs = 10'000;
constexpr std::size_t kBodyStartBytes = 200;
constexpr std::size_t kMaxTokenBytes = 16 * 1024;

Error invalid(std::string message) {
  return Error{ErrorCode::kInvalidArgument, std::move(message)};
}

std::string trimmed(std::string text) {
  auto isSpace = [](char c) { return std::isspace(static_cast<unsigned char>(c)) != 0; };
  text.erase(text.begin(), std::find_if_not(text.begin(), text.end(), isSpace));
  text.erase(std::find_if_not(text.rbegin(), text.rend(), isSpace).base(), text.end());
  return text;
}

// The token in `file`, without surrounding whitespace. Errors: kInvalidArgument saying why.
Result<std::string> readToken(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) return invalid("Backend:TokenFile " + file.string() + ": cannot be read");
  std::string text(kMaxTokenBytes + 1, '\0');
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  text.resize(static_cast<std::size_t>(in.gcount()));
  if (text.size() > kMaxTokenBytes) {
    return invalid("Backend:TokenFile " + file.string() + ": longer than 16 KiB");
  }
  text = trimmed(std::move(text));
  if (text.empty()) return invalid("Backend:TokenFile " + file.string() + ": is empty");
  if (text.find_first_of("\r\n") != std::string::npos) {
    return invalid("Backend:TokenFile " + file.string() + ": holds more than one line");
  }
  return text;
}

Result<void> checkReadable(std::string_view key, const std::filesystem::path& file) {
  if (file.empty()) return okResult();
  std::ifstream in(file, std::ios::binary);
  if (!in) return invalid(std::string(key) + " " + file.string() + ": cannot be read");
  return okResult();
}

// `body` as one gzip member. Empty when zlib fails (out of memory).
std::string gzipped(std::string_view body) {
  z_stream stream{};
  constexpr int kGzipWindowBits = 15 + 16;
  if (deflateInit2(&stream, Z_DEFAULT_COMPRESSION, Z_DEFLATED, kGzipWindowBits, 8,
                   Z_DEFAULT_STRATEGY) != Z_OK) {
    return {};
  }
  std::string out(deflateBound(&stream, static_cast<uLong>(body.size())), '\0');
  stream.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(body.data()));
  stream.avail_in = static_cast<uInt>(body.size());
  stream.next_out = reinterpret_cast<Bytef*>(out.data());
  stream.avail_out = static_cast<uInt>(out.size());
  const int rc = deflate(&stream, Z_FINISH);
  out.resize(stream.total_out);
  deflateEnd(&stream);
  return rc == Z_STREAM_END ? out : std::string();
}

std::string hostName() {
  char name[256] = {};
  if (gethostname(name, sizeof(name) - 1) != 0) return "unknown";
  return name;
}

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

std::string_view causeOfTransportError(CURLcode code, std::string_view message) {
  if (code == CURLE_OPERATION_TIMEDOUT) return "timeout";
  if (isTlsError(code, message)) return "tls";
  switch (code) {
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_COULDNT_CONNECT:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
      return "connect";
    default:
      return "other";
  }
}

// A new HTTPS connection that died before any answer: its handshake failed, or the server
// closed it right after (TLS 1.3 servers refuse a client certificate once the client thinks the
// handshake is done, which libcurl reports as a broken pipe or a lost peer).
bool diedInTlsSetup(CURL* handle, CURLcode code) {
  const char* scheme = nullptr;
  curl_off_t connected = 0;
  curl_off_t handshaken = 0;
  curl_easy_getinfo(handle, CURLINFO_SCHEME, &scheme);
  curl_easy_getinfo(handle, CURLINFO_CONNECT_TIME_T, &connected);
  curl_easy_getinfo(handle, CURLINFO_APPCONNECT_TIME_T, &handshaken);
  if (scheme == nullptr || strcasecmp(scheme, "https") != 0 || connected == 0) return false;
  const bool lostPeer = code == CURLE_SEND_ERROR || code == CURLE_RECV_ERROR ||
                        code == CURLE_GOT_NOTHING || code == CURLE_COULDNT_CONNECT;
  return handshaken == 0 || lostPeer;
}

struct Exchange {
  std::string bodyStart;
  std::string retryAfter;
  const std::atomic<bool>* cancel = nullptr;
};

std::size_t onBody(char* data, std::size_t size, std::size_t count, void* user) {
  auto& exchange = *static_cast<Exchange*>(user);
  const std::size_t bytes = size * count;
  const std::size_t room = kBodyStartBytes - std::min(kBodyStartBytes, exchange.bodyStart.size());
  exchange.bodyStart.append(data, std::min(room, bytes));
  return bytes;
}

std::size_t onHeader(char* data, std::size_t size, std::size_t count, void* user) {
  auto& exchange = *static_cast<Exchange*>(user);
  const std::string_view line(data, size * count);
  constexpr std::string_view kName = "retry-after:";
  if (line.size() > kName.size() &&
      std::equal(kName.begin(), kName.end(), line.begin(), [](char a, char b) {
        return a == std::tolower(static_cast<unsigned char>(b));
      })) {
    exchange.retryAfter = trimmed(std::string(line.substr(kName.size())));
  }
  return size * count;
}

int onProgress(void* user, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
  return static_cast<Exchange*>(user)->cancel->load() ? 1 : 0;
}

// Frees a curl_slist.
struct HeaderList {
  curl_slist* list = nullptr;
  ~HeaderList() { curl_slist_free_all(list); }
  void add(const std::string& header) { list = curl_slist_append(list, header.c_str()); }
};

}  // namespace

DeliveryVerdict verdictOfStatus(long status) {
  if (status >= 200 && status < 300) return DeliveryVerdict::kAccepted;
  if (status == 408 || status == 429 || status >= 500) return DeliveryVerdict::kRetry;
  if (status == 413) return DeliveryVerdict::kTooLarge;
  const bool configuration = status == 401 || status == 403 || status == 404 || status == 405;
  if (status >= 400 && status < 500 && !configuration) return DeliveryVerdict::kRejected;
  return DeliveryVerdict::kRefused;  // 3xx (redirects are not followed) and the configuration 4xx
}

std::string_view causeOfStatus(long status) {
  if (status == 408) return "http_408";
  if (status == 429) return "http_429";
  if (status >= 500) return "http_5xx";
  switch (verdictOfStatus(status)) {
    case DeliveryVerdict::kTooLarge:
      return "too_large";
    case DeliveryVerdict::kRejected:
      return "rejected";
    default:
      return "refused";
  }
}

std::optional<std::chrono::seconds> parseRetryAfter(std::string_view value, std::time_t now) {
  if (value.empty()) return std::nullopt;
  std::int64_t seconds = 0;
  auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), seconds);
  if (ec == std::errc() && end == value.data() + value.size()) {
    if (seconds < 0) return std::nullopt;
    return std::chrono::seconds(seconds);
  }
  if (std::isdigit(static_cast<unsigned char>(value.front())) != 0) return std::nullopt;
  const std::time_t at = curl_getdate(std::string(value).c_str(), nullptr);
  if (at == -1) return std::nullopt;
  return std::chrono::seconds(std::max<std::time_t>(at - now, 0));
}

struct BackendClient::Impl {
  BackendClientOptions options;
  std::string host = hostName();
  CURL* handle = nullptr;
  ~Impl() {
    if (handle != nullptr) curl_easy_cleanup(handle);
  }
};

BackendClient::BackendClient(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
BackendClient::~BackendClient() = default;

Result<std::unique_ptr<BackendClient>> BackendClient::create(const BackendClientOptions& options) {
  if (!options.tokenFile.empty()) {
    auto token = readToken(options.tokenFile);
    if (!token) return token.error();
  }
  for (const auto& [key, file] : {std::pair{"Backend:CaFile", options.caFile},
                                  std::pair{"Backend:ClientCertFile", options.clientCertFile},
                                  std::pair{"Backend:ClientKeyFile", options.clientKeyFile}}) {
    auto readable = checkReadable(key, file);
    if (!readable) return readable.error();
  }
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
  auto impl = std::make_unique<Impl>();
  impl->options = options;
  impl->handle = curl_easy_init();
  if (impl->handle == nullptr) return Error{ErrorCode::kInternal, "curl_easy_init failed"};
  return std::unique_ptr<BackendClient>(new BackendClient(std::move(impl)));
}

BackendAnswer BackendClient::post(std::string_view body, std::size_t records,
                                  const std::atomic<bool>& cancel) {
  const BackendClientOptions& options = impl_->options;
  BackendAnswer answer;
  HeaderList headers;
  headers.add("Content-Type: application/x-ndjson");
  headers.add("X-Zastava-Host: " + impl_->host);
  headers.add("X-Zastava-Records: " + std::to_string(records));
  headers.add("Expect:");  // no 100-continue round trip
  if (!options.tokenFile.empty()) {
    auto token = readToken(options.tokenFile);
    if (!token) {
      answer.cause = "other";
      answer.detail = token.error().message;
      return answer;
    }
    headers.add("Authorization: Bearer " + *token);
  }
  std::string compressed;
  if (options.gzip) {
    compressed = gzipped(body);
    if (compressed.empty()) {
      answer.cause = "other";
      answer.detail = "cannot gzip the request body";
      return answer;
    }
    headers.add("Content-Encoding: gzip");
    body = compressed;
  }
  answer.sentBytes = body.size();

  CURL* handle = impl_->handle;
  curl_easy_reset(handle);
  Exchange exchange;
  exchange.cancel = &cancel;
  char errorBuffer[CURL_ERROR_SIZE] = {};
  const std::string userAgent = "zastava-agent/" + std::string(kVersion);
  curl_easy_setopt(handle, CURLOPT_URL, options.url.c_str());
  curl_easy_setopt(handle, CURLOPT_POST, 1L);
  curl_easy_setopt(handle, CURLOPT_POSTFIELDS, body.data());
  curl_easy_setopt(handle, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
  curl_easy_setopt(handle, CURLOPT_HTTPHEADER, headers.list);
  curl_easy_setopt(handle, CURLOPT_USERAGENT, userAgent.c_str());
  curl_easy_setopt(handle, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(handle, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(handle, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(handle, CURLOPT_ERRORBUFFER, errorBuffer);
  curl_easy_setopt(handle, CURLOPT_CONNECTTIMEOUT_MS, kConnectTimeoutMs);
  curl_easy_setopt(handle, CURLOPT_TIMEOUT_MS,
                   static_cast<long>(std::chrono::milliseconds(options.timeout).count()));
  curl_easy_setopt(handle, CURLOPT_HEADERFUNCTION, onHeader);
  curl_easy_setopt(handle, CURLOPT_HEADERDATA, &exchange);
  curl_easy_setopt(handle, CURLOPT_WRITEFUNCTION, onBody);
  curl_easy_setopt(handle, CURLOPT_WRITEDATA, &exchange);
  curl_easy_setopt(handle, CURLOPT_NOPROGRESS, 0L);
  curl_easy_setopt(handle, CURLOPT_XFERINFOFUNCTION, onProgress);
  curl_easy_setopt(handle, CURLOPT_XFERINFODATA, &exchange);
  if (!options.caFile.empty()) curl_easy_setopt(handle, CURLOPT_CAINFO, options.caFile.c_str());
  if (!options.clientCertFile.empty()) {
    curl_easy_setopt(handle, CURLOPT_SSLCERT, options.clientCertFile.c_str());
    curl_easy_setopt(handle, CURLOPT_SSLKEY, options.clientKeyFile.c_str());
  }

  const auto started = std::chrono::steady_clock::now();
  const CURLcode code = curl_easy_perform(handle);
  answer.seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  answer.bodyStart = std::move(exchange.bodyStart);
  if (code == CURLE_ABORTED_BY_CALLBACK && cancel.load()) {
    answer.verdict = DeliveryVerdict::kStopped;
    answer.detail = "stopped";
    return answer;
  }
  if (code != CURLE_OK) {
    const std::string message = errorBuffer[0] != '\0' ? errorBuffer : curl_easy_strerror(code);
    answer.cause = std::string(causeOfTransportError(code, message));
    answer.detail = message;
    if (answer.cause != "timeout" && diedInTlsSetup(handle, code)) {
      answer.cause = "tls";
      answer.detail += " (a new TLS connection closed before any answer: is the CA, the server "
                       "name or the client certificate refused?)";
    }
    return answer;
  }
  curl_easy_getinfo(handle, CURLINFO_RESPONSE_CODE, &answer.status);
  answer.verdict = verdictOfStatus(answer.status);
  if (answer.verdict != DeliveryVerdict::kAccepted) {
    answer.cause = std::string(causeOfStatus(answer.status));
    answer.detail = "HTTP " + std::to_string(answer.status);
    answer.retryAfter = parseRetryAfter(exchange.retryAfter, std::time(nullptr));
  }
  return answer;
}

}  // namespace zastava
