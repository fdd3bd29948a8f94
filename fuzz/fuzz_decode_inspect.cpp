// decodeContainerInspect: the body of GET /containers/{id}/json, with the security posture read
// from it (HostConfig, Mounts, Config, State), then the posture checks over it (they parse port
// bindings, restart policies and security options the engine sent).
#include "collectors/decoders.h"
#include "fuzz/fuzz_util.h"
#include "posture/evaluate.h"

using namespace zastava;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const auto inspect = decodeContainerInspect(fuzz::text(data, size));
  if (!inspect.ok()) {
    fuzz::check(inspect.error().code == ErrorCode::kMalformed, "an inspect error is kMalformed");
    return 0;
  }
  fuzz::check(!inspect->id.empty(), "an inspect has an Id");
  const PostureFindings findings =
      evaluateInspectChecks(inspect->posture, postureWaiverOf(inspect->labels), PosturePolicy{});
  for (const CheckFinding& finding : findings.checks) {
    fuzz::check(finding.result == CheckResult::kFailed || finding.value.empty(),
                "only a failed check has a value");
  }
  return 0;
}
