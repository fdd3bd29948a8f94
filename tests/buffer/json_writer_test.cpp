#include "buffer/json_writer.h"

#include <doctest/doctest.h>

#include <string>

namespace zastava {
namespace {

std::string written(std::string_view text) {
  JsonWriter out;
  out.text(text);
  return std::string(out.json());
}

TEST_CASE("valid UTF-8 is written as it is, escapes as JSON needs them") {
  CHECK(written("\xc5\xbelu\xc5\xa5 \xf0\x9f\x9a\x80") ==
        "\"\xc5\xbelu\xc5\xa5 \xf0\x9f\x9a\x80\"");
  CHECK(written("q\"b\\s/") == R"("q\"b\\s/")");
  CHECK(written("\b\f\n\r\t") == R"("\b\f\n\r\t")");
  CHECK(written(std::string("a\0b\x1f\x7f", 5)) == "\"a\\u0000b\\u001F\x7f\"");
}

TEST_CASE("each byte that does not begin a valid UTF-8 sequence becomes U+FFFD") {
  const std::string fffd = "\xef\xbf\xbd";
  CHECK(written("\xff\xfe ok") == "\"" + fffd + fffd + " ok\"");
  // A lead byte followed by a byte that does not continue it: the byte after is kept.
  CHECK(written("\xc5\x41") == "\"" + fffd + "A\"");  // \x41 is A
  // A sequence cut short by the end of the text; the continuation byte alone is invalid too.
  CHECK(written("ok\xe2\x82") == "\"ok" + fffd + fffd + "\"");
  // An overlong encoding of '/' and a UTF-16 surrogate are not valid UTF-8.
  CHECK(written("\xc0\xaf") == "\"" + fffd + fffd + "\"");
  CHECK(written("\xed\xa0\x80") == "\"" + fffd + fffd + fffd + "\"");
}

TEST_CASE("keys from outside are UTF-8 too; members come out in the order written") {
  JsonWriter out;
  out.startObject();
  out.key("labels").textMap({{"b\xff", "v"}});
  out.key("b").integer(-1);
  out.key("a").unsignedInteger(18446744073709551615ULL);
  out.key("n").null();
  out.key("t").boolean(true);
  out.key("e").textOrNull("");
  out.key("l").textArray({"x", "y"});
  out.key("m").textMap({{"k2", "v2"}, {"k1", "v1"}});
  out.endObject();
  CHECK(out.json() ==
        "{\"labels\":{\"b\xef\xbf\xbd\":\"v\"},\"b\":-1,\"a\":18446744073709551615,\"n\":null,"
        "\"t\":true,"
        "\"e\":null,\"l\":[\"x\",\"y\"],\"m\":{\"k1\":\"v1\",\"k2\":\"v2\"}}");
}

}  // namespace
}  // namespace zastava
