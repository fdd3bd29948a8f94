// Helpers for the configuration tests: parse an argument list against a given environment.
#pragma once

#include <string>
#include <vector>

#include "agent/config.h"

namespace zastava::testing {

inline Result<ParsedCommandLine> parseArgs(std::vector<std::string> args,
                                           const Environment& env = {}) {
  std::vector<const char*> argv = {"zastava-agent"};
  for (const std::string& arg : args) argv.push_back(arg.c_str());
  return parseCommandLine(static_cast<int>(argv.size()), argv.data(), env);
}

inline bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

}  // namespace zastava::testing
