// decodeContainerList: the body of GET /containers/json?all=1.
#include "collectors/decoders.h"
#include "fuzz/fuzz_util.h"

using namespace zastava;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const auto list = decodeContainerList(fuzz::text(data, size));
  if (!list.ok()) {
    fuzz::check(list.error().code == ErrorCode::kMalformed, "a list error is kMalformed");
    return 0;
  }
  for (const ContainerSummary& container : *list) {
    fuzz::check(!container.id.empty(), "every listed container has an Id");
  }
  return 0;
}
