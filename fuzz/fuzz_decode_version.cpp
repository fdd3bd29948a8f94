// decodeVersion (the body of GET /version) and the bodies of refusals and errors:
// decodeErrorMessage and decodeErrorCause (any non-2xx answer), and diagnoseForbidden (a 401 or
// 403, from the engine or from a socket proxy's HTML page).
#include "collectors/api_paths.h"
#include "collectors/decoders.h"
#include "fuzz/fuzz_util.h"

using namespace zastava;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const auto body = fuzz::text(data, size);
  const auto version = decodeVersion(body);
  if (version.ok()) {
    fuzz::check(!version->apiVersion.empty(), "a version has an ApiVersion");
  } else {
    fuzz::check(version.error().code == ErrorCode::kMalformed, "a version error is kMalformed");
  }
  (void)decodeErrorMessage(body);
  (void)decodeErrorCause(body);
  fuzz::check(!diagnoseForbidden(pingPath(), body, "tcp://proxy:2375", 403).empty(),
              "a refusal is explained");
  return 0;
}
