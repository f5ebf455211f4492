// Fuzz target: the production calendar parser, ProductionCalendar::Parse
// (collector/tickets/production_calendar.h), on one file's text, and the business
// clock built on what it accepts.
//
// Oracles beyond the sanitizers: a rejected file is InvalidArgument and the
// message starts with "<source>:" (the header: "<source>:<line>: what"); an
// accepted file declares exactly one year, which it covers; no day of that
// year is shortened without being a working day; and the business clock
// keeps its documented identity BusinessTimeBetween(s, AddBusinessTime(s,
// d)) == d for a start and a duration (up to 40 business hours) derived
// from the input, in the default hours and in hours derived from it.

#include <cstdint>
#include <string>

#include "collector/tickets/production_calendar.h"
#include "fuzz_util.h"

namespace {

using setdiag::collector::BusinessClock;
using setdiag::collector::BusinessHours;
using setdiag::collector::ProductionCalendar;
using setdiag::fuzz::Fail;

uint64_t Fnv1a(std::string_view s) {
  uint64_t h = 1469598103934665603ull;
  for (char c : s) h = (h ^ static_cast<unsigned char>(c)) * 1099511628211ull;
  return h;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text = setdiag::fuzz::AsText(data, size);
  auto cal = ProductionCalendar::Parse(text, "fuzz.txt");
  if (!cal.ok()) {
    if (cal.status().code() != absl::StatusCode::kInvalidArgument)
      Fail("Parse failed with a code other than InvalidArgument", cal.status().ToString());
    if (!std::string(cal.status().message()).starts_with("fuzz.txt:"))
      Fail("a parse error that does not start with the source",
           std::string(cal.status().message()));
    return 0;
  }
  const auto years = cal->Years();
  if (years.size() != 1) Fail("an accepted file without exactly one year", text);
  const int64_t year = years[0];
  if (!cal->Covers(year)) Fail("the calendar does not cover its own year", text);
  for (absl::CivilDay d(year, 1, 1); d.year() == year; ++d) {
    if (cal->IsShortened(d) && !cal->IsWorkingDay(d))
      Fail("a shortened day that is not a working day", text);
  }
  // Business time: a start within the year (or just before it), a duration.
  if (year < 1971 || year > 9000) return 0;  // Unix ms of the start must not overflow
  const uint64_t h = Fnv1a(text);
  const int64_t start_ms =
      absl::ToUnixMillis(absl::FromCivil(absl::CivilDay(year, 1, 1), absl::UTCTimeZone())) +
      static_cast<int64_t>(h % (366ull * 86'400'000ull)) - 86'400'000;
  const int64_t duration_ms = static_cast<int64_t>((h >> 20) % (40ull * 3'600'000ull));
  BusinessHours custom;
  // Hours that leave time open (start < end): with none, every call walks
  // ten years of days before it gives up, which only slows the fuzzer.
  custom.start_minute = static_cast<int>((h >> 40) % 1440);
  custom.end_minute =
      custom.start_minute + 1 +
      static_cast<int>((h >> 51) % static_cast<uint64_t>(1440 - custom.start_minute));
  custom.shortened_by_minutes = static_cast<int>((h >> 11) % 121);
  for (const BusinessHours& hours : {BusinessHours{}, custom}) {
    BusinessClock business(*cal, hours);
    const int64_t end = business.AddBusinessTime(start_ms, duration_ms);
    if (end == INT64_MAX) Fail("no business time although the hours leave some", text);
    if (end < start_ms) Fail("AddBusinessTime went back in time", text);
    const int64_t between = business.BusinessTimeBetween(start_ms, end);
    if (between != duration_ms) {
      Fail("BusinessTimeBetween(s, AddBusinessTime(s, d)) != d",
           std::to_string(start_ms) + " + " + std::to_string(duration_ms) + " -> " +
               std::to_string(end) + " measures " + std::to_string(between) + " (hours " +
               std::to_string(hours.start_minute) + ".." + std::to_string(hours.end_minute) + " -" +
               std::to_string(hours.shortened_by_minutes) + ")");
    }
    (void)business.AddWorkingDays(start_ms, static_cast<int>(h % 30));
  }
  return 0;
}
