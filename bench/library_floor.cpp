// The memory floor under the agent: a process that loads the shared libraries the agent links
// (bench/run.sh links it against the agent binary's NEEDED list), initialises libcurl as the
// agent does at start (which initialises OpenSSL), and does nothing else. Prints its VmRSS,
// RssAnon and RssFile lines from /proc/self/status and its Rss, Pss, Private_Clean and
// Private_Dirty lines from /proc/self/smaps_rollup (bench/procmem.py reads them).
#include <curl/curl.h>

#include <fstream>
#include <iostream>
#include <string>

int main() {
  if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
    std::cerr << "library_floor: curl_global_init failed\n";
    return 1;
  }
  std::ifstream status("/proc/self/status");
  for (std::string line; std::getline(status, line);) {
    if (line.starts_with("VmRSS:") || line.starts_with("RssAnon:") ||
        line.starts_with("RssFile:")) {
      std::cout << line << "\n";
    }
  }
  std::ifstream rollup("/proc/self/smaps_rollup");
  for (std::string line; std::getline(rollup, line);) {
    if (line.starts_with("Rss:") || line.starts_with("Pss:") ||
        line.starts_with("Private_Clean:") || line.starts_with("Private_Dirty:")) {
      std::cout << line << "\n";
    }
  }
  return 0;
}
