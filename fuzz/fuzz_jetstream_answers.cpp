// parsePubAck, parseMsgGet and headerValue (delivery/jetstream_api.h): what NATS servers answer a
// publish and a stream message request, and the header block of a stored message. The first
// byte picks the parser. An error must be kMalformed; what parses keeps its invariants.
#include "delivery/jetstream_api.h"
#include "fuzz/fuzz_util.h"

using namespace zastava;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::string_view text = fuzz::text(data + 1, size - 1);
  switch (data[0] % 3) {
    case 0:
      if (auto ack = parsePubAck(text)) {
        fuzz::check(ack->error.has_value() || ack->seq > 0, "a stored ack has a sequence");
      } else {
        fuzz::check(ack.error().code == ErrorCode::kMalformed, "a bad ack is kMalformed");
      }
      break;
    case 1:
      if (auto answer = parseMsgGet(text)) {
        fuzz::check(answer->message.has_value() != answer->error.has_value(),
                    "an answer is a message or an error");
        if (answer->message) {
          fuzz::check(answer->message->seq > 0 && !answer->message->subject.empty(),
                      "a message has a sequence and a subject");
        }
      } else {
        fuzz::check(answer.error().code == ErrorCode::kMalformed, "a bad answer is kMalformed");
      }
      break;
    default:
      if (auto value = headerValue(text, "Nats-Msg-Id")) {
        fuzz::check(value->find("\r\n") == std::string::npos, "a value is within its line");
      }
  }
  return 0;
}
