// The JetStream answers the NatsTransport reads, from fixtures captured from Debian's
// nats-server 2.9.10 (tests/fixtures/nats/README.md), and the names and keys it makes.
#include "delivery/jetstream_api.h"

#include <doctest/doctest.h>

#include "tests/fixture_files.h"

namespace zastava {
namespace {

using testing::readNatsFixture;

TEST_CASE("a publish's ack: stored, already stored, refused") {
  auto stored = parsePubAck(readNatsFixture("pub-ack.json"));
  REQUIRE(stored.ok());
  CHECK(stored->seq == 1);
  CHECK_FALSE(stored->duplicate);
  CHECK_FALSE(stored->error);

  auto duplicate = parsePubAck(readNatsFixture("pub-ack-duplicate.json"));
  REQUIRE(duplicate.ok());
  CHECK(duplicate->seq == 1);
  CHECK(duplicate->duplicate);

  auto wrongLast = parsePubAck(readNatsFixture("pub-ack-wrong-last-sequence.json"));
  REQUIRE(wrongLast.ok());
  REQUIRE(wrongLast->error);
  CHECK(wrongLast->error->code == 400);
  CHECK(wrongLast->error->errCode == kJsWrongLastSequence);
  CHECK(wrongLast->error->description == "wrong last sequence: 1");
}

TEST_CASE("an ack that is not one is malformed, and says what it got") {
  for (const char* bad : {"", "nope", "[]", "{}", R"({"stream":"S"})", R"({"seq":"7"})"}) {
    CAPTURE(bad);
    auto parsed = parsePubAck(bad);
    REQUIRE_FALSE(parsed.ok());
    CHECK(parsed.error().code == ErrorCode::kMalformed);
    CHECK(parsed.error().message.starts_with("the publish's ack "));
  }
}

TEST_CASE("a stored message comes back with its headers and its exact bytes") {
  auto answer = parseMsgGet(readNatsFixture("msg-get.json"));
  REQUIRE(answer.ok());
  REQUIRE(answer->message);
  CHECK_FALSE(answer->error);
  CHECK(answer->message->seq == 1);
  CHECK(answer->message->subject == "fixtures.host");
  CHECK(answer->message->data ==
        R"({"schema":{"name":"zastava.runtime-event","version":9},"eventId":)"
        R"("0123456789abcdef0123456789abcdef","kind":"agent.gap"})");
  CHECK(headerValue(answer->message->headers, "Nats-Msg-Id") == "e1");
  CHECK(headerValue(answer->message->headers, "nats-msg-id") == "e1");
  CHECK(headerValue(answer->message->headers, "Nats-Expected-Last-Subject-Sequence") == "0");
  CHECK_FALSE(headerValue(answer->message->headers, "Nats-Msg"));
}

TEST_CASE("the stream's errors: no message on the subject, no such stream") {
  auto none = parseMsgGet(readNatsFixture("msg-get-no-message.json"));
  REQUIRE(none.ok());
  CHECK_FALSE(none->message);
  REQUIRE(none->error);
  CHECK(none->error->errCode == kJsNoMessageFound);

  auto noStream = parseMsgGet(readNatsFixture("msg-get-stream-not-found.json"));
  REQUIRE(noStream.ok());
  REQUIRE(noStream->error);
  CHECK(noStream->error->code == 404);
  CHECK(noStream->error->errCode == kJsStreamNotFound);
  CHECK(noStream->error->description == "stream not found");
}

TEST_CASE("a message answer with broken base64 or no seq is malformed") {
  for (const char* bad :
       {R"({"message":{"subject":"s","seq":1,"data":"abc"}})",
        R"({"message":{"subject":"s","seq":1,"data":"a!==" }})",
        R"({"message":{"subject":"s","data":"YQ=="}})", R"({"message":{"seq":3,"data":"YQ=="}})",
        R"({"type":"x"})", "not json"}) {
    CAPTURE(bad);
    auto parsed = parseMsgGet(bad);
    REQUIRE_FALSE(parsed.ok());
    CHECK(parsed.error().code == ErrorCode::kMalformed);
  }
  auto padded = parseMsgGet(R"({"message":{"subject":"s","seq":2,"data":"YWI="}})");
  REQUIRE(padded.ok());
  CHECK(padded->message->data == "ab");
  CHECK(padded->message->headers.empty());
}

TEST_CASE("the requests name the subject and the sequence") {
  CHECK(lastBySubjectRequest("zastava.records.web") == R"({"last_by_subj":"zastava.records.web"})");
  CHECK(nextBySubjectRequest(42, "a.b") == R"({"seq":42,"next_by_subj":"a.b"})");
}

TEST_CASE("a host's subject is one token under the prefix") {
  CHECK(subjectForHost("zastava.records", "web-1") == "zastava.records.web-1");
  CHECK(subjectForHost("zastava.records", "web-1.example.com") ==
        "zastava.records.web-1_example_com");
  CHECK(subjectForHost("p", "a b*c>d") == "p.a_b_c_d");
  CHECK(subjectForHost("p", "") == "p.unknown");
}

// The example key pair of the nkeys documentation (github.com/nats-io/nkeys, README).
TEST_CASE("an NKey seed gives its public key; anything else is refused without echoing it") {
  auto publicKey =
      nkeyPublicKeyOfSeed("SUACSSL3UAHUDXKFSNVUZRF5UHPMWZ6BFDTJ7M6USDXIEDNPPQYYYCU3VY");
  REQUIRE(publicKey.ok());
  CHECK(*publicKey == "UDXU4RCSJNZOIQHZNWXHXORDPRTGNJAHAHFRGZNEEJCPQTT2M7NLCNF4");

  for (const char* bad :
       {"", "SUACSSL3UAHUDXKFSNVUZRF5UHPMWZ6BFDTJ7M6USDXIEDNPPQYYYCU3VX",
        "SUACSSL3UAHUDXKFSNVUZRF5UHPMWZ6BFDTJ7M6USDXIEDNPPQYYYCU3V",
        "UDXU4RCSJNZOIQHZNWXHXORDPRTGNJAHAHFRGZNEEJCPQTT2M7NLCNF4", "not base32!"}) {
    CAPTURE(bad);
    auto refused = nkeyPublicKeyOfSeed(bad);
    REQUIRE_FALSE(refused.ok());
    CHECK(refused.error().code == ErrorCode::kInvalidArgument);
    if (*bad != '\0') CHECK(refused.error().message.find(bad) == std::string::npos);
  }
}

}  // namespace
}  // namespace zastava
