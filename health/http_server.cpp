#include "health/http_server.h"

#include <httplib.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
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

}  // namespace

struct HealthServer::Impl {
  const HealthState& health;
  const Metrics& metrics;
  httplib::Server server;
  std::thread thread;
  int port = 0;
  std::atomic<bool> listenReturned{false};
};

HealthServer::HealthServer(const HealthState& health, const Metrics& metrics)
    : impl_(new Impl{health, metrics, {}, {}, 0, false}) {
  auto& server = impl_->server;
  server.new_task_queue = [] { return new httplib::ThreadPool(kWorkerThreads); };
  // httplib's default also sets SO_REUSEPORT, which would let a second agent share the port.
  server.set_socket_options([](socket_t sock) {
    int yes = 1;
    setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
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
  server.set_exception_handler(
      [](const httplib::Request&, httplib::Response& response, std::exception_ptr) {
        response.status = 500;
        response.set_content("internal error\n", kPlainText);
      });
}

HealthServer::~HealthServer() { stop(); }

Result<void> HealthServer::start(const std::string& address, int port) {
  auto& server = impl_->server;
  int bound = port;
  if (port == 0) {
    bound = server.bind_to_any_port(address);
  } else if (!server.bind_to_port(address, port)) {
    bound = -1;
  }
  if (bound <= 0) {
    return Error{ErrorCode::kUnavailable, "cannot listen for health checks on " + address + ":" +
                                              std::to_string(port) + ": " + std::strerror(errno)};
  }
  impl_->port = bound;
  impl_->thread = std::thread([this] {
    nameThisThread("zastava-http");
    impl_->server.listen_after_bind();
    impl_->listenReturned = true;
  });
  // httplib's stop() does nothing until the listen loop runs: wait for it so stop() always works.
  while (!impl_->server.is_running() && !impl_->listenReturned) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return okResult();
}

int HealthServer::port() const { return impl_->port; }

void HealthServer::stop() {
  if (!impl_->thread.joinable()) return;
  impl_->server.stop();
  impl_->thread.join();
}

}  // namespace zastava
