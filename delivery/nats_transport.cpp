#include "delivery/nats_transport.h"

#include <nats/nats.h>
#include <openssl/crypto.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <mutex>
#include <optional>
#include <utility>
#include <vector>

#include "common/split.h"
#include "common/version.h"
#include "delivery/jetstream_api.h"

namespace zastava {
namespace {

using Steady = std::chrono::steady_clock;
using namespace std::chrono_literals;

// How often a wait looks at `cancel`.
constexpr auto kCancelCheck = 100ms;
// The longest wait for an answer of the JetStream API (the position, a failed window read back,
// the streams of a subject). A request the cluster drops while it elects a leader gets no
// answer at all; the back-off then tries again soon instead of after Backend:TimeoutSeconds.
constexpr std::chrono::seconds kApiTimeout{5};

bool hasScheme(std::string_view url, std::string_view scheme) {
  if (url.size() <= scheme.size() + 3) return false;
  for (std::size_t i = 0; i < scheme.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(url[i])) != scheme[i]) return false;
  }
  return url.substr(scheme.size(), 3) == "://";
}

std::string urlsForLog(std::string_view urls) {
  std::string out;
  for (const std::string_view url : splitTrimmed(urls, ',')) {
    if (!out.empty()) out += ',';
    out += urlForLog(url);
  }
  return out;
}

// nats.c's text for `status`, with the library's last error of this thread when it has one.
std::string natsErrorText(natsStatus status) {
  // What a publish or request gets while the connection is down: nothing is buffered.
  if (status == NATS_INSUFFICIENT_BUFFER) return "not connected: reconnecting to the servers";
  natsStatus last = NATS_OK;
  const char* text = nats_GetLastError(&last);
  std::string message = natsStatus_GetText(status);
  if (text != nullptr && *text != '\0' && last == status) message += std::string(": ") + text;
  return message;
}

// The failure cause label of a nats.c status (zastava_agent_backend_failures_total).
std::string causeOfStatus(natsStatus status) {
  switch (status) {
    case NATS_SSL_ERROR:
      return "tls";
    case NATS_TIMEOUT:
      return "timeout";
    case NATS_CONNECTION_AUTH_FAILED:
    case NATS_NOT_PERMITTED:
    case NATS_NO_RESPONDERS:
      return "refused";
    case NATS_NO_SERVER:
    case NATS_IO_ERROR:
    case NATS_CONNECTION_CLOSED:
    case NATS_CONNECTION_DISCONNECTED:
    case NATS_STALE_CONNECTION:
    case NATS_INSUFFICIENT_BUFFER:
      return "connect";
    default:
      return "other";
  }
}

BackendAnswer failure(DeliveryVerdict verdict, std::string cause, std::string detail) {
  BackendAnswer answer;
  answer.verdict = verdict;
  answer.cause = std::move(cause);
  answer.detail = std::move(detail);
  answer.error = Error{ErrorCode::kUnavailable, answer.detail};
  return answer;
}

BackendAnswer statusFailure(natsStatus status, const std::string& doing) {
  const std::string cause = causeOfStatus(status);
  return failure(cause == "refused" ? DeliveryVerdict::kRefused : DeliveryVerdict::kRetry, cause,
                 doing + ": " + natsErrorText(status));
}

struct OptionsDeleter {
  void operator()(natsOptions* options) const { natsOptions_Destroy(options); }
};
struct ConnectionDeleter {
  void operator()(natsConnection* connection) const { natsConnection_Destroy(connection); }
};
struct SubscriptionDeleter {
  void operator()(natsSubscription* subscription) const { natsSubscription_Destroy(subscription); }
};
struct MsgDeleter {
  void operator()(natsMsg* msg) const { natsMsg_Destroy(msg); }
};
using MsgPtr = std::unique_ptr<natsMsg, MsgDeleter>;

std::string_view dataOf(natsMsg* msg) {
  return {natsMsg_GetData(msg), static_cast<std::size_t>(natsMsg_GetDataLength(msg))};
}

std::int64_t millis(std::chrono::nanoseconds duration) {
  return std::max<std::int64_t>(
      1, std::chrono::duration_cast<std::chrono::milliseconds>(duration).count());
}

// What one publish of a window came to.
enum class Outcome { kWaiting, kStored, kFailed };

}  // namespace

bool isNatsUrl(std::string_view url) { return hasScheme(url, "nats") || hasScheme(url, "tls"); }

struct NatsTransport::Impl {
  explicit Impl(const NatsTransportOptions& transportOptions)
      : options(transportOptions),
        subject(subjectForHost(transportOptions.subjectPrefix, transportOptions.hostName)),
        msgGetSubject("$JS.API.STREAM.MSG.GET." + transportOptions.stream) {}
  ~Impl() { disconnect(); }

  // A record of a failed window, kept until position() has settled where it stands.
  struct Unsettled {
    std::string eventId;
    std::string line;
  };

  // One publish of the current window.
  struct Publish {
    Outcome outcome = Outcome::kWaiting;
    PubAck ack;
  };

  Result<void> connect(BackendAnswer& failed);
  void disconnect();
  bool connected() const {
    return connection && natsConnection_Status(connection.get()) != NATS_CONN_STATUS_CLOSED;
  }
  Result<void> configure(natsOptions* natsOpts, BackendAnswer& failed);
  BackendAnswer publish(std::string_view line, const std::string& eventId, std::uint64_t token,
                        bool expectLast);
  // A request to the stream's message API; the answer or the failure.
  std::optional<MsgGetAnswer> msgGet(const std::string& request, BackendAnswer& failed);
  BackendAnswer settleFailedWindow(const std::atomic<bool>& cancel, std::size_t& resent);
  BackendAnswer publishAlone(const Unsettled& record, const std::atomic<bool>& cancel);
  // Why a publish found no responder: no stream takes the subject (configuration), or the
  // stream that does has no leader now.
  BackendAnswer noResponders();
  // The failure an ack carries, or std::nullopt when the record is stored (`stored`: its
  // sequence, or an earlier one's when it was a duplicate, which stored nothing).
  std::optional<BackendAnswer> failureOfAck(natsMsg* ack, PubAck& stored);
  // Waits for the next ack on the inbox until `deadline`; nullptr on timeout or cancel.
  MsgPtr nextAck(Steady::time_point deadline, const std::atomic<bool>& cancel,
                 std::uint64_t disconnectsBefore, natsStatus& status);
  std::optional<std::uint64_t> tokenOf(natsMsg* ack) const;
  std::int64_t apiTimeoutMillis() const {
    return millis(std::min<std::chrono::nanoseconds>(options.timeout, kApiTimeout));
  }

  const NatsTransportOptions options;
  const std::string subject;
  const std::string msgGetSubject;
  std::unique_ptr<natsConnection, ConnectionDeleter> connection;
  std::unique_ptr<natsSubscription, SubscriptionDeleter> acks;
  std::string inboxPrefix;  // "<inbox>." : a publish's reply subject is this + its token
  std::uint64_t nextToken = 1;
  std::atomic<std::uint64_t> disconnects{0};  // bumped by nats.c's thread
  // What the servers last refused asynchronously (a permissions violation: a publish or a
  // request the user may not make gets no answer, only this), set by nats.c's thread.
  std::mutex refusalMu;
  std::string refusal;
  // The refusal since the last call, or empty; a timeout with one is a refusal.
  std::string takeRefusal() {
    const std::lock_guard lock(refusalMu);
    return std::exchange(refusal, std::string());
  }
  BackendAnswer timedOutOr(BackendAnswer timedOut) {
    std::string refused = takeRefusal();
    if (refused.empty()) return timedOut;
    return failure(DeliveryVerdict::kRefused, "refused",
                   "the servers refused it: " + refused + " (the NATS user's permissions)");
  }

  // The stream sequence of this host's last stored record, once known (position() or an ack in
  // order); std::nullopt after a failure until position() reads it again.
  std::optional<std::uint64_t> lastSeq;
  std::vector<Unsettled> unsettled;  // a failed window's records not acknowledged in order
  std::uint64_t settledSeq = 0;      // the last sequence acknowledged in order before them
};

Result<void> NatsTransport::Impl::configure(natsOptions* natsOpts, BackendAnswer& failed) {
  auto check = [&](natsStatus status, const std::string& what) -> bool {
    if (status == NATS_OK) return true;
    failed = failure(DeliveryVerdict::kRefused, "other", what + ": " + natsErrorText(status));
    return false;
  };
  std::vector<std::string> urls;
  for (const std::string_view url : splitTrimmed(options.urls, ',')) urls.emplace_back(url);
  std::vector<const char*> servers;
  bool tls = !options.caFile.empty();
  for (const std::string& url : urls) {
    servers.push_back(url.c_str());
    tls = tls || hasScheme(url, "tls");
  }
  const std::string name = "zastava-agent " + std::string(kVersion);
  if (!check(natsOptions_SetServers(natsOpts, servers.data(), static_cast<int>(servers.size())),
             "Backend:Url") ||
      !check(natsOptions_SetName(natsOpts, name.c_str()), "the connection's name") ||
      !check(natsOptions_SetTimeout(natsOpts, millis(options.timeout)), "the connect timeout") ||
      // Publishes are never buffered while disconnected: a record sent then fails at once.
      !check(natsOptions_SetReconnectBufSize(natsOpts, 1), "the reconnect buffer") ||
      !check(natsOptions_SetMaxReconnect(natsOpts, -1), "reconnecting") ||
      !check(natsOptions_SetReconnectWait(natsOpts, 500), "reconnecting")) {
    return Error{ErrorCode::kInvalidArgument, failed.detail};
  }
  natsOptions_SetDisconnectedCB(
      natsOpts,
      [](natsConnection*, void* closure) {
        static_cast<std::atomic<std::uint64_t>*>(closure)->fetch_add(1);
      },
      &disconnects);
  natsOptions_SetErrorHandler(
      natsOpts,
      [](natsConnection* nc, natsSubscription*, natsStatus status, void* closure) {
        const char* text = nullptr;
        natsConnection_GetLastError(nc, &text);
        const std::string error = std::string(natsStatus_GetText(status)) +
                                  (text != nullptr ? std::string(": ") + text : "");
        spdlog::debug("backend: NATS: {}", error);
        if (status == NATS_NOT_PERMITTED) {
          auto& impl = *static_cast<Impl*>(closure);
          const std::lock_guard lock(impl.refusalMu);
          impl.refusal = error;
        }
      },
      this);
  if (tls) {
    if (!check(natsOptions_SetSecure(natsOpts, true), "TLS")) {
      return Error{ErrorCode::kInvalidArgument, failed.detail};
    }
  }
  if (!options.caFile.empty() &&
      !check(natsOptions_LoadCATrustedCertificates(natsOpts, options.caFile.c_str()),
             "Backend:CaFile " + options.caFile.string())) {
    return Error{ErrorCode::kInvalidArgument, failed.detail};
  }
  if (!options.clientCertFile.empty() &&
      !check(natsOptions_LoadCertificatesChain(natsOpts, options.clientCertFile.c_str(),
                                               options.clientKeyFile.c_str()),
             "Backend:ClientCertFile " + options.clientCertFile.string())) {
    return Error{ErrorCode::kInvalidArgument, failed.detail};
  }
  // Credentials are read at each connect, so a rotated file is used without a restart.
  if (!options.passwordFile.empty()) {
    auto password = readCredentialFile("Backend:NatsPasswordFile", options.passwordFile);
    if (!password) {
      failed = failure(DeliveryVerdict::kRefused, "other", password.error().message);
      return password.error();
    }
    const bool set =
        check(natsOptions_SetUserInfo(natsOpts, options.user.c_str(), password->c_str()), "user");
    OPENSSL_cleanse(password->data(), password->size());
    if (!set) return Error{ErrorCode::kInvalidArgument, failed.detail};
  }
  if (!options.tokenFile.empty()) {
    auto token = readCredentialFile("Backend:TokenFile", options.tokenFile);
    if (!token) {
      failed = failure(DeliveryVerdict::kRefused, "other", token.error().message);
      return token.error();
    }
    const bool set = check(natsOptions_SetToken(natsOpts, token->c_str()), "token");
    OPENSSL_cleanse(token->data(), token->size());
    if (!set) return Error{ErrorCode::kInvalidArgument, failed.detail};
  }
  if (!options.nkeySeedFile.empty()) {
    auto seed = readCredentialFile("Backend:NatsNkeySeedFile", options.nkeySeedFile);
    if (!seed) {
      failed = failure(DeliveryVerdict::kRefused, "other", seed.error().message);
      return seed.error();
    }
    auto publicKey = nkeyPublicKeyOfSeed(*seed);
    OPENSSL_cleanse(seed->data(), seed->size());
    if (!publicKey) {
      failed = failure(DeliveryVerdict::kRefused, "other",
                       "Backend:NatsNkeySeedFile " + options.nkeySeedFile.string() + ": " +
                           publicKey.error().message);
      return Error{ErrorCode::kInvalidArgument, failed.detail};
    }
    if (!check(
            natsOptions_SetNKeyFromSeed(natsOpts, publicKey->c_str(), options.nkeySeedFile.c_str()),
            "Backend:NatsNkeySeedFile")) {
      return Error{ErrorCode::kInvalidArgument, failed.detail};
    }
  }
  return okResult();
}

Result<void> NatsTransport::Impl::connect(BackendAnswer& failed) {
  if (connected()) return okResult();
  disconnect();
  natsOptions* raw = nullptr;
  if (const natsStatus status = natsOptions_Create(&raw); status != NATS_OK) {
    failed = statusFailure(status, "cannot set up the NATS connection");
    return Error{ErrorCode::kInternal, failed.detail};
  }
  const std::unique_ptr<natsOptions, OptionsDeleter> natsOpts(raw);
  if (auto configured = configure(natsOpts.get(), failed); !configured) return configured.error();
  natsConnection* nc = nullptr;
  if (const natsStatus status = natsConnection_Connect(&nc, natsOpts.get()); status != NATS_OK) {
    failed = statusFailure(status, "cannot connect to " + urlsForLog(options.urls));
    return Error{ErrorCode::kUnavailable, failed.detail};
  }
  connection.reset(nc);
  natsInbox* inbox = nullptr;
  natsInbox_Create(&inbox);
  inboxPrefix = std::string(inbox) + ".";
  natsInbox_Destroy(inbox);
  natsSubscription* sub = nullptr;
  const std::string wildcard = inboxPrefix + "*";
  if (const natsStatus status = natsConnection_SubscribeSync(&sub, nc, wildcard.c_str());
      status != NATS_OK) {
    failed = statusFailure(status, "cannot subscribe to the acks' inbox");
    disconnect();
    return Error{ErrorCode::kUnavailable, failed.detail};
  }
  acks.reset(sub);
  // A whole window of acks may wait in the inbox.
  natsSubscription_SetPendingLimits(sub, -1, -1);
  lastSeq.reset();
  spdlog::info("backend: connected to NATS {}", urlsForLog(options.urls));
  return okResult();
}

void NatsTransport::Impl::disconnect() {
  acks.reset();
  if (connection) natsConnection_Close(connection.get());
  connection.reset();
}

std::optional<std::uint64_t> NatsTransport::Impl::tokenOf(natsMsg* ack) const {
  const char* reply = natsMsg_GetSubject(ack);
  const std::string_view subjectText = reply == nullptr ? "" : reply;
  if (subjectText.substr(0, inboxPrefix.size()) != inboxPrefix) return std::nullopt;
  std::uint64_t token = 0;
  for (const char c : subjectText.substr(inboxPrefix.size())) {
    if (c < '0' || c > '9') return std::nullopt;
    token = token * 10 + static_cast<std::uint64_t>(c - '0');
  }
  return token;
}

BackendAnswer NatsTransport::Impl::publish(std::string_view line, const std::string& eventId,
                                           std::uint64_t token, bool expectLast) {
  const std::string reply = inboxPrefix + std::to_string(token);
  natsMsg* raw = nullptr;
  natsStatus status = natsMsg_Create(&raw, subject.c_str(), reply.c_str(), line.data(),
                                     static_cast<int>(line.size()));
  const MsgPtr msg(raw);
  if (status == NATS_OK) status = natsMsgHeader_Set(raw, "Nats-Msg-Id", eventId.c_str());
  if (status == NATS_OK) {
    status = natsMsgHeader_Set(raw, "Nats-Expected-Stream", options.stream.c_str());
  }
  if (status == NATS_OK && expectLast) {
    status = natsMsgHeader_Set(raw, "Nats-Expected-Last-Subject-Sequence",
                               std::to_string(lastSeq.value_or(0)).c_str());
  }
  if (status == NATS_OK) status = natsConnection_PublishMsg(connection.get(), raw);
  if (status == NATS_MAX_PAYLOAD) {
    // Halved down to this record alone, then quarantined, as HTTP's 413.
    return failure(DeliveryVerdict::kTooLarge, "too_large",
                   "a record of " + std::to_string(line.size()) +
                       " bytes is larger than the servers' max_payload");
  }
  if (status != NATS_OK) return statusFailure(status, "cannot publish to " + subject);
  BackendAnswer sent;
  sent.verdict = DeliveryVerdict::kAccepted;
  sent.sentBytes = line.size();
  return sent;
}

MsgPtr NatsTransport::Impl::nextAck(Steady::time_point deadline, const std::atomic<bool>& cancel,
                                    std::uint64_t disconnectsBefore, natsStatus& status) {
  while (!cancel.load() && disconnects.load() == disconnectsBefore) {
    const auto now = Steady::now();
    if (now >= deadline) {
      status = NATS_TIMEOUT;
      return nullptr;
    }
    natsMsg* raw = nullptr;
    status = natsSubscription_NextMsg(
        &raw, acks.get(), millis(std::min<Steady::duration>(deadline - now, kCancelCheck)));
    if (status == NATS_OK) return MsgPtr(raw);
    if (status != NATS_TIMEOUT) return nullptr;
  }
  status = cancel.load() ? NATS_OK : NATS_CONNECTION_DISCONNECTED;
  return nullptr;
}

std::optional<BackendAnswer> NatsTransport::Impl::failureOfAck(natsMsg* ack, PubAck& stored) {
  const std::string& stream = options.stream;
  if (natsMsg_IsNoResponders(ack)) return noResponders();
  auto parsed = parsePubAck(dataOf(ack));
  if (!parsed) return failure(DeliveryVerdict::kRetry, "other", parsed.error().message);
  if (parsed->error) {
    const JetStreamError& error = *parsed->error;
    if (error.errCode == kJsWrongStream) {
      return failure(DeliveryVerdict::kRefused, "refused",
                     "subject " + subject + " is taken by another stream than " + stream +
                         " (Backend:NatsStream, Backend:NatsSubjectPrefix)");
    }
    const bool configuration = error.code == 403 || error.errCode == kJsStreamNotFound;
    return failure(configuration ? DeliveryVerdict::kRefused : DeliveryVerdict::kRetry,
                   configuration ? "refused" : "other",
                   "stream " + stream + " refused a record on " + subject + ": " +
                       error.description + " (err_code " + std::to_string(error.errCode) + ")");
  }
  stored = *parsed;
  return std::nullopt;
}

BackendAnswer NatsTransport::Impl::publishAlone(const Unsettled& record,
                                                const std::atomic<bool>& cancel) {
  const std::uint64_t token = nextToken++;
  const std::uint64_t disconnectsBefore = disconnects.load();
  BackendAnswer sent = publish(record.line, record.eventId, token, true);
  if (sent.verdict != DeliveryVerdict::kAccepted) return sent;
  const auto deadline = Steady::now() + options.timeout;
  for (;;) {
    natsStatus status = NATS_OK;
    const MsgPtr ack = nextAck(deadline, cancel, disconnectsBefore, status);
    if (!ack) {
      if (cancel.load()) return failure(DeliveryVerdict::kStopped, "", "stopped");
      return timedOutOr(
          statusFailure(status, "no ack from stream " + options.stream + " for a record"));
    }
    if (tokenOf(ack.get()) != token) continue;  // a late ack of an earlier window
    PubAck stored;
    if (auto failed = failureOfAck(ack.get(), stored)) return *failed;
    if (!stored.duplicate) lastSeq = stored.seq;
    return sent;
  }
}

BackendAnswer NatsTransport::Impl::noResponders() {
  natsMsg* raw = nullptr;
  const std::string request = streamNamesRequest(subject);
  const natsStatus status = natsConnection_RequestString(
      &raw, connection.get(), "$JS.API.STREAM.NAMES", request.c_str(), apiTimeoutMillis());
  const MsgPtr reply(raw);
  auto streams = status == NATS_OK ? parseStreamNames(dataOf(reply.get()))
                                   : Result<std::vector<std::string>>(Error{
                                         ErrorCode::kUnavailable, natsStatus_GetText(status)});
  if (streams && streams->empty()) {
    return failure(DeliveryVerdict::kRefused, "refused",
                   "no stream takes subject " + subject + " (stream " + options.stream +
                       " does not cover it: Backend:NatsSubjectPrefix, or the stream's subjects)");
  }
  return failure(DeliveryVerdict::kRetry, "connect",
                 "no answer from stream " + options.stream + " for " + subject +
                     ": it has no leader now (an election, or too few servers up)");
}

std::optional<MsgGetAnswer> NatsTransport::Impl::msgGet(const std::string& request,
                                                        BackendAnswer& failed) {
  natsMsg* raw = nullptr;
  const natsStatus status = natsConnection_RequestString(
      &raw, connection.get(), msgGetSubject.c_str(), request.c_str(), apiTimeoutMillis());
  const MsgPtr reply(raw);
  if (status == NATS_NO_RESPONDERS) {
    failed = failure(DeliveryVerdict::kRefused, "refused",
                     "no JetStream answers at " + urlsForLog(options.urls) +
                         " (JetStream is off, or this user may not use its API)");
    return std::nullopt;
  }
  if (status != NATS_OK) {
    failed = timedOutOr(statusFailure(status, "cannot read from stream " + options.stream));
    return std::nullopt;
  }
  auto parsed = parseMsgGet(dataOf(reply.get()));
  if (!parsed) {
    failed = failure(DeliveryVerdict::kRetry, "other", parsed.error().message);
    return std::nullopt;
  }
  if (parsed->error && parsed->error->errCode != kJsNoMessageFound) {
    const bool notFound = parsed->error->errCode == kJsStreamNotFound;
    failed = failure(DeliveryVerdict::kRefused, "refused",
                     notFound ? "stream " + options.stream + " not found (Backend:NatsStream)"
                              : "stream " + options.stream + ": " + parsed->error->description +
                                    " (err_code " + std::to_string(parsed->error->errCode) + ")");
    return std::nullopt;
  }
  return std::move(*parsed);
}

// After a failed window: what of it did the stream take? The records it holds after the last
// one acknowledged in order are read back; a record missing before one that is there was
// overtaken, and is published again now, after it.
BackendAnswer NatsTransport::Impl::settleFailedWindow(const std::atomic<bool>& cancel,
                                                      std::size_t& resent) {
  BackendAnswer failed;
  std::vector<std::string> stored;  // eventIds, in stream order
  std::uint64_t from = settledSeq + 1;
  while (stored.size() <= unsettled.size() && from <= lastSeq.value_or(0)) {
    auto answer = msgGet(nextBySubjectRequest(from, subject), failed);
    if (!answer) return failed;
    if (!answer->message) break;
    stored.push_back(headerValue(answer->message->headers, "Nats-Msg-Id").value_or(""));
    from = answer->message->seq + 1;
  }
  std::size_t lastPresent = 0;  // one past the last unsettled record the stream holds
  for (std::size_t i = 0; i < unsettled.size(); ++i) {
    if (std::find(stored.begin(), stored.end(), unsettled[i].eventId) != stored.end()) {
      lastPresent = i + 1;
    }
  }
  for (std::size_t i = 0; i < lastPresent; ++i) {
    if (std::find(stored.begin(), stored.end(), unsettled[i].eventId) != stored.end()) continue;
    BackendAnswer sent = publishAlone(unsettled[i], cancel);
    if (sent.verdict != DeliveryVerdict::kAccepted) return sent;
    ++resent;
  }
  if (resent > 0) {
    spdlog::warn(
        "backend: stream {} stored records of a failed window but not {} before them; those "
        "were published again and follow their successors on {}",
        options.stream, resent, subject);
  }
  unsettled.clear();
  BackendAnswer settled;
  settled.verdict = DeliveryVerdict::kAccepted;
  return settled;
}

NatsTransport::NatsTransport(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
NatsTransport::~NatsTransport() = default;

Result<std::unique_ptr<NatsTransport>> NatsTransport::create(const NatsTransportOptions& options) {
  for (const auto& [key, file] : {std::pair{"Backend:CaFile", options.caFile},
                                  std::pair{"Backend:ClientCertFile", options.clientCertFile},
                                  std::pair{"Backend:ClientKeyFile", options.clientKeyFile}}) {
    auto readable = checkReadable(key, file);
    if (!readable) return readable.error();
  }
  for (const auto& [key, file] : {std::pair{"Backend:NatsPasswordFile", options.passwordFile},
                                  std::pair{"Backend:TokenFile", options.tokenFile},
                                  std::pair{"Backend:NatsNkeySeedFile", options.nkeySeedFile}}) {
    if (file.empty()) continue;
    auto secret = readCredentialFile(key, file);
    if (!secret) return secret.error();
    if (std::string_view(key) == "Backend:NatsNkeySeedFile") {
      auto publicKey = nkeyPublicKeyOfSeed(*secret);
      if (!publicKey) {
        return Error{ErrorCode::kInvalidArgument,
                     std::string(key) + " " + file.string() + ": " + publicKey.error().message};
      }
    }
    OPENSSL_cleanse(secret->data(), secret->size());
  }
  if (options.passwordFile.empty() != options.user.empty()) {
    return Error{ErrorCode::kInvalidArgument,
                 "Backend:NatsUser and Backend:NatsPasswordFile go together: set both or neither"};
  }
  return std::unique_ptr<NatsTransport>(new NatsTransport(std::make_unique<Impl>(options)));
}

std::string NatsTransport::describe() const {
  return "NATS " + urlsForLog(impl_->options.urls) + " (stream " + impl_->options.stream +
         ", subject " + impl_->subject + ")";
}

PositionAnswer NatsTransport::position(const std::atomic<bool>& cancel) {
  Impl& impl = *impl_;
  PositionAnswer position;
  if (auto connected = impl.connect(position.answer); !connected) return position;
  impl.takeRefusal();  // an earlier one is not this request's
  auto last = impl.msgGet(lastBySubjectRequest(impl.subject), position.answer);
  if (!last) return position;
  impl.lastSeq = last->message ? last->message->seq : 0;
  if (!impl.unsettled.empty()) {
    BackendAnswer settled = impl.settleFailedWindow(cancel, position.resentOutOfOrder);
    if (settled.verdict != DeliveryVerdict::kAccepted) {
      impl.lastSeq.reset();
      position.answer = settled;
      return position;
    }
  }
  if (last->message) position.lastRecord = std::move(last->message->data);
  position.answer.verdict = DeliveryVerdict::kAccepted;
  return position;
}

BackendAnswer NatsTransport::send(const PendingBatch& batch, const std::atomic<bool>& cancel) {
  Impl& impl = *impl_;
  BackendAnswer answer;
  if (!impl.connected() || !impl.lastSeq) {
    return failure(DeliveryVerdict::kRetry, "connect", "the position must be read again first");
  }
  const std::uint64_t disconnectsBefore = impl.disconnects.load();
  impl.takeRefusal();  // an earlier one is not this batch's
  const std::uint64_t firstToken = impl.nextToken;
  impl.nextToken += batch.records;
  std::vector<Impl::Publish> publishes(batch.records);
  std::size_t sent = 0;     // published so far
  std::size_t inOrder = 0;  // acknowledged in order so far
  std::optional<BackendAnswer> failed;
  auto deadline = Steady::now() + impl.options.timeout;
  while (inOrder < batch.records) {
    // Fill the window; the first record after an in-order ack knows its predecessor's sequence.
    while (!failed && sent < batch.records && sent - inOrder < impl.options.ackWindow) {
      const bool predecessorKnown = sent == inOrder;
      BackendAnswer one = impl.publish(batch.line(sent), batch.rows[sent].eventId,
                                       firstToken + sent, predecessorKnown);
      if (one.verdict != DeliveryVerdict::kAccepted) {
        failed = one;
        break;
      }
      answer.sentBytes += one.sentBytes;
      ++sent;
    }
    if (sent == inOrder) break;  // nothing in flight: a failure stopped the window
    natsStatus status = NATS_OK;
    const MsgPtr ack = impl.nextAck(deadline, cancel, disconnectsBefore, status);
    if (!ack) {
      if (cancel.load()) {
        failed = failure(DeliveryVerdict::kStopped, "", "stopped");
      } else if (!failed) {
        failed =
            status == NATS_TIMEOUT
                ? impl.timedOutOr(failure(DeliveryVerdict::kRetry, "timeout",
                                          "no ack from stream " + impl.options.stream + " within " +
                                              std::to_string(impl.options.timeout.count()) + " s"))
            : status == NATS_NO_RESPONDERS
                ? impl.noResponders()
                : statusFailure(status, "the connection broke while acks were awaited");
      }
      break;
    }
    const auto token = impl.tokenOf(ack.get());
    if (!token || *token < firstToken || *token >= firstToken + sent) continue;  // a late one
    Impl::Publish& publish = publishes[*token - firstToken];
    if (auto refused = impl.failureOfAck(ack.get(), publish.ack)) {
      publish.outcome = Outcome::kFailed;
      if (!failed) failed = *refused;
    } else {
      publish.outcome = Outcome::kStored;
    }
    while (inOrder < sent && publishes[inOrder].outcome == Outcome::kStored) {
      // A duplicate stored nothing: the subject's last message is still the one before.
      if (!publishes[inOrder].ack.duplicate) impl.lastSeq = publishes[inOrder].ack.seq;
      ++inOrder;
      deadline = Steady::now() + impl.options.timeout;
    }
    if (failed &&
        std::none_of(publishes.begin() + static_cast<std::ptrdiff_t>(inOrder),
                     publishes.begin() + static_cast<std::ptrdiff_t>(sent),
                     [](const Impl::Publish& p) { return p.outcome == Outcome::kWaiting; })) {
      break;  // every ack of the window is in
    }
  }
  answer.delivered = inOrder;
  if (!failed && inOrder == batch.records) {
    answer.verdict = DeliveryVerdict::kAccepted;
    return answer;
  }
  // What was sent after the in-order acks may or may not be stored: position() settles it.
  impl.settledSeq = impl.lastSeq.value_or(0);
  impl.unsettled.clear();
  for (std::size_t i = inOrder; i < sent; ++i) {
    impl.unsettled.push_back(Impl::Unsettled{batch.rows[i].eventId, std::string(batch.line(i))});
  }
  // The sequence of the last record stays known only when nothing was left unacknowledged.
  if (!impl.unsettled.empty()) impl.lastSeq.reset();
  if (failed->verdict != DeliveryVerdict::kStopped &&
      impl.disconnects.load() != disconnectsBefore) {
    failed->cause = "connect";
  }
  failed->delivered = inOrder;
  failed->sentBytes = answer.sentBytes;
  return *failed;
}

}  // namespace zastava
