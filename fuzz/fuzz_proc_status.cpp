// parseStatus: /proc/<pid>/status of a container's process.
#include "collectors/procfs/proc_parsers.h"
#include "fuzz/fuzz_util.h"

using namespace zastava;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const auto status = parseStatus(fuzz::text(data, size));
  if (!status.ok()) {
    fuzz::check(status.error().code == ErrorCode::kMalformed, "a status error is kMalformed");
    return 0;
  }
  fuzz::check(status->capEffNames.size() <= 64, "at most 64 capabilities");
  return 0;
}
