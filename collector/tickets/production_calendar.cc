#include "collector/tickets/production_calendar.h"

#include <algorithm>
#include <filesystem>
#include <limits>
#include <map>
#include <system_error>
#include <utility>

#include "common/files.h"
#include "common/strings.h"

namespace setdiag::collector {
namespace {

// A walk that finds no business time in this many days in a row would never
// find any: the hours leave no time open (e.g. start >= end).
constexpr int kMaxEmptyDays = 3700;

bool AllDigits(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

int64_t Digits(std::string_view s) {
  int64_t v = 0;
  for (char c : s) v = v * 10 + (c - '0');
  return v;
}

// Strict "YYYY-MM-DD": CivilDay would quietly turn 2026-02-30 into March 2.
std::optional<absl::CivilDay> ParseDate(std::string_view s) {
  if (s.size() != 10 || s[4] != '-' || s[7] != '-') return std::nullopt;
  std::string_view y = s.substr(0, 4), m = s.substr(5, 2), d = s.substr(8, 2);
  if (!AllDigits(y) || !AllDigits(m) || !AllDigits(d)) return std::nullopt;
  absl::CivilDay day(Digits(y), static_cast<int>(Digits(m)), static_cast<int>(Digits(d)));
  if (day.year() != Digits(y) || day.month() != Digits(m) || day.day() != Digits(d)) {
    return std::nullopt;
  }
  return day;
}

std::string DateText(absl::CivilDay day) {
  int m = day.month(), d = day.day();
  return Cat(day.year(), "-", m < 10 ? "0" : "", m, "-", d < 10 ? "0" : "", d);
}

bool IsWeekend(absl::CivilDay day) {
  absl::Weekday w = absl::GetWeekday(day);
  return w == absl::Weekday::saturday || w == absl::Weekday::sunday;
}

bool IsSpace(char c) { return c == ' ' || c == '\t'; }

// The next whitespace-separated word of `*rest`, consumed.
std::string_view NextWord(std::string_view* rest) {
  size_t i = 0;
  while (i < rest->size() && IsSpace((*rest)[i])) ++i;
  size_t j = i;
  while (j < rest->size() && !IsSpace((*rest)[j])) ++j;
  std::string_view word = rest->substr(i, j - i);
  rest->remove_prefix(j);
  return word;
}

absl::Status LineError(std::string_view source, size_t line, std::string_view what) {
  return absl::InvalidArgumentError(Cat(source, ":", line, ": ", what));
}

constexpr const char* kFormatHelp =
    "expected 'year YYYY', 'holiday YYYY-MM-DD', 'working YYYY-MM-DD' or 'short YYYY-MM-DD' "
    "(see docs/sla.md)";

}  // namespace

absl::StatusOr<ProductionCalendar> ProductionCalendar::Parse(std::string_view text,
                                                             std::string_view source) {
  // The files are written by hand and in Russian: editors may add a BOM.
  if (text.starts_with("\xEF\xBB\xBF")) text.remove_prefix(3);

  ProductionCalendar cal;
  std::optional<int64_t> year;
  size_t year_line = 0;
  struct Entry {
    std::string_view keyword;
    size_t line;
  };
  // Every date seen, with how and where, to name both lines of a conflict.
  std::map<absl::CivilDay, std::vector<Entry>> seen;

  size_t line_no = 0;
  for (std::string_view line : Split(text, '\n', /*skip_empty=*/false)) {
    ++line_no;
    if (size_t hash = line.find('#'); hash != std::string_view::npos) line = line.substr(0, hash);
    line = Trim(line);
    if (line.empty()) continue;

    std::string_view rest = line;
    std::string_view keyword = NextWord(&rest);
    std::string_view arg = NextWord(&rest);

    if (keyword == "year") {
      if (year) {
        return LineError(source, line_no,
                         Cat("second 'year' line (the first is on line ", year_line,
                             "); one file covers one year"));
      }
      if (arg.size() != 4 || !AllDigits(arg)) {
        return LineError(source, line_no, Cat("bad year '", arg, "': expected e.g. 'year 2026'"));
      }
      if (!Trim(rest).empty()) {
        return LineError(source, line_no,
                         Cat("unexpected text after the year: '", Trim(rest), "'"));
      }
      year = Digits(arg);
      year_line = line_no;
      continue;
    }
    if (keyword != "holiday" && keyword != "working" && keyword != "short") {
      return LineError(source, line_no, Cat("unknown keyword '", keyword, "': ", kFormatHelp));
    }
    if (!year) {
      return LineError(source, line_no,
                       Cat("missing 'year': '", keyword,
                           "' before the 'year' line; start the file with e.g. 'year 2026'"));
    }
    if (arg.empty()) {
      return LineError(source, line_no, Cat("'", keyword, "' needs a date YYYY-MM-DD"));
    }
    std::optional<absl::CivilDay> day = ParseDate(arg);
    if (!day) {
      return LineError(source, line_no,
                       Cat("bad date '", arg, "': expected a real day as YYYY-MM-DD"));
    }
    if (day->year() != *year) {
      return LineError(
          source, line_no,
          Cat("date ", arg, " is outside the declared year ", *year, " (line ", year_line, ")"));
    }
    // Anything else about a day twice is a contradiction or a typo, except
    // that a transferred working day may also be shortened (e.g. a working
    // Saturday before a holiday).
    for (const Entry& prior : seen[*day]) {
      bool working_and_short = (prior.keyword == "working" && keyword == "short") ||
                               (prior.keyword == "short" && keyword == "working");
      if (working_and_short) continue;
      return LineError(source, line_no,
                       prior.keyword == keyword
                           ? Cat("duplicate date ", arg, ": already listed as '", keyword,
                                 "' on line ", prior.line)
                           : Cat("duplicate date ", arg, ": '", keyword, "' contradicts line ",
                                 prior.line, " which lists it as '", prior.keyword, "'"));
    }
    seen[*day].push_back({keyword, line_no});

    if (keyword == "holiday") {
      cal.holidays_.insert(*day);
    } else if (keyword == "working") {
      if (!IsWeekend(*day)) {
        return LineError(source, line_no,
                         Cat("'working ", arg,
                             "': not a Saturday or Sunday, so it works anyway; 'working' marks a "
                             "weekend day made a working day by a transfer"));
      }
      cal.working_.insert(*day);
    } else {
      cal.shortened_.insert(*day);
    }
  }
  if (!year) {
    return absl::InvalidArgumentError(Cat(
        source, ": missing 'year': the file must declare the year it covers, e.g. 'year 2026'"));
  }
  // Checked at the end: 'working' for the same day may come after 'short'.
  for (absl::CivilDay day : cal.shortened_) {
    if (!cal.IsWorkingDay(day)) {
      const std::vector<Entry>& entries = seen[day];
      auto short_entry = std::find_if(entries.begin(), entries.end(),
                                      [](const Entry& e) { return e.keyword == "short"; });
      return LineError(source, short_entry->line,
                       Cat("'short ", DateText(day),
                           "' is not a working day; list it as 'working' too if it was "
                           "transferred"));
    }
  }
  cal.years_.insert(*year);
  return cal;
}

absl::StatusOr<ProductionCalendar> ProductionCalendar::LoadFiles(
    const std::vector<std::string>& paths) {
  ProductionCalendar merged;
  std::map<int64_t, std::string> year_source;
  for (const std::string& path : paths) {
    absl::StatusOr<std::string> text = ReadWholeFile(path);
    if (!text.ok()) {
      return absl::NotFoundError(
          Cat("production calendar: ", std::string(text.status().message())));
    }
    absl::StatusOr<ProductionCalendar> one = Parse(*text, path);
    if (!one.ok()) return one.status();
    for (int64_t y : one->years_) {
      auto [it, inserted] = year_source.emplace(y, path);
      if (!inserted) {
        return absl::InvalidArgumentError(Cat(path, ": year ", y, " is already covered by ",
                                              it->second, "; keep one file per year"));
      }
    }
    merged.years_.insert(one->years_.begin(), one->years_.end());
    merged.holidays_.insert(one->holidays_.begin(), one->holidays_.end());
    merged.working_.insert(one->working_.begin(), one->working_.end());
    merged.shortened_.insert(one->shortened_.begin(), one->shortened_.end());
  }
  return merged;
}

absl::StatusOr<ProductionCalendar> ProductionCalendar::LoadDirectory(const std::string& dir) {
  std::vector<std::string> paths;
  std::error_code ec;
  std::filesystem::directory_iterator it(dir, ec);
  if (ec) {
    return absl::NotFoundError(
        Cat("production calendar directory ", dir, ": ", ec.message(),
            " (the collector ships it as share/setdiag/calendars; see docs/sla.md)"));
  }
  for (const auto& entry : it) {
    if (entry.path().extension() != ".txt") continue;
    if (!entry.is_regular_file(ec)) continue;
    paths.push_back(entry.path().string());
  }
  std::sort(paths.begin(), paths.end());
  return LoadFiles(paths);
}

bool ProductionCalendar::IsWorkingDay(absl::CivilDay day) const {
  if (holidays_.contains(day)) return false;
  if (working_.contains(day)) return true;
  return !IsWeekend(day);
}

bool ProductionCalendar::IsShortened(absl::CivilDay day) const { return shortened_.contains(day); }

bool ProductionCalendar::Covers(int64_t year) const { return years_.contains(year); }

std::vector<int64_t> ProductionCalendar::Years() const {
  return std::vector<int64_t>(years_.begin(), years_.end());
}

// ---------------------------------------------------------------------------

namespace {

struct Window {
  int64_t open_ms = 0;
  int64_t close_ms = 0;  // == open_ms: no business time that day
};

}  // namespace

BusinessClock::BusinessClock(ProductionCalendar calendar, BusinessHours hours)
    : calendar_(std::move(calendar)), hours_(std::move(hours)) {}

namespace {

// The business window of a local day. Opening and closing are wall-clock
// times converted through the zone, so the span stays right on a day whose
// UTC offset changes.
Window WindowOf(const ProductionCalendar& cal, const BusinessHours& h, absl::CivilDay day) {
  if (!cal.IsWorkingDay(day)) return {};
  int end_minute = h.end_minute - (cal.IsShortened(day) ? h.shortened_by_minutes : 0);
  if (end_minute <= h.start_minute) return {};
  auto at = [&](int minute) {
    return absl::ToUnixMillis(h.zone.At(absl::CivilSecond(day) + int64_t{minute} * 60).pre);
  };
  Window w{at(h.start_minute), at(end_minute)};
  if (w.close_ms < w.open_ms) w.close_ms = w.open_ms;
  return w;
}

absl::CivilDay LocalDay(const absl::TimeZone& zone, int64_t ms) {
  return absl::ToCivilDay(absl::FromUnixMillis(ms), zone);
}

}  // namespace

int64_t BusinessClock::AddBusinessTime(int64_t start_ms, int64_t duration_ms) const {
  int64_t remaining = std::max<int64_t>(duration_ms, 0);
  // Whole days at a time: each working day contributes its window at once.
  absl::CivilDay day = LocalDay(hours_.zone, start_ms);
  int empty_days = 0;
  while (true) {
    Window w = WindowOf(calendar_, hours_, day);
    int64_t from = std::max(start_ms, w.open_ms);
    if (from < w.close_ms) {
      empty_days = 0;
      if (remaining <= w.close_ms - from) return from + remaining;
      remaining -= w.close_ms - from;
    } else if (++empty_days > kMaxEmptyDays) {
      return std::numeric_limits<int64_t>::max();
    }
    ++day;
  }
}

int64_t BusinessClock::BusinessTimeBetween(int64_t from_ms, int64_t to_ms) const {
  if (to_ms <= from_ms) return 0;
  int64_t total = 0;
  absl::CivilDay last = LocalDay(hours_.zone, to_ms);
  for (absl::CivilDay day = LocalDay(hours_.zone, from_ms); day <= last; ++day) {
    Window w = WindowOf(calendar_, hours_, day);
    int64_t a = std::max(from_ms, w.open_ms);
    int64_t b = std::min(to_ms, w.close_ms);
    if (a < b) total += b - a;
  }
  return total;
}

int64_t BusinessClock::AddWorkingDays(int64_t start_ms, int days) const {
  if (days <= 0) return start_ms;
  absl::CivilDay day = LocalDay(hours_.zone, start_ms);
  for (int counted = 0; counted < days;) {
    ++day;
    if (calendar_.IsWorkingDay(day)) ++counted;
  }
  int end_minute =
      hours_.end_minute - (calendar_.IsShortened(day) ? hours_.shortened_by_minutes : 0);
  return absl::ToUnixMillis(hours_.zone.At(absl::CivilSecond(day) + int64_t{end_minute} * 60).pre);
}

}  // namespace setdiag::collector
