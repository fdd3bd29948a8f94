// zastava-agent: wires the modules together and runs until SIGTERM/SIGINT.
// Exit codes: 0 clean stop, 1 start-up failure (port in use, data directory unusable),
// 2 configuration error, 70 an internal invariant broke (ZASTAVA_BUG, common/invariant.h).
#include <pthread.h>
#include <spdlog/spdlog.h>
#include <systemd/sd-daemon.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <exception>
#include <string>

#include "agent/config.h"
#include "agent/evidence_collector.h"
#include "agent/logging.h"
#include "agent/pipeline.h"
#include "agent/posture_census.h"
#include "agent/records_command.h"
#include "agent/seal_key_command.h"
#include "agent/verify_command.h"
#include "buffer/recorder.h"
#include "collectors/docker_api.h"
#include "collectors/endpoint.h"
#include "common/invariant.h"
#include "common/version.h"
#include "delivery/backend_client.h"
#include "delivery/delivery_backlog.h"
#include "delivery/dispatcher.h"
#include "health/health_state.h"
#include "health/http_server.h"
#include "health/metrics.h"

namespace zastava {
namespace {

constexpr int kExitStartFailure = 1;
constexpr int kExitConfigError = 2;
// In the data directory: one line per broken invariant, so their count outlives the exits.
constexpr const char* kInvariantFailuresFile = "invariant-failures.log";

// Counts broken invariants in `metrics` while it lives; after run() they are still logged and
// appended to kInvariantFailuresFile.
class CountInvariantFailures {
 public:
  explicit CountInvariantFailures(Metrics& metrics) {
    onInvariantFailure([&metrics] { metrics.countInvariantFailures(1); });
  }
  ~CountInvariantFailures() { onInvariantFailure(nullptr); }
  CountInvariantFailures(const CountInvariantFailures&) = delete;
  CountInvariantFailures& operator=(const CountInvariantFailures&) = delete;
};

std::optional<std::string> lookupEnv(std::string_view name) {
  const char* value = std::getenv(std::string(name).c_str());
  if (value == nullptr) return std::nullopt;
  return std::string(value);
}

sigset_t shutdownSignals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  return set;
}

// sd_notify(): > 0 sent, 0 not under systemd (no NOTIFY_SOCKET), < 0 failed. A failure means
// systemd may never see READY=1 or WATCHDOG=1, and stop or restart the agent for it: said once,
// as an error. Main thread.
void notifySystemd(const std::string& state) {
  static bool warned = false;
  const int rc = sd_notify(0, state.c_str());
  if (rc < 0 && !warned) {
    warned = true;
    spdlog::error("cannot notify systemd of {}: {}; it may stop or restart the agent for that",
                  state.substr(0, state.find('\n')), std::strerror(-rc));
  }
}

// Feeds systemd's watchdog (WatchdogSec=) only while no worker is stalled (HealthState::
// liveness), so a hung writer or enricher gets the agent restarted; says so once per stall.
void feedWatchdog(const HealthState& health, bool& stalled) {
  Verdict alive = health.liveness();
  if (alive.ok) {
    notifySystemd("WATCHDOG=1");
    if (stalled) spdlog::info("all workers are making progress again; watchdog fed again");
  } else if (!stalled) {
    spdlog::error("{}: no longer feeding the systemd watchdog, /livez answers 503", alive.reason);
  }
  stalled = !alive.ok;
}

// Blocks the main thread until SIGTERM/SIGINT, telling systemd READY=1 the first time the agent
// is ready (stream open, first inventory done), keeping STATUS= current and feeding the watchdog.
int waitForShutdown(const HealthState& health) {
  sigset_t signals = shutdownSignals();
  bool notifiedReady = false;
  bool stalled = false;
  std::string lastStatus;
  while (true) {
    timespec tick{1, 0};
    int signal = sigtimedwait(&signals, nullptr, &tick);
    if (signal == SIGTERM || signal == SIGINT) return signal;
    feedWatchdog(health, stalled);
    Verdict ready = health.readiness();
    std::string status = "STATUS=" + std::string(ready.ok ? "watching containers" : ready.reason);
    if (ready.ok && !notifiedReady) {
      notifySystemd("READY=1\n" + status);
      notifiedReady = true;
      lastStatus = status;
    } else if (status != lastStatus) {
      notifySystemd(status);
      lastStatus = status;
    }
  }
}

int run(const Config& config, const Endpoint& endpoint) {
  // Signals are taken synchronously by the main thread; every thread started later inherits
  // the mask.
  sigset_t signals = shutdownSignals();
  if (const int err = pthread_sigmask(SIG_BLOCK, &signals, nullptr); err != 0) {
    ZASTAVA_BUG(std::string("pthread_sigmask(SIG_BLOCK) failed: ") + std::strerror(err));
  }

  SystemClock clock;
  Metrics metrics({std::string(kVersion), std::string(kGitCommit)});
  const CountInvariantFailures countingInvariantFailures(metrics);
  HealthState health(metrics, clock, std::chrono::seconds(config.stallSeconds));
  HealthServer server(health, metrics);
  if (auto started = server.start(config.healthAddress, config.healthPort); !started.ok()) {
    spdlog::critical("{}", started.error().message);
    return kExitStartFailure;
  }
  // Backend delivery (with Backend:Url), in dependency order: the transport, the backlog the
  // Recorder tells of its commits, the Recorder, then the Dispatcher, which reads the ledger and
  // writes its agent.gap records to the Recorder.
  const DispatcherOptions delivery = dispatcherOptions(config);
  std::unique_ptr<DeliveryTransport> backend;
  std::unique_ptr<DeliveryBacklog> backlog;
  if (delivery.enabled()) {
    auto transport = makeTransport(delivery);
    if (!transport.ok()) {
      spdlog::critical("cannot deliver to the backend: {}", transport.error().message);
      return kExitConfigError;
    }
    backend = std::move(*transport);
    backlog = std::make_unique<DeliveryBacklog>(metrics);
  }
  RecorderOptions recorderOptions;
  recorderOptions.dataDirectory = config.dataDirectory;
  recorderOptions.limits = bufferLimits(config);
  recorderOptions.keepUndelivered = delivery.enabled();
  recorderOptions.commitObserver = backlog.get();
  recorderOptions.sealInterval = std::chrono::seconds(config.sealIntervalSeconds);
  auto recorder = Recorder::open(recorderOptions, clock, metrics, health);
  if (!recorder.ok()) {
    spdlog::critical("cannot open the event buffer: {}", recorder.error().message);
    return kExitStartFailure;
  }
  const auto invariantFile = config.dataDirectory / kInvariantFailuresFile;
  auto earlierFailures = keepInvariantFailuresIn(invariantFile);
  if (!earlierFailures.ok()) {
    spdlog::critical("cannot keep the count of invariant failures: {}",
                     earlierFailures.error().message);
    return kExitStartFailure;
  }
  metrics.countInvariantFailures(*earlierFailures);
  if (*earlierFailures > 0) {
    spdlog::info("{} internal invariant failure(s) of earlier runs are recorded in {}",
                 *earlierFailures, invariantFile.string());
  }
  std::unique_ptr<Dispatcher> dispatcher;
  if (delivery.enabled()) {
    auto started = Dispatcher::start(delivery, std::move(backend), *backlog, **recorder, clock,
                                     metrics, health);
    if (!started.ok()) {
      spdlog::critical("cannot start backend delivery: {}", started.error().message);
      return kExitStartFailure;
    }
    dispatcher = std::move(*started);
  }
  auto api = makeCurlDockerApi(endpoint, clock);
  const Redactor redactor(RedactionPolicy{config.envKeepValues, config.redactPatterns});
  PostureCensus census(metrics, posturePolicy(config));
  EvidenceCollector evidence(**recorder, census, metrics, clock, redactor, evidenceOptions(config));
  Pipeline pipeline(*api, **recorder, evidence, census, health, metrics, clock, redactor,
                    pipelineOptions(config));

  spdlog::info("zastava-agent {} starting: docker endpoint {}, data directory {}, health on {}:{}",
               kVersion, endpoint.uri, config.dataDirectory.string(), config.healthAddress,
               server.port());
  evidence.start();
  pipeline.start();
  int signal = waitForShutdown(health);

  spdlog::info("received {}, stopping", signal == SIGTERM ? "SIGTERM" : "SIGINT");
  notifySystemd("STOPPING=1");
  pipeline.stop();
  evidence.stop();
  if (dispatcher) dispatcher->stop();
  (*recorder)->stop();
  server.stop();
  spdlog::info("stopped cleanly");
  return 0;
}

}  // namespace

// The agent's commands; main() adds only the last resort for an exception nobody expected.
int runCommand(int argc, char** argv) {
  if (argc >= 2 && argv[1] == kRecordsCommand) {
    return runRecordsCommand(argc - 1, argv + 1, processEnvironment());
  }
  if (argc >= 2 && argv[1] == kSealKeyCommand) {
    return runSealKeyCommand(argc - 1, argv + 1, processEnvironment());
  }
  if (argc >= 2 && argv[1] == kVerifyCommand) {
    return runVerifyCommand(argc - 1, argv + 1, processEnvironment());
  }
  auto parsed = parseCommandLine(argc, argv, processEnvironment());
  if (!parsed.ok()) {
    std::fprintf(stderr, "zastava-agent: configuration error:\n%s\n",
                 parsed.error().message.c_str());
    return kExitConfigError;
  }
  if (parsed->command == Command::kHelp || parsed->command == Command::kVersion) {
    std::fputs(parsed->text.c_str(), stdout);
    return 0;
  }
  const Config& config = parsed->config;
  auto endpoint = resolveEndpoint(config.dockerEndpoint, lookupEnv);
  if (!endpoint.ok()) {
    std::fprintf(stderr, "zastava-agent: configuration error:\nDockerEndpoint: %s\n",
                 endpoint.error().message.c_str());
    return kExitConfigError;
  }
  if (const DispatcherOptions delivery = dispatcherOptions(config); delivery.enabled()) {
    if (auto transport = makeTransport(delivery); !transport.ok()) {
      std::fprintf(stderr, "zastava-agent: configuration error:\n%s\n",
                   transport.error().message.c_str());
      return kExitConfigError;
    }
  }
  if (parsed->command == Command::kCheckConfig) {
    std::printf("%sDocker endpoint in use: %s\n", describeConfig(config, parsed->origins).c_str(),
                endpoint->uri.c_str());
    return 0;
  }
  setupLogging(config.logLevel, runningUnderSystemd());
  return run(config, *endpoint);
}

}  // namespace zastava

// Every failure the agent expects is an Error it reports; an exception that reaches main()
// (memory running out, a thread that cannot start) is a broken invariant, counted, logged and
// exited on as ZASTAVA_BUG does.
int main(int argc, char** argv) {
  try {
    return zastava::runCommand(argc, argv);
  } catch (const std::exception& e) {
    ZASTAVA_BUG(std::string("uncaught exception: ") + e.what());
  } catch (...) {
    ZASTAVA_BUG("uncaught exception of an unknown type");
  }
}
