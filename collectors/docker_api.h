// The seam to the Docker Engine. Read-only by construction: these five calls are everything the
// agent can ask of the engine, and each is a GET. Nothing else can be expressed.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "collectors/endpoint.h"
#include "collectors/engine_types.h"
#include "common/clock.h"
#include "common/result.h"

namespace zastava {

// Where to resume the event stream. `sinceNano` 0 means "from now".
struct EventQuery {
  std::int64_t sinceNano = 0;
  // After this long without a byte on the stream, /_ping the engine (on another connection)
  // and give the stream up if the ping fails: a half-open connection through a proxy would
  // otherwise wait forever. 0 turns the check off.
  std::chrono::seconds silenceCheck{0};
};

// Called once per event, on the stream thread, in engine order. Must return quickly (the engine
// drops events for a reader slower than 100 ms).
using EventHandler = std::function<void(Result<EngineEvent>)>;

class DockerApi {
 public:
  virtual ~DockerApi() = default;

  // GET /_ping. Any thread.
  virtual Result<PingInfo> ping() = 0;
  // GET /version. Any thread.
  virtual Result<VersionInfo> version() = 0;
  // GET /containers/json?all=1. Any thread.
  virtual Result<std::vector<ContainerSummary>> listContainers() = 0;
  // GET /containers/{id}/json. std::nullopt when the engine says the container is gone (404, or
  // Podman's 500 with the cause "no such container" while it removes one).
  // Safe to call from several threads at once.
  virtual Result<std::optional<ContainerInspect>> inspectContainer(std::string_view id) = 0;
  // GET /events?filters={"type":["container"]}&since=... . Blocks, calling `onEvent` for every
  // event (a line that does not decode is passed as an Error and the stream goes on), until the
  // stream ends (returns an Error saying why), `stop` becomes true (returns kCancelled) or
  // `onOpen` has been called and the engine closes the stream cleanly (returns ok).
  // `onOpen` is called once the engine has answered 200, before the first event.
  // One stream at a time; the calling thread is the stream reader.
  virtual Result<void> streamEvents(const EventQuery& query, const std::function<void()>& onOpen,
                                    const EventHandler& onEvent, const std::atomic<bool>& stop) = 0;

  // The API version requests are sent with ("1.41"), after negotiate(); empty before.
  virtual std::string apiVersion() const = 0;
  // Asks /_ping (falling back to /version) which API version the engine speaks and settles on
  // min(engine's, kMaxApiVersion). Returns the chosen version.
  virtual Result<std::string> negotiate() = 0;
};

// The newest engine API whose shapes the decoders understand.
inline constexpr std::string_view kMaxApiVersion = "1.52";
// The oldest engine API the agent accepts.
inline constexpr std::string_view kMinApiVersion = "1.24";

// The libcurl implementation; `clock` measures the event stream's silence. Never fails to
// construct; errors surface on each call.
std::unique_ptr<DockerApi> makeCurlDockerApi(const Endpoint& endpoint, const Clock& clock);

}  // namespace zastava
