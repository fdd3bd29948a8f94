// parseMaps (/proc/<pid>/maps of a container's process) and executableFileMappings on what it
// returns: the libraries a scan hashes.
#include "collectors/procfs/proc_parsers.h"
#include "fuzz/fuzz_util.h"

using namespace zastava;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const auto entries = parseMaps(fuzz::text(data, size));
  if (!entries.ok()) {
    fuzz::check(entries.error().code == ErrorCode::kMalformed, "a maps error is kMalformed");
    return 0;
  }
  for (const MapsEntry& entry : *entries) {
    fuzz::check(entry.perms.size() == 4, "perms are 4 characters");
  }
  for (const LibraryRef& library : executableFileMappings(*entries)) {
    fuzz::check(!library.path.empty() && library.path.front() == '/' && library.inode != 0,
                "a library is an absolute path with an inode");
  }
  return 0;
}
