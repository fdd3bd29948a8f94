#include "posture/catalogue.h"

#include <algorithm>
#include <array>
#include <charconv>

namespace zastava {
namespace {

CheckOutcome passed() { return {}; }
CheckOutcome notApplicable() { return {CheckResult::kNotApplicable, {}}; }
CheckOutcome failed(std::string value) { return {CheckResult::kFailed, std::move(value)}; }
CheckOutcome failedIf(bool fails, std::string value) {
  return fails ? failed(std::move(value)) : passed();
}

bool hasOption(const SecurityPosture& p, std::string_view name, std::string_view value) {
  // Docker accepts both "name=value" and the older "name:value".
  return std::any_of(p.securityOpt.begin(), p.securityOpt.end(), [&](const std::string& option) {
    return option.size() == name.size() + 1 + value.size() && option.starts_with(name) &&
           (option[name.size()] == '=' || option[name.size()] == ':') && option.ends_with(value);
  });
}

std::string joined(const std::vector<std::string>& items) {
  std::string text;
  for (const std::string& item : items) text += (text.empty() ? "" : ",") + item;
  return text;
}

// A namespace shared with the host: `mode` is the HostConfig's *Mode field.
CheckOutcome notHostMode(std::string_view field, const std::string& mode) {
  return failedIf(mode == "host", std::string(field) + "=host");
}

// "80/tcp -> 0.0.0.0:8080" (decoders.cpp's portsFrom): the host address and port.
struct Binding {
  std::string_view hostIp;
  std::string_view hostPort;
};
Binding bindingOf(std::string_view port) {
  const auto arrow = port.find(" -> ");
  const std::string_view host = arrow == std::string_view::npos ? "" : port.substr(arrow + 4);
  const auto colon = host.rfind(':');
  if (colon == std::string_view::npos) return {host, ""};
  return {host.substr(0, colon), host.substr(colon + 1)};
}

CheckOutcome user(const SecurityPosture& p) {
  const std::string& u = p.user;
  const bool root =
      u.empty() || u == "0" || u == "root" || u.starts_with("0:") || u.starts_with("root:");
  return failedIf(root, u.empty() ? "User= (root)" : "User=" + u);
}

CheckOutcome appArmor(const SecurityPosture& p) {
  if (p.appArmorProfile.empty()) return notApplicable();  // the engine applies no AppArmor
  return failedIf(p.appArmorProfile == "unconfined", "AppArmorProfile=unconfined");
}

CheckOutcome selinux(const SecurityPosture& p) {
  if (hasOption(p, "label", "disable")) return failed("SecurityOpt=label=disable");
  const bool labelled = !p.processLabel.empty() ||
                        std::any_of(p.securityOpt.begin(), p.securityOpt.end(),
                                    [](const std::string& o) { return o.starts_with("label"); });
  return labelled ? passed() : notApplicable();  // the engine applies no SELinux labels
}

// Docker's default capability set (moby oci/caps/defaults.go).
bool isDefaultCapability(std::string_view name) {
  static constexpr std::array<std::string_view, 14> kDefaults = {
      "AUDIT_WRITE",      "CHOWN",   "DAC_OVERRIDE", "FOWNER", "FSETID",  "KILL",   "MKNOD",
      "NET_BIND_SERVICE", "NET_RAW", "SETFCAP",      "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT"};
  return std::find(kDefaults.begin(), kDefaults.end(), name) != kDefaults.end();
}

CheckOutcome capabilities(const SecurityPosture& p) {
  std::vector<std::string> added;
  for (const std::string& cap : p.capAdd) {  // the engine keeps what the client sent
    std::string name;
    for (char c : cap) name += static_cast<char>(c >= 'a' && c <= 'z' ? c - 'a' + 'A' : c);
    if (name.starts_with("CAP_")) name.erase(0, 4);
    if (!isDefaultCapability(name)) added.push_back(name == "ALL" ? name : "CAP_" + name);
  }
  return failedIf(!added.empty(), "CapAdd=" + joined(added));
}

CheckOutcome privileged(const SecurityPosture& p) {
  return failedIf(p.privileged, "Privileged=true");
}

// The benchmark's sensitive directories (CIS Docker Benchmark 5.6, as docker-bench-security).
bool isSensitiveDirectory(std::string_view path) {
  for (std::string_view dir : {"/", "/boot", "/dev", "/etc", "/lib", "/proc", "/sys", "/usr"}) {
    if (path == dir) return true;
  }
  return false;
}
bool isUnderSensitiveDirectory(std::string_view path) {
  for (std::string_view dir : {"/boot/", "/dev/", "/etc/", "/lib/", "/proc/", "/sys/", "/usr/"}) {
    if (path.starts_with(dir)) return true;
  }
  return false;
}

CheckOutcome sensitiveMounts(const SecurityPosture& p) {
  std::vector<std::string> found;
  for (const MountFacts& m : p.mounts) {
    if (m.type != "bind") continue;
    std::string_view source = m.source;
    while (source.size() > 1 && source.ends_with('/')) source.remove_suffix(1);
    if (isSensitiveDirectory(source) || (m.readWrite && isUnderSensitiveDirectory(source))) {
      found.push_back(m.source + " -> " + m.destination + (m.readWrite ? " (rw)" : " (ro)"));
    }
  }
  return failedIf(!found.empty(), joined(found));
}

CheckOutcome sshd(const ProcessTree* tree) {
  if (tree == nullptr || tree->processes.empty()) return notApplicable();
  for (const ProcessInfo& process : tree->processes) {
    const std::string_view exe = process.exePath;
    const std::string_view exeName = exe.substr(exe.rfind('/') + 1);
    if (process.comm == "sshd" || exeName == "sshd") {
      return failed("sshd: pid " + std::to_string(process.pid) +
                    (exe.empty() ? "" : " (" + process.exePath + ")"));
    }
  }
  return passed();
}

CheckOutcome privilegedPorts(const SecurityPosture& p) {
  if (p.ports.empty()) return notApplicable();
  std::vector<std::string> found;
  for (const std::string& port : p.ports) {
    const std::string_view hostPort = bindingOf(port).hostPort;
    int number = 0;
    const auto [end, ec] =
        std::from_chars(hostPort.data(), hostPort.data() + hostPort.size(), number);
    if (ec == std::errc() && end == hostPort.data() + hostPort.size() && number > 0 &&
        number < 1024) {
      found.push_back(port);
    }
  }
  return failedIf(!found.empty(), joined(found));
}

CheckOutcome hostNetwork(const SecurityPosture& p) {
  return notHostMode("NetworkMode", p.networkMode);
}

CheckOutcome memory(const SecurityPosture& p) { return failedIf(p.memoryBytes <= 0, "Memory=0"); }

CheckOutcome cpu(const SecurityPosture& p) {
  constexpr std::int64_t kDefaultShares = 1024;
  const bool shares = p.cpuShares > 0 && p.cpuShares != kDefaultShares;
  return failedIf(!shares && p.nanoCpus <= 0 && p.cpuQuota <= 0,
                  "CpuShares=" + std::to_string(p.cpuShares) + ",NanoCpus=0,CpuQuota=0");
}

CheckOutcome readOnlyRoot(const SecurityPosture& p) {
  return failedIf(!p.readOnlyRootfs, "ReadonlyRootfs=false");
}

CheckOutcome boundInterface(const SecurityPosture& p) {
  if (p.ports.empty()) return notApplicable();
  std::vector<std::string> found;
  for (const std::string& port : p.ports) {
    const std::string_view ip = bindingOf(port).hostIp;
    if (ip.empty() || ip == "0.0.0.0" || ip == "::" || ip == "[::]") found.push_back(port);
  }
  return failedIf(!found.empty(), joined(found));
}

CheckOutcome restartPolicy(const SecurityPosture& p) {
  const std::string& policy = p.restartPolicy;
  if (policy.empty() || policy == "no") return passed();
  if (policy.starts_with("on-failure:")) {
    int retries = 0;
    const std::string_view count = std::string_view(policy).substr(11);
    std::from_chars(count.data(), count.data() + count.size(), retries);
    if (retries >= 1 && retries <= 5) return passed();
  }
  // always, unless-stopped, on-failure without a limit or above 5
  return failed("RestartPolicy=" + policy);
}

CheckOutcome hostPid(const SecurityPosture& p) { return notHostMode("PidMode", p.pidMode); }
CheckOutcome hostIpc(const SecurityPosture& p) { return notHostMode("IpcMode", p.ipcMode); }

CheckOutcome devices(const SecurityPosture& p) {
  return failedIf(!p.devices.empty(), "Devices=" + joined(p.devices));
}

CheckOutcome ulimits(const SecurityPosture& p) {
  return failedIf(p.ulimits.empty(), "Ulimits= (the daemon's defaults)");
}

CheckOutcome propagation(const SecurityPosture& p) {
  std::vector<std::string> found;
  for (const MountFacts& m : p.mounts) {
    if (m.propagation == "shared" || m.propagation == "rshared") {
      found.push_back(m.destination + " (" + m.propagation + ")");
    }
  }
  return failedIf(!found.empty(), joined(found));
}

CheckOutcome hostUts(const SecurityPosture& p) { return notHostMode("UTSMode", p.utsMode); }

CheckOutcome seccomp(const SecurityPosture& p) {
  return failedIf(hasOption(p, "seccomp", "unconfined"), "SecurityOpt=seccomp=unconfined");
}

CheckOutcome cgroupParent(const SecurityPosture& p) {
  return failedIf(!p.cgroupParent.empty(), "CgroupParent=" + p.cgroupParent);
}

CheckOutcome noNewPrivileges(const SecurityPosture& p) {
  return failedIf(!p.noNewPrivileges, "SecurityOpt has no no-new-privileges");
}

CheckOutcome healthcheck(const SecurityPosture& p) {
  const bool none = p.healthcheck.empty() || p.healthcheck.front() == "NONE";
  return failedIf(none, none && !p.healthcheck.empty() ? "Healthcheck=NONE" : "Healthcheck=");
}

CheckOutcome pidsLimit(const SecurityPosture& p) {
  return failedIf(p.pidsLimit <= 0, "PidsLimit=" + std::to_string(p.pidsLimit));
}

CheckOutcome hostUserns(const SecurityPosture& p) {
  return notHostMode("UsernsMode", p.usernsMode);
}

CheckOutcome dockerSocket(const SecurityPosture& p) {
  std::vector<std::string> found;
  for (const MountFacts& m : p.mounts) {
    if (m.dockerSocket) found.push_back(m.source + " -> " + m.destination);
  }
  return failedIf(!found.empty(), joined(found));
}

using S = Severity;
constexpr std::array kCatalogue = {
    PostureCheck{"4.1", "Ensure that a user for the container has been created", S::kMedium, user},
    PostureCheck{"5.2", "Ensure that, if applicable, an AppArmor Profile is enabled", S::kHigh,
                 appArmor},
    PostureCheck{"5.3", "Ensure that, if applicable, SELinux security options are set", S::kHigh,
                 selinux},
    PostureCheck{"5.4", "Ensure that Linux kernel capabilities are restricted within containers",
                 S::kHigh, capabilities},
    PostureCheck{"5.5", "Ensure that privileged containers are not used", S::kCritical, privileged},
    PostureCheck{"5.6", "Ensure sensitive host system directories are not mounted on containers",
                 S::kHigh, sensitiveMounts},
    PostureCheck{"5.7", "Ensure sshd is not run within containers", S::kMedium, nullptr, sshd},
    PostureCheck{"5.8", "Ensure privileged ports are not mapped within containers", S::kLow,
                 privilegedPorts},
    PostureCheck{"5.10", "Ensure that the host's network namespace is not shared", S::kCritical,
                 hostNetwork},
    PostureCheck{"5.11", "Ensure that the memory usage for containers is limited", S::kLow, memory},
    PostureCheck{"5.12", "Ensure that CPU priority is set appropriately on containers", S::kLow,
                 cpu},
    PostureCheck{"5.13", "Ensure that the container's root filesystem is mounted as read only",
                 S::kMedium, readOnlyRoot},
    PostureCheck{"5.14",
                 "Ensure that incoming container traffic is bound to a specific host interface",
                 S::kLow, boundInterface},
    PostureCheck{"5.15", "Ensure that the 'on-failure' container restart policy is set to '5'",
                 S::kLow, restartPolicy},
    PostureCheck{"5.16", "Ensure that the host's process namespace is not shared", S::kCritical,
                 hostPid},
    PostureCheck{"5.17", "Ensure that the host's IPC namespace is not shared", S::kMedium, hostIpc},
    PostureCheck{"5.18", "Ensure that host devices are not directly exposed to containers",
                 S::kHigh, devices},
    PostureCheck{"5.19", "Ensure that the default ulimit is overwritten at runtime if needed",
                 S::kInfo, ulimits},
    PostureCheck{"5.20", "Ensure mount propagation mode is not set to shared", S::kMedium,
                 propagation},
    PostureCheck{"5.21", "Ensure that the host's UTS namespace is not shared", S::kMedium, hostUts},
    PostureCheck{"5.22", "Ensure the default seccomp profile is not Disabled", S::kHigh, seccomp},
    PostureCheck{"5.25", "Ensure that cgroup usage is confirmed", S::kInfo, cgroupParent},
    PostureCheck{"5.26",
                 "Ensure that the container is restricted from acquiring additional privileges",
                 S::kMedium, noNewPrivileges},
    PostureCheck{"5.27", "Ensure that container health is checked at runtime", S::kLow,
                 healthcheck},
    PostureCheck{"5.29", "Ensure that the PIDs cgroup limit is used", S::kLow, pidsLimit},
    PostureCheck{"5.31", "Ensure that the host's user namespaces are not shared", S::kHigh,
                 hostUserns},
    PostureCheck{"5.32", "Ensure that the Docker socket is not mounted inside any containers",
                 S::kCritical, dockerSocket},
};

}  // namespace

std::span<const PostureCheck> postureCatalogue() { return kCatalogue; }

const PostureCheck* findPostureCheck(std::string_view id) {
  for (const PostureCheck& check : kCatalogue) {
    if (check.id == id) return &check;
  }
  return nullptr;
}

}  // namespace zastava
