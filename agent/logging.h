// Logging to stderr through spdlog's default logger "zastava". Under systemd the journal adds the
// time, so lines carry no timestamp but start with the sd-daemon priority prefix "<N>", which
// journald turns into the entry's priority (so `journalctl -p warning` works). Otherwise lines
// start with a UTC RFC 3339 timestamp.
#pragma once

#include <spdlog/common.h>
#include <spdlog/pattern_formatter.h>

#include <memory>
#include <string_view>

#include "agent/config.h"

namespace zastava {

// '*' in a pattern expands to the "<N>" prefix (trace/debug 7, info 6, warning 4, error 3,
// critical 2).
inline constexpr std::string_view kSystemdPattern = "%*%l %v";
inline constexpr std::string_view kTerminalPattern = "%Y-%m-%dT%H:%M:%S.%fZ %l %v";

spdlog::level::level_enum toSpdlogLevel(LogLevel level);

// The formatter setupLogging installs: kSystemdPattern or kTerminalPattern (UTC). Never fails.
// Any thread.
std::unique_ptr<spdlog::pattern_formatter> makeLogFormatter(bool underSystemd);

// True when stderr is the journal stream systemd announced in JOURNAL_STREAM ("<dev>:<inode>",
// compared with fstat of stderr). Never fails. Any thread.
bool runningUnderSystemd();

// Replaces the default logger with "zastava" writing to stderr at `level`, colored only when
// stderr is a terminal and not under systemd. Never throws: when spdlog cannot make the logger
// it says so on stderr and spdlog's default logger (stdout) stays. Call from the main thread
// before other threads log.
void setupLogging(LogLevel level, bool underSystemd);

}  // namespace zastava
