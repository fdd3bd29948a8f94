// Reads the engine fixtures captured under tests/fixtures/engine (see its README.md), the NATS
// answers under tests/fixtures/nats, and the inputs of fuzz findings under tests/fixtures/fuzz.
#pragma once

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace zastava::testing {

// The whole file; empty when it cannot be read (tests then fail on the content).
inline std::string readFixture(const std::string& name) {
  std::ifstream in(std::string(ZASTAVA_FIXTURES_DIR) + "/engine/" + name, std::ios::binary);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

// An input a fuzz target found a bug with, kept under tests/fixtures/fuzz (see its README.md).
inline std::string readFuzzFixture(const std::string& name) {
  std::ifstream in(std::string(ZASTAVA_FIXTURES_DIR) + "/fuzz/" + name, std::ios::binary);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

// A NATS JetStream answer captured under tests/fixtures/nats (see its README.md).
inline std::string readNatsFixture(const std::string& name) {
  std::ifstream in(std::string(ZASTAVA_FIXTURES_DIR) + "/nats/" + name, std::ios::binary);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

// The file's lines, without the '\n'.
inline std::vector<std::string> fixtureLines(const std::string& name) {
  std::vector<std::string> lines;
  std::istringstream in(readFixture(name));
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

}  // namespace zastava::testing
