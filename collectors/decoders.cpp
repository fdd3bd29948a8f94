#include "collectors/decoders.h"

#include <simdjson.h>
#include <strings.h>

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <optional>

#include "collectors/engine_vocabulary.h"

namespace zastava {
namespace {

using simdjson::dom::element;
using simdjson::dom::object;

constexpr std::size_t kQuoteLimit = 200;
constexpr std::int64_t kNanosPerSecond = 1'000'000'000;

// The first bytes of the input with control characters replaced, for error messages.
std::string quote(std::string_view json) {
  std::string out(json.substr(0, kQuoteLimit));
  for (char& c : out) {
    if (static_cast<unsigned char>(c) < 0x20) c = ' ';
  }
  if (json.size() > kQuoteLimit) out += "...";
  return out;
}

Error malformed(std::string_view what, std::string_view json) {
  return Error{ErrorCode::kMalformed, std::string(what) + " (" + std::to_string(json.size()) +
                                          " bytes: " + quote(json) + ")"};
}

// Each thread's parser, reused so its buffers are allocated once (the stream decodes every
// event on one thread). A document lives until the thread's next parse.
simdjson::dom::parser& threadParser() {
  thread_local simdjson::dom::parser parser;
  return parser;
}

// Parses `json` into `parser`, where the document lives until its next parse. The input is
// copied into a padded buffer.
Result<element> parseDocument(simdjson::dom::parser& parser, std::string_view json,
                              std::string_view what) {
  const simdjson::padded_string padded(json);
  element root;
  const auto err = parser.parse(padded).get(root);
  if (err != simdjson::SUCCESS) {
    return malformed(std::string(what) + " is not valid JSON: " + simdjson::error_message(err),
                     json);
  }
  return root;
}

bool isObject(element value) { return value.type() == simdjson::dom::element_type::OBJECT; }

// parseDocument into the thread's parser, and the document must be a JSON object.
Result<element> parseObject(std::string_view json, std::string_view what) {
  auto root = parseDocument(threadParser(), json, what);
  if (!root.ok()) return root.error();
  if (!isObject(*root)) return malformed(std::string(what) + " is not a JSON object", json);
  return root;
}

std::optional<element> field(element parent, std::string_view key) {
  element value;
  if (parent.at_key(key).get(value) != simdjson::SUCCESS || value.is_null()) return std::nullopt;
  return value;
}

std::optional<std::string> stringField(element parent, std::string_view key) {
  const auto value = field(parent, key);
  if (!value) return std::nullopt;
  std::string_view text;
  if (value->get_string().get(text) != simdjson::SUCCESS) return std::nullopt;
  return std::string(text);
}

std::string stringOr(element parent, std::string_view key) {
  return stringField(parent, key).value_or(std::string());
}

// The member as a whole number: an integer, or a number with a fraction cut off; 0 when absent,
// not a number, or beyond 64 bits (an unsigned above 2^63 - 1, or a double out of range, which
// no conversion could keep).
std::int64_t intOr(element parent, std::string_view key) {
  const auto value = field(parent, key);
  if (!value) return 0;
  std::int64_t i = 0;
  if (value->get_int64().get(i) == simdjson::SUCCESS) return i;
  if (value->type() != simdjson::dom::element_type::DOUBLE) return 0;
  constexpr double kTwoPow63 = 9223372036854775808.0;
  double d = 0;
  if (value->get_double().get(d) != simdjson::SUCCESS || !(d >= -kTwoPow63 && d < kTwoPow63)) {
    return 0;
  }
  return static_cast<std::int64_t>(d);
}

bool boolOr(element parent, std::string_view key) {
  const auto value = field(parent, key);
  bool b = false;
  if (value && value->get_bool().get(b) == simdjson::SUCCESS) return b;
  return false;
}

// A string value as its text; any other value as its compact JSON text (numbers: "137").
std::string asText(element value) {
  std::string_view text;
  if (value.get_string().get(text) == simdjson::SUCCESS) return std::string(text);
  if (value.is_null()) return std::string();
  return simdjson::minify(value);
}

std::map<std::string, std::string> stringMap(std::optional<element> value) {
  std::map<std::string, std::string> out;
  object obj;
  if (!value || value->get_object().get(obj) != simdjson::SUCCESS) return out;
  for (const auto [key, item] : obj) out.emplace(std::string(key), asText(item));
  return out;
}

std::vector<std::string> stringList(std::optional<element> value) {
  std::vector<std::string> out;
  simdjson::dom::array arr;
  if (!value || value->get_array().get(arr) != simdjson::SUCCESS) return out;
  for (const element item : arr) out.push_back(asText(item));
  return out;
}

// The member `key` of `parent` when it is a JSON object; std::nullopt otherwise.
std::optional<element> objectField(element parent, std::string_view key) {
  auto value = field(parent, key);
  if (!value || !isObject(*value)) return std::nullopt;
  return value;
}

ContainerSummary summaryFrom(element item) {
  ContainerSummary summary;
  summary.id = stringOr(item, "Id");
  summary.names = stringList(field(item, "Names"));
  summary.image = stringOr(item, "Image");
  summary.imageId = stringOr(item, "ImageID");
  summary.command = stringOr(item, "Command");
  summary.created = intOr(item, "Created");
  summary.state = stringOr(item, "State");
  summary.status = stringOr(item, "Status");
  summary.labels = stringMap(field(item, "Labels"));
  return summary;
}

ContainerState stateFrom(std::optional<element> value) {
  ContainerState state;
  if (!value || !isObject(*value)) return state;
  const element s = *value;
  state.status = stringOr(s, "Status");
  state.running = boolOr(s, "Running");
  state.paused = boolOr(s, "Paused");
  state.restarting = boolOr(s, "Restarting");
  state.oomKilled = boolOr(s, "OOMKilled");
  state.dead = boolOr(s, "Dead");
  state.pid = intOr(s, "Pid");
  state.exitCode = intOr(s, "ExitCode");
  state.error = stringOr(s, "Error");
  state.startedAt = stringOr(s, "StartedAt");
  state.finishedAt = stringOr(s, "FinishedAt");
  return state;
}

}  // namespace

void splitAction(std::string_view raw, std::string& action, std::string& detail) {
  const auto sep = raw.find(": ");
  if (sep == std::string_view::npos) {
    action.assign(raw);
    detail.clear();
    return;
  }
  action.assign(raw.substr(0, sep));
  detail.assign(raw.substr(sep + 2));
}

Result<EngineEvent> decodeEvent(std::string_view json) {
  auto root = parseObject(json, "event");
  if (!root.ok()) return root.error();
  const element doc = *root;

  EngineEvent event;
  const auto status = stringField(doc, "status");
  auto rawAction = stringField(doc, "Action");
  if (!rawAction) rawAction = status;
  if (!rawAction) return malformed("event has neither Action nor status", json);

  const auto actor = field(doc, "Actor");
  std::optional<std::string> actorId;
  if (actor && isObject(*actor)) {
    actorId = stringField(*actor, "ID");
    event.attributes = stringMap(field(*actor, "Attributes"));
  }
  if (!actorId || actorId->empty()) actorId = stringField(doc, "id");
  if (!actorId || actorId->empty()) return malformed("event has neither Actor.ID nor id", json);

  auto type = stringField(doc, "Type");
  if (!type && status) type = "container";
  if (!type) return malformed("event has no Type", json);

  event.type = std::move(*type);
  event.rawAction = std::move(*rawAction);
  splitAction(event.rawAction, event.action, event.actionDetail);
  toDockerVocabulary(event, stringOr(doc, "HealthStatus"));
  event.actorId = std::move(*actorId);
  event.scope = stringOr(doc, "scope");
  event.time = intOr(doc, "time");
  event.timeNano = intOr(doc, "timeNano");
  if (event.timeNano == 0 && __builtin_mul_overflow(event.time, kNanosPerSecond, &event.timeNano)) {
    return malformed("event time is out of range (" + std::to_string(event.time) + " s)", json);
  }
  return event;
}

Result<std::vector<ContainerSummary>> decodeContainerList(std::string_view json) {
  // A list of a thousand containers is over a megabyte, read once per reconciliation: its
  // parser's buffers (several times the list's size) are freed on return, not kept.
  simdjson::dom::parser parser;
  auto root = parseDocument(parser, json, "container list");
  if (!root.ok()) return root.error();
  simdjson::dom::array items;
  if (root->get_array().get(items) != simdjson::SUCCESS) {
    return malformed("container list is not a JSON array", json);
  }
  std::vector<ContainerSummary> out;
  out.reserve(items.size());
  std::size_t index = 0;
  for (const element item : items) {
    if (!isObject(item)) {
      return malformed("container list element " + std::to_string(index) + " is not an object",
                       json);
    }
    ContainerSummary summary = summaryFrom(item);
    if (summary.id.empty()) {
      return malformed("container list element " + std::to_string(index) + " has no Id", json);
    }
    out.push_back(std::move(summary));
    ++index;
  }
  return out;
}

// A bind mount of the Docker API socket hands the container full control of the host.
bool isDockerSocket(std::string_view path) {
  return path.ends_with("/docker.sock") || path.ends_with("/docker.sock/") ||
         path.ends_with("/containerd.sock") || path.ends_with("/podman.sock");
}

std::vector<MountFacts> mountsFrom(std::optional<element> value) {
  std::vector<MountFacts> mounts;
  simdjson::dom::array items;
  if (!value || value->get(items) != simdjson::SUCCESS) return mounts;
  for (element item : items) {
    if (!isObject(item)) continue;
    MountFacts mount;
    mount.type = stringOr(item, "Type");
    mount.source = stringOr(item, "Source");
    mount.destination = stringOr(item, "Destination");
    mount.mode = stringOr(item, "Mode");
    mount.propagation = stringOr(item, "Propagation");
    mount.readWrite = boolOr(item, "RW");
    mount.dockerSocket = isDockerSocket(mount.source) || isDockerSocket(mount.destination);
    mounts.push_back(std::move(mount));
  }
  return mounts;
}

// HostConfig.PortBindings: {"80/tcp": [{"HostIp": "", "HostPort": "8080"}]}.
std::vector<std::string> portsFrom(std::optional<element> value) {
  std::vector<std::string> ports;
  simdjson::dom::object bindings;
  if (!value || value->get(bindings) != simdjson::SUCCESS) return ports;
  for (auto [containerPort, hostList] : bindings) {
    simdjson::dom::array hosts;
    if (hostList.get(hosts) != simdjson::SUCCESS) continue;
    for (element host : hosts) {
      if (!isObject(host)) continue;
      std::string ip = stringOr(host, "HostIp");
      ports.push_back(std::string(containerPort) + " -> " + (ip.empty() ? "0.0.0.0" : ip) + ":" +
                      stringOr(host, "HostPort"));
    }
  }
  return ports;
}

std::vector<std::string> devicesFrom(std::optional<element> value) {
  std::vector<std::string> devices;
  simdjson::dom::array items;
  if (!value || value->get(items) != simdjson::SUCCESS) return devices;
  for (element item : items) {
    if (!isObject(item)) continue;
    devices.push_back(stringOr(item, "PathOnHost") + ":" + stringOr(item, "PathInContainer") + ":" +
                      stringOr(item, "CgroupPermissions"));
  }
  return devices;
}

std::vector<std::string> ulimitsFrom(std::optional<element> value) {
  std::vector<std::string> ulimits;
  simdjson::dom::array items;
  if (!value || value->get(items) != simdjson::SUCCESS) return ulimits;
  for (element item : items) {
    if (!isObject(item)) continue;
    ulimits.push_back(stringOr(item, "Name") + "=" + std::to_string(intOr(item, "Soft")) + ":" +
                      std::to_string(intOr(item, "Hard")));
  }
  return ulimits;
}

SecurityPosture postureFrom(element doc) {
  SecurityPosture posture;
  posture.appArmorProfile = stringOr(doc, "AppArmorProfile");
  posture.processLabel = stringOr(doc, "ProcessLabel");
  posture.mounts = mountsFrom(field(doc, "Mounts"));
  if (const auto host = objectField(doc, "HostConfig")) {
    posture.privileged = boolOr(*host, "Privileged");
    posture.capAdd = stringList(field(*host, "CapAdd"));
    posture.capDrop = stringList(field(*host, "CapDrop"));
    posture.securityOpt = stringList(field(*host, "SecurityOpt"));
    for (const auto& option : posture.securityOpt) {
      if (option == "no-new-privileges" || option == "no-new-privileges:true") {
        posture.noNewPrivileges = true;
      }
    }
    posture.readOnlyRootfs = boolOr(*host, "ReadonlyRootfs");
    posture.pidMode = stringOr(*host, "PidMode");
    posture.networkMode = stringOr(*host, "NetworkMode");
    posture.ipcMode = stringOr(*host, "IpcMode");
    posture.usernsMode = stringOr(*host, "UsernsMode");
    posture.utsMode = stringOr(*host, "UTSMode");
    posture.devices = devicesFrom(field(*host, "Devices"));
    posture.ports = portsFrom(field(*host, "PortBindings"));
    posture.memoryBytes = intOr(*host, "Memory");
    posture.nanoCpus = intOr(*host, "NanoCpus");
    posture.cpuShares = intOr(*host, "CpuShares");
    posture.cpuQuota = intOr(*host, "CpuQuota");
    posture.ulimits = ulimitsFrom(field(*host, "Ulimits"));
    posture.cgroupParent = stringOr(*host, "CgroupParent");
    posture.pidsLimit = intOr(*host, "PidsLimit");
    if (const auto restart = objectField(*host, "RestartPolicy")) {
      posture.restartPolicy = stringOr(*restart, "Name");
      if (const auto retries = intOr(*restart, "MaximumRetryCount"); retries > 0) {
        posture.restartPolicy += ":" + std::to_string(retries);
      }
    }
  }
  if (const auto config = objectField(doc, "Config")) {
    posture.user = stringOr(*config, "User");
    if (const auto health = objectField(*config, "Healthcheck")) {
      posture.healthcheck = stringList(field(*health, "Test"));
    }
  }
  if (const auto state = objectField(doc, "State")) {
    if (const auto health = objectField(*state, "Health")) {
      posture.healthStatus = stringOr(*health, "Status");
    }
  }
  return posture;
}

Result<ContainerInspect> decodeContainerInspect(std::string_view json) {
  auto root = parseObject(json, "container inspect");
  if (!root.ok()) return root.error();
  const element doc = *root;

  ContainerInspect inspect;
  inspect.id = stringOr(doc, "Id");
  if (inspect.id.empty()) return malformed("container inspect has no Id", json);
  inspect.name = stringOr(doc, "Name");
  if (!inspect.name.empty() && inspect.name.front() == '/') inspect.name.erase(0, 1);
  inspect.created = stringOr(doc, "Created");
  inspect.imageId = stringOr(doc, "Image");
  inspect.path = stringOr(doc, "Path");
  inspect.args = stringList(field(doc, "Args"));
  inspect.state = stateFrom(field(doc, "State"));
  inspect.restartCount = intOr(doc, "RestartCount");
  if (const auto config = objectField(doc, "Config")) {
    inspect.image = stringOr(*config, "Image");
    inspect.labels = stringMap(field(*config, "Labels"));
    inspect.env = stringList(field(*config, "Env"));
  }
  if (const auto descriptor = objectField(doc, "ImageManifestDescriptor")) {
    inspect.manifestDigest = stringOr(*descriptor, "digest");
  }
  inspect.posture = postureFrom(doc);
  return inspect;
}

Result<VersionInfo> decodeVersion(std::string_view json) {
  auto root = parseObject(json, "version");
  if (!root.ok()) return root.error();
  const element doc = *root;
  VersionInfo info;
  info.apiVersion = stringOr(doc, "ApiVersion");
  if (info.apiVersion.empty()) return malformed("version has no ApiVersion", json);
  info.version = stringOr(doc, "Version");
  info.minApiVersion = stringOr(doc, "MinAPIVersion");
  info.os = stringOr(doc, "Os");
  info.arch = stringOr(doc, "Arch");
  info.kernelVersion = stringOr(doc, "KernelVersion");
  return info;
}

std::optional<long> decodeStatusLine(std::string_view line) {
  if (line.substr(0, 5) != "HTTP/") return std::nullopt;
  const std::string copy(line);
  long status = 0;
  if (std::sscanf(copy.c_str(), "HTTP/%*s %ld", &status) != 1) return std::nullopt;
  return status;
}

std::optional<std::string> decodeApiVersionHeader(std::string_view line) {
  constexpr std::string_view kApiVersion = "api-version:";
  if (line.size() < kApiVersion.size() ||
      strncasecmp(line.data(), kApiVersion.data(), kApiVersion.size()) != 0) {
    return std::nullopt;
  }
  std::string_view value = line.substr(kApiVersion.size());
  while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.remove_prefix(1);
  return std::string(value);
}

std::optional<std::pair<int, int>> parseApiVersion(std::string_view text) {
  // Digits only: sscanf's %d also took a sign, blanks and numbers beyond int ("1.+41", "1. 41").
  const auto number = [](std::string_view digits) -> std::optional<int> {
    if (digits.empty() ||
        !std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; })) {
      return std::nullopt;
    }
    int value = 0;
    const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), value);
    if (ec != std::errc() || end != digits.data() + digits.size()) return std::nullopt;
    return value;
  };
  const auto dot = text.find('.');
  if (dot == std::string_view::npos) return std::nullopt;
  const auto major = number(text.substr(0, dot));
  const auto minor = number(text.substr(dot + 1));
  if (!major || !minor) return std::nullopt;
  return std::make_pair(*major, *minor);
}

std::string decodeErrorMessage(std::string_view body) {
  auto doc = parseObject(body, "error body");
  if (!doc.ok()) return std::string();
  return stringOr(*doc, "message");
}

std::string decodeErrorCause(std::string_view body) {
  auto doc = parseObject(body, "error body");
  if (!doc.ok()) return std::string();
  return stringOr(*doc, "cause");
}

}  // namespace zastava
