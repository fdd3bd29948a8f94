// Splitting text into the pieces a separator ends (lines, a command line) or separates (lists).
#pragma once

#include <string_view>
#include <vector>

namespace zastava {

// The pieces of `text` ended by `separator`, without it; a separator at the very end does not
// add an empty piece ("a\nb\n" and "a\nb" are both {"a", "b"}; "" is {}).
inline std::vector<std::string_view> splitEndedBy(std::string_view text, char separator) {
  std::vector<std::string_view> pieces;
  while (!text.empty()) {
    const auto end = text.find(separator);
    pieces.push_back(text.substr(0, end));
    if (end == std::string_view::npos) break;
    text.remove_prefix(end + 1);
  }
  return pieces;
}

// `text` without the spaces around it.
inline std::string_view trimmed(std::string_view text) {
  while (!text.empty() && text.front() == ' ') text.remove_prefix(1);
  while (!text.empty() && text.back() == ' ') text.remove_suffix(1);
  return text;
}

// The pieces of `text` between `separator`s, each trimmed ("5.10, 5.13" is {"5.10", "5.13"});
// empty pieces are kept ("a,,b" is {"a", "", "b"}; "" is {""}).
inline std::vector<std::string_view> splitTrimmed(std::string_view text, char separator) {
  std::vector<std::string_view> pieces;
  while (true) {
    const auto end = text.find(separator);
    pieces.push_back(trimmed(text.substr(0, end)));
    if (end == std::string_view::npos) return pieces;
    text.remove_prefix(end + 1);
  }
}

}  // namespace zastava
