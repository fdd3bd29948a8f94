#include "buffer/json_writer.h"

#include <rapidjson/encodings.h>
#include <simdjson.h>

#include <cstdint>
#include <cstring>

namespace zastava {
namespace {

constexpr std::string_view kReplacementCharacter = "\xEF\xBF\xBD";  // U+FFFD

// Collects the bytes of one valid sequence for UTF8<>::Validate.
struct SequenceBytes {
  std::string& out;
  void Put(char c) { out.push_back(c); }
};

// `text` with each byte that does not begin a valid UTF-8 sequence replaced by U+FFFD; the
// byte after it is read again as the start of a sequence.
std::string replaceInvalidUtf8(std::string_view text) {
  // Validate reads every byte a lead byte announces (up to 3 more): a sequence cut short by the
  // end of the text meets these NULs, which are not continuation bytes.
  std::string padded(text);
  padded.append(3, '\0');
  std::string out;
  out.reserve(text.size() + kReplacementCharacter.size());
  std::size_t at = 0;
  while (at < text.size()) {
    rapidjson::StringStream in(padded.c_str() + at);
    const std::size_t before = out.size();
    SequenceBytes sequence{out};
    if (rapidjson::UTF8<>::Validate(in, sequence)) {
      at += in.Tell();
    } else {
      out.resize(before);
      out.append(kReplacementCharacter);
      ++at;
    }
  }
  return out;
}

// True when no byte of `text` has its high bit set, eight bytes at a time.
bool isAscii(std::string_view text) {
  constexpr std::uint64_t kHighBits = 0x8080808080808080ULL;
  std::size_t at = 0;
  for (; at + sizeof(std::uint64_t) <= text.size(); at += sizeof(std::uint64_t)) {
    std::uint64_t word = 0;
    std::memcpy(&word, text.data() + at, sizeof word);
    if ((word & kHighBits) != 0) return false;
  }
  for (; at < text.size(); ++at) {
    if (static_cast<unsigned char>(text[at]) >= 0x80) return false;
  }
  return true;
}

// Most text is ASCII (ids, times, names): checked inline, as calling the SIMD validator costs
// more than the check for strings this short.
bool isValidUtf8(std::string_view text) {
  return isAscii(text) || simdjson::validate_utf8(text.data(), text.size());
}

// `text` itself when it is valid UTF-8, else its replacement, kept in `storage`.
std::string_view validUtf8(std::string_view text, std::string& storage) {
  if (isValidUtf8(text)) return text;
  storage = replaceInvalidUtf8(text);
  return storage;
}

rapidjson::SizeType sizeOf(std::string_view text) {
  return static_cast<rapidjson::SizeType>(text.size());
}

}  // namespace

JsonWriter& JsonWriter::startObject() {
  writer_.StartObject();
  return *this;
}

JsonWriter& JsonWriter::endObject() {
  writer_.EndObject();
  return *this;
}

JsonWriter& JsonWriter::startArray() {
  writer_.StartArray();
  return *this;
}

JsonWriter& JsonWriter::endArray() {
  writer_.EndArray();
  return *this;
}

JsonWriter& JsonWriter::key(std::string_view name) {
  writer_.Key(name.data(), sizeOf(name));
  return *this;
}

JsonWriter& JsonWriter::text(std::string_view value) {
  std::string storage;
  const std::string_view valid = validUtf8(value, storage);
  writer_.String(valid.data(), sizeOf(valid));
  return *this;
}

JsonWriter& JsonWriter::integer(std::int64_t value) {
  writer_.Int64(value);
  return *this;
}

JsonWriter& JsonWriter::unsignedInteger(std::uint64_t value) {
  writer_.Uint64(value);
  return *this;
}

JsonWriter& JsonWriter::boolean(bool value) {
  writer_.Bool(value);
  return *this;
}

JsonWriter& JsonWriter::null() {
  writer_.Null();
  return *this;
}

JsonWriter& JsonWriter::textOrNull(std::string_view value) {
  return value.empty() ? null() : text(value);
}

JsonWriter& JsonWriter::optionalText(const std::optional<std::string>& value) {
  return value ? text(*value) : null();
}

JsonWriter& JsonWriter::optionalInteger(std::optional<std::int64_t> value) {
  return value ? integer(*value) : null();
}

JsonWriter& JsonWriter::optionalBoolean(std::optional<bool> value) {
  return value ? boolean(*value) : null();
}

JsonWriter& JsonWriter::textArray(const std::vector<std::string>& values) {
  startArray();
  for (const std::string& value : values) text(value);
  return endArray();
}

JsonWriter& JsonWriter::textMap(const std::map<std::string, std::string>& values) {
  startObject();
  std::string storage;
  for (const auto& [name, value] : values) {
    const std::string_view valid = validUtf8(name, storage);
    writer_.Key(valid.data(), sizeOf(valid));
    text(value);
  }
  return endObject();
}

}  // namespace zastava
