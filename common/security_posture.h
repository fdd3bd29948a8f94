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
  std::string processLabel;  // SELinux label of the container's processes; empty without SELinux
  bool noNewPrivileges = false;
  bool readOnlyRootfs = false;
  std::string pidMode;  // "" (private), "host", "container:<id>"
  std::string networkMode;
  std::string ipcMode;
  std::string usernsMode;
  std::string utsMode;
  std::vector<std::string> devices;  // "host:container:permissions"
  std::vector<MountFacts> mounts;
  std::vector<std::string> ports;        // "80/tcp -> 0.0.0.0:8080"
  std::int64_t memoryBytes = 0;          // 0: no limit
  std::int64_t nanoCpus = 0;             // 0: no limit
  std::int64_t cpuShares = 0;            // 0: the default weight (1024)
  std::int64_t cpuQuota = 0;             // 0: no quota
  std::int64_t pidsLimit = 0;            // 0 or -1: no limit
  std::string restartPolicy;             // "no", "always", "on-failure:3", ...
  std::vector<std::string> ulimits;      // "nofile=1024:2048"; empty: the daemon's defaults
  std::string cgroupParent;              // empty: the engine's default
  std::vector<std::string> healthcheck;  // Config.Healthcheck.Test, empty when none
  std::string healthStatus;              // State.Health.Status, empty when no health check
};

}  // namespace zastava
