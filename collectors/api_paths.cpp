#include "collectors/api_paths.h"

#include <algorithm>
#include <cctype>
#include <cstdio>

#include "collectors/decoders.h"

namespace zastava {
namespace {

constexpr std::string_view kContainerFilter = R"({"type":["container"]})";
constexpr std::int64_t kNanosPerSecond = 1'000'000'000;

std::string versioned(std::string_view ver, std::string_view rest) {
  std::string out;
  if (!ver.empty()) {
    out += "/v";
    out += ver;
  }
  out += rest;
  return out;
}

std::string lower(std::string_view text) {
  std::string out(text);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

bool looksLikeHtml(std::string_view body) {
  const std::string text = lower(body.substr(0, 512));
  const auto start = text.find_first_not_of(" \t\r\n");
  return start != std::string::npos && text[start] == '<' &&
         (text.find("<html") != std::string::npos || text.find("<body") != std::string::npos ||
          text.find("<h1") != std::string::npos);
}

// The path without query and without a "/vX.Y" prefix.
std::string_view unversioned(std::string_view path) {
  path = path.substr(0, path.find('?'));
  if (path.size() > 2 && path[0] == '/' && path[1] == 'v' &&
      std::isdigit(static_cast<unsigned char>(path[2]))) {
    const auto next = path.find('/', 2);
    path = next == std::string_view::npos ? std::string_view() : path.substr(next);
  }
  return path;
}

std::string_view proxyPermission(std::string_view path) {
  const std::string_view bare = unversioned(path);
  if (bare.substr(0, 11) == "/containers") return "CONTAINERS=1";
  if (bare.substr(0, 7) == "/events") return "EVENTS=1";
  if (bare.substr(0, 6) == "/_ping") return "PING=1";
  if (bare.substr(0, 8) == "/version") return "VERSION=1";
  return {};
}

}  // namespace

std::string urlEscape(std::string_view text) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(text.size());
  for (const char ch : text) {
    const auto c = static_cast<unsigned char>(ch);
    if (std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~') {
      out += ch;
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 0x0F];
    }
  }
  return out;
}

std::string pingPath() { return "/_ping"; }

std::string versionPath(std::string_view ver) { return versioned(ver, "/version"); }

std::string containersListPath(std::string_view ver) {
  return versioned(ver, "/containers/json?all=1");
}

std::string containerInspectPath(std::string_view ver, std::string_view id) {
  return versioned(ver, "/containers/" + urlEscape(id) + "/json");
}

std::string eventsPath(std::string_view ver, std::int64_t sinceNano) {
  std::string path = versioned(ver, "/events?filters=" + urlEscape(kContainerFilter));
  if (sinceNano > 0) {
    char since[48];
    std::snprintf(since, sizeof since, "&since=%lld.%09lld",
                  static_cast<long long>(sinceNano / kNanosPerSecond),
                  static_cast<long long>(sinceNano % kNanosPerSecond));
    path += since;
  }
  return path;
}

std::string diagnoseForbidden(std::string_view path, std::string_view body,
                              std::string_view endpointUri, long status) {
  const std::string statusText =
      status == 401 ? "401 Unauthorized" : std::to_string(status) + " Forbidden";
  const std::string where = endpointUri.empty() ? "" : " at " + std::string(endpointUri);
  if (looksLikeHtml(body)) {
    std::string message = "the Docker API proxy" + where + " refused GET " + std::string(path) +
                          " (" + statusText + "); ";
    const std::string_view permission = proxyPermission(path);
    if (permission.empty()) {
      message += "the agent never needs this request";
    } else {
      message += "allow it with " + std::string(permission) + " in docker-socket-proxy";
    }
    return message;
  }
  std::string engineMessage = decodeErrorMessage(body);
  if (engineMessage.empty()) engineMessage = "(no message)";
  return "the Docker engine" + where + " itself refused GET " + std::string(path) + " (" +
         statusText + ", not a socket proxy: the answer is not HTML): " + engineMessage +
         "; check the engine's authorization plugin or the user's access to the socket";
}

}  // namespace zastava
