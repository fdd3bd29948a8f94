#include "delivery/transport.h"

#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <fstream>

namespace zastava {
namespace {

constexpr std::size_t kMaxCredentialBytes = std::size_t{16} * 1024;

Error invalid(std::string_view key, const std::filesystem::path& file, std::string_view why) {
  return Error{ErrorCode::kInvalidArgument,
               std::string(key) + " " + file.string() + ": " + std::string(why)};
}

}  // namespace

Result<std::string> readCredentialFile(std::string_view key, const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) return invalid(key, file, "cannot be read");
  std::string text(kMaxCredentialBytes + 1, '\0');
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  text.resize(static_cast<std::size_t>(in.gcount()));
  if (text.size() > kMaxCredentialBytes) return invalid(key, file, "longer than 16 KiB");
  auto isSpace = [](char c) { return std::isspace(static_cast<unsigned char>(c)) != 0; };
  text.erase(text.begin(), std::find_if_not(text.begin(), text.end(), isSpace));
  text.erase(std::find_if_not(text.rbegin(), text.rend(), isSpace).base(), text.end());
  if (text.empty()) return invalid(key, file, "is empty");
  if (text.find_first_of("\r\n") != std::string::npos) {
    return invalid(key, file, "holds more than one line");
  }
  return text;
}

Result<void> checkReadable(std::string_view key, const std::filesystem::path& file) {
  if (file.empty()) return okResult();
  std::ifstream in(file, std::ios::binary);
  if (!in) return invalid(key, file, "cannot be read");
  return okResult();
}

std::string localHostName() {
  char name[256] = {};
  if (gethostname(name, sizeof(name) - 1) != 0 || name[0] == '\0') return "unknown";
  return name;
}

std::string urlForLog(std::string_view url) {
  const std::size_t hostStart = url.find("://");
  if (hostStart == std::string_view::npos) return std::string(url);
  const std::size_t at = url.find('@', hostStart + 3);
  const std::size_t pathStart = url.find('/', hostStart + 3);
  if (at == std::string_view::npos || (pathStart != std::string_view::npos && at > pathStart)) {
    return std::string(url);
  }
  return std::string(url.substr(0, hostStart + 3)) + "***@" + std::string(url.substr(at + 1));
}

}  // namespace zastava
