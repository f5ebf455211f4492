#pragma once
// The Russian production calendar ("производственный календарь") and the
// business clock built on it: which days are working days, which are
// shortened, and how business time adds up. Pure: no clock, no I/O except
// loading the calendar files. Thread-safe after construction (const).
//
// File format (docs/sla.md): one entry per line, '#' starts a comment, text
// after the date is free (a name, a reason). UTF-8; a BOM and CRLF are fine.
//   year 2026                    # the file covers this year (required, once, before the dates)
//   holiday 2026-01-01 Новый год # a non-working day (also a weekday made non-working by transfer)
//   working 2026-11-01 transfer  # a Saturday or Sunday made a working day
//   short 2026-04-30             # a working day shortened by one hour (pre-holiday)
// Days not listed follow the week: Monday-Friday working, Saturday and Sunday
// not. A year with no file is counted by the week alone, and
// ProductionCalendar::Covers() says so (the collector warns at start-up).
// Rejected (InvalidArgument, "<source>:<line>: what"): a bad or unreal date,
// a date outside the declared year, an unknown keyword, no 'year' or two, a
// date listed twice (except 'working' plus 'short' for one day), 'working' on
// Monday-Friday, 'short' on a day that is not working.
//
// The shipped files live in collector/calendars (installed to
// share/setdiag/calendars), one per year: ru-2026.txt, ru-2027.txt.

#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/civil_time.h"
#include "absl/time/time.h"

namespace setdiag::collector {

class ProductionCalendar {
 public:
  ProductionCalendar() = default;
  // Parses one file's text; errors name `source` and the line.
  static absl::StatusOr<ProductionCalendar> Parse(std::string_view text, std::string_view source);
  // Loads and merges several files (e.g. ru-2026.txt and ru-2027.txt). Two
  // files for the same year are an error (InvalidArgument); an unreadable
  // file is NotFound. Parse errors name the file's path as the source.
  static absl::StatusOr<ProductionCalendar> LoadFiles(const std::vector<std::string>& paths);
  // Every "*.txt" in a directory, sorted by name. A missing directory is
  // NotFound; an empty one gives a calendar that covers no year.
  static absl::StatusOr<ProductionCalendar> LoadDirectory(const std::string& dir);

  // A listed holiday is not a working day, a listed working day is; any other
  // day is a working day from Monday to Friday.
  bool IsWorkingDay(absl::CivilDay day) const;
  bool IsShortened(absl::CivilDay day) const;  // only meaningful on working days
  bool Covers(int64_t year) const;
  std::vector<int64_t> Years() const;

 private:
  std::set<int64_t> years_;
  std::set<absl::CivilDay> holidays_, working_, shortened_;
};

// Business hours on every working day: [start, end) in local wall-clock
// minutes after midnight (0..1440); on a shortened day the end comes
// `shortened_by_minutes` earlier.
struct BusinessHours {
  int start_minute = 10 * 60;  // 10:00 local
  int end_minute = 19 * 60;    // 19:00 local
  int shortened_by_minutes = 60;
  // A default-constructed absl::TimeZone is UTC: whoever builds the hours
  // must set Europe/Moscow (absl::LoadTimeZone, from the tzdata package).
  absl::TimeZone zone;
};

// Business-time arithmetic over a calendar and hours. All instants are Unix
// milliseconds (UTC); days and hours are judged in `hours.zone`, so a change
// of UTC offset is handled (Moscow has none since 2014). Each call walks day
// by day, a few steps per calendar day spanned.
class BusinessClock {
 public:
  BusinessClock(ProductionCalendar calendar, BusinessHours hours);

  // The instant at which `duration_ms` of business time has passed since
  // `start_ms`. Time outside business hours does not count; a start outside
  // them (the closing instant included) counts from the next opening.
  // duration 0 from outside hours gives the next opening; a negative
  // duration counts as 0. A span that uses up a day's hours exactly ends at
  // that day's closing (Monday 10:00 + 9 h -> Monday 19:00). If the hours
  // leave no business time at all (end <= start), returns INT64_MAX.
  int64_t AddBusinessTime(int64_t start_ms, int64_t duration_ms) const;
  // Business time between two instants (0 if to <= from). For d >= 0,
  // BusinessTimeBetween(s, AddBusinessTime(s, d)) == d.
  int64_t BusinessTimeBetween(int64_t from_ms, int64_t to_ms) const;
  // End of business on the `days`-th working day after the local day of
  // `start_ms` (Monday 11:00, 3 days -> Thursday 19:00; started on a
  // non-working day, the first following working day is day 1). The end is
  // 18:00 if that day is shortened. days <= 0 returns `start_ms`.
  int64_t AddWorkingDays(int64_t start_ms, int days) const;

  const ProductionCalendar& calendar() const { return calendar_; }
  const BusinessHours& hours() const { return hours_; }

 private:
  ProductionCalendar calendar_;
  BusinessHours hours_;
};

}  // namespace setdiag::collector
