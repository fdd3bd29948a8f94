// parseStat: /proc/<pid>/stat (and task/<tid>/stat) of a container's process, whose comm the
// process chooses (spaces and ')' included).
#include "collectors/procfs/proc_parsers.h"
#include "fuzz/fuzz_util.h"

using namespace zastava;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const auto text = fuzz::text(data, size);
  const auto stat = parseStat(text);
  if (!stat.ok()) {
    fuzz::check(stat.error().code == ErrorCode::kMalformed, "a stat error is kMalformed");
    return 0;
  }
  fuzz::check(stat->comm.size() < text.size(), "comm is inside the text");
  return 0;
}
