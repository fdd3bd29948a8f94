#include "delivery/backend_client.h"

#include <curl/curl.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cctype>
#include <charconv>

#include "buffer/ledger_entry.h"
#include "common/sha256.h"
#include "common/version.h"
#include "net/curl_easy.h"

namespace zastava {
namespace {

constexpr std::chrono::milliseconds kConnectTimeout{10'000};
constexpr std::size_t kBodyStartBytes = 200;

std::string trimmed(std::string text) {
  auto isSpace = [](char c) { return std::isspace(static_cast<unsigned char>(c)) != 0; };
  text.erase(text.begin(), std::find_if_not(text.begin(), text.end(), isSpace));
  text.erase(std::find_if_not(text.rbegin(), text.rend(), isSpace).base(), text.end());
  return text;
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
      std::equal(kName.begin(), kName.end(), line.begin(),
                 [](char a, char b) { return a == std::tolower(static_cast<unsigned char>(b)); })) {
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

// `answer` for a request that got no answer: a retry, with the cause label of `error`.
BackendAnswer failedAnswer(BackendAnswer answer, Error error) {
  answer.verdict = DeliveryVerdict::kRetry;
  answer.cause = std::string(causeOfError(error));
  answer.detail = error.message;
  answer.error = std::move(error);
  return answer;
}

}  // namespace

DeliveryVerdict verdictOfStatus(long status) {
  if (status >= 200 && status < 300) return DeliveryVerdict::kAccepted;
  if (status == 408 || status == 429 || status >= 500) return DeliveryVerdict::kRetry;
  if (status == 413) return DeliveryVerdict::kTooLarge;
  const bool configuration = status == 401 || status == 403 || status == 404 || status == 405;
  if (status >= 400 && status < 500 && !configuration) return DeliveryVerdict::kRejected;
  return DeliveryVerdict::kRefused;  // 3xx (redirects are not followed) and the configuration 4xx
}

std::string_view causeOfError(const Error& error) {
  switch (error.code) {
    case ErrorCode::kUnavailable:
      return "connect";
    case ErrorCode::kTls:
      return "tls";
    case ErrorCode::kTimeout:
      return "timeout";
    default:
      return "other";
  }
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
  Impl(const BackendClientOptions& clientOptions, CurlEasy easy)
      : options(clientOptions), handle(std::move(easy)) {}
  BackendClientOptions options;
  std::string host = localHostName();
  CurlEasy handle;
};

BackendClient::BackendClient(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
BackendClient::~BackendClient() = default;

Result<std::unique_ptr<BackendClient>> BackendClient::create(const BackendClientOptions& options) {
  if (!options.tokenFile.empty()) {
    auto token = readCredentialFile("Backend:TokenFile", options.tokenFile);
    if (!token) return token.error();
  }
  for (const auto& [key, file] : {std::pair{"Backend:CaFile", options.caFile},
                                  std::pair{"Backend:ClientCertFile", options.clientCertFile},
                                  std::pair{"Backend:ClientKeyFile", options.clientKeyFile}}) {
    auto readable = checkReadable(key, file);
    if (!readable) return readable.error();
  }
  auto handle = CurlEasy::create();
  if (!handle) return handle.error();
  auto impl = std::make_unique<Impl>(options, std::move(handle).value());
  return std::unique_ptr<BackendClient>(new BackendClient(std::move(impl)));
}

BatchIdentity batchIdentity(const PendingBatch& batch, std::string_view host) {
  if (batch.rows.empty()) return {};
  const ledger::Entry first = ledger::parseEntry(batch.line(0));
  BatchIdentity identity;
  identity.batch = "first=" + batch.rows.front().eventId + ", last=" + batch.rows.back().eventId +
                   ", prev-hash=" + first.prevHash +
                   ", last-hash=" + sha256Hex(batch.line(batch.rows.size() - 1));
  constexpr std::size_t kIdHexDigits = 32;
  identity.id = sha256Hex("zastava.batch\n" + std::string(host) + "\n" + identity.batch)
                    .substr(0, kIdHexDigits);
  return identity;
}

PositionAnswer BackendClient::position(const std::atomic<bool>& /*cancel*/) {
  PositionAnswer none;
  none.answer.verdict = DeliveryVerdict::kAccepted;
  return none;
}

std::string BackendClient::describe() const { return urlForLog(impl_->options.url); }

BackendAnswer BackendClient::send(const PendingBatch& batch, const std::atomic<bool>& cancel) {
  const BackendClientOptions& options = impl_->options;
  std::string_view body = batch.body;
  const std::size_t records = batch.records;
  BackendAnswer answer;
  HeaderList headers;
  headers.add("Content-Type: application/x-ndjson");
  headers.add("X-Zastava-Host: " + impl_->host);
  headers.add("X-Zastava-Records: " + std::to_string(records));
  const BatchIdentity identity = batchIdentity(batch, impl_->host);
  headers.add("X-Zastava-Batch: " + identity.batch);
  headers.add("X-Zastava-Batch-Id: " + identity.id);
  headers.add("Expect:");  // no 100-continue round trip
  if (!options.tokenFile.empty()) {
    auto token = readCredentialFile("Backend:TokenFile", options.tokenFile);
    if (!token) return failedAnswer(std::move(answer), token.error());
    headers.add("Authorization: Bearer " + *token);
  }
  std::string compressed;
  if (options.gzip) {
    compressed = gzipped(body);
    if (compressed.empty()) {
      return failedAnswer(std::move(answer),
                          Error{ErrorCode::kInternal, "cannot gzip the request body"});
    }
    headers.add("Content-Encoding: gzip");
    body = compressed;
  }
  answer.sentBytes = body.size();

  CurlEasy& handle = impl_->handle;
  Exchange exchange;
  exchange.cancel = &cancel;
  CurlRequest request;
  request.url = options.url;
  request.request = "POST to the backend";
  request.peer = "the backend";
  request.connectTimeout = kConnectTimeout;
  request.timeout = options.timeout;
  request.tls = CurlTls{options.caFile.string(), options.clientCertFile.string(),
                        options.clientKeyFile.string(), true};
  request.userAgent = "zastava-agent/" + std::string(kVersion);
  handle.start(request);
  handle.set(CURLOPT_POST, 1L);
  handle.set(CURLOPT_POSTFIELDS, body.data());
  handle.set(CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
  handle.set(CURLOPT_HTTPHEADER, headers.list);
  handle.set(CURLOPT_HEADERFUNCTION, onHeader);
  handle.set(CURLOPT_HEADERDATA, &exchange);
  handle.set(CURLOPT_WRITEFUNCTION, onBody);
  handle.set(CURLOPT_WRITEDATA, &exchange);
  handle.set(CURLOPT_NOPROGRESS, 0L);
  handle.set(CURLOPT_XFERINFOFUNCTION, onProgress);
  handle.set(CURLOPT_XFERINFODATA, &exchange);

  const auto done = handle.perform();
  answer.bodyStart = std::move(exchange.bodyStart);
  if (!done && done.error().code == ErrorCode::kCancelled && cancel.load()) {
    answer.verdict = DeliveryVerdict::kStopped;
    answer.error = done.error();
    answer.detail = "stopped";
    return answer;
  }
  if (!done) return failedAnswer(std::move(answer), done.error());
  answer.status = handle.status();
  answer.verdict = verdictOfStatus(answer.status);
  if (answer.verdict == DeliveryVerdict::kAccepted) answer.delivered = records;
  if (answer.verdict != DeliveryVerdict::kAccepted) {
    answer.cause = std::string(causeOfStatus(answer.status));
    answer.detail = "HTTP " + std::to_string(answer.status);
    answer.retryAfter = parseRetryAfter(exchange.retryAfter, std::time(nullptr));
  }
  return answer;
}

}  // namespace zastava
