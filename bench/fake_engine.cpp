// A load generator for the ingest benchmark: serves the minimal read-only Docker Engine API
// (API 1.41, the shape of Debian's docker.io 20.10) over a unix socket. It keeps N generated
// container events as its event log and answers GET /events with the events of that log at
// full speed (all of them, or those from `since` on), then keeps the connection open (idle)
// until the client closes it.
//
//   fake_engine --socket /tmp/zb.sock --events 1000000 --fixtures tests/fixtures/engine
//
// The events are built from the lines of events-lifecycle.ndjson (captured from a real engine):
// each generated container replays the lifecycle of one captured container, with its own 64-hex
// id, name, compose labels and a strictly increasing time/timeNano, so every event is distinct:
// --interval-us apart (1 µs by default) plus a jitter under 1 µs, the last one stamped when the
// log is built. The agent resumes 1 s before the last event it queued, so with the default the
// replay after a reopen starts from the first event of up to a million.
// The whole /events body (one HTTP chunk per event, as the engine flushes them) is built before
// the socket is opened, so generation is not measured.
//
// `since` is honoured the way Podman does it, not Docker: Podman keeps its whole event log (a
// file or the journal) and replays every event from `since` on, however old; Docker keeps only
// its last 256 events in memory, so a client that reopens the stream after more than 256 events
// always finds a gap. A request with since=SECONDS[.FRACTION] (the Unix time the agent and the
// Docker CLI send) gets every event whose timeNano is >= that time, found by a binary search
// over the events' times; the body is served from that event's offset. Without `since`, every
// event. The filters, and `until` (the agent never sends it), are not applied: every generated
// event is a container event. A `since` that does not parse gets 400, like the engine.
//
// Requests: GET|HEAD /_ping, GET /version, GET /containers/json (always []), GET
// /containers/{id}/json (always 404 "No such container": the container is gone, the cheapest
// realistic answer), GET /events; each with or without a /vX.Y prefix and any query. Anything
// else gets 404 {"message":"page not found"}, like the engine. Connections are kept alive; one
// thread per connection. Each /events request is logged on stdout with where it starts.
//
// --inspect-delay-us U (default 0) holds each inspect answer U µs before sending it (the same
// 404; only that connection's thread sleeps): a real engine takes 1-2 ms to answer an inspect
// (bench/engine.py --only inspect measures it), the fake engine otherwise answers at once.
// --events-gate PATH: /events sends its headers at once, like the engine, but its events only
// once PATH exists (polled every ms), so a client can be measured connected, ready and idle
// before the events flow; bench/ingest.py creates the file when it is done measuring.
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fstream>
#include <iostream>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace {

struct Options {
  std::string socketPath = "/tmp/zastava-bench.sock";
  std::string fixtures = "tests/fixtures/engine";
  std::uint64_t events = 1'000'000;
  std::uint64_t containers = 1000;       // generated containers alive at once
  std::uint64_t intervalNanos = 1000;    // engine time between consecutive events
  std::uint64_t inspectDelayMicros = 0;  // how long each inspect answer is held
  std::string eventsGate;                // /events sends its events once this file exists
};

// One captured event with the values we substitute located by key.
struct Template {
  std::string line;
  std::string id;
  std::string name;
  std::string oldName;
  std::size_t original = 0;  // which captured container it belongs to
};

// Set once in main, read-only afterwards.
std::string versionJson;
std::string eventsBody;                 // every event's chunk, in order
std::vector<std::uint64_t> eventTimes;  // event k's timeNano, strictly increasing
std::vector<std::size_t> eventOffsets;  // where event k's chunk starts in eventsBody

std::uint64_t inspectDelayMicros = 0;
std::string eventsGate;

std::mutex logMutex;

// The value of the first `"key":"value"` in `line`; empty when absent.
std::string stringValue(const std::string& line, const std::string& key) {
  const std::string needle = "\"" + key + "\":\"";
  const auto at = line.find(needle);
  if (at == std::string::npos) return {};
  const auto start = at + needle.size();
  return line.substr(start, line.find('"', start) - start);
}

void replaceAll(std::string& text, const std::string& from, const std::string& to) {
  if (from.empty()) return;
  for (auto at = text.find(from); at != std::string::npos; at = text.find(from, at + to.size())) {
    text.replace(at, from.size(), to);
  }
}

// Replaces the number after `"key":` with `value`.
void replaceNumber(std::string& text, const std::string& key, std::uint64_t value) {
  const std::string needle = "\"" + key + "\":";
  const auto at = text.find(needle);
  if (at == std::string::npos) return;
  const auto start = at + needle.size();
  auto end = start;
  while (end < text.size() && text[end] >= '0' && text[end] <= '9') ++end;
  text.replace(start, end - start, std::to_string(value));
}

std::string readFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    std::cerr << "fake_engine: cannot read " << path << "\n";
    std::exit(2);
  }
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

std::vector<Template> loadTemplates(const std::string& path) {
  std::vector<Template> templates;
  std::map<std::string, std::size_t> originals;
  std::ifstream in(path);
  if (!in) {
    std::cerr << "fake_engine: cannot read " << path << "\n";
    std::exit(2);
  }
  for (std::string line; std::getline(in, line);) {
    if (line.find("\"Type\":\"container\"") == std::string::npos) continue;
    Template t;
    t.line = line;
    t.id = stringValue(line, "ID");
    t.name = stringValue(line, "name");
    t.oldName = stringValue(line, "oldName");
    t.original = originals.emplace(t.id, originals.size()).first->second;
    templates.push_back(std::move(t));
  }
  if (templates.empty()) {
    std::cerr << "fake_engine: no container events in " << path << "\n";
    std::exit(2);
  }
  return templates;
}

std::uint64_t mix(std::uint64_t x) {  // splitmix64
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

std::string hexId(std::uint64_t seed) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string id;
  for (int word = 0; word < 4; ++word) {
    std::uint64_t v = mix(seed * 4 + static_cast<std::uint64_t>(word));
    for (int i = 0; i < 16; ++i, v >>= 4) id += kHex[v & 0xF];
  }
  return id;
}

// Event k: template t = (k / C) % T for slot c = k % C in round r = k / (C * T), so each slot
// walks the captured sequence in order and each generated container follows exactly one captured
// container's lifecycle. Body framing: one HTTP chunk per event, like the engine's flushes.
std::string buildEvents(const std::vector<Template>& templates, const Options& options,
                        std::uint64_t& lines) {
  const std::uint64_t count = options.events;
  const std::uint64_t slots = options.containers;
  const std::uint64_t kinds = templates.size();
  const auto now = std::chrono::system_clock::now().time_since_epoch();
  // The log is history when clients connect: its last event is stamped about now.
  const auto nowNanos =
      static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(now).count());
  const std::uint64_t base = nowNanos - count * options.intervalNanos;
  std::string body;
  body.reserve(count * (templates[0].line.size() + 200));
  eventTimes.reserve(count);
  eventOffsets.reserve(count);
  char head[32];
  for (std::uint64_t k = 0; k < count; ++k) {
    const std::uint64_t slot = k % slots;
    const Template& t = templates[(k / slots) % kinds];
    const std::uint64_t round = k / (slots * kinds);
    const std::string id = hexId((round * slots + slot) * 64 + t.original);
    std::string suffix(1, '-');  // appends: GCC 12 warns (-Wrestrict) on "literal" + string
    suffix.append(std::to_string(slot)).append(1, '-').append(std::to_string(round));
    std::string line = t.line;
    replaceAll(line, t.id, id);
    replaceAll(line, "\"name\":\"" + t.name + "\"", "\"name\":\"" + t.name + suffix + "\"");
    if (!t.oldName.empty()) {
      replaceAll(line, "\"oldName\":\"" + t.oldName + "\"",
                 "\"oldName\":\"" + t.oldName + suffix + "\"");
    }
    // Compose labels, as most hosts have them (attributes are sorted by key, like the engine's).
    const std::string service = "svc" + std::to_string(slot % 50);
    replaceAll(line, "\"Attributes\":{",
               "\"Attributes\":{\"com.docker.compose.project\":\"bench\","
               "\"com.docker.compose.service\":\"" +
                   service + "\",");
    // Strictly increasing: the jitter is less than the interval.
    const std::uint64_t timeNano = base + k * options.intervalNanos + (mix(k) % 997);
    replaceNumber(line, "timeNano", timeNano);
    replaceNumber(line, "time", timeNano / 1'000'000'000);
    line += '\n';
    eventTimes.push_back(timeNano);
    eventOffsets.push_back(body.size());
    const int n = std::snprintf(head, sizeof head, "%zx\r\n", line.size());
    body.append(head, static_cast<std::size_t>(n));
    body += line;
    body += "\r\n";
  }
  lines = count;
  return body;
}

bool sendAll(int fd, std::string_view data) {
  while (!data.empty()) {
    const ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data.remove_prefix(static_cast<std::size_t>(n));
  }
  return true;
}

std::string httpDate() {
  char out[64];
  const std::time_t now = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&now, &tm);
  std::strftime(out, sizeof out, "%a, %d %b %Y %H:%M:%S GMT", &tm);
  return out;
}

std::string headers(int status, std::string_view reason, std::string_view type,
                    const std::string& framing) {
  std::string out = "HTTP/1.1 " + std::to_string(status) + " " + std::string(reason) + "\r\n";
  out += "Api-Version: 1.41\r\nDocker-Experimental: false\r\nOstype: linux\r\n";
  out += "Server: Docker/20.10.24+dfsg1 (linux)\r\nDate: " + httpDate() + "\r\n";
  if (!type.empty()) out += "Content-Type: " + std::string(type) + "\r\n";
  out += framing + "\r\n";
  return out;
}

bool respond(int fd, int status, std::string_view reason, std::string_view type,
             const std::string& body, bool head) {
  std::string out =
      headers(status, reason, type, "Content-Length: " + std::to_string(body.size()) + "\r\n");
  if (!head) out += body;
  return sendAll(fd, out);
}

// The path without query and /vX.Y prefix.
std::string_view route(std::string_view target) {
  target = target.substr(0, target.find('?'));
  if (target.size() > 2 && target[1] == 'v' && target[2] >= '0' && target[2] <= '9') {
    const auto next = target.find('/', 2);
    target = next == std::string_view::npos ? std::string_view() : target.substr(next);
  }
  return target;
}

// The value of query parameter `name` in `target`, nullopt when absent.
std::optional<std::string_view> queryValue(std::string_view target, std::string_view name) {
  const auto query = target.find('?');
  if (query == std::string_view::npos) return std::nullopt;
  std::string_view rest = target.substr(query + 1);
  while (!rest.empty()) {
    const auto amp = rest.find('&');
    const std::string_view pair = rest.substr(0, amp);
    if (pair.size() > name.size() && pair.starts_with(name) && pair[name.size()] == '=') {
      return pair.substr(name.size() + 1);
    }
    if (amp == std::string_view::npos) break;
    rest.remove_prefix(amp + 1);
  }
  return std::nullopt;
}

// SECONDS[.FRACTION] as nanoseconds since the epoch (the fraction's digits beyond 9 are
// ignored); nullopt when it does not parse.
std::optional<std::uint64_t> parseUnixNanos(std::string_view text) {
  std::uint64_t seconds = 0;
  std::uint64_t nanos = 0;
  std::size_t i = 0;
  for (; i < text.size() && text[i] >= '0' && text[i] <= '9'; ++i) {
    seconds = seconds * 10 + static_cast<std::uint64_t>(text[i] - '0');
  }
  if (i == 0 || i > 12) return std::nullopt;
  if (i < text.size()) {
    if (text[i++] != '.') return std::nullopt;
    std::uint64_t scale = 100'000'000;
    for (; i < text.size(); ++i, scale /= 10) {
      if (text[i] < '0' || text[i] > '9') return std::nullopt;
      nanos += scale * static_cast<std::uint64_t>(text[i] - '0');
    }
  }
  return seconds * 1'000'000'000 + nanos;
}

// Serves one connection until the peer closes it. Returns after a /events stream ends.
void serve(int fd) {
  std::string buffer;
  char chunk[8192];
  while (true) {
    std::size_t end;
    while ((end = buffer.find("\r\n\r\n")) == std::string::npos) {
      const ssize_t n = ::recv(fd, chunk, sizeof chunk, 0);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        ::close(fd);
        return;
      }
      buffer.append(chunk, static_cast<std::size_t>(n));
    }
    const std::string request = buffer.substr(0, end);
    buffer.erase(0, end + 4);  // GET/HEAD only: no request bodies
    const auto sp1 = request.find(' ');
    const auto sp2 = request.find(' ', sp1 + 1);
    const std::string method = request.substr(0, sp1);
    const std::string target = request.substr(sp1 + 1, sp2 - sp1 - 1);
    const std::string_view path = route(target);
    const bool head = method == "HEAD";
    bool ok = true;
    if (method != "GET" && !head) {
      ok = respond(fd, 405, "Method Not Allowed", "application/json",
                   "{\"message\":\"the fake engine is read-only\"}\n", false);
    } else if (path == "/_ping") {
      ok = respond(fd, 200, "OK", "text/plain; charset=utf-8", "OK", head);
    } else if (path == "/version") {
      ok = respond(fd, 200, "OK", "application/json", versionJson, head);
    } else if (path == "/containers/json") {
      ok = respond(fd, 200, "OK", "application/json", "[]\n", head);
    } else if (path.starts_with("/containers/") && path.ends_with("/json")) {
      const std::string_view id = path.substr(12, path.size() - 12 - 5);
      if (inspectDelayMicros > 0) {
        std::this_thread::sleep_for(std::chrono::microseconds(inspectDelayMicros));
      }
      ok = respond(fd, 404, "Not Found", "application/json",
                   "{\"message\":\"No such container: " + std::string(id) + "\"}\n", head);
    } else if (path == "/events") {
      // Like Podman: the log from the first event at or after `since` (all of it without), one
      // chunk per event, then idle until the client hangs up.
      std::size_t first = 0;
      if (const auto since = queryValue(target, "since")) {
        const auto nanos = parseUnixNanos(*since);
        if (!nanos) {
          ok = respond(fd, 400, "Bad Request", "application/json",
                       "{\"message\":\"invalid since: " + std::string(*since) + "\"}\n", false);
          if (!ok) {
            ::close(fd);
            return;
          }
          continue;
        }
        first = static_cast<std::size_t>(
            std::lower_bound(eventTimes.begin(), eventTimes.end(), *nanos) - eventTimes.begin());
      }
      {
        std::lock_guard lock(logMutex);
        std::printf("fake_engine: GET %s: from event %zu of %zu\n", target.c_str(), first,
                    eventTimes.size());
        std::fflush(stdout);
      }
      const std::size_t offset =
          first < eventOffsets.size() ? eventOffsets[first] : eventsBody.size();
      if (!sendAll(fd, headers(200, "OK", "application/json", "Transfer-Encoding: chunked\r\n"))) {
        ::close(fd);
        return;
      }
      while (!eventsGate.empty() && ::access(eventsGate.c_str(), F_OK) != 0) {
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
      }
      if (!sendAll(fd, std::string_view(eventsBody).substr(offset))) {
        ::close(fd);
        return;
      }
      while (::recv(fd, chunk, sizeof chunk, 0) > 0) {
      }
      ::close(fd);
      return;
    } else {
      ok = respond(fd, 404, "Not Found", "application/json", "{\"message\":\"page not found\"}\n",
                   head);
    }
    if (!ok) {
      ::close(fd);
      return;
    }
  }
}

void usage() {
  std::cerr << "usage: fake_engine [--socket PATH] [--events N] [--containers C] [--interval-us U] "
               "[--fixtures DIR] [--inspect-delay-us U] [--events-gate PATH]\n";
  std::exit(2);
}

}  // namespace

int main(int argc, char** argv) {
  Options options;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (i + 1 >= argc) usage();
    const std::string value = argv[++i];
    if (arg == "--socket") {
      options.socketPath = value;
    } else if (arg == "--events") {
      options.events = std::strtoull(value.c_str(), nullptr, 10);
    } else if (arg == "--interval-us") {
      options.intervalNanos = std::strtoull(value.c_str(), nullptr, 10) * 1000;
    } else if (arg == "--containers") {
      options.containers = std::strtoull(value.c_str(), nullptr, 10);
    } else if (arg == "--fixtures") {
      options.fixtures = value;
    } else if (arg == "--inspect-delay-us") {
      options.inspectDelayMicros = std::strtoull(value.c_str(), nullptr, 10);
    } else if (arg == "--events-gate") {
      options.eventsGate = value;
    } else {
      usage();
    }
  }
  if (options.events == 0 || options.containers == 0 || options.intervalNanos == 0) usage();
  ::signal(SIGPIPE, SIG_IGN);
  inspectDelayMicros = options.inspectDelayMicros;
  eventsGate = options.eventsGate;

  versionJson = readFile(options.fixtures + "/version.json");
  while (!versionJson.empty() && versionJson.back() == '\n') versionJson.pop_back();
  versionJson += '\n';
  const auto templates = loadTemplates(options.fixtures + "/events-lifecycle.ndjson");
  const auto started = std::chrono::steady_clock::now();
  std::uint64_t lines = 0;
  eventsBody = buildEvents(templates, options, lines);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();

  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (options.socketPath.size() >= sizeof addr.sun_path) {
    std::cerr << "fake_engine: socket path too long\n";
    return 2;
  }
  std::memcpy(addr.sun_path, options.socketPath.c_str(), options.socketPath.size() + 1);
  ::unlink(options.socketPath.c_str());
  const int listener = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (listener < 0 || ::bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::listen(listener, 64) != 0) {
    std::perror("fake_engine: listen");
    return 1;
  }
  std::cout << "fake_engine: " << lines << " events (" << templates.size() << " captured lines, "
            << options.containers << " containers at once, " << eventsBody.size() / (1024 * 1024)
            << " MiB) built in " << seconds << " s; inspects answered after "
            << options.inspectDelayMicros << " us; listening on " << options.socketPath
            << std::endl;
  while (true) {
    const int fd = ::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      std::perror("fake_engine: accept");
      return 1;
    }
    std::thread(serve, fd).detach();
  }
}
