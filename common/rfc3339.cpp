#include "common/rfc3339.h"

#include <fmt/format.h>
#include <time.h>

#include <array>
#include <chrono>
#include <iterator>

namespace zastava {
namespace {

constexpr std::int64_t kNanosPerSecond = 1'000'000'000;
constexpr int kLastYear = 2261;  // nanoseconds since 1970 fit in 64 bits until 2262-04-11

}  // namespace

// Every record writes two of these: the calendar comes from <chrono>, the digits from fmt,
// without snprintf's format parsing or gmtime_r.
std::string formatRfc3339Nanos(UnixNanos t) {
  using namespace std::chrono;
  const sys_time<nanoseconds> at{nanoseconds(t)};
  const sys_days day = floor<days>(at);
  const year_month_day date(day);
  const hh_mm_ss<nanoseconds> clock(at - day);
  std::string out;
  out.reserve(30);
  fmt::format_to(std::back_inserter(out), "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:09}Z",
                 static_cast<int>(date.year()), static_cast<unsigned>(date.month()),
                 static_cast<unsigned>(date.day()), clock.hours().count(), clock.minutes().count(),
                 clock.seconds().count(), clock.subseconds().count());
  return out;
}

std::optional<UnixNanos> parseRfc3339Nanos(std::string_view text) {
  // Digits exactly where the layout has them (sscanf's %d also took signs and blanks), and each
  // field in its range: timegm would carry "2261-26-06" into 2263, beyond 64-bit nanoseconds.
  constexpr std::string_view kLayout = "dddd-dd-ddTdd:dd:dd";
  if (text.size() < kLayout.size()) return std::nullopt;
  for (std::size_t i = 0; i < kLayout.size(); ++i) {
    const bool digit = text[i] >= '0' && text[i] <= '9';
    if (kLayout[i] == 'd' ? !digit : text[i] != kLayout[i]) return std::nullopt;
  }
  const auto number = [&](std::size_t at, std::size_t digits) {
    int value = 0;
    for (std::size_t i = at; i < at + digits; ++i) value = value * 10 + (text[i] - '0');
    return value;
  };
  const int year = number(0, 4), month = number(5, 2), day = number(8, 2);
  const int hour = number(11, 2), minute = number(14, 2), second = number(17, 2);
  const bool leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
  constexpr std::array<int, 12> kDays = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  if (year < 1970 || year > kLastYear || month < 1 || month > 12 || day < 1 ||
      day > kDays[static_cast<std::size_t>(month - 1)] + (month == 2 && leap ? 1 : 0) ||
      hour > 23 || minute > 59 || second > 60) {  // 60: a leap second
    return std::nullopt;
  }
  std::string_view rest = text.substr(19);
  std::int64_t nanos = 0;
  if (!rest.empty() && rest.front() == '.') {
    rest.remove_prefix(1);
    int digits = 0;
    while (!rest.empty() && rest.front() >= '0' && rest.front() <= '9') {
      if (digits++ == 9) return std::nullopt;
      nanos = nanos * 10 + (rest.front() - '0');
      rest.remove_prefix(1);
    }
    if (digits == 0) return std::nullopt;
    for (; digits < 9; ++digits) nanos *= 10;
  }
  if (rest != "Z") return std::nullopt;
  struct tm utc {};
  utc.tm_year = year - 1900;
  utc.tm_mon = month - 1;
  utc.tm_mday = day;
  utc.tm_hour = hour;
  utc.tm_min = minute;
  utc.tm_sec = second;
  const time_t seconds = timegm(&utc);
  return static_cast<UnixNanos>(seconds) * kNanosPerSecond + nanos;
}

}  // namespace zastava
