// The shared text and digest helpers: RFC 3339 times (records and engines) and SHA-256.
#include <doctest/doctest.h>

#include <string>

#include "common/rfc3339.h"
#include "common/sha256.h"
#include "tests/fixture_files.h"

namespace zastava {

TEST_CASE("sha256Hex matches the FIPS 180-2 test vector") {
  CHECK(sha256Hex("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST_CASE("Sha256 fed in pieces gives the one-shot digest, then starts again") {
  const std::string text = "The quick brown fox jumps over the lazy dog";
  Sha256 sha256;
  for (std::size_t at = 0; at < text.size(); at += 7) sha256.update(text.substr(at, 7));
  CHECK(sha256.hexDigest() == sha256Hex(text));
  CHECK(sha256.hexDigest() == sha256Hex(""));
  CHECK(sha256Hex("") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

TEST_CASE("formatRfc3339Nanos always writes nine fractional digits in UTC") {
  CHECK(formatRfc3339Nanos(0) == "1970-01-01T00:00:00.000000000Z");
  CHECK(formatRfc3339Nanos(1) == "1970-01-01T00:00:00.000000001Z");
  CHECK(formatRfc3339Nanos(-1) == "1969-12-31T23:59:59.999999999Z");
  CHECK(formatRfc3339Nanos(1795358087000000000) == "2026-11-22T14:34:47.000000000Z");
}

TEST_CASE("fuzz finding: parseRfc3339Nanos takes digits in their ranges only") {
  // `records --since 2261-26-06`: month 26 of 2261 was carried by timegm into 2263, and the
  // nanoseconds overflowed (undefined behaviour).
  const std::string date = testing::readFuzzFixture("fuzz_time-date-month-26-in-2261.txt");
  CHECK_FALSE(parseRfc3339Nanos(date + "T00:00:00Z"));
  for (const char* bad : {"2026-13-01T00:00:00Z", "2026-00-01T00:00:00Z", "2026-02-29T00:00:00Z",
                          "2026-04-31T00:00:00Z", "2026-11-22T24:00:00Z", "2026-11-22T14:60:00Z",
                          "2026-11-22T14:33:61Z", "2026-1-022T14:33:46Z", "2026-11-22T-1:33:46Z",
                          "+026-11-22T14:33:46Z", "2026-11-22T14:33: 6Z", "2261-12-31T23:59:59"}) {
    CAPTURE(bad);
    CHECK_FALSE(parseRfc3339Nanos(bad));
  }
  CHECK(parseRfc3339Nanos("2024-02-29T00:00:00Z") == 1709164800LL * 1'000'000'000);
  CHECK(parseRfc3339Nanos("2026-11-22T14:34:47.5Z") == 1795358087500000000);
  CHECK(parseRfc3339Nanos("2261-12-31T23:59:60.999999999Z") ==
        9214646400LL * 1'000'000'000 + 999999999);
}

}  // namespace zastava
