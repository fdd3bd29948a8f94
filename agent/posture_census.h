// Which containers that are up (running, paused, restarting) fail which posture checks, for
// zastava_agent_posture_failing_containers; and the starts that failed a critical check, for
// zastava_agent_posture_critical_starts_total (docs/posture.md). Told of records as they are
// submitted, by the enricher and the evidence collector's threads: every method takes a short
// lock.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "buffer/record.h"
#include "posture/policy.h"

namespace zastava {

class Metrics;

// A container up, with the findings of its inspect.
struct UpContainer {
  std::string id;
  std::shared_ptr<const PostureFindings> posture;
};

class PostureCensus {
 public:
  // Exports every series at 0: a gauge per check the policy does not skip, a counter per
  // critical one.
  PostureCensus(Metrics& metrics, const PosturePolicy& policy);
  PostureCensus(const PostureCensus&) = delete;
  PostureCensus& operator=(const PostureCensus&) = delete;

  // A record about to be written. Findings of an inspect (on a container that is up) replace
  // the container's; those of its processes (container.evidence) too, for a container already
  // known to be up; a state that is not up forgets the container.
  void observe(const Record& record);
  // What the engine listed (a reconciliation's inventory): the containers up, with their
  // inspect's findings. Every other container is forgotten.
  void inventory(const std::vector<UpContainer>& up);
  // A container started with these findings (the inspect of its start, or a start a
  // reconciliation found): counts each critical failure.
  void countStart(const PostureFindings& findings);

  // The containers counted as failing `check` (tests).
  std::int64_t failing(std::string_view check) const;

 private:
  struct Failing {
    std::vector<std::string_view> inspect;    // check ids
    std::vector<std::string_view> processes;  // check ids
  };
  // Replaces one input's failing checks of `id` (creating it), adjusting the counts.
  void replace(const std::string& id, const PostureFindings& findings);
  void forget(const std::string& id);
  void adjust(const std::vector<std::string_view>& checks, std::int64_t delta);

  Metrics& metrics_;
  std::map<std::string_view, Severity, std::less<>> severities_;  // evaluated checks
  mutable std::mutex mu_;
  std::unordered_map<std::string, Failing> up_;
  std::map<std::string_view, std::int64_t, std::less<>> failing_;
};

}  // namespace zastava
