// toDockerVocabulary with splitAction: an event's Type, Action and HealthStatus exactly as the
// engine sent them (decodeEvent passes them on unchecked). Input: three fields separated by
// '\n' (type, raw action, health status).
#include <string>

#include "collectors/decoders.h"
#include "collectors/engine_vocabulary.h"
#include "fuzz/fuzz_util.h"

using namespace zastava;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const auto fields = fuzz::lines(fuzz::text(data, size));
  EngineEvent event;
  event.type = fields.size() > 0 ? std::string(fields[0]) : std::string();
  event.rawAction = fields.size() > 1 ? std::string(fields[1]) : std::string();
  const std::string_view health = fields.size() > 2 ? fields[2] : std::string_view();
  splitAction(event.rawAction, event.action, event.actionDetail);
  const std::string action = event.action;
  const std::string detail = event.actionDetail;
  fuzz::check(event.actionDetail.empty() || event.rawAction.find(": ") != std::string::npos,
              "a detail comes after ': '");
  toDockerVocabulary(event, health);
  fuzz::check(event.mapped == (event.action != action || event.actionDetail != detail),
              "mapped says exactly whether the action or detail changed");
  if (event.type != "container") fuzz::check(!event.mapped, "only container events are mapped");
  return 0;
}
