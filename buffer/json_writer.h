// Writes one compact JSON value, member by member, in the order the calls make: how records
// get their fixed key order (docs/records.md). RapidJSON's Writer does the escaping; no tree is
// built. Text is written as UTF-8, and a byte that does not begin a valid UTF-8 sequence is
// written as U+FFFD. Internal to buffer/.
#pragma once

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace zastava {

class JsonWriter {
 public:
  // Room for a typical record from the start: growing from rapidjson's 256 bytes took four
  // reallocations per record.
  JsonWriter() : buffer_(nullptr, kInitialCapacity), writer_(buffer_) {}
  JsonWriter(const JsonWriter&) = delete;
  JsonWriter& operator=(const JsonWriter&) = delete;

  JsonWriter& startObject();
  JsonWriter& endObject();
  JsonWriter& startArray();
  JsonWriter& endArray();
  // A key the agent names itself: printable ASCII, so it is not checked for UTF-8 (every
  // record writes a few dozen). Keys that come from outside go through textMap.
  JsonWriter& key(std::string_view name);

  JsonWriter& text(std::string_view value);
  JsonWriter& integer(std::int64_t value);
  JsonWriter& unsignedInteger(std::uint64_t value);
  JsonWriter& boolean(bool value);
  JsonWriter& null();

  // null when empty.
  JsonWriter& textOrNull(std::string_view value);
  // null when absent.
  JsonWriter& optionalText(const std::optional<std::string>& value);
  JsonWriter& optionalInteger(std::optional<std::int64_t> value);
  JsonWriter& optionalBoolean(std::optional<bool> value);
  JsonWriter& textArray(const std::vector<std::string>& values);
  // An object, keys in the map's (sorted) order.
  JsonWriter& textMap(const std::map<std::string, std::string>& values);

  // The JSON written so far; complete once every object and array is ended.
  std::string_view json() const { return {buffer_.GetString(), buffer_.GetSize()}; }

 private:
  static constexpr std::size_t kInitialCapacity = 1024;
  rapidjson::StringBuffer buffer_;
  rapidjson::Writer<rapidjson::StringBuffer> writer_;
};

}  // namespace zastava
