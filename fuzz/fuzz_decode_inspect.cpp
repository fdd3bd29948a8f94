// decodeContainerInspect: the body of GET /containers/{id}/json, with the security posture read
// from it (HostConfig, Mounts, Config, State).
#include "collectors/decoders.h"
#include "fuzz/fuzz_util.h"

using namespace zastava;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const auto inspect = decodeContainerInspect(fuzz::text(data, size));
  if (!inspect.ok()) {
    fuzz::check(inspect.error().code == ErrorCode::kMalformed, "an inspect error is kMalformed");
    return 0;
  }
  fuzz::check(!inspect->id.empty(), "an inspect has an Id");
  return 0;
}
