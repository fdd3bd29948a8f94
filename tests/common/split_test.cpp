#include "common/split.h"

#include <doctest/doctest.h>

#include <string_view>
#include <vector>

namespace zastava {

using Pieces = std::vector<std::string_view>;

TEST_CASE("splitEndedBy: a separator at the very end adds no empty piece") {
  CHECK(splitEndedBy("", '\n') == Pieces{});
  CHECK(splitEndedBy("a", '\n') == Pieces{"a"});
  CHECK(splitEndedBy("a\nb", '\n') == Pieces{"a", "b"});
  CHECK(splitEndedBy("a\nb\n", '\n') == Pieces{"a", "b"});
  CHECK(splitEndedBy("\n", '\n') == Pieces{""});
  CHECK(splitEndedBy("a\n\nb\n\n", '\n') == Pieces{"a", "", "b", ""});
  CHECK(splitEndedBy(std::string_view("sh\0-c\0", 6), '\0') == Pieces{"sh", "-c"});
}

}  // namespace zastava
