// A scripted engine for the Pipeline's tests (pipeline_test.cpp): a DockerApi whose every answer
// is a capture from a real engine (engine_capture.h).
//
// What the script decides, and nothing more:
// - which captured event lines each /events connection sends live, and whether the engine
//   closes it after one of them (a real engine closing a stream);
// - what a resumed stream replays: like a real engine, every captured line with timeNano >= since
//   among those it has published and still has ("the engine keeps its last 256 events": the
//   script says which lines other traffic pushed out);
// - when the lifecycle begins: once the agent has asked its first list, as in the captures,
//   where the stream was open before the first command ran;
// - when an answer is given: a list or an inspect can be held until released.
// Event times are never rewritten: the test's ManualWallClock follows the capture instead (set when
// a connection opens, moved to each event's time as the engine publishes it).
//
// Containers. The captured list holds four containers created apart from the lifecycle; only
// two of them (col-run, col-exited) were inspected when captured, so the engine lists those two
// alone, and only while they existed (from their Created time until the capture removed them,
// per the README and commands.log). No list was captured while a lifecycle container existed:
// a list asked then is held past the client's timeout (see listContainers). And the lifecycle's
// containers were never inspected while they existed: the one answer about them the captures
// support is the engine's answer about a container it no longer has (Docker's 404, Podman's 500
// "no such container"). So their inspects get that answer once the ledger holds their destroy,
// and are held until then.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "collectors/decoders.h"
#include "collectors/docker_api.h"
#include "tests/agent/engine_capture.h"
#include "tests/fixture_files.h"
#include "tests/support/manual_clock.h"

namespace zastava::testing {

class ScriptedDockerApi final : public DockerApi {
 public:
  // What one /events connection does, in the order connections are opened. Connections beyond
  // the script go on from where the engine is and stay open.
  struct Connection {
    // The engine publishes the lines up to this one while no stream is open, before this
    // connection opens (the agent was away meanwhile).
    std::optional<std::size_t> publishedBefore = std::nullopt;
    // The engine's time when it answers the connection; by default just after the newest line
    // published (never before the clock).
    std::optional<UnixNanos> openAt = std::nullopt;
    // The engine closes the stream after sending this line live.
    std::optional<std::size_t> endAfter = std::nullopt;
    // The lines the engine still has to replay; all when empty.
    std::function<bool(std::size_t)> has = nullptr;
  };

  ScriptedDockerApi(const Capture& capture, ManualWallClock& clock, const Ledger& ledger)
      : capture_(capture), clock_(clock), ledger_(ledger) {
    for (std::size_t line = 0; line < capture.events.size(); ++line) {
      const EngineEvent& event = capture.events[line];
      Lifetime& lifetime = lifetimes_[event.actorId];
      if (event.action == "create") lifetime.created = std::min(lifetime.created, line);
      if (event.action == "destroy") lifetime.destroyed = std::min(lifetime.destroyed, line);
    }
  }

  // ---- the script; set before the Pipeline starts, holds released at any time ----
  void script(std::vector<Connection> connections) { script_ = std::move(connections); }
  // Lists wait until releaseList() (they answer what the engine had when they were asked).
  void holdList() {
    std::lock_guard lock(mu_);
    listHeld_ = true;
  }
  void releaseList() {
    {
      std::lock_guard lock(mu_);
      listHeld_ = false;
    }
    changed_.notify_all();
  }
  // A list is answered once the ledger also holds every destroy the engine published (see
  // listContainers).
  void listWaitsForLedger() {
    std::lock_guard lock(mu_);
    listWaitsForLedger_ = true;
  }
  // This container's inspects wait until releaseInspect(), even once it is gone.
  void holdInspect(const std::string& id) {
    std::lock_guard lock(mu_);
    heldInspects_.insert(id);
  }
  void releaseInspect(const std::string& id) {
    std::lock_guard lock(mu_);
    heldInspects_.erase(id);
  }
  // Every hold ends (an open stream stays open until the agent closes it): before
  // Pipeline::stop(), which joins the threads the holds would keep waiting.
  void shutdown() {
    {
      std::lock_guard lock(mu_);
      shutdown_ = true;
    }
    changed_.notify_all();
  }

  // ---- what happened ----
  struct Opened {
    std::int64_t since = 0;
    UnixNanos openedAt = 0;
    std::vector<std::size_t> sent;  // lines sent, replay first
    bool replayed = false;          // the replay is sent (live lines follow)
    bool closedByEngine = false;
    bool cancelled = false;  // the agent closed it (its stop flag)
  };
  std::vector<Opened> connections() const {
    std::lock_guard lock(mu_);
    return opened_;
  }
  // Lists answered; of them, once the engine had published every line.
  int listAnswers() const {
    std::lock_guard lock(mu_);
    return listAnswers_;
  }
  int finalListAnswers() const {
    std::lock_guard lock(mu_);
    return finalListAnswers_;
  }
  bool allSent() const { return published_.load() == capture_.lines.size(); }
  std::map<std::string, int> inspectCalls() const {
    std::lock_guard lock(mu_);
    return inspectCalls_;
  }

  // ---- DockerApi ----
  Result<PingInfo> ping() override { return PingInfo{capture_.apiVersion}; }
  Result<VersionInfo> version() override {
    return decodeVersion(readFixture(capture_.directory + "version.json"));
  }
  std::string apiVersion() const override {
    std::lock_guard lock(mu_);
    return negotiated_;
  }
  Result<std::string> negotiate() override {
    std::lock_guard lock(mu_);
    negotiated_ = capture_.apiVersion;
    return negotiated_;
  }

  // The captures hold no list of the engine while a lifecycle container exists. Asked then, the
  // engine is held past the client's request timeout (30 s): the call fails with kTimeout as the
  // libcurl client's does, at once here, and the agent asks again later.
  Result<std::vector<ContainerSummary>> listContainers() override {
    const bool answerable = canList();
    const UnixNanos now = clock_.now();
    std::vector<ContainerSummary> listed;
    for (const ContainerSummary& summary : capture_.listed) {
      if (existsAt(summary.id, now)) listed.push_back(summary);
    }
    std::unique_lock lock(mu_);
    listDecided_ = true;
    changed_.notify_all();
    changed_.wait(lock, [this] { return shutdown_ || !listHeld_; });
    if (!answerable) {
      return Error{ErrorCode::kTimeout,
                   "GET /v" + negotiated_ + "/containers/json?all=1 timed out (scripted)"};
    }
    ++listAnswers_;
    if (published_.load() == capture_.lines.size()) ++finalListAnswers_;
    return listed;
  }

  Result<std::optional<ContainerInspect>> inspectContainer(std::string_view id) override {
    const std::string key(id);
    {
      std::lock_guard lock(mu_);
      ++inspectCalls_[key];
    }
    const auto captured = capture_.inspects.find(key);
    if (captured != capture_.inspects.end() && existsAt(key, clock_.now())) {
      return std::optional<ContainerInspect>(captured->second);
    }
    // A lifecycle container: answered "gone" once it is (see the top of this file).
    while (true) {
      bool held = false;
      {
        std::lock_guard lock(mu_);
        if (shutdown_) break;
        held = heldInspects_.count(key) != 0;
      }
      if (!held && ledger_.destroyed(key)) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    // The captured answer about a container the engine no longer has (saysGone), which a
    // DockerApi reports as std::nullopt.
    return std::optional<ContainerInspect>();
  }

  Result<void> streamEvents(const EventQuery& query, const std::function<void()>& onOpen,
                            const EventHandler& onEvent, const std::atomic<bool>& stop) override {
    Connection plan;
    std::size_t index = 0;
    {
      std::lock_guard lock(mu_);
      index = opened_.size();
      if (index < script_.size()) plan = script_[index];
    }
    if (plan.publishedBefore) {
      published_ = std::max(published_.load(), *plan.publishedBefore + 1);
    }
    const std::size_t published = published_.load();
    UnixNanos openAt = clock_.now();
    if (plan.openAt) {
      openAt = std::max(openAt, *plan.openAt);
    } else if (published > 0) {
      UnixNanos newest = 0;
      for (std::size_t i = 0; i < published; ++i) newest = std::max(newest, capture_.at(i));
      openAt = std::max(openAt, newest + kMicrosecond);
    }
    clock_.set(openAt);
    {
      std::lock_guard lock(mu_);
      opened_.push_back(Opened{query.sinceNano, openAt, {}, false, false, false});
    }
    onOpen();

    const auto send = [&](std::size_t line) {
      {
        std::lock_guard lock(mu_);
        opened_[index].sent.push_back(line);
      }
      onEvent(decodeEvent(capture_.lines[line]));
      return !stop.load();
    };
    const auto cancelled = [&] {
      std::lock_guard lock(mu_);
      opened_[index].cancelled = true;
      return Error{ErrorCode::kCancelled, "event stream stopped on request"};
    };

    // The replay: what the engine published and still has, from `since` on, in its order.
    if (query.sinceNano != 0) {
      for (std::size_t line = 0; line < published; ++line) {
        if (plan.has && !plan.has(line)) continue;
        if (capture_.at(line) < query.sinceNano) continue;
        if (!send(line)) return cancelled();
      }
    }
    {
      std::lock_guard lock(mu_);
      opened_[index].replayed = true;
    }
    // The lifecycle begins once the agent's first list was asked.
    if (published == 0) {
      std::unique_lock lock(mu_);
      changed_.wait(lock, [this] { return shutdown_ || listDecided_; });
    }
    // Then live: each line as the engine publishes it. A list sees the engine after the line.
    for (std::size_t line = published; line < capture_.lines.size(); ++line) {
      clock_.set(std::max(clock_.now(), capture_.at(line)));
      const bool open = send(line);
      published_ = line + 1;
      if (!open) return cancelled();
      if (plan.endAfter == line) {
        std::lock_guard lock(mu_);
        opened_[index].closedByEngine = true;
        return okResult();
      }
    }
    // Open until the agent closes it (Pipeline::stop() does, after shutdown(): ending it at
    // shutdown() would look like the engine closing it, and the agent would reconnect).
    while (!stop.load()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    return cancelled();
  }

 private:
  // The lines that created and destroyed a lifecycle container.
  struct Lifetime {
    std::size_t created = SIZE_MAX;
    std::size_t destroyed = SIZE_MAX;
  };

  // No lifecycle container exists: every one the engine created, it destroyed. With
  // listWaitsForLedger(), the ledger also holds those destroys: one the full queue refused is
  // then replayed before a reconciliation can find the container gone and write it first
  // (a correct outcome, but not the one the overflow tests check).
  bool canList() const {
    const std::size_t published = published_.load();
    bool waitForLedger = false;
    {
      std::lock_guard lock(mu_);
      waitForLedger = listWaitsForLedger_;
    }
    for (const auto& [id, lifetime] : lifetimes_) {
      if (lifetime.created >= published) continue;
      if (lifetime.destroyed >= published) return false;
      if (waitForLedger && !ledger_.destroyed(id)) return false;
    }
    return true;
  }

  // A listed container exists from its Created time until the capture removed it, and is only
  // answered for when its inspect was captured.
  bool existsAt(const std::string& id, UnixNanos now) const {
    if (capture_.inspects.count(id) == 0) return false;
    for (const ContainerSummary& summary : capture_.listed) {
      if (summary.id != id) continue;
      return summary.created * 1'000'000'000 <= now &&
             (capture_.listedUntil == 0 || now < capture_.listedUntil);
    }
    return false;
  }

  const Capture& capture_;
  ManualWallClock& clock_;
  const Ledger& ledger_;
  std::map<std::string, Lifetime> lifetimes_;  // set by the constructor
  std::vector<Connection> script_;             // set before start

  // Lines the engine has published; written by the stream thread only.
  std::atomic<std::size_t> published_{0};

  mutable std::mutex mu_;
  std::condition_variable changed_;
  std::string negotiated_;                   // guarded by mu_
  std::vector<Opened> opened_;               // guarded by mu_
  bool listHeld_ = false;                    // guarded by mu_
  bool listWaitsForLedger_ = false;          // guarded by mu_
  bool listDecided_ = false;                 // guarded by mu_: a list was asked
  bool shutdown_ = false;                    // guarded by mu_
  int listAnswers_ = 0;                      // guarded by mu_
  int finalListAnswers_ = 0;                 // guarded by mu_
  std::set<std::string> heldInspects_;       // guarded by mu_
  std::map<std::string, int> inspectCalls_;  // guarded by mu_
};

}  // namespace zastava::testing
