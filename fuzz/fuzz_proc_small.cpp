// The small /proc parsers: parseCmdline (/proc/<pid>/cmdline, the process's own argv),
// parseBootTime (/proc/stat), parseNamespaceLink (readlink of /proc/<pid>/ns/*).
#include <string>

#include "collectors/procfs/proc_parsers.h"
#include "fuzz/fuzz_util.h"

using namespace zastava;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const auto text = fuzz::text(data, size);
  std::size_t bytes = 0;
  for (const std::string& arg : parseCmdline(text)) {
    fuzz::check(arg.find('\0') == std::string::npos, "an argument holds no NUL");
    bytes += arg.size();
  }
  fuzz::check(bytes <= text.size(), "arguments are inside the text");
  (void)parseBootTime(text);
  const auto inode = parseNamespaceLink(text);
  if (!inode.ok()) {
    fuzz::check(inode.error().code == ErrorCode::kMalformed, "a link error is kMalformed");
  }
  return 0;
}
