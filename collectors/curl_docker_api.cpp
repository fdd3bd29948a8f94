// DockerApi over libcurl. Every request is a GET built by api_paths.h and sent by perform().
#include <mutex>
#include <vector>

#include "collectors/api_paths.h"
#include "collectors/curl_transfer.h"
#include "collectors/decoders.h"
#include "collectors/docker_api.h"

namespace zastava {
namespace {

constexpr std::size_t kMaxPooledHandles = 8;

// Docker answers the inspect of a container that no longer exists with 404. Podman does too,
// except while the container is being removed, when it answers 500 with the cause "no such
// container" (captured: tests/fixtures/engine/podman-4.3/inspect-rm-exited.json). Both mean gone.
bool containerGone(const Transfer& response) {
  return response.status == 404 ||
         (response.status == 500 && decodeErrorCause(response.body) == "no such container");
}

class CurlDockerApi final : public DockerApi {
 public:
  CurlDockerApi(Endpoint endpoint, const Clock& clock)
      : endpoint_(std::move(endpoint)), clock_(clock) {}
  CurlDockerApi(const CurlDockerApi&) = delete;
  CurlDockerApi& operator=(const CurlDockerApi&) = delete;

  Result<PingInfo> ping() override {
    auto response = request(pingPath());
    if (!response.ok()) return response.error();
    if (response->status != 200) return statusError(endpoint_, pingPath(), *response);
    return PingInfo{response->apiVersionHeader};
  }

  Result<VersionInfo> version() override {
    const std::string path = versionPath(apiVersion());
    auto response = request(path);
    if (!response.ok()) return response.error();
    if (response->status != 200) return statusError(endpoint_, path, *response);
    return decodeVersion(response->body);
  }

  Result<std::vector<ContainerSummary>> listContainers() override {
    auto ver = ensureVersion();
    if (!ver.ok()) return ver.error();
    const std::string path = containersListPath(*ver);
    auto response = request(path);
    if (!response.ok()) return response.error();
    if (response->status != 200) return statusError(endpoint_, path, *response);
    return decodeContainerList(response->body);
  }

  Result<std::optional<ContainerInspect>> inspectContainer(std::string_view id) override {
    auto ver = ensureVersion();
    if (!ver.ok()) return ver.error();
    const std::string path = containerInspectPath(*ver, id);
    auto response = request(path);
    if (!response.ok()) return response.error();
    if (containerGone(*response)) return std::optional<ContainerInspect>();
    if (response->status != 200) return statusError(endpoint_, path, *response);
    auto inspect = decodeContainerInspect(response->body);
    if (!inspect.ok()) return inspect.error();
    return std::optional<ContainerInspect>(std::move(inspect).value());
  }

  Result<void> streamEvents(const EventQuery& query, const std::function<void()>& onOpen,
                            const EventHandler& onEvent, const std::atomic<bool>& stop) override {
    auto ver = ensureVersion();
    if (!ver.ok()) return ver.error();
    const std::string path = eventsPath(*ver, query.sinceNano);
    auto handle = CurlEasy::create();
    if (!handle) return handle.error();
    Transfer transfer;
    const auto engineAlive = [this]() {
      auto pinged = ping();
      return pinged.ok() ? okResult() : Result<void>(pinged.error());
    };
    transfer.stream =
        StreamSink{&onOpen, &onEvent, &stop, query.silenceCheck, engineAlive, &clock_};
    transfer.lastByteAt = clock_.monotonic();
    const auto done = perform(endpoint_, *handle, path, transfer);
    if (stop.load()) {
      return Error{ErrorCode::kCancelled, "event stream stopped on request"};
    }
    if (!done.ok()) return done.error();
    if (transfer.status != 200) return statusError(endpoint_, path, transfer);
    return Error{ErrorCode::kUnavailable, "event stream closed by the engine at " + endpoint_.uri};
  }

  std::string apiVersion() const override {
    std::lock_guard lock(versionMu_);
    return apiVersion_;
  }

  Result<std::string> negotiate() override {
    std::string engineVersion;
    auto pinged = ping();
    if (!pinged.ok()) return pinged.error();
    engineVersion = pinged->apiVersion;
    if (engineVersion.empty()) {
      const std::string path = versionPath({});
      auto response = request(path);
      if (!response.ok()) return response.error();
      if (response->status != 200) return statusError(endpoint_, path, *response);
      auto info = decodeVersion(response->body);
      if (!info.ok()) return info.error();
      engineVersion = info->apiVersion;
    }
    const auto engine = parseApiVersion(engineVersion);
    if (!engine) {
      return Error{ErrorCode::kMalformed, "the Docker engine at " + endpoint_.uri +
                                              " reported an unreadable API version \"" +
                                              engineVersion + "\""};
    }
    const auto newest = parseApiVersion(kMaxApiVersion);
    const auto oldest = parseApiVersion(kMinApiVersion);
    if (*engine < *oldest) {
      return Error{ErrorCode::kProtocol, "the Docker engine at " + endpoint_.uri + " speaks API " +
                                             engineVersion + ", older than the oldest supported " +
                                             std::string(kMinApiVersion)};
    }
    const std::string chosen =
        *engine < *newest ? std::to_string(engine->first) + "." + std::to_string(engine->second)
                          : std::string(kMaxApiVersion);
    std::lock_guard lock(versionMu_);
    apiVersion_ = chosen;
    return chosen;
  }

 private:
  Result<std::string> ensureVersion() {
    std::string ver = apiVersion();
    if (!ver.empty()) return ver;
    return negotiate();
  }

  // A non-stream GET on a pooled handle (connections are reused across calls).
  Result<Transfer> request(const std::string& path) {
    auto handle = acquire();
    if (!handle) return handle.error();
    Transfer transfer;
    auto done = perform(endpoint_, *handle, path, transfer);
    release(std::move(handle).value());
    if (!done.ok()) return done.error();
    return transfer;
  }

  Result<CurlEasy> acquire() {
    {
      std::lock_guard lock(poolMu_);
      if (!pool_.empty()) {
        CurlEasy handle = std::move(pool_.back());
        pool_.pop_back();
        return handle;
      }
    }
    return CurlEasy::create();
  }

  void release(CurlEasy handle) {
    handle.reset();  // keeps the connection cache, drops our callback pointers
    std::lock_guard lock(poolMu_);
    if (pool_.size() < kMaxPooledHandles) pool_.push_back(std::move(handle));
  }

  const Endpoint endpoint_;
  const Clock& clock_;
  mutable std::mutex versionMu_;
  std::string apiVersion_;  // guarded by versionMu_
  std::mutex poolMu_;
  std::vector<CurlEasy> pool_;  // guarded by poolMu_; idle handles only
};

}  // namespace

std::unique_ptr<DockerApi> makeCurlDockerApi(const Endpoint& endpoint, const Clock& clock) {
  return std::make_unique<CurlDockerApi>(endpoint, clock);
}

}  // namespace zastava
