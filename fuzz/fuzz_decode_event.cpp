// decodeEvent: one line of GET /events, as the engine (or whatever answers on its socket) sends
// it; with it splitAction and toDockerVocabulary, which it applies.
#include <string>

#include "collectors/decoders.h"
#include "fuzz/fuzz_util.h"

using namespace zastava;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const auto event = decodeEvent(fuzz::text(data, size));
  if (!event.ok()) {
    fuzz::check(event.error().code == ErrorCode::kMalformed, "an event error is kMalformed");
    return 0;
  }
  fuzz::check(!event->actorId.empty(), "an event has an actor id");
  // When nothing was mapped, action and detail are what splitAction makes of the raw action.
  if (!event->mapped) {
    std::string action, detail;
    splitAction(event->rawAction, action, detail);
    fuzz::check(action == event->action && detail == event->actionDetail,
                "an unmapped event's action is its raw action split");
  }
  return 0;
}
