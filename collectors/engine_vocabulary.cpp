#include "collectors/engine_vocabulary.h"

namespace zastava {

namespace {

// Docker's name for a container action Podman names its own way; the action itself otherwise.
std::string_view dockerContainerAction(std::string_view action) {
  if (action == "remove") return "destroy";
  if (action == "exec") return "exec_start";
  if (action == "exec_died") return "exec_die";
  return action;
}

}  // namespace

void toDockerVocabulary(EngineEvent& event, std::string_view healthStatus) {
  if (event.type != "container") return;
  const std::string_view docker = dockerContainerAction(event.action);
  if (docker != event.action) {
    event.action.assign(docker);
    event.mapped = true;
  }
  if (event.action == "health_status" && event.actionDetail.empty() && !healthStatus.empty()) {
    event.actionDetail.assign(healthStatus);
    event.mapped = true;
  }
}

}  // namespace zastava
