#include "collectors/procfs/proc_parsers.h"

#include <array>
#include <charconv>
#include <set>
#include <tuple>

#include "common/split.h"

namespace zastava {
namespace {

constexpr std::size_t kQuoteBytes = 120;
constexpr std::string_view kDeletedSuffix = " (deleted)";

constexpr std::array<std::string_view, 41> kCapabilityNames = {
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
};

Error malformed(std::string_view what, std::size_t lineNo, std::string_view line) {
  return Error{ErrorCode::kMalformed, std::string(what) + " line " + std::to_string(lineNo) +
                                          ": '" + std::string(line.substr(0, kQuoteBytes)) + "'"};
}

// Splits on '\n'; a trailing newline does not make an extra empty line.
std::vector<std::string_view> splitLines(std::string_view text) { return splitEndedBy(text, '\n'); }

// Takes the next run of non-space characters from `s`, skipping leading spaces and tabs.
std::string_view nextToken(std::string_view& s) {
  std::size_t b = 0;
  while (b < s.size() && (s[b] == ' ' || s[b] == '\t')) ++b;
  std::size_t e = b;
  while (e < s.size() && s[e] != ' ' && s[e] != '\t') ++e;
  const auto token = s.substr(b, e - b);
  s.remove_prefix(e);
  return token;
}

template <typename T>
bool parseNumber(std::string_view s, T& out, int base = 10) {
  if (s.empty()) return false;
  const auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), out, base);
  return ec == std::errc() && ptr == s.data() + s.size();
}

bool parseMapsLine(std::string_view line, MapsEntry& e) {
  std::string_view rest = line;
  const auto range = nextToken(rest);
  const auto dash = range.find('-');
  if (dash == std::string_view::npos || !parseNumber(range.substr(0, dash), e.start, 16) ||
      !parseNumber(range.substr(dash + 1), e.end, 16)) {
    return false;
  }
  const auto perms = nextToken(rest);
  if (perms.size() != 4) return false;
  e.perms = std::string(perms);
  if (!parseNumber(nextToken(rest), e.offset, 16)) return false;
  const auto dev = nextToken(rest);
  const auto colon = dev.find(':');
  if (colon == std::string_view::npos || !parseNumber(dev.substr(0, colon), e.major, 16) ||
      !parseNumber(dev.substr(colon + 1), e.minor, 16)) {
    return false;
  }
  e.device = std::string(dev);
  if (!parseNumber(nextToken(rest), e.inode, 10)) return false;
  std::size_t b = 0;
  while (b < rest.size() && rest[b] == ' ') ++b;
  std::string_view path = rest.substr(b);
  if (path.size() > kDeletedSuffix.size() && path.ends_with(kDeletedSuffix)) {
    e.deleted = true;
    path.remove_suffix(kDeletedSuffix.size());
  }
  e.path = std::string(path);
  return true;
}

// "Uid:\t0\t0\t0\t0" values -> numbers; false when any value is not a number or none is there.
template <typename T>
bool parseNumberList(std::string_view values, std::vector<T>& out) {
  out.clear();
  for (auto token = nextToken(values); !token.empty(); token = nextToken(values)) {
    T value{};
    if (!parseNumber(token, value)) return false;
    out.push_back(value);
  }
  return !out.empty();
}

bool isHex64(std::string_view s) {
  if (s.size() != 64) return false;
  for (const char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

}  // namespace

Result<std::vector<MapsEntry>> parseMaps(std::string_view text) {
  std::vector<MapsEntry> entries;
  const auto lines = splitLines(text);
  entries.reserve(lines.size());
  for (std::size_t i = 0; i < lines.size(); ++i) {
    MapsEntry entry;
    if (!parseMapsLine(lines[i], entry)) return malformed("maps", i + 1, lines[i]);
    entries.push_back(std::move(entry));
  }
  return entries;
}

std::vector<LibraryRef> executableFileMappings(const std::vector<MapsEntry>& entries) {
  std::vector<LibraryRef> refs;
  std::set<std::tuple<unsigned, unsigned, std::uint64_t, std::string>> seen;
  for (const auto& e : entries) {
    if (e.perms.size() < 3 || e.perms[2] != 'x' || e.inode == 0 || e.path.empty() ||
        e.path.front() != '/') {
      continue;
    }
    if (!seen.emplace(e.major, e.minor, e.inode, e.path).second) continue;
    refs.push_back(
        LibraryRef{e.path, e.device, e.major, e.minor, e.inode, e.deleted, e.start, e.end});
  }
  return refs;
}

Result<ProcStatus> parseStatus(std::string_view text) {
  ProcStatus s;
  bool haveName = false, havePid = false, havePpid = false, haveUid = false, haveGid = false;
  const auto lines = splitLines(text);
  for (std::size_t i = 0; i < lines.size(); ++i) {
    const auto line = lines[i];
    const auto colon = line.find(':');
    if (colon == std::string_view::npos) continue;  // not a field; status has no such lines
    const auto key = line.substr(0, colon);
    std::string_view value = line.substr(colon + 1);
    const auto bad = [&] { return malformed("status", i + 1, line); };
    if (key == "Name") {
      while (!value.empty() && (value.front() == '\t' || value.front() == ' ')) {
        value.remove_prefix(1);
      }
      s.name = std::string(value);
      haveName = true;
    } else if (key == "Pid" || key == "PPid") {
      int n = 0;
      auto token = nextToken(value);
      if (!parseNumber(token, n) || !nextToken(value).empty()) return bad();
      (key == "Pid" ? s.pid : s.ppid) = n;
      (key == "Pid" ? havePid : havePpid) = true;
    } else if (key == "Uid" || key == "Gid") {
      std::vector<std::uint32_t> ids;
      if (!parseNumberList(value, ids) || ids.size() != 4) return bad();
      (key == "Uid" ? s.uid : s.gid) = ids[0];
      (key == "Uid" ? s.euid : s.egid) = ids[1];
      (key == "Uid" ? haveUid : haveGid) = true;
    } else if (key == "CapEff") {
      std::uint64_t mask = 0;
      const auto token = nextToken(value);
      if (token.size() != 16 || !parseNumber(token, mask, 16)) return bad();
      s.capEff = mask;
      s.capEffNames = capabilityNames(mask);
    } else if (key == "Seccomp") {
      int mode = 0;
      if (!parseNumber(nextToken(value), mode) || mode < 0 || mode > 2) return bad();
      s.seccomp = mode;
      s.seccompMode = seccompModeName(mode);
    } else if (key == "NoNewPrivs") {
      int flag = 0;
      if (!parseNumber(nextToken(value), flag) || flag < 0 || flag > 1) return bad();
      s.noNewPrivs = flag == 1;
    } else if (key == "NSpid") {
      if (!parseNumberList(value, s.nsPids)) return bad();
    }
  }
  const char* missing = !haveName   ? "Name"
                        : !havePid  ? "Pid"
                        : !havePpid ? "PPid"
                        : !haveUid  ? "Uid"
                        : !haveGid  ? "Gid"
                                    : nullptr;
  if (missing != nullptr) {
    return Error{ErrorCode::kMalformed, std::string("status: missing field ") + missing};
  }
  return s;
}

Result<ProcStat> parseStat(std::string_view text) {
  const auto bad = [&] { return malformed("stat", 1, text); };
  const auto open = text.find('(');
  const auto close = text.rfind(')');
  if (open == std::string_view::npos || close == std::string_view::npos || close < open) {
    return bad();
  }
  ProcStat st;
  if (open < 2 || text[open - 1] != ' ' || !parseNumber(text.substr(0, open - 1), st.pid)) {
    return bad();
  }
  st.comm = std::string(text.substr(open + 1, close - open - 1));
  std::string_view rest = text.substr(close + 1);
  const auto state = nextToken(rest);
  if (state.size() != 1) return bad();
  st.state = state[0];
  if (!parseNumber(nextToken(rest), st.ppid)) return bad();
  // Fields 5..21: flags is field 9, num_threads field 20; field 22 is starttime (state is
  // field 3, ppid field 4).
  for (int field = 5; field < 22; ++field) {
    const auto token = nextToken(rest);
    if (token.empty()) return bad();
    if (field == 9 && !parseNumber(token, st.flags)) return bad();
    if (field == 20 && !parseNumber(token, st.numThreads)) return bad();
  }
  auto start = nextToken(rest);
  while (!start.empty() && start.back() == '\n') start.remove_suffix(1);
  if (!parseNumber(start, st.startTicks)) return bad();
  return st;
}

std::vector<std::string> parseCmdline(std::string_view text) {
  const auto args = splitEndedBy(text, '\0');
  return {args.begin(), args.end()};
}

Result<std::string> parseCgroupPath(std::string_view text) {
  std::string v2, firstV1, v1WithId;
  bool haveV2 = false, haveV1 = false;
  const auto lines = splitLines(text);
  if (lines.empty()) return Error{ErrorCode::kMalformed, "cgroup: empty file"};
  for (std::size_t i = 0; i < lines.size(); ++i) {
    const auto line = lines[i];
    const auto first = line.find(':');
    const auto second = first == std::string_view::npos ? first : line.find(':', first + 1);
    if (second == std::string_view::npos) return malformed("cgroup", i + 1, line);
    const auto hierarchy = line.substr(0, first);
    const auto controllers = line.substr(first + 1, second - first - 1);
    const std::string path(line.substr(second + 1));
    if (hierarchy == "0" && controllers.empty()) {
      v2 = path;
      haveV2 = true;
    } else {
      if (!haveV1) firstV1 = path;
      if (v1WithId.empty() && !containerIdFromCgroupPath(path).empty()) v1WithId = path;
      haveV1 = true;
    }
  }
  if (haveV2 && !containerIdFromCgroupPath(v2).empty()) return v2;
  if (!v1WithId.empty()) return v1WithId;
  if (haveV2) return v2;
  return firstV1;
}

std::string containerIdFromCgroupPath(std::string_view path) {
  std::string found;
  std::size_t i = 0;
  while (i < path.size()) {
    std::size_t j = i;
    while (j < path.size() &&
           ((path[j] >= '0' && path[j] <= '9') || (path[j] >= 'a' && path[j] <= 'f'))) {
      ++j;
    }
    if (isHex64(path.substr(i, j - i))) found = std::string(path.substr(i, j - i));
    i = j == i ? i + 1 : j;
  }
  return found;
}

Result<std::int64_t> parseBootTime(std::string_view text) {
  constexpr std::string_view kKey = "btime ";
  for (const std::string_view line : splitLines(text)) {
    std::int64_t seconds = 0;
    if (line.starts_with(kKey) && parseNumber(line.substr(kKey.size()), seconds)) return seconds;
  }
  return Error{ErrorCode::kMalformed, "stat: no btime line"};
}

Result<std::uint64_t> parseNamespaceLink(std::string_view link) {
  const auto open = link.find(":[");
  std::uint64_t inode = 0;
  if (open == std::string_view::npos || !link.ends_with("]") ||
      !parseNumber(link.substr(open + 2, link.size() - open - 3), inode)) {
    return Error{ErrorCode::kMalformed,
                 "namespace link: '" + std::string(link.substr(0, kQuoteBytes)) + "'"};
  }
  return inode;
}

std::string capabilityName(unsigned bit) {
  if (bit < kCapabilityNames.size()) return std::string(kCapabilityNames[bit]);
  return "CAP_" + std::to_string(bit);
}

std::vector<std::string> capabilityNames(std::uint64_t mask) {
  std::vector<std::string> names;
  for (unsigned bit = 0; bit < 64; ++bit) {
    if ((mask >> bit) & 1U) names.push_back(capabilityName(bit));
  }
  return names;
}

std::string seccompModeName(int mode) {
  switch (mode) {
    case 0:
      return "disabled";
    case 1:
      return "strict";
    case 2:
      return "filter";
    default:
      return "unknown(" + std::to_string(mode) + ")";
  }
}

}  // namespace zastava
