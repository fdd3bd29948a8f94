// The configuration: parseCommandLine from the environment (ZASTAVA_AGENT__* variables, as the
// systemd unit reads them from deploy/systemd/agent.env) and the flags, then describeConfig;
// and `zastava-agent records`' own arguments (parseRecordsCommandLine). Input: one item a line;
// a line holding '=' and not starting with '-' is an environment variable NAME=value, any
// other line the next argument. When the first argument is "records", the arguments from it on
// are the records command's.
#include <string>
#include <vector>

#include "agent/config.h"
#include "agent/records_command.h"
#include "fuzz/fuzz_util.h"

using namespace zastava;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  Environment env;
  std::vector<std::string> args = {"zastava-agent"};
  for (const std::string_view line : fuzz::lines(fuzz::text(data, size))) {
    const auto equals = line.find('=');
    if (equals != std::string_view::npos && !line.starts_with("-")) {
      env.emplace_back(std::string(line.substr(0, equals)), std::string(line.substr(equals + 1)));
    } else {
      args.emplace_back(line);
    }
  }
  std::vector<const char*> argv;
  const bool records = args.size() > 1 && args[1] == kRecordsCommand;
  for (std::size_t i = records ? 1 : 0; i < args.size(); ++i) argv.push_back(args[i].c_str());
  const int argc = static_cast<int>(argv.size());
  if (records) {
    constexpr UnixNanos kNow = 1'795'358'000'000'000'000;  // 2026-11-22
    const auto parsed = parseRecordsCommandLine(argc, argv.data(), env, kNow);
    if (!parsed.ok()) {
      fuzz::check(parsed.error().code == ErrorCode::kInvalidArgument,
                  "a records command line error is kInvalidArgument");
    }
    return 0;
  }
  const auto parsed = parseCommandLine(argc, argv.data(), env);
  if (!parsed.ok()) {
    fuzz::check(parsed.error().code == ErrorCode::kInvalidArgument,
                "a configuration error is kInvalidArgument");
    fuzz::check(!parsed.error().message.empty(), "a configuration error says what is wrong");
    return 0;
  }
  if (parsed->command == Command::kRun || parsed->command == Command::kCheckConfig) {
    const Config& config = parsed->config;
    fuzz::check(config.maxTotalSizeMb >= config.maxFileSizeMb, "total size >= file size");
    fuzz::check(!describeConfig(config, parsed->origins).empty(), "a configuration is shown");
    (void)bufferLimits(config);
    (void)eventQueueLimits(config);
    (void)evidenceOptions(config);
    (void)dispatcherOptions(config);
  }
  return 0;
}
