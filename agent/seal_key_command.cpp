#include "agent/seal_key_command.h"

#include <CLI/CLI.hpp>

#include "buffer/seal.h"

namespace zastava {

int exportSealSeeds(const std::filesystem::path& dataDirectory, std::FILE* out, std::FILE* err) {
  auto seeds = listSeedFiles(dataDirectory);
  if (!seeds) {
    std::fprintf(err, "zastava-agent: seal-key export: %s\n", seeds.error().message.c_str());
    return 1;
  }
  int exported = 0;
  for (const std::filesystem::path& path : *seeds) {
    auto seed = readSeedFile(path);
    if (!seed) {
      std::fprintf(err, "zastava-agent: seal-key export: %s\n", seed.error().message.c_str());
      continue;
    }
    std::string text = seedFileText(*seed);
    std::fputs(text.c_str(), out);
    eraseSealKey(seed->seed);
    std::fprintf(err,
                 "The sealing seed of key %s is %s.\n"
                 "Keep the line printed above off this host (your central service or an offline "
                 "store): `zastava-agent verify --seal-key FILE` checks the seals with it. Then "
                 "delete it here: shred -u %s\n",
                 seed->keyId.c_str(), path.c_str(), path.c_str());
    ++exported;
  }
  if (std::fflush(out) != 0) {
    std::fprintf(err, "zastava-agent: seal-key export: cannot write the seeds out\n");
    return 1;
  }
  if (exported == 0 && seeds->empty()) {
    std::fprintf(err,
                 "zastava-agent: seal-key export: %s holds no sealing seed (seal-seed-*): it was "
                 "exported and deleted already, or the agent has not started there yet\n",
                 dataDirectory.c_str());
  }
  return exported > 0 ? 0 : 1;
}

int runSealKeyCommand(int argc, const char* const* argv, const Environment& env) {
  const char* agentOnly[] = {"zastava-agent"};
  auto agent = parseCommandLine(1, agentOnly, env);
  if (!agent.ok()) {
    std::fprintf(stderr, "zastava-agent: %s\n", agent.error().message.c_str());
    return 2;
  }
  std::string dataDirectory = agent->config.dataDirectory.string();
  CLI::App app("Manages the sealing key of the agent's ledger (docs/records.md, \"Seals\").",
               "zastava-agent seal-key");
  app.require_subcommand(1, 1);
  CLI::App* exportCommand = app.add_subcommand(
      "export",
      "print the sealing seeds still on this host (to take off it), and where each file is");
  exportCommand
      ->add_option("--data-directory", dataDirectory,
                   "the agent's data directory [default " + dataDirectory + "]")
      ->type_name("DIR");
  std::vector<std::string> args;
  for (int i = argc - 1; i >= 1; --i) args.emplace_back(argv[i]);
  try {
    app.parse(args);
  } catch (const CLI::Success&) {
    std::fputs(app.help().c_str(), stdout);
    return 0;
  } catch (const CLI::ParseError& e) {
    std::fprintf(stderr, "zastava-agent: seal-key: %s (see zastava-agent seal-key --help)\n",
                 e.what());
    return 2;
  }
  return exportSealSeeds(dataDirectory, stdout, stderr);
}

}  // namespace zastava
