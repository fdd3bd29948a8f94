// The Redactor on what a container chooses: its environment ("NAME=value" as the inspect sends
// it), its labels (and the event attributes repeating them) and its processes' command lines.
// Input: one item a line, used as all three. No value of a secret-looking name is kept.
#include <map>
#include <string>
#include <vector>

#include "agent/redaction.h"
#include "fuzz/fuzz_util.h"

using namespace zastava;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const Redactor redactor;
  std::vector<std::string> items;
  std::map<std::string, std::string> labels;
  for (const std::string_view line : fuzz::lines(fuzz::text(data, size))) {
    items.emplace_back(line);
    const auto equals = line.find('=');
    labels.emplace(std::string(line.substr(0, equals)),
                   equals == std::string_view::npos ? "" : std::string(line.substr(equals + 1)));
  }
  for (const auto& [name, value] : redactor.environment(items)) {
    if (redactor.looksSecret(name)) {
      fuzz::check(value.empty() || value == kRedacted, "a secret variable's value is redacted");
    }
  }
  for (const auto& [key, value] : redactor.labels(labels)) {
    if (redactor.looksSecret(key)) fuzz::check(value == kRedacted, "a secret label is redacted");
  }
  fuzz::check(redactor.commandLine(items).size() == items.size(),
              "a command line keeps its arguments");
  return 0;
}
