#include "health/http_server.h"

#include <httplib.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <exception>
#include <mutex>
#include <thread>

#include "common/thread_name.h"
#include "health/health_state.h"
#include "health/metrics.h"

namespace zastava {

namespace {

constexpr const char* kPlainText = "text/plain; charset=utf-8";
constexpr const char* kExpositionType = "text/plain; version=0.0.4; charset=utf-8";
// Probes and scrapes are tiny and rare; two workers keep one slow client from blocking probes.
constexpr std::size_t kWorkerThreads = 2;

void answer(const Verdict& verdict, httplib::Response& response) {
  response.status = verdict.ok ? 200 : 503;
  response.set_content(verdict.reason + "\n", kPlainText);
}

std::string describe(const std::exception_ptr& failure) {
  try {
    std::rethrow_exception(failure);
  } catch (const std::exception& e) {
    return e.what();
  } catch (...) {
    return "an exception that is not a std::exception";
  }
}

}  // namespace

struct HealthServer::Impl {
  Impl(const HealthState& state, const Metrics& all) : health(state), metrics(all) {}

  const HealthState& health;
  const Metrics& metrics;
  httplib::Server server;
  std::thread thread;
  int port = 0;
  std::string where;  // "address:port", for messages
  std::atomic<bool> stopping{false};
  std::mutex mu;
  bool started = false;      // guarded by mu: start() returned ok
  bool listenEnded = false;  // guarded by mu
  std::string listenError;   // guarded by mu: why the listen loop ended on its own
};

HealthServer::HealthServer(const HealthState& health, const Metrics& metrics)
    : impl_(std::make_unique<Impl>(health, metrics)) {
  auto& server = impl_->server;
  server.new_task_queue = [] { return new httplib::ThreadPool(kWorkerThreads); };
  // httplib's default also sets SO_REUSEPORT, which would let a second agent share the port.
  // Without SO_REUSEADDR a restart can find the port taken for a while (TIME_WAIT); the bind
  // error then says so.
  server.set_socket_options([](socket_t sock) {
    int yes = 1;
    if (setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes) != 0) {
      spdlog::warn("health server: cannot set SO_REUSEADDR: {}", std::strerror(errno));
    }
  });
  const HealthState& state = health;
  auto liveness = [&state](const httplib::Request&, httplib::Response& response) {
    answer(state.liveness(), response);
  };
  server.Get("/healthz", liveness);
  server.Get("/livez", liveness);
  server.Get("/readyz", [&state](const httplib::Request&, httplib::Response& response) {
    answer(state.readiness(), response);
  });
  server.Get("/metrics", [&metrics](const httplib::Request&, httplib::Response& response) {
    response.set_content(metrics.exposition(), kExpositionType);
  });
  // What a handler throws (memory running out) is answered 500 with its message and logged.
  server.set_exception_handler([](const httplib::Request& request, httplib::Response& response,
                                  const std::exception_ptr& failure) {
    const std::string what = describe(failure);
    spdlog::error("health server: {} {} failed: {}", request.method, request.path, what);
    response.status = 500;
    response.set_content("internal error: " + what + "\n", kPlainText);
  });
}

HealthServer::~HealthServer() { stop(); }

Result<void> HealthServer::start(const std::string& address, int port) {
  auto& server = impl_->server;
  impl_->where = address + ":" + std::to_string(port);
  errno = 0;  // a name that does not resolve fails without one
  int bound = port;
  if (port == 0) {
    bound = server.bind_to_any_port(address);
  } else if (!server.bind_to_port(address, port)) {
    bound = -1;
  }
  if (bound <= 0) {
    const int err = errno;
    return Error{ErrorCode::kUnavailable,
                 "cannot listen for health checks on " + impl_->where + ": " +
                     (err != 0 ? std::strerror(err) : "the address does not resolve")};
  }
  impl_->port = bound;
  impl_->where = address + ":" + std::to_string(bound);
  impl_->thread = std::thread([impl = impl_.get()] {
    nameThisThread("zastava-http");
    std::string error;
    try {
      errno = 0;
      if (!impl->server.listen_after_bind()) {
        error = std::string("accepting connections failed: ") +
                (errno != 0 ? std::strerror(errno) : "no reason given");
      }
    } catch (const std::exception& e) {  // its worker threads could not be started
      error = e.what();
    }
    if (impl->stopping) {
      error.clear();
    } else if (error.empty()) {
      error = "stopped on its own";
    }
    bool afterStart = false;
    {
      std::lock_guard lock(impl->mu);
      impl->listenEnded = true;
      impl->listenError = error;
      afterStart = impl->started;
    }
    // Before, start() returns the error instead.
    if (afterStart && !error.empty()) {
      spdlog::critical(
          "health server on {} stopped: {}; /healthz, /livez, /readyz and /metrics "
          "no longer answer until the agent restarts",
          impl->where, error);
    }
  });
  // httplib's stop() does nothing until the listen loop runs: wait for it so stop() always works,
  // and so a loop that ends at once is a failed start, not a silent one.
  while (!server.is_running()) {
    {
      std::lock_guard lock(impl_->mu);
      if (impl_->listenEnded) break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  std::string failed;
  {
    std::lock_guard lock(impl_->mu);
    if (impl_->listenEnded) {
      failed = impl_->listenError;
    } else {
      impl_->started = true;
    }
  }
  if (!failed.empty()) {
    impl_->thread.join();
    impl_->port = 0;
    return Error{ErrorCode::kUnavailable,
                 "cannot serve health checks on " + impl_->where + ": " + failed};
  }
  return okResult();
}

int HealthServer::port() const { return impl_->port; }

void HealthServer::stop() {
  if (!impl_->thread.joinable()) return;
  impl_->stopping = true;
  impl_->server.stop();
  impl_->thread.join();
}

}  // namespace zastava
