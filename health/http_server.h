// The health and metrics endpoints: /healthz, /livez, /readyz and /metrics over HTTP/1.1, served
// by cpp-httplib on its own small thread pool so a slow scraper never touches the pipeline.
#pragma once

#include <memory>
#include <string>

#include "common/result.h"

namespace zastava {

class HealthState;
class Metrics;

class HealthServer {
 public:
  HealthServer(const HealthState& health, const Metrics& metrics);
  ~HealthServer();
  HealthServer(const HealthServer&) = delete;
  HealthServer& operator=(const HealthServer&) = delete;

  // Binds address:port (port 0 picks a free one) and starts serving on a thread named
  // "zastava-http"; returns once it serves. Errors: kUnavailable naming the address when the
  // bind fails (port in use, no such address, permission) or the server ends before it serves
  // (its worker threads could not start). One that ends later on its own is logged at
  // critical. A handler that throws is answered 500 and logged as an error. Main thread.
  Result<void> start(const std::string& address, int port);
  // The port actually bound; 0 before start().
  int port() const;
  // Stops serving and joins the thread. Idempotent. Main thread.
  void stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace zastava
