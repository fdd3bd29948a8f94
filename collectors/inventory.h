// The container inventory reconciliation compares the ledger with: the engine's list, each
// container inspected.
#pragma once

#include <atomic>
#include <functional>
#include <vector>

#include "collectors/docker_api.h"

namespace zastava {

// Lists the engine's containers and inspects them, at most `concurrency` at a time, on threads
// named zastava-inspect. A container removed between the list and its inspect is left out.
// All or nothing, since a partial inventory would pass for a complete one: after a request
// fails no more are sent, and the first error is returned. Each failed request is also passed
// to `onFailedRequest`, on the thread that sent it. kCancelled when `stop` was set meanwhile.
// Any thread; blocks until the requests are done.
Result<std::vector<ContainerInspect>> takeInventory(
    DockerApi& api, int concurrency, const std::atomic<bool>& stop,
    const std::function<void(const Error&)>& onFailedRequest);

}  // namespace zastava
