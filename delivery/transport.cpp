#include "delivery/transport.h"

#include <unistd.h>

namespace zastava {

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
