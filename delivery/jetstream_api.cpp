#include "delivery/jetstream_api.h"

#include <openssl/evp.h>
#include <simdjson.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <memory>
#include <vector>

namespace zastava {
namespace {

using simdjson::dom::element;

Error malformed(std::string_view what, std::string_view json) {
  constexpr std::size_t kShown = 200;
  return Error{ErrorCode::kMalformed, std::string(what) + ": " +
                                          std::string(json.substr(0, kShown)) +
                                          (json.size() > kShown ? "..." : "")};
}

Result<element> parseJsonObject(simdjson::dom::parser& parser, std::string_view json,
                                std::string_view what) {
  element root;
  if (parser.parse(simdjson::padded_string(json)).get(root) != simdjson::SUCCESS ||
      root.type() != simdjson::dom::element_type::OBJECT) {
    return malformed(std::string(what) + " is not a JSON object", json);
  }
  return root;
}

std::string stringOr(element parent, std::string_view key) {
  std::string_view text;
  if (parent[key].get_string().get(text) != simdjson::SUCCESS) return {};
  return std::string(text);
}

std::uint64_t unsignedOr(element parent, std::string_view key) {
  std::uint64_t value = 0;
  if (parent[key].get_uint64().get(value) != simdjson::SUCCESS) return 0;
  return value;
}

// {"error":{"code":404,"err_code":10059,"description":"stream not found"}}, if there.
std::optional<JetStreamError> errorOf(element root) {
  element error;
  if (root["error"].get(error) != simdjson::SUCCESS) return std::nullopt;
  JetStreamError parsed;
  parsed.code = static_cast<int>(unsignedOr(error, "code"));
  parsed.errCode = static_cast<int>(unsignedOr(error, "err_code"));
  parsed.description = stringOr(error, "description");
  if (parsed.description.empty()) parsed.description = "code " + std::to_string(parsed.code);
  return parsed;
}

Result<std::string> decodeBase64(std::string_view text, std::string_view what) {
  if (text.size() % 4 != 0) return malformed(std::string(what) + " is not base64", text);
  std::string out(text.size() / 4 * 3, '\0');
  const int written = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                      reinterpret_cast<const unsigned char*>(text.data()),
                                      static_cast<int>(text.size()));
  if (written < 0) return malformed(std::string(what) + " is not base64", text);
  // EVP_DecodeBlock counts the padding as zero bytes.
  const std::size_t padding = static_cast<std::size_t>(
      std::count(text.end() - static_cast<std::ptrdiff_t>(std::min<std::size_t>(2, text.size())),
                 text.end(), '='));
  out.resize(static_cast<std::size_t>(written) - padding);
  return out;
}

// CRC-16/XMODEM, the NKey checksum.
std::uint16_t crc16(const unsigned char* data, std::size_t size) {
  std::uint16_t crc = 0;
  for (std::size_t i = 0; i < size; ++i) {
    crc = static_cast<std::uint16_t>(crc ^ (data[i] << 8));
    for (int bit = 0; bit < 8; ++bit) {
      crc = (crc & 0x8000) != 0 ? static_cast<std::uint16_t>((crc << 1) ^ 0x1021)
                                : static_cast<std::uint16_t>(crc << 1);
    }
  }
  return crc;
}

constexpr std::string_view kBase32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

std::optional<std::vector<unsigned char>> decodeBase32(std::string_view text) {
  std::vector<unsigned char> out;
  unsigned buffer = 0;
  int bits = 0;
  for (const char c : text) {
    const std::size_t value = kBase32.find(c);
    if (value == std::string_view::npos) return std::nullopt;
    buffer = (buffer << 5) | static_cast<unsigned>(value);
    bits += 5;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<unsigned char>((buffer >> bits) & 0xff));
    }
  }
  return out;
}

std::string encodeBase32(const std::vector<unsigned char>& data) {
  std::string out;
  unsigned buffer = 0;
  int bits = 0;
  for (const unsigned char byte : data) {
    buffer = (buffer << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      bits -= 5;
      out += kBase32[(buffer >> bits) & 31];
    }
  }
  if (bits > 0) out += kBase32[(buffer << (5 - bits)) & 31];
  return out;
}

void appendCrc(std::vector<unsigned char>& data) {
  const std::uint16_t crc = crc16(data.data(), data.size());
  data.push_back(static_cast<unsigned char>(crc & 0xff));
  data.push_back(static_cast<unsigned char>(crc >> 8));
}

// The NKey prefix bytes: a seed is 'S' (18 << 3), a user 'U' (20 << 3).
constexpr unsigned kPrefixSeed = 18U << 3U;
constexpr unsigned kPrefixUser = 20U << 3U;
constexpr std::size_t kEd25519Bytes = 32;

}  // namespace

Result<PubAck> parsePubAck(std::string_view json) {
  simdjson::dom::parser parser;
  auto root = parseJsonObject(parser, json, "the publish's ack");
  if (!root) return root.error();
  PubAck ack;
  ack.error = errorOf(*root);
  if (ack.error) return ack;
  ack.seq = unsignedOr(*root, "seq");
  if (ack.seq == 0) return malformed("the publish's ack has no seq", json);
  bool duplicate = false;
  if ((*root)["duplicate"].get_bool().get(duplicate) == simdjson::SUCCESS) {
    ack.duplicate = duplicate;
  }
  return ack;
}

Result<MsgGetAnswer> parseMsgGet(std::string_view json) {
  simdjson::dom::parser parser;
  auto root = parseJsonObject(parser, json, "the stream's answer");
  if (!root) return root.error();
  MsgGetAnswer answer;
  answer.error = errorOf(*root);
  if (answer.error) return answer;
  element message;
  if ((*root)["message"].get(message) != simdjson::SUCCESS) {
    return malformed("the stream's answer has neither message nor error", json);
  }
  StoredMessage stored;
  stored.seq = unsignedOr(message, "seq");
  stored.subject = stringOr(message, "subject");
  if (stored.seq == 0 || stored.subject.empty()) {
    return malformed("the stream's message has no seq or subject", json);
  }
  auto headers = decodeBase64(stringOr(message, "hdrs"), "the message's headers");
  if (!headers) return headers.error();
  auto data = decodeBase64(stringOr(message, "data"), "the message's data");
  if (!data) return data.error();
  stored.headers = std::move(*headers);
  stored.data = std::move(*data);
  answer.message = std::move(stored);
  return answer;
}

std::string lastBySubjectRequest(std::string_view subject) {
  return R"({"last_by_subj":")" + std::string(subject) + R"("})";
}

std::string nextBySubjectRequest(std::uint64_t seq, std::string_view subject) {
  return R"({"seq":)" + std::to_string(seq) + R"(,"next_by_subj":")" + std::string(subject) +
         R"("})";
}

std::optional<std::string> headerValue(std::string_view headers, std::string_view name) {
  auto sameName = [&](std::string_view candidate) {
    return candidate.size() == name.size() &&
           std::equal(candidate.begin(), candidate.end(), name.begin(), [](char a, char b) {
             return std::tolower(static_cast<unsigned char>(a)) ==
                    std::tolower(static_cast<unsigned char>(b));
           });
  };
  std::size_t start = headers.find("\r\n");  // past the "NATS/1.0" status line
  while (start != std::string_view::npos) {
    start += 2;
    const std::size_t end = headers.find("\r\n", start);
    const std::string_view line =
        headers.substr(start, end == std::string_view::npos ? std::string_view::npos : end - start);
    const std::size_t colon = line.find(':');
    if (colon != std::string_view::npos && sameName(line.substr(0, colon))) {
      std::string_view value = line.substr(colon + 1);
      while (!value.empty() && value.front() == ' ') value.remove_prefix(1);
      while (!value.empty() && value.back() == ' ') value.remove_suffix(1);
      return std::string(value);
    }
    start = end;
  }
  return std::nullopt;
}

std::string subjectForHost(std::string_view prefix, std::string_view hostName) {
  std::string token(hostName);
  for (char& c : token) {
    if (std::isalnum(static_cast<unsigned char>(c)) == 0 && c != '-' && c != '_') c = '_';
  }
  if (token.empty()) token = "unknown";
  return std::string(prefix) + "." + token;
}

Result<std::string> nkeyPublicKeyOfSeed(std::string_view seed) {
  const Error invalid{ErrorCode::kInvalidArgument,
                      "is not an NKey user seed (SU..., base32, with its checksum)"};
  auto raw = decodeBase32(seed);
  if (!raw || raw->size() != 2 + kEd25519Bytes + 2) return invalid;
  const std::uint16_t crc = crc16(raw->data(), raw->size() - 2);
  if ((*raw)[raw->size() - 2] != (crc & 0xff) || (*raw)[raw->size() - 1] != (crc >> 8)) {
    return invalid;
  }
  const unsigned first = (*raw)[0];
  const unsigned second = (*raw)[1];
  if ((first & 0xf8U) != kPrefixSeed ||
      (((first & 7U) << 5U) | ((second & 0xf8U) >> 3U)) != kPrefixUser) {
    return invalid;
  }
  std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> key(
      EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, nullptr, raw->data() + 2, kEd25519Bytes),
      EVP_PKEY_free);
  std::fill(raw->begin(), raw->end(), 0);
  if (!key) return invalid;
  std::vector<unsigned char> publicKey(1 + kEd25519Bytes);
  publicKey[0] = static_cast<unsigned char>(kPrefixUser);
  std::size_t length = kEd25519Bytes;
  if (EVP_PKEY_get_raw_public_key(key.get(), publicKey.data() + 1, &length) != 1 ||
      length != kEd25519Bytes) {
    return invalid;
  }
  appendCrc(publicKey);
  return encodeBase32(publicKey);
}

}  // namespace zastava
