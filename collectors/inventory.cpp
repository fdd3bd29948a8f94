#include "collectors/inventory.h"

#include <algorithm>
#include <mutex>
#include <optional>
#include <thread>

#include "common/thread_name.h"

namespace zastava {

Result<std::vector<ContainerInspect>> takeInventory(
    DockerApi& api, int concurrency, const std::atomic<bool>& stop,
    const std::function<void(const Error&)>& onFailedRequest) {
  auto listed = api.listContainers();
  if (!listed.ok()) {
    onFailedRequest(listed.error());
    return listed.error();
  }
  const auto& containers = *listed;
  std::vector<std::optional<ContainerInspect>> inspected(containers.size());
  std::atomic<std::size_t> next{0};
  std::atomic<bool> failed{false};
  std::mutex errorMu;
  std::optional<Error> firstError;
  auto work = [&] {
    nameThisThread("zastava-inspect");
    for (std::size_t i = next++; i < containers.size() && !stop && !failed; i = next++) {
      auto result = api.inspectContainer(containers[i].id);
      if (result.ok()) {
        inspected[i] = std::move(result).value();  // nullopt: removed since the list
        continue;
      }
      onFailedRequest(result.error());
      failed = true;
      std::lock_guard lock(errorMu);
      if (!firstError) firstError = result.error();
    }
  };
  const std::size_t workers =
      std::min(static_cast<std::size_t>(std::max(concurrency, 1)), containers.size());
  std::vector<std::thread> pool;
  for (std::size_t w = 0; w < workers; ++w) pool.emplace_back(work);
  for (auto& thread : pool) thread.join();
  if (stop) return Error{ErrorCode::kCancelled, "stopping"};
  if (firstError) return *firstError;
  std::vector<ContainerInspect> engine;
  engine.reserve(inspected.size());
  for (auto& inspect : inspected) {
    if (inspect) engine.push_back(std::move(*inspect));
  }
  return engine;
}

}  // namespace zastava
