// The NATS JetStream transport (docs/backend.md "NATS JetStream"): each record is published to
// `<Backend:NatsSubjectPrefix>.<host>` with header Nats-Msg-Id = its eventId, and
// Nats-Expected-Last-Subject-Sequence = the stream sequence of this host's previous record
// whenever that is known when the record is sent. Up to Backend:NatsAckWindow publishes wait for
// their acks at once; the acks, in order, say how much of a batch the stream holds. The stream
// keeps the position: position() reads the last message of the host's subject, and after a
// failed window it first reads back what the stream took of it and publishes again any record
// a later one overtook (a record lost while its successors were stored, during a leader
// election), so the stream ends up with each record once. Over nats.c (Debian's libnats).
#pragma once

#include <chrono>
#include <cstddef>
#include <filesystem>
#include <memory>
#include <string>

#include "delivery/transport.h"

namespace zastava {

// The defaults of Backend:NatsStream, NatsSubjectPrefix and NatsAckWindow.
inline constexpr std::string_view kDefaultNatsStream = "ZASTAVA_RECORDS";
inline constexpr std::string_view kDefaultNatsSubjectPrefix = "zastava.records";
inline constexpr int kDefaultNatsAckWindow = 256;

struct NatsTransportOptions {
  std::string urls;  // Backend:Url: nats:// or tls:// URLs, comma-separated
  std::string stream = std::string(kDefaultNatsStream);
  std::string subjectPrefix = std::string(kDefaultNatsSubjectPrefix);
  std::size_t ackWindow = kDefaultNatsAckWindow;
  std::string user;                    // Backend:NatsUser, with passwordFile
  std::filesystem::path passwordFile;  // read at each connect
  std::filesystem::path tokenFile;     // Backend:TokenFile, read at each connect
  std::filesystem::path nkeySeedFile;  // Backend:NatsNkeySeedFile
  std::filesystem::path caFile;        // set, or a tls:// URL: TLS
  std::filesystem::path clientCertFile;
  std::filesystem::path clientKeyFile;
  std::chrono::seconds timeout{30};  // Backend:TimeoutSeconds: connect, each ack, each request
  std::string hostName;              // the subject's last token is made from it
};

// Whether `url` names NATS servers (nats:// or tls://) rather than an HTTP backend.
bool isNatsUrl(std::string_view url);

class NatsTransport final : public DeliveryTransport {
 public:
  // Checks the options: the files can be read, the credential files are not empty, the NKey
  // seed is one. Connects later, at the first position(). Errors: kInvalidArgument naming the
  // key (Backend:NatsPasswordFile ...) and the reason.
  static Result<std::unique_ptr<NatsTransport>> create(const NatsTransportOptions& options);
  ~NatsTransport() override;
  NatsTransport(const NatsTransport&) = delete;
  NatsTransport& operator=(const NatsTransport&) = delete;

  bool keepsPosition() const override { return true; }
  PositionAnswer position(const std::atomic<bool>& cancel) override;
  BackendAnswer send(const PendingBatch& batch, const std::atomic<bool>& cancel) override;
  std::string describe() const override;

 private:
  struct Impl;
  explicit NatsTransport(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace zastava
