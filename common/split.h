// Splitting text into the pieces a separator ends: lines ('\n'), a command line ('\0').
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

}  // namespace zastava
