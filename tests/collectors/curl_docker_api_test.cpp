// CurlDockerApi against a local HTTP server that answers with bytes captured from the real engine
// and records every request it receives: the proof that the client only sends the five GETs.

#include <doctest/doctest.h>
#include <httplib.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <map>
#include <set>
#include <thread>
#include <utility>

#include "collectors/api_paths.h"
#include "collectors/docker_api.h"
#include "tests/fixture_files.h"

namespace zastava {
namespace {

using testing::fixtureLines;
using testing::readFixture;

const SystemClock kClock;

constexpr const char* kRunningId =
    "36c7a3b3f3594f63c6bb9c1bc5095d93ba7d25bdd0e9c92bd9936dc5aee64d57";
constexpr const char* kGoneId = "col-does-not-exist";

struct Seen {
  std::string method;
  std::string path;
  httplib::Params params;
};

// An HTTP server on 127.0.0.1 with the engine's routes. Tests adjust the knobs before start().
class FakeEngine {
 public:
  std::string pingApiVersionHeader = "Api-Version";  // empty: send no version header
  std::string engineApiVersion = "1.41";
  std::string versionBody = readFixture("version.json");
  int listStatus = 200;
  std::string listBody = readFixture("containers-list.json");
  std::string listContentType = "application/json";
  bool holdStreamOpen = false;
  std::atomic<int> pingStatus{200};
  // Inspect answers by container id, besides the running fixture and 404: {status, body}.
  std::map<std::string, std::pair<int, std::string>> inspectAnswers;

  void start() {
    // Before routing, so a request is recorded even when no route answers it, and before the
    // client can see the end of the response.
    server_.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response&) {
      std::lock_guard lock(mu_);
      seen_.push_back(Seen{req.method, req.path, req.params});
      return httplib::Server::HandlerResponse::Unhandled;
    });
    server_.Get("/_ping", [this](const httplib::Request&, httplib::Response& res) {
      res.status = pingStatus.load();
      if (!pingApiVersionHeader.empty()) res.set_header(pingApiVersionHeader, engineApiVersion);
      res.set_content("OK", "text/plain; charset=utf-8");
    });
    const auto version = [this](const httplib::Request&, httplib::Response& res) {
      res.set_content(versionBody, "application/json");
    };
    server_.Get("/version", version);
    server_.Get(R"(/v[0-9.]+/version)", version);
    server_.Get(R"(/v[0-9.]+/containers/json)",
                [this](const httplib::Request&, httplib::Response& res) {
                  res.status = listStatus;
                  res.set_content(listBody, listContentType.c_str());
                });
    server_.Get(R"(/v[0-9.]+/containers/([^/]+)/json)", [this](const httplib::Request& req,
                                                               httplib::Response& res) {
      if (const auto answer = inspectAnswers.find(req.matches[1]); answer != inspectAnswers.end()) {
        res.status = answer->second.first;
        res.set_content(answer->second.second, "application/json");
      } else if (req.matches[1] == kRunningId) {
        res.set_content(readFixture("inspect-running.json"), "application/json");
      } else {
        res.status = 404;
        res.set_content(readFixture("inspect-404.json"), "application/json");
      }
    });
    server_.Get(R"(/v[0-9.]+/events)", [this](const httplib::Request&, httplib::Response& res) {
      res.set_chunked_content_provider(
          "application/json", [this, sent = false](size_t, httplib::DataSink& sink) mutable {
            if (!sent) {
              sent = true;
              const auto lines = fixtureLines("events-lifecycle.ndjson");
              const std::string first = lines.at(0) + "\n";
              // The first object arrives in pieces, as it may from a real socket.
              sink.write(first.data(), 10);
              sink.write(first.data() + 10, first.size() - 10);
              const std::string second = lines.at(4) + "\n";
              sink.write(second.data(), second.size());
            }
            if (!holdStreamOpen) {
              sink.done();
              return true;
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
            return sink.is_writable();
          });
    });
    port_ = server_.bind_to_any_port("127.0.0.1");
    REQUIRE(port_ > 0);
    thread_ = std::thread([this] { server_.listen_after_bind(); });
  }

  ~FakeEngine() {
    server_.stop();
    if (thread_.joinable()) thread_.join();
  }

  Endpoint endpoint() const {
    Endpoint e;
    e.kind = Endpoint::Kind::kTcp;
    e.host = "127.0.0.1";
    e.port = port_;
    e.uri = "tcp://127.0.0.1:" + std::to_string(port_);
    return e;
  }

  std::vector<Seen> seen() {
    std::lock_guard lock(mu_);
    return seen_;
  }

 private:
  httplib::Server server_;
  std::thread thread_;
  int port_ = 0;
  std::mutex mu_;
  std::vector<Seen> seen_;
};

struct StreamResult {
  int opened = 0;
  std::vector<Result<EngineEvent>> events;
};

TEST_CASE("the client sends only the five read-only GETs") {
  FakeEngine engine;
  engine.start();
  const auto api = makeCurlDockerApi(engine.endpoint(), kClock);
  CHECK(api->apiVersion().empty());

  const auto negotiated = api->negotiate();
  REQUIRE(negotiated.ok());
  CHECK(*negotiated == "1.41");
  CHECK(api->apiVersion() == "1.41");

  const auto ping = api->ping();
  REQUIRE(ping.ok());
  CHECK(ping->apiVersion == "1.41");

  const auto version = api->version();
  REQUIRE(version.ok());
  CHECK(version->version == "20.10.24+dfsg1");

  const auto list = api->listContainers();
  REQUIRE(list.ok());
  CHECK(list->size() == 4);

  const auto running = api->inspectContainer(kRunningId);
  REQUIRE(running.ok());
  REQUIRE(running->has_value());
  CHECK((*running)->name == "col-run");

  const auto gone = api->inspectContainer(kGoneId);
  REQUIRE(gone.ok());
  CHECK_FALSE(gone->has_value());

  StreamResult stream;
  std::atomic<bool> stop{false};
  const auto ended = api->streamEvents(
      EventQuery{1795358252478213243}, [&] { ++stream.opened; },
      [&](Result<EngineEvent> e) {
        CHECK(stream.opened == 1);
        stream.events.push_back(std::move(e));
      },
      stop);
  REQUIRE_FALSE(ended.ok());
  CHECK(ended.error().code == ErrorCode::kUnavailable);
  CHECK(ended.error().message.find("event stream closed by the engine") != std::string::npos);
  CHECK(stream.opened == 1);
  REQUIRE(stream.events.size() == 2);
  REQUIRE(stream.events[0].ok());
  CHECK(stream.events[0]->rawAction == "create");
  REQUIRE(stream.events[1].ok());
  CHECK(stream.events[1]->actionDetail == "true ");

  std::set<std::pair<std::string, std::string>> received;
  for (const auto& s : engine.seen()) {
    CHECK(s.method == "GET");
    received.emplace(s.method, s.path);
    if (s.path == "/v1.41/events") {
      CHECK(s.params.find("filters")->second == R"({"type":["container"]})");
      CHECK(s.params.find("since")->second == "1795358252.478213243");
    }
  }
  const std::set<std::pair<std::string, std::string>> expected{
      {"GET", "/_ping"},
      {"GET", "/v1.41/version"},
      {"GET", "/v1.41/containers/json"},
      {"GET", std::string("/v1.41/containers/") + kRunningId + "/json"},
      {"GET", std::string("/v1.41/containers/") + kGoneId + "/json"},
      {"GET", "/v1.41/events"}};
  CHECK(received == expected);
}

TEST_CASE("a socket proxy's 403 names the permission to grant") {
  FakeEngine engine;
  engine.pingApiVersionHeader = "api-version";  // haproxy lowercases header names
  engine.listStatus = 403;
  engine.listBody = readFixture("proxy-403.html");
  engine.listContentType = "text/html";
  engine.start();
  const auto api = makeCurlDockerApi(engine.endpoint(), kClock);
  const auto list = api->listContainers();  // negotiates first
  CHECK(api->apiVersion() == "1.41");
  REQUIRE_FALSE(list.ok());
  CHECK(list.error().code == ErrorCode::kForbidden);
  CHECK(list.error().message.find("CONTAINERS=1") != std::string::npos);
  CHECK(list.error().message.find(engine.endpoint().uri) != std::string::npos);
}

TEST_CASE("other statuses are kProtocol with the engine's message") {
  FakeEngine engine;
  engine.listStatus = 500;
  engine.listBody = R"({"message":"something broke"})";
  engine.start();
  const auto api = makeCurlDockerApi(engine.endpoint(), kClock);
  const auto list = api->listContainers();
  REQUIRE_FALSE(list.ok());
  CHECK(list.error().code == ErrorCode::kProtocol);
  CHECK(list.error().message.find("500") != std::string::npos);
  CHECK(list.error().message.find("something broke") != std::string::npos);
}

TEST_CASE("an inspect answered 'no such container' is gone; another 500 is an error") {
  FakeEngine engine;
  // Podman 4.3 while it removes a --rm container, captured.
  engine.inspectAnswers["removing"] = {500, readFixture("podman-4.3/inspect-rm-exited.json")};
  engine.inspectAnswers["broken"] = {500, R"({"message":"something broke"})"};
  engine.start();
  const auto api = makeCurlDockerApi(engine.endpoint(), kClock);
  const auto removing = api->inspectContainer("removing");
  REQUIRE(removing.ok());
  CHECK_FALSE(removing->has_value());
  const auto gone = api->inspectContainer(kGoneId);
  REQUIRE(gone.ok());
  CHECK_FALSE(gone->has_value());
  const auto broken = api->inspectContainer("broken");
  REQUIRE_FALSE(broken.ok());
  CHECK(broken.error().code == ErrorCode::kProtocol);
  CHECK(broken.error().message.find("HTTP 500: something broke") != std::string::npos);
}

TEST_CASE("negotiation: /version fallback, numeric comparison, too old") {
  FakeEngine engine;
  engine.pingApiVersionHeader.clear();
  SUBCASE("no header: ask /version") {
    engine.start();
    const auto api = makeCurlDockerApi(engine.endpoint(), kClock);
    CHECK(api->negotiate().value() == "1.41");
    bool askedVersion = false;
    for (const auto& s : engine.seen()) askedVersion |= s.path == "/version";
    CHECK(askedVersion);
  }
  SUBCASE("newer than we know: use kMaxApiVersion") {
    engine.versionBody = R"({"ApiVersion":"1.100"})";
    engine.start();
    CHECK(makeCurlDockerApi(engine.endpoint(), kClock)->negotiate().value() == kMaxApiVersion);
  }
  SUBCASE("1.9 is older than 1.24") {
    engine.versionBody = R"({"ApiVersion":"1.9"})";
    engine.start();
    const auto api = makeCurlDockerApi(engine.endpoint(), kClock);
    const auto chosen = api->negotiate();
    REQUIRE_FALSE(chosen.ok());
    CHECK(chosen.error().code == ErrorCode::kProtocol);
    CHECK(chosen.error().message.find("1.9") != std::string::npos);
    CHECK(api->apiVersion().empty());
  }
}

TEST_CASE("stop ends a quiet stream with kCancelled") {
  FakeEngine engine;
  engine.holdStreamOpen = true;
  engine.start();
  const auto api = makeCurlDockerApi(engine.endpoint(), kClock);
  std::atomic<bool> stop{false};
  int opened = 0;
  int events = 0;
  const auto ended = api->streamEvents(
      EventQuery{}, [&] { ++opened; },
      [&](Result<EngineEvent> e) {
        CHECK(e.ok());
        if (++events == 2) stop = true;
      },
      stop);
  REQUIRE_FALSE(ended.ok());
  CHECK(ended.error().code == ErrorCode::kCancelled);
  CHECK(opened == 1);
  CHECK(events == 2);
}

TEST_CASE("a silent stream whose engine stops answering pings is given up") {
  FakeEngine engine;
  engine.holdStreamOpen = true;
  engine.start();
  const auto api = makeCurlDockerApi(engine.endpoint(), kClock);
  std::atomic<bool> stop{false};
  EventQuery query;
  query.silenceCheck = std::chrono::seconds(1);
  int events = 0;
  const auto ended = api->streamEvents(
      query, [] {},
      [&](Result<EngineEvent>) {
        if (++events == 2) engine.pingStatus = 503;  // the engine is gone, the socket is not
      },
      stop);
  REQUIRE_FALSE(ended.ok());
  CHECK(ended.error().code == ErrorCode::kProtocol);
  CHECK(ended.error().message.find("no event for 1 s and the engine does not answer") !=
        std::string::npos);
}

TEST_CASE("a silent stream whose engine answers pings stays open") {
  FakeEngine engine;
  engine.holdStreamOpen = true;
  engine.start();
  const auto api = makeCurlDockerApi(engine.endpoint(), kClock);
  std::atomic<bool> stop{false};
  EventQuery query;
  query.silenceCheck = std::chrono::seconds(1);
  auto countPings = [&] {
    int pings = 0;
    for (const auto& s : engine.seen()) pings += s.path == "/_ping" ? 1 : 0;
    return pings;
  };
  std::thread stopper([&] {
    // Stop only once the stream has survived at least two silence checks.
    while (countPings() < 3) std::this_thread::sleep_for(std::chrono::milliseconds(50));
    stop = true;
  });
  const auto ended = api->streamEvents(
      query, [] {}, [](Result<EngineEvent>) {}, stop);
  stopper.join();
  REQUIRE_FALSE(ended.ok());
  CHECK(ended.error().code == ErrorCode::kCancelled);
}

TEST_CASE("concurrent inspects from several threads") {
  FakeEngine engine;
  engine.start();
  const auto api = makeCurlDockerApi(engine.endpoint(), kClock);
  REQUIRE(api->negotiate().ok());
  std::atomic<int> found{0};
  std::atomic<int> failed{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 10; ++i) {
        const auto r = api->inspectContainer(kRunningId);
        if (r.ok() && r->has_value()) {
          ++found;
        } else {
          ++failed;
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  CHECK(found == 40);
  CHECK(failed == 0);
}

TEST_CASE("a missing socket is kUnavailable with a hint") {
  Endpoint e;
  e.kind = Endpoint::Kind::kUnix;
  e.socketPath = "/nonexistent/zastava/docker.sock";
  e.uri = "unix:///nonexistent/zastava/docker.sock";
  const auto api = makeCurlDockerApi(e, kClock);
  const auto ping = api->ping();
  REQUIRE_FALSE(ping.ok());
  CHECK(ping.error().code == ErrorCode::kUnavailable);
  CHECK(ping.error().message.find("cannot connect to unix:///nonexistent/zastava/docker.sock") !=
        std::string::npos);
  CHECK(ping.error().message.find("no socket at /nonexistent/zastava/docker.sock") !=
        std::string::npos);
  CHECK(ping.error().message.find("is the Docker engine running, and is this its socket?") !=
        std::string::npos);
  const auto list = api->listContainers();
  REQUIRE_FALSE(list.ok());
  CHECK(list.error().code == ErrorCode::kUnavailable);
}

TEST_CASE("a socket nobody listens on is refused, not missing") {
  char dir[] = "/tmp/zastava-sock-XXXXXX";
  REQUIRE(mkdtemp(dir) != nullptr);
  const std::string path = std::string(dir) + "/dead.sock";
  const int fd = socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::snprintf(address.sun_path, sizeof address.sun_path, "%s", path.c_str());
  REQUIRE(bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0);
  close(fd);  // bound, never listened: connect() is refused
  Endpoint e;
  e.kind = Endpoint::Kind::kUnix;
  e.socketPath = path;
  e.uri = "unix://" + path;
  const auto ping = makeCurlDockerApi(e, kClock)->ping();
  REQUIRE_FALSE(ping.ok());
  CHECK(ping.error().message.find("connection refused by " + path + ": nothing listens on it") !=
        std::string::npos);
  CHECK(ping.error().message.find("port 80") == std::string::npos);
  unlink(path.c_str());
  rmdir(dir);
}

}  // namespace
}  // namespace zastava
