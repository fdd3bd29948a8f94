// ProcfsReader::loadedLibraries: the executable file mappings of a process, hashed.
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include <cerrno>
#include <cstdio>
#include <map>
#include <tuple>

#include "collectors/procfs/proc_io.h"
#include "collectors/procfs/proc_parsers.h"
#include "collectors/procfs/process_evidence.h"

namespace zastava {
namespace {

std::string mapFilesName(const LibraryRef& ref) {
  char name[64];
  std::snprintf(name, sizeof name, "%llx-%llx", static_cast<unsigned long long>(ref.start),
                static_cast<unsigned long long>(ref.end));
  return name;
}

bool sameFile(const UniqueFd& fd, const LibraryRef& ref) {
  struct stat st {};
  return ::fstat(fd.get(), &st) == 0 && st.st_ino == ref.inode && major(st.st_dev) == ref.major &&
         minor(st.st_dev) == ref.minor;
}

}  // namespace

Result<std::vector<LibraryRef>> ProcfsReader::executableMappings(int pid) const {
  const auto text = readProcFile(pidPath(pid, "maps"), kMaxMapsBytes);
  if (!text.ok()) {
    if (text.error().code == ErrorCode::kNotFound) {
      return Error{ErrorCode::kNotFound, "process exited: pid " + std::to_string(pid)};
    }
    return Error{text.error().code,
                 "maps of pid " + std::to_string(pid) + ": " + text.error().message};
  }
  const auto entries = parseMaps(*text);
  if (!entries.ok()) return entries.error();
  return executableFileMappings(*entries);
}

Result<LibraryEvidence> ProcfsReader::loadedLibraries(const std::vector<int>& pids,
                                                      const LibraryLimits& limits) const {
  LibraryEvidence out;
  // Distinct files in first-mapped order: opened through the first pid that maps them.
  struct MappedFile {
    LibraryRef ref;
    std::vector<int> mappedBy;
  };
  std::vector<MappedFile> files;
  std::map<std::tuple<unsigned, unsigned, std::uint64_t>, std::size_t> indexOf;
  for (std::size_t i = 0; i < pids.size(); ++i) {
    auto refs = executableMappings(pids[i]);
    if (!refs.ok()) {
      if (i == 0) return refs.error();
      out.unreadable[pids[i]] = refs.error().message;
      continue;
    }
    for (auto& ref : *refs) {
      const auto key = std::make_tuple(ref.major, ref.minor, ref.inode);
      auto [it, added] = indexOf.try_emplace(key, files.size());
      if (added) files.push_back({std::move(ref), {}});
      auto& mappers = files[it->second].mappedBy;
      if (mappers.empty() || mappers.back() != pids[i]) mappers.push_back(pids[i]);
    }
  }
  if (files.size() > limits.maxLibraries) {
    out.countCapHit = true;
    out.skippedCount += files.size() - limits.maxLibraries;
    files.resize(limits.maxLibraries);
  }
  for (MappedFile& file : files) {
    const std::uint64_t budget = limits.maxBytes - std::min(limits.maxBytes, out.bytesHashed);
    LoadedLibrary lib = hashMapping(file.mappedBy.front(), file.ref, budget, out);
    lib.mappedBy = std::move(file.mappedBy);
    out.libraries.push_back(std::move(lib));
  }
  return out;
}

LoadedLibrary ProcfsReader::hashMapping(int pid, const LibraryRef& ref, std::uint64_t budget,
                                        LibraryEvidence& out) const {
  LoadedLibrary lib;
  lib.path = ref.path;
  lib.device = ref.device;
  lib.inode = ref.inode;
  lib.deleted = ref.deleted;

  // Prefer the path inside the process's root; fall back to map_files when it is not the
  // mapped file; as a last resort hash the path's file without a verified identity.
  std::string why;
  std::optional<UniqueFd> unverified;
  std::optional<UniqueFd> chosen;
  if (!ref.deleted) {
    auto fd = openReadOnly(pidPath(pid, "root") + ref.path);
    if (!fd.ok()) {
      why = "root: " + fd.error().message;
    } else if (sameFile(*fd, ref)) {
      chosen.emplace(std::move(fd.value()));
      lib.openedVia = "root";
      lib.identityVerified = true;
    } else {
      why = "root: another file at the path";
      unverified.emplace(std::move(fd.value()));
    }
  } else {
    why = "deleted";
  }
  if (!chosen) {
    auto fd = openReadOnly(pidPath(pid, "map_files/" + mapFilesName(ref)));
    if (fd.ok()) {
      lib.identityVerified = sameFile(*fd, ref);
      chosen.emplace(std::move(fd.value()));
      lib.openedVia = "map_files";
    } else if (unverified) {
      chosen = std::move(unverified);
      lib.openedVia = "root";
    } else {
      why += "; map_files: " + fd.error().message;
    }
  }
  if (!chosen) {
    lib.whyNot = why;
    return lib;
  }
  const auto hash = cache_.hashFd(chosen->get(), budget);
  if (!hash.ok()) {
    lib.whyNot = hash.error().message;
  } else if (hash->overBudget) {
    lib.size = hash->size;
    lib.whyNot = kByteCapReached;
    out.byteCapHit = true;
    ++out.skippedCount;
  } else {
    lib.size = hash->size;
    lib.sha256 = hash->sha256;
    lib.cached = hash->cached;
    out.bytesHashed += hash->bytesRead;
  }
  return lib;
}

}  // namespace zastava
