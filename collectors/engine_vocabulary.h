// One vocabulary for engine events, whatever the engine: Docker's. Podman's Docker-compatible
// API names some container actions its own way (tests/fixtures/engine/podman-4.3); this is the
// one place that maps them (docs/records.md, "Engine actions and record kinds"). Pure, any
// thread.
#pragma once

#include <string_view>

#include "collectors/engine_types.h"

namespace zastava {

// Puts a decoded event's `action` and `actionDetail` (splitAction's) in Docker's words. Only
// container events change: Podman's `remove` becomes `destroy`, `exec` `exec_start`,
// `exec_died` `exec_die`; a `health_status` without a detail takes `healthStatus` (the event's
// top-level HealthStatus, Podman's; empty when absent). Sets `mapped` when it changed anything.
// Every other action (Docker's, Podman's `init` and `cleanup`) and `rawAction` are left as
// they are.
void toDockerVocabulary(EngineEvent& event, std::string_view healthStatus);

}  // namespace zastava
