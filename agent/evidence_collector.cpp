#include "agent/evidence_collector.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <filesystem>

#include "agent/posture_census.h"
#include "buffer/recorder.h"
#include "collectors/procfs/proc_io.h"
#include "common/rfc3339.h"
#include "common/thread_name.h"
#include "health/metrics.h"
#include "posture/evaluate.h"

namespace zastava {
namespace {

constexpr std::size_t kProblemsShown = 5;

// "a; b; c; and 2 more"
std::string joinProblems(const std::vector<std::string>& problems) {
  std::string out;
  for (std::size_t i = 0; i < problems.size() && i < kProblemsShown; ++i) {
    if (!out.empty()) out += "; ";
    out += problems[i];
  }
  if (problems.size() > kProblemsShown) {
    out += "; and " + std::to_string(problems.size() - kProblemsShown) + " more";
  }
  return out;
}

bool isProcessExit(const std::string& why) { return why.starts_with("process exited"); }

bool isDynamicLoader(const std::string& path) {
  const std::string name = std::filesystem::path(path).filename().string();
  return name.starts_with("ld-linux") || name.starts_with("ld-musl") || name == "ld.so";
}

// True when the files `init` maps are its program and the dynamic loader, nothing else: a
// dynamically linked program whose loader has not mapped its libraries yet.
bool onlyLoaderMapped(const LibraryEvidence& libraries, const ProcessInfo& init) {
  bool loader = false;
  for (const LoadedLibrary& lib : libraries.libraries) {
    if (std::find(lib.mappedBy.begin(), lib.mappedBy.end(), init.pid) == lib.mappedBy.end()) {
      continue;
    }
    if (isDynamicLoader(lib.path)) {
      loader = true;
    } else if (lib.path != init.exePath) {
      return false;
    }
  }
  return loader && !isDynamicLoader(init.exePath);
}

bool isExitWhileRead(const Error& error) {
  return error.code == ErrorCode::kNotFound &&
         error.message.starts_with("process exited while being read");
}

// The init, found when the scan began, exited before the scan ended.
void markExitedDuringScan(EvidenceFacts& facts) {
  facts.status = EvidenceStatus::kExited;
  facts.reason = "the container's init process (pid " + std::to_string(facts.initPid) +
                 ") exited while its evidence was being collected";
}

// False only when the procfs at `procRoot` belongs to another PID namespace than the host's:
// its pid 1 is then not in the initial PID namespace, whose inode the kernel fixes
// (PROC_PID_INIT_INO). True when that cannot be read: no evidence against it.
bool showsHostPids(const std::string& procRoot) {
  const auto link = readLinkText(procRoot + "/1/ns/pid");
  return !link.ok() || *link == "pid:[4026531836]";
}

constexpr std::string_view kNamespaceHint =
    ": the agent sees another PID namespace than the engine (run it in the host's PID namespace, "
    "or set Evidence:ProcRoot to the host's /proc)";

// Why the init process could not be read: it exited before or while it was read (its pid is
// gone, a zombie's, or now names another process), or the pids the engine reports are not those
// of this procfs.
void explainUnreadInit(const Error& error, const EvidenceOptions& options, EvidenceFacts& facts) {
  const std::string pid = std::to_string(facts.initPid);
  const bool hostPids = showsHostPids(options.procRoot);
  if (isExitWhileRead(error) && hostPids) {
    markExitedDuringScan(facts);
  } else if (error.code == ErrorCode::kNotFound && hostPids) {
    facts.status = EvidenceStatus::kExited;
    facts.reason =
        "the container's init process (pid " + pid + ") exited before its evidence was collected";
  } else if (error.code == ErrorCode::kNotFound) {
    facts.status = EvidenceStatus::kUnavailable;
    facts.reason = "pid " + pid + " is not in " + options.procRoot + std::string(kNamespaceHint);
  } else if (error.code == ErrorCode::kInvalidArgument && hostPids) {
    facts.status = EvidenceStatus::kExited;
    facts.reason = "the container's init process (pid " + pid +
                   ") exited before its evidence was collected; the pid now names another "
                   "process (" +
                   error.message + ")";
  } else if (error.code == ErrorCode::kInvalidArgument) {
    facts.status = EvidenceStatus::kUnavailable;
    facts.reason = error.message + std::string(kNamespaceHint);
  } else {
    facts.status = EvidenceStatus::kUnavailable;
    facts.reason = error.message;
  }
}

// What in a read tree and its libraries could not be read, or was cut by a cap.
std::vector<std::string> problemsOf(const ProcessTree& tree,
                                    const Result<LibraryEvidence>& libraries) {
  std::vector<std::string> problems;
  if (tree.truncated) {
    problems.push_back("process cap reached: " + std::to_string(tree.omittedCount) +
                       " processes not read");
  }
  for (const ProcessInfo& p : tree.processes) {
    for (const auto& [field, why] : p.unreadable) {
      problems.push_back(fmt::format("pid {} {}: {}", p.pid, field, why));
    }
  }
  if (!libraries.ok()) {
    problems.push_back("loaded libraries: " + libraries.error().message);
    return problems;
  }
  if (libraries->countCapHit || libraries->byteCapHit) {
    problems.push_back(std::string(libraries->countCapHit ? "library" : "byte") +
                       " cap reached: " + std::to_string(libraries->skippedCount) +
                       " libraries not listed or not hashed");
  }
  for (const LoadedLibrary& lib : libraries->libraries) {
    if (!lib.whyNot.empty() && lib.whyNot != kByteCapReached) {
      problems.push_back(lib.path + ": " + lib.whyNot);
    } else if (!lib.sha256.empty() && !lib.identityVerified) {
      problems.push_back(lib.path +
                         ": hashed the file at the path, not proven to be the mapped one");
    }
  }
  for (const auto& [pid, why] : libraries->unreadable) {
    if (!isProcessExit(why)) problems.push_back("maps of pid " + std::to_string(pid) + ": " + why);
  }
  return problems;
}

}  // namespace

EvidenceFacts collectEvidence(const ProcfsReader& reader, const EvidenceRequest& request,
                              const EvidenceOptions& options, const Redactor& redactor) {
  EvidenceFacts facts;
  facts.scan = request.scan;
  facts.procRoot = options.procRoot;
  facts.initPid = request.container.pid.value_or(0);
  if (facts.initPid <= 0) {
    facts.initPid = 0;
    facts.status = EvidenceStatus::kExited;  // no initPid says why: there was no process to read
    return facts;
  }
  TreeOptions treeOptions = options.tree;
  treeOptions.expectedContainerId = request.container.id;
  if (request.container.startedAt) {
    treeOptions.expectedStartedAt = parseRfc3339Nanos(*request.container.startedAt).value_or(0);
  }
  auto tree = reader.processTree(static_cast<int>(facts.initPid), treeOptions);
  if (!tree.ok()) {
    explainUnreadInit(tree.error(), options, facts);
    return facts;
  }
  std::vector<int> pids;
  for (ProcessInfo& p : tree->processes) {
    p.cmdline = redactor.commandLine(p.cmdline);
    pids.push_back(p.pid);
  }
  auto libraries = reader.loadedLibraries(pids, options.libraries);
  // An init that exited after its fields were read has no maps left (not found, or empty for a
  // zombie): the container stopped during the scan, nothing was left unread.
  if (!reader.stillRunning(tree->processes.front())) {
    markExitedDuringScan(facts);
    return facts;
  }
  const auto problems = problemsOf(*tree, libraries);
  facts.status = problems.empty() ? EvidenceStatus::kComplete : EvidenceStatus::kPartial;
  facts.reason = joinProblems(problems);
  facts.processTree = std::move(tree.value());
  if (libraries.ok()) facts.loadedLibraries = std::move(libraries.value());
  return facts;
}

std::string initStillStarting(const EvidenceFacts& evidence) {
  if (!evidence.processTree || evidence.processTree->processes.empty()) return "";
  const ProcessInfo& init = evidence.processTree->processes.front();
  if (init.comm.starts_with("runc:")) {
    return "the container's init was still the runtime's (" + init.comm + ")";
  }
  if (init.cmdline.empty() && !init.unreadable.contains("cmdline")) {
    return "the container's init had no command line yet (it was starting its program)";
  }
  if (evidence.loadedLibraries && onlyLoaderMapped(*evidence.loadedLibraries, init)) {
    return "the container's init had only its program and the dynamic loader mapped (the "
           "loader was still mapping its libraries)";
  }
  return "";
}

EvidenceRequest evidenceRequest(const ContainerFacts& facts, EvidenceScan scan,
                                RecordSource source) {
  EvidenceRequest request;
  request.container.id = facts.id;
  request.container.name = facts.name;
  request.container.image = facts.image;
  request.container.imageId = facts.imageId;
  request.container.pid = facts.pid;
  request.container.startedAt = facts.startedAt;
  request.scan = scan;
  request.source = source;
  request.postureWaiver = postureWaiverOf(facts.labels);
  return request;
}

Record evidenceRecord(const EvidenceRequest& request, EvidenceFacts evidence, UnixNanos observedAt,
                      const PosturePolicy& posture) {
  Record record;
  record.eventId = eventIdForEvidence(request.container.id, request.scan, observedAt);
  record.kind = std::string(kEvidenceKind);
  record.source = request.source;
  record.time = observedAt;
  record.observedAt = observedAt;
  record.container = request.container;
  const ProcessTree* tree = evidence.processTree ? &*evidence.processTree : nullptr;
  record.container.posture = std::make_shared<const PostureFindings>(
      evaluateProcessChecks(tree, request.postureWaiver, posture));
  record.evidence = std::move(evidence);
  return record;
}

EvidenceCollector::EvidenceCollector(Recorder& recorder, PostureCensus& census, Metrics& metrics,
                                     const Clock& clock, const Redactor& redactor,
                                     EvidenceOptions options)
    : recorder_(recorder),
      census_(census),
      metrics_(metrics),
      clock_(clock),
      redactor_(redactor),
      options_(std::move(options)),
      cache_(clock),
      reader_(options_.procRoot, cache_) {}

EvidenceCollector::~EvidenceCollector() { stop(); }

void EvidenceCollector::start() {
  for (int i = 0; i < options_.workers; ++i) {
    workers_.emplace_back([this] {
      nameThisThread("zastava-scan");
      runWorker();
    });
  }
}

void EvidenceCollector::stop() {
  std::size_t firstScans = 0;
  std::size_t rescans = 0;
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
    for (const auto& [due, request] : pending_) {
      ++(request.scan == EvidenceScan::kRescan ? rescans : firstScans);
    }
    pending_.clear();
  }
  wake_.notify_all();
  for (auto& worker : workers_) {
    if (worker.joinable()) worker.join();
  }
  if (firstScans + rescans > 0) {
    spdlog::info(
        "stopped before {} evidence scans ({} of them re-scans not due yet); every container "
        "still running is scanned at the next start",
        firstScans + rescans, rescans);
  }
}

bool EvidenceCollector::request(EvidenceRequest request) {
  if (options_.workers == 0) return false;
  return schedule(clock_.monotonic(), std::move(request));
}

bool EvidenceCollector::schedule(Due due, EvidenceRequest request) {
  {
    std::lock_guard lock(mu_);
    if (stopping_) return false;
    if (pending_.size() >= options_.queueCapacity) {
      metrics_.countDropped("evidence_queue_full");
      if (!queueFullWarned_) {
        spdlog::warn(
            "evidence queue full ({} scans): dropping evidence scans until it drains (counted "
            "in zastava_agent_events_dropped_total{{reason=\"evidence_queue_full\"}})",
            pending_.size());
        queueFullWarned_ = true;
      }
      return false;
    }
    queueFullWarned_ = false;
    pending_.emplace(due, std::move(request));
    metrics_.setEvidenceQueueDepth(pending_.size());
  }
  wake_.notify_all();  // each worker waits for the head of the queue, or for any scan
  return true;
}

void EvidenceCollector::runWorker() {
  while (true) {
    EvidenceRequest next;
    {
      std::unique_lock lock(mu_);
      while (!stopping_) {
        if (pending_.empty()) {
          wake_.wait(lock, [this] { return stopping_ || !pending_.empty(); });
        } else if (const Due due = pending_.begin()->first; due > clock_.monotonic()) {
          // `due` is a copy: the entry may be gone when the wait ends. An earlier scan queued
          // meanwhile, or another worker taking this one, ends the wait too.
          clock_.waitUntil(lock, wake_, due, [this, due] {
            return stopping_ || pending_.empty() || pending_.begin()->first != due;
          });
        } else {
          break;
        }
      }
      if (stopping_) return;
      next = std::move(pending_.begin()->second);
      pending_.erase(pending_.begin());
      metrics_.setEvidenceQueueDepth(pending_.size());
    }
    scan(next);
  }
}

void EvidenceCollector::scan(const EvidenceRequest& request) {
  const MonoTime started = clock_.monotonic();
  EvidenceFacts evidence = collectEvidence(reader_, request, options_, redactor_);
  if (const std::string starting = initStillStarting(evidence); !starting.empty()) {
    if (request.startAttempts < kStartRetries) {
      EvidenceRequest again = request;
      ++again.startAttempts;
      schedule(clock_.monotonic() + kStartRetryDelay, std::move(again));
      return;
    }
    evidence.status = EvidenceStatus::kPartial;
    evidence.reason = starting + " after " + std::to_string(kStartRetries) + " tries" +
                      (evidence.reason.empty() ? "" : "; " + evidence.reason);
  }
  metrics_.observeEvidenceScanDuration(clock_.secondsSince(started));
  metrics_.countEvidenceScan(evidenceScanName(request.scan), evidenceStatusName(evidence.status));
  reportHashing();
  countCaps(evidence);
  const EvidenceStatus status = evidence.status;
  spdlog::debug("evidence of {} ({}): {}{}{}", request.container.name,
                evidenceScanName(request.scan), evidenceStatusName(status),
                evidence.reason.empty() ? "" : ": ", evidence.reason);
  if (status == EvidenceStatus::kUnavailable) {
    std::lock_guard lock(mu_);
    if (!unavailableWarned_) {
      spdlog::warn("cannot read process evidence of container {} under {}: {}",
                   request.container.name, options_.procRoot, evidence.reason);
      unavailableWarned_ = true;
    }
  }
  // A re-scan of a container that has stopped since has nothing to add.
  if (request.scan == EvidenceScan::kRescan && status == EvidenceStatus::kExited) return;
  Record record = evidenceRecord(request, std::move(evidence), clock_.now(), options_.posture);
  census_.observe(record);
  recorder_.submit(std::move(record));
  const bool scanned = status == EvidenceStatus::kComplete || status == EvidenceStatus::kPartial;
  if (scanned && request.scan != EvidenceScan::kRescan && options_.rescanDelay.count() > 0) {
    EvidenceRequest rescan = request;
    rescan.scan = EvidenceScan::kRescan;
    schedule(clock_.monotonic() + options_.rescanDelay, std::move(rescan));
  }
}

void EvidenceCollector::reportHashing() {
  std::lock_guard lock(statsMu_);
  const FileHashStats now = cache_.stats();
  metrics_.addEvidenceHashing(now.bytesHashed - reported_.bytesHashed, now.hits - reported_.hits,
                              now.misses - reported_.misses);
  reported_ = now;
}

void EvidenceCollector::countCaps(const EvidenceFacts& evidence) {
  if (evidence.processTree && evidence.processTree->truncated) {
    metrics_.countEvidenceCapHit("processes");
  }
  const auto& libraries = evidence.loadedLibraries;
  if (libraries && libraries->countCapHit) metrics_.countEvidenceCapHit("libraries");
  bool byteCap = libraries && libraries->byteCapHit;
  if (evidence.processTree) {
    for (const ProcessInfo& p : evidence.processTree->processes) {
      const auto it = p.unreadable.find("exeSha256");
      byteCap = byteCap || (it != p.unreadable.end() && it->second == kByteCapReached);
    }
  }
  if (byteCap) metrics_.countEvidenceCapHit("bytes");
}

}  // namespace zastava
