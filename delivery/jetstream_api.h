// What a NATS JetStream server answers, parsed, and the requests the agent asks it: a publish's
// ack ({"stream":"S","seq":7} or {"error":{...}}), a stored message
// ($JS.API.STREAM.MSG.GET.<stream>, base64 headers and data), the NATS header block, the host's
// subject and the NKey public key of a seed. Pure functions of bytes; any thread.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "common/result.h"

namespace zastava {

// JetStream's error codes (err_code) the agent tells apart.
inline constexpr int kJsStreamNotFound = 10059;
inline constexpr int kJsNoMessageFound = 10037;
inline constexpr int kJsWrongLastSequence = 10071;

struct JetStreamError {
  int code = 0;     // HTTP-like: 400, 404, 503
  int errCode = 0;  // JetStream's: kJsStreamNotFound, ...
  std::string description;
};

// A publish's answer: stored at `seq` (or already stored there: `duplicate`), or an error.
struct PubAck {
  std::uint64_t seq = 0;
  bool duplicate = false;
  std::optional<JetStreamError> error;
};

// Errors: kMalformed when `json` is not an ack or an error object.
Result<PubAck> parsePubAck(std::string_view json);

// One message of a stream, from $JS.API.STREAM.MSG.GET.
struct StoredMessage {
  std::uint64_t seq = 0;
  std::string subject;
  std::string headers;  // the decoded header block ("NATS/1.0\r\n...\r\n\r\n"), or empty
  std::string data;     // the decoded payload
};

struct MsgGetAnswer {
  std::optional<StoredMessage> message;
  std::optional<JetStreamError> error;  // kJsNoMessageFound: the subject has none there
};

// Errors: kMalformed when `json` is neither a message nor an error, or base64 is broken.
Result<MsgGetAnswer> parseMsgGet(std::string_view json);

// The requests: the last message of `subject`; the first message of `subject` at or after `seq`.
std::string lastBySubjectRequest(std::string_view subject);
std::string nextBySubjectRequest(std::uint64_t seq, std::string_view subject);

// The value of header `name` in a NATS header block (first one; names compare without case).
std::optional<std::string> headerValue(std::string_view headers, std::string_view name);

// `<prefix>.<host>`: the host name with every character outside [A-Za-z0-9_-] replaced by '_',
// so it is one token ("web-1.example.com" -> "web-1_example_com").
std::string subjectForHost(std::string_view prefix, std::string_view hostName);

// The public key ("U...") of a user NKey seed ("SU..."). Errors: kInvalidArgument saying what is
// wrong with the seed, never the seed.
Result<std::string> nkeyPublicKeyOfSeed(std::string_view seed);

}  // namespace zastava
