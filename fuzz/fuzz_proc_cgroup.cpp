// parseCgroupPath (/proc/<pid>/cgroup, v1 and v2 lines) and containerIdFromCgroupPath on its
// answer: how a scan checks that a pid is the container's.
#include "collectors/procfs/proc_parsers.h"
#include "fuzz/fuzz_util.h"

using namespace zastava;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const auto text = fuzz::text(data, size);
  const auto path = parseCgroupPath(text);
  if (!path.ok()) {
    fuzz::check(path.error().code == ErrorCode::kMalformed, "a cgroup error is kMalformed");
  }
  const std::string id = containerIdFromCgroupPath(path.ok() ? std::string_view(*path) : text);
  fuzz::check(id.empty() || id.size() == 64, "a container id is 64 hex characters");
  return 0;
}
