// One configuration value as the environment or a flag gives it, checked and stored by its key's
// kind (applyValue, agent/config_table.h: integers in a range, endpoints, http(s) URLs,
// absolute paths, booleans, IP addresses, log levels, name lists) and shown again (showValue).
// The fast twin of fuzz_config, which runs the whole command line (CLI11) for each input.
// Input: the first byte picks the key (modulo the number of keys), the rest is the value.
#include <string>

#include "agent/config_table.h"
#include "fuzz/fuzz_util.h"

using namespace zastava;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const KeySpec& spec = kKeys[data[0] % kKeys.size()];
  const std::string value(fuzz::text(data + 1, size - 1));
  Config config;
  const auto applied = applyValue(spec, value, "fuzz", config);
  if (!applied.ok()) {
    fuzz::check(applied.error().code == ErrorCode::kInvalidArgument,
                "a bad value is kInvalidArgument");
    return 0;
  }
  fuzz::check(!showValue(spec, config).empty(), "a stored value is shown");
  return 0;
}
