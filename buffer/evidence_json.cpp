#include "buffer/evidence_json.h"

#include <cstdio>
#include <optional>
#include <string>

namespace zastava {
namespace {

// A namespace inode, or null when it could not be read (0).
void inodeOrNull(JsonWriter& out, std::uint64_t inode) {
  if (inode == 0) {
    out.null();
  } else {
    out.unsignedInteger(inode);
  }
}

void capabilityMask(JsonWriter& out, const std::optional<std::uint64_t>& mask) {
  if (!mask) {
    out.null();
    return;
  }
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(*mask));
  out.text(hex);
}

// `value` when it is known, else absent (written as null).
template <typename T>
std::optional<std::int64_t> ifKnown(bool known, T value) {
  return known ? std::optional<std::int64_t>(value) : std::nullopt;
}

void writeNamespaces(JsonWriter& out, const NamespaceIds& ns) {
  out.startObject();
  inodeOrNull(out.key("pid"), ns.pid);
  inodeOrNull(out.key("mnt"), ns.mnt);
  inodeOrNull(out.key("net"), ns.net);
  inodeOrNull(out.key("ipc"), ns.ipc);
  inodeOrNull(out.key("uts"), ns.uts);
  inodeOrNull(out.key("user"), ns.user);
  inodeOrNull(out.key("cgroup"), ns.cgroup);
  out.endObject();
}

void writeProcess(JsonWriter& out, const ProcessInfo& p) {
  const bool statusRead = p.unreadable.count("status") == 0;
  const bool parentKnown = statusRead || p.unreadable.count("stat") == 0;
  out.startObject();
  out.key("pid").integer(p.pid);
  out.key("ppid").optionalInteger(ifKnown(parentKnown, p.ppid));
  out.key("nsPid").optionalInteger(ifKnown(p.nsPid != 0, p.nsPid));
  // Ids are read from status; without it they are unknown (0 would read as root).
  out.key("uid").optionalInteger(ifKnown(statusRead, p.uid));
  out.key("euid").optionalInteger(ifKnown(statusRead, p.euid));
  out.key("gid").optionalInteger(ifKnown(statusRead, p.gid));
  out.key("egid").optionalInteger(ifKnown(statusRead, p.egid));
  out.key("comm").optionalText(parentKnown ? std::optional(p.comm) : std::nullopt);
  out.key("cmdline").textArray(p.cmdline);
  out.key("exe").textOrNull(p.exePath);
  out.key("exeDeleted").boolean(p.exeDeleted);
  out.key("exeSha256").textOrNull(p.exeSha256);
  out.key("namespaces");
  writeNamespaces(out, p.namespaces);
  capabilityMask(out.key("capEff"), p.capEff);
  out.key("capabilities").textArray(p.capEffNames);
  out.key("seccomp").textOrNull(p.seccompMode);
  out.key("noNewPrivs").optionalBoolean(p.noNewPrivs);
  out.key("cgroup").textOrNull(p.cgroupPath);
  if (!p.unreadable.empty()) out.key("unreadable").textMap(p.unreadable);
  out.endObject();
}

void writeTree(JsonWriter& out, const ProcessTree& tree) {
  out.startObject();
  out.key("discovery").text(tree.discovery);
  out.key("truncated").boolean(tree.truncated);
  out.key("omittedCount").unsignedInteger(tree.omittedCount);
  out.key("exitedDuringScan").unsignedInteger(tree.exitedDuringScan);
  out.key("processes").startArray();
  for (const ProcessInfo& p : tree.processes) writeProcess(out, p);
  out.endArray();
  out.endObject();
}

void writeLibrary(JsonWriter& out, const LoadedLibrary& lib) {
  out.startObject();
  out.key("path").text(lib.path);
  out.key("device").text(lib.device);
  out.key("inode").unsignedInteger(lib.inode);
  out.key("deleted").boolean(lib.deleted);
  out.key("size").unsignedInteger(lib.size);
  out.key("sha256").textOrNull(lib.sha256);
  out.key("openedVia").textOrNull(lib.openedVia);
  out.key("identityVerified").boolean(lib.identityVerified);
  out.key("cached").boolean(lib.cached);
  out.key("mappedBy").startArray();
  for (const int pid : lib.mappedBy) out.integer(pid);
  out.endArray();
  if (!lib.whyNot.empty()) out.key("whyNot").text(lib.whyNot);
  out.endObject();
}

void writeLibraries(JsonWriter& out, const LibraryEvidence& evidence) {
  out.startObject();
  out.key("capsHit").startArray();
  if (evidence.countCapHit) out.text("libraries");
  if (evidence.byteCapHit) out.text("bytes");
  out.endArray();
  out.key("skippedCount").unsignedInteger(evidence.skippedCount);
  out.key("bytesHashed").unsignedInteger(evidence.bytesHashed);
  if (!evidence.unreadable.empty()) {
    out.key("unreadable").startObject();  // JSON keys are strings: pids as text
    for (const auto& [pid, why] : evidence.unreadable) out.key(std::to_string(pid)).text(why);
    out.endObject();
  }
  out.key("libraries").startArray();
  for (const LoadedLibrary& lib : evidence.libraries) writeLibrary(out, lib);
  out.endArray();
  out.endObject();
}

}  // namespace

void writeEvidence(JsonWriter& out, const EvidenceFacts& evidence) {
  out.startObject();
  out.key("scan").text(evidenceScanName(evidence.scan));
  out.key("status").text(evidenceStatusName(evidence.status));
  if (!evidence.reason.empty()) out.key("reason").text(evidence.reason);
  out.key("procRoot").text(evidence.procRoot);
  if (evidence.initPid != 0) out.key("initPid").integer(evidence.initPid);
  if (evidence.processTree) {
    out.key("processTree");
    writeTree(out, *evidence.processTree);
  }
  if (evidence.loadedLibraries) {
    out.key("loadedLibraries");
    writeLibraries(out, *evidence.loadedLibraries);
  }
  out.endObject();
}

}  // namespace zastava
