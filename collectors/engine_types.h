// Plain structs decoded from the Docker Engine's JSON. They own their strings (decoders copy
// out of the simdjson buffer). Field names follow the engine's, in lowerCamel.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/security_posture.h"

namespace zastava {

// One object from GET /events. Both shapes are accepted: pre-1.52 engines also send
// `status`, `id`, `from`; 1.52+ send only Type/Action/Actor. `action` and `actionDetail` are in
// Docker's vocabulary whatever the engine (decodeEvent maps Podman's names); `rawAction` is what
// the engine sent, and `mapped` says when the two differ.
struct EngineEvent {
  std::string type;  // "container", ...
  // The verb before ": " ("health_status", "exec_start", "die"), Podman's names mapped to
  // Docker's ("remove" -> "destroy").
  std::string action;
  // What followed ": ", exactly as sent ("healthy", "true "), Podman's HealthStatus, or empty.
  std::string actionDetail;
  std::string rawAction;  // Action exactly as the engine sent it: the eventId is made of it
  bool mapped = false;    // action/actionDetail are not what rawAction spells (Podman only)
  std::string actorId;    // Actor.ID (full container id for container events)
  std::map<std::string, std::string> attributes;  // Actor.Attributes
  std::string scope;                              // "local" | "swarm"
  std::int64_t time = 0;                          // seconds
  std::int64_t timeNano = 0;  // nanoseconds since the epoch; the engine's own ordering key
};

// One element of GET /containers/json?all=1.
struct ContainerSummary {
  std::string id;
  std::vector<std::string> names;  // as sent, with the leading "/"
  std::string image;               // reference as started
  std::string imageId;
  std::string command;
  std::int64_t created = 0;  // seconds
  std::string state;         // "running", "exited", ...
  std::string status;        // human text ("Up 3 seconds")
  std::map<std::string, std::string> labels;
};

struct ContainerState {
  std::string status;  // created|running|paused|restarting|removing|exited|dead
  bool running = false;
  bool paused = false;
  bool restarting = false;
  bool oomKilled = false;
  bool dead = false;
  std::int64_t pid = 0;
  std::int64_t exitCode = 0;
  std::string error;
  std::string startedAt;  // RFC 3339 as sent; "0001-01-01T00:00:00Z" when never started
  std::string finishedAt;
};

// GET /containers/{id}/json, the fields the agent records.
struct ContainerInspect {
  std::string id;
  std::string name;     // without the leading "/"
  std::string created;  // RFC 3339 as sent
  std::string image;    // Config.Image: the reference as started
  std::string imageId;  // Image: "sha256:..."
  std::string path;
  std::vector<std::string> args;
  ContainerState state;
  std::int64_t restartCount = 0;
  std::map<std::string, std::string> labels;  // Config.Labels
  std::vector<std::string> env;               // Config.Env, "NAME=value" as sent: secrets!
  std::string manifestDigest;  // ImageManifestDescriptor.digest (API 1.48+), else empty
  SecurityPosture posture;
};

// GET /version.
struct VersionInfo {
  std::string version;     // engine version, "20.10.24+dfsg1"
  std::string apiVersion;  // highest API the engine speaks, "1.41"
  std::string minApiVersion;
  std::string os;
  std::string arch;
  std::string kernelVersion;
};

// GET /_ping.
struct PingInfo {
  std::string apiVersion;  // the API-Version header; empty if the peer did not send one
};

}  // namespace zastava
