#include "buffer/evidence_json.h"

#include <cstdio>

namespace zastava {
namespace {

using OrderedJson = nlohmann::ordered_json;

OrderedJson textOrNull(const std::string& text) {
  return text.empty() ? OrderedJson() : OrderedJson(text);
}

// A namespace inode, or null when it could not be read (0).
OrderedJson inodeOrNull(std::uint64_t inode) {
  return inode == 0 ? OrderedJson() : OrderedJson(inode);
}

OrderedJson capabilityMask(const std::optional<std::uint64_t>& mask) {
  if (!mask) return OrderedJson();
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(*mask));
  return hex;
}

// An id read from status, or null when status could not be read (0 would read as root).
OrderedJson idOrNull(std::uint32_t id, bool known) {
  return known ? OrderedJson(id) : OrderedJson();
}

OrderedJson processJson(const ProcessInfo& p) {
  const bool statusRead = p.unreadable.count("status") == 0;
  const bool parentKnown = statusRead || p.unreadable.count("stat") == 0;
  OrderedJson out = OrderedJson::object();
  out["pid"] = p.pid;
  out["ppid"] = parentKnown ? OrderedJson(p.ppid) : OrderedJson();
  out["nsPid"] = p.nsPid == 0 ? OrderedJson() : OrderedJson(p.nsPid);
  out["uid"] = idOrNull(p.uid, statusRead);
  out["euid"] = idOrNull(p.euid, statusRead);
  out["gid"] = idOrNull(p.gid, statusRead);
  out["egid"] = idOrNull(p.egid, statusRead);
  out["comm"] = parentKnown ? OrderedJson(p.comm) : OrderedJson();
  out["cmdline"] = p.cmdline;
  out["exe"] = textOrNull(p.exePath);
  out["exeDeleted"] = p.exeDeleted;
  out["exeSha256"] = textOrNull(p.exeSha256);
  out["namespaces"] = OrderedJson{
      {"pid", inodeOrNull(p.namespaces.pid)},      {"mnt", inodeOrNull(p.namespaces.mnt)},
      {"net", inodeOrNull(p.namespaces.net)},      {"ipc", inodeOrNull(p.namespaces.ipc)},
      {"uts", inodeOrNull(p.namespaces.uts)},      {"user", inodeOrNull(p.namespaces.user)},
      {"cgroup", inodeOrNull(p.namespaces.cgroup)}};
  out["capEff"] = capabilityMask(p.capEff);
  out["capabilities"] = p.capEffNames;
  out["seccomp"] = textOrNull(p.seccompMode);
  out["noNewPrivs"] = p.noNewPrivs ? OrderedJson(*p.noNewPrivs) : OrderedJson();
  out["cgroup"] = textOrNull(p.cgroupPath);
  if (!p.unreadable.empty()) out["unreadable"] = p.unreadable;
  return out;
}

OrderedJson treeJson(const ProcessTree& tree) {
  OrderedJson processes = OrderedJson::array();
  for (const ProcessInfo& p : tree.processes) processes.push_back(processJson(p));
  OrderedJson out = OrderedJson::object();
  out["discovery"] = tree.discovery;
  out["truncated"] = tree.truncated;
  out["omittedCount"] = tree.omittedCount;
  out["exitedDuringScan"] = tree.exitedDuringScan;
  out["processes"] = std::move(processes);
  return out;
}

OrderedJson libraryJson(const LoadedLibrary& lib) {
  OrderedJson out = OrderedJson::object();
  out["path"] = lib.path;
  out["device"] = lib.device;
  out["inode"] = lib.inode;
  out["deleted"] = lib.deleted;
  out["size"] = lib.size;
  out["sha256"] = textOrNull(lib.sha256);
  out["openedVia"] = textOrNull(lib.openedVia);
  out["identityVerified"] = lib.identityVerified;
  out["cached"] = lib.cached;
  out["mappedBy"] = lib.mappedBy;
  if (!lib.whyNot.empty()) out["whyNot"] = lib.whyNot;
  return out;
}

OrderedJson librariesJson(const LibraryEvidence& evidence) {
  OrderedJson libraries = OrderedJson::array();
  for (const LoadedLibrary& lib : evidence.libraries) libraries.push_back(libraryJson(lib));
  OrderedJson capsHit = OrderedJson::array();
  if (evidence.countCapHit) capsHit.push_back("libraries");
  if (evidence.byteCapHit) capsHit.push_back("bytes");
  OrderedJson out = OrderedJson::object();
  out["capsHit"] = std::move(capsHit);
  out["skippedCount"] = evidence.skippedCount;
  out["bytesHashed"] = evidence.bytesHashed;
  if (!evidence.unreadable.empty()) {
    OrderedJson unreadable = OrderedJson::object();  // JSON keys are strings: pids as text
    for (const auto& [pid, why] : evidence.unreadable) unreadable[std::to_string(pid)] = why;
    out["unreadable"] = std::move(unreadable);
  }
  out["libraries"] = std::move(libraries);
  return out;
}

}  // namespace

OrderedJson evidenceJson(const EvidenceFacts& evidence) {
  OrderedJson out = OrderedJson::object();
  out["scan"] = evidenceScanName(evidence.scan);
  out["status"] = evidenceStatusName(evidence.status);
  if (!evidence.reason.empty()) out["reason"] = evidence.reason;
  out["procRoot"] = evidence.procRoot;
  out["initPid"] = evidence.initPid == 0 ? OrderedJson() : OrderedJson(evidence.initPid);
  if (evidence.processTree) out["processTree"] = treeJson(*evidence.processTree);
  if (evidence.loadedLibraries) out["loadedLibraries"] = librariesJson(*evidence.loadedLibraries);
  return out;
}

}  // namespace zastava
