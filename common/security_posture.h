// What a container's configuration says about its privileges, as read from inspect. Plain facts
// shared by the decoder that reads them (collectors/) and the record that carries them (buffer/).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace zastava {

struct MountFacts {
  std::string type;         // bind|volume|tmpfs|npipe
  std::string source;       // host path or volume name
  std::string destination;  // path in the container
  std::string mode;         // as given ("ro", "z", ...)
  std::string propagation;  // rprivate|rshared|rslave|...
  bool readWrite = false;
  bool dockerSocket = false;  // the source is a Docker API socket: full control of the host
};

struct SecurityPosture {
  bool privileged = false;
  std::string user;  // Config.User: "" means root (uid 0)
  std::vector<std::string> capAdd;
  std::vector<std::string> capDrop;
  std::vector<std::string> securityOpt;  // seccomp=..., apparmor=..., no-new-privileges, label=...
  std::string appArmorProfile;
  bool noNewPrivileges = false;
  bool readOnlyRootfs = false;
  std::string pidMode;  // "" (private), "host", "container:<id>"
  std::string networkMode;
  std::string ipcMode;
  std::string usernsMode;
  std::vector<std::string> devices;  // "host:container:permissions"
  std::vector<MountFacts> mounts;
  std::vector<std::string> ports;        // "80/tcp -> 0.0.0.0:8080"
  std::int64_t memoryBytes = 0;          // 0: no limit
  std::int64_t nanoCpus = 0;             // 0: no limit
  std::int64_t pidsLimit = 0;            // 0 or -1: no limit
  std::string restartPolicy;             // "no", "always", "on-failure:3", ...
  std::vector<std::string> healthcheck;  // Config.Healthcheck.Test, empty when none
  std::string healthStatus;              // State.Health.Status, empty when no health check
};

// What in `posture` widens the container's reach into the host, as short stable tags:
// "privileged", "docker-socket-mounted", "cap-add:CAP_X", "host-pid", "host-network",
// "host-ipc", "host-userns", "host-devices", "seccomp-unconfined", "apparmor-unconfined",
// "runs-as-root", "writable-bind-mount:<source>". Any thread.
inline std::vector<std::string> securityRisks(const SecurityPosture& posture) {
  std::vector<std::string> risks;
  if (posture.privileged) risks.push_back("privileged");
  for (const MountFacts& mount : posture.mounts) {
    if (mount.dockerSocket) {
      risks.push_back("docker-socket-mounted");
      break;
    }
  }
  for (const std::string& cap : posture.capAdd) {  // the engine keeps what the client sent
    std::string name;
    for (char c : cap) name += static_cast<char>(c >= 'a' && c <= 'z' ? c - 'a' + 'A' : c);
    const bool prefixed = name.starts_with("CAP_") || name == "ALL";
    risks.push_back(std::string("cap-add:") + (prefixed ? "" : "CAP_") + name);
  }
  if (posture.pidMode == "host") risks.push_back("host-pid");
  if (posture.networkMode == "host") risks.push_back("host-network");
  if (posture.ipcMode == "host") risks.push_back("host-ipc");
  if (posture.usernsMode == "host") risks.push_back("host-userns");
  if (!posture.devices.empty()) risks.push_back("host-devices");
  for (const std::string& option : posture.securityOpt) {
    if (option == "seccomp=unconfined" || option == "seccomp:unconfined") {
      risks.push_back("seccomp-unconfined");
    }
    if (option == "apparmor=unconfined" || option == "apparmor:unconfined") {
      risks.push_back("apparmor-unconfined");
    }
  }
  const std::string& user = posture.user;
  if (user.empty() || user == "0" || user == "root" || user.starts_with("0:") ||
      user.starts_with("root:")) {
    risks.push_back("runs-as-root");
  }
  for (const MountFacts& mount : posture.mounts) {
    if (mount.type == "bind" && mount.readWrite && !mount.dockerSocket) {
      risks.push_back("writable-bind-mount:" + mount.source);
    }
  }
  return risks;
}

}  // namespace zastava
