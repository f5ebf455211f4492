#include "agent/core/calendar.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <utility>

#include "common/strings.h"

namespace setdiag::agent {
namespace {

constexpr int kMinutesPerDay = 24 * 60;
constexpr std::array<const char*, 7> kDayKeys = {"mon", "tue", "wed", "thu", "fri", "sat", "sun"};
constexpr const char* kHoursHelp =
    "expected \"HH:MM-HH:MM\" (e.g. 08:00-22:00 or 20:00-02:00), "
    "\"closed\" or \"24h\"";

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

bool AllDigits(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

int Digits(std::string_view s) {
  int v = 0;
  for (char c : s) v = v * 10 + (c - '0');
  return v;
}

// "H:MM" or "HH:MM" -> minutes after midnight; "24:00" only when allow_24.
std::optional<int> ParseClock(std::string_view s, bool allow_24) {
  size_t colon = s.find(':');
  if (colon == std::string_view::npos) return std::nullopt;
  std::string_view h = s.substr(0, colon);
  std::string_view m = s.substr(colon + 1);
  if (h.size() > 2 || m.size() != 2 || !AllDigits(h) || !AllDigits(m)) return std::nullopt;
  int hour = Digits(h);
  int minute = Digits(m);
  if (minute > 59) return std::nullopt;
  if (hour == 24 && minute == 0 && allow_24) return kMinutesPerDay;
  if (hour > 23) return std::nullopt;
  return hour * 60 + minute;
}

std::string ClockText(int minutes) {
  int h = minutes / 60;
  int m = minutes % 60;
  return Cat(h < 10 ? "0" : "", h, ":", m < 10 ? "0" : "", m);
}

// Strict "YYYY-MM-DD" (no normalisation of 2026-02-30 into March).
std::optional<absl::CivilDay> ParseDate(std::string_view s) {
  if (s.size() != 10 || s[4] != '-' || s[7] != '-') return std::nullopt;
  std::string_view y = s.substr(0, 4), m = s.substr(5, 2), d = s.substr(8, 2);
  if (!AllDigits(y) || !AllDigits(m) || !AllDigits(d)) return std::nullopt;
  absl::CivilDay day(Digits(y), Digits(m), Digits(d));
  if (day.year() != Digits(y) || day.month() != Digits(m) || day.day() != Digits(d)) {
    return std::nullopt;
  }
  return day;
}

}  // namespace

StoreCalendar::StoreCalendar() : zone_(absl::UTCTimeZone()), zone_name_("UTC") {
  for (Hours& h : weekday_) h = Hours{0, kMinutesPerDay, "24h"};
  closed_ = Hours{0, 0, "closed"};
}

absl::StatusOr<StoreCalendar::Hours> StoreCalendar::ParseHours(std::string_view text) {
  std::string t = Lower(Trim(text));
  if (t == "closed") return Hours{0, 0, "closed"};
  if (t == "24h") return Hours{0, kMinutesPerDay, "24h"};
  size_t dash = t.find('-');
  if (dash == std::string::npos) {
    return absl::InvalidArgumentError(Cat("bad opening hours '", text, "': ", kHoursHelp));
  }
  std::string_view tv = t;
  auto start = ParseClock(Trim(tv.substr(0, dash)), /*allow_24=*/false);
  auto end = ParseClock(Trim(tv.substr(dash + 1)), /*allow_24=*/true);
  if (!start || !end) {
    return absl::InvalidArgumentError(Cat("bad opening hours '", text,
                                          "': times must be 00:00..23:59 (the end may be 24:00); ",
                                          kHoursHelp));
  }
  if (*start == 0 && *end == kMinutesPerDay) return Hours{0, kMinutesPerDay, "24h"};
  if (*start == *end) {
    return absl::InvalidArgumentError(
        Cat("bad opening hours '", text,
            "': the range starts where it ends; use \"24h\" for open all day or \"closed\""));
  }
  // An end at or before the start passes midnight and belongs to the start day.
  int end_min = *end > *start ? *end : *end + kMinutesPerDay;
  return Hours{*start, end_min, Cat(ClockText(*start), "-", ClockText(*end))};
}

absl::StatusOr<StoreCalendar> StoreCalendar::FromConfig(ConfigReader& r) {
  // Read every key first, so the reader knows them all (Finish() flags the
  // rest as unknown) and records type errors, before any value is judged.
  auto zone = r.OptionalString("calendar.time_zone");
  auto def = r.OptionalString("calendar.default");
  std::array<std::optional<std::string>, 7> days;
  for (size_t i = 0; i < days.size(); ++i) {
    days[i] = r.OptionalString(Cat("calendar.", kDayKeys[i]));
  }
  std::vector<std::string> closed_dates = r.StringList("calendar.closed_dates");
  std::vector<std::string> open_dates = r.TableKeys("calendar.open_dates");

  // A wrong value is recorded in the reader (Finish() names file and line)
  // and also returned, so the result cannot be used by mistake.
  auto reject = [&r](const std::string& key, const std::string& what) {
    r.Invalid(key, what);
    return absl::InvalidArgumentError(Cat("key '", key, "': ", what));
  };

  StoreCalendar cal;
  bool any_day = std::any_of(days.begin(), days.end(), [](const auto& d) { return d.has_value(); });
  if (!zone && !def && !any_day && closed_dates.empty() && open_dates.empty()) return cal;

  if (!zone) {
    return reject("calendar.time_zone",
                  "required when [calendar] is present (an IANA name such as Europe/Moscow)");
  }
  if (zone->empty() || !absl::LoadTimeZone(*zone, &cal.zone_)) {
    return reject("calendar.time_zone",
                  Cat("unknown time zone '", *zone,
                      "': expected an IANA name such as Europe/Moscow or Asia/Yekaterinburg "
                      "(from /usr/share/zoneinfo, package tzdata)"));
  }
  cal.zone_name_ = *zone;

  Hours default_hours = Hours{0, kMinutesPerDay, "24h"};
  if (def) {
    auto h = ParseHours(*def);
    if (!h.ok()) return reject("calendar.default", std::string(h.status().message()));
    default_hours = *h;
  }
  for (size_t i = 0; i < days.size(); ++i) {
    cal.weekday_[i] = default_hours;
    if (!days[i]) continue;
    auto h = ParseHours(*days[i]);
    if (!h.ok()) return reject(Cat("calendar.", kDayKeys[i]), std::string(h.status().message()));
    cal.weekday_[i] = *h;
  }

  for (const std::string& item : closed_dates) {
    auto day = ParseDate(item);
    if (!day) {
      return reject(
          "calendar.closed_dates",
          Cat("bad date '", item, "': expected YYYY-MM-DD, e.g. [\"2026-01-01\", \"2026-01-07\"]"));
    }
    cal.closed_dates_.insert(*day);
  }
  for (const std::string& date : open_dates) {
    auto day = ParseDate(date);
    if (!day) {
      return reject("calendar.open_dates", Cat("bad date '", date,
                                               "': keys are dates YYYY-MM-DD, e.g. "
                                               "{ \"2026-01-03\" = \"10:00-18:00\" }"));
    }
    std::string key = Cat("calendar.open_dates.", date);
    std::string hours = r.String(key, "");
    auto h = ParseHours(hours);
    if (!h.ok()) return reject(key, std::string(h.status().message()));
    if (cal.closed_dates_.contains(*day)) {
      return reject(key, Cat(date, " is also listed in calendar.closed_dates"));
    }
    cal.special_dates_.emplace(*day, *h);
  }
  return cal;
}

StoreCalendar::Day StoreCalendar::DayOf(absl::CivilDay day) const {
  if (closed_dates_.contains(day)) return {&closed_, DayKind::kClosedDate};
  if (auto it = special_dates_.find(day); it != special_dates_.end()) {
    return {&it->second, DayKind::kSpecialDate};
  }
  return {&weekday_[static_cast<size_t>(absl::GetWeekday(day))], DayKind::kWeekday};
}

bool StoreCalendar::OpenAtCivil(absl::CivilSecond cs) const {
  absl::CivilDay day(cs);
  // Wall-clock seconds since the local midnight; a DST change does not move
  // opening hours, which are wall-clock times too.
  int64_t sec = cs - absl::CivilSecond(day);
  auto inside = [](const Hours& h, int64_t s) {
    return !h.closed() && s >= int64_t{h.start_min} * 60 && s < int64_t{h.end_min} * 60;
  };
  // Today's range, or yesterday's range that passed midnight.
  return inside(*DayOf(day).hours, sec) ||
         inside(*DayOf(day - 1).hours, sec + int64_t{kMinutesPerDay} * 60);
}

bool StoreCalendar::IsOpenAt(int64_t unix_ms) const {
  return OpenAtCivil(absl::ToCivilSecond(absl::FromUnixMillis(unix_ms), zone_));
}

bool StoreCalendar::ExpectedAtMs(int64_t unix_ms,
                                 const std::vector<MaintenanceWindow>& windows) const {
  for (const auto& w : windows) {
    if (w.ActiveAt(unix_ms)) return false;
  }
  return IsOpenAt(unix_ms);
}

StoreCalendar::Expectation StoreCalendar::ExpectedAt(
    int64_t unix_ms, const std::vector<MaintenanceWindow>& windows) const {
  absl::Time now = absl::FromUnixMillis(unix_ms);
  absl::CivilSecond cs = absl::ToCivilSecond(now, zone_);

  // The window that ends last says when tills are expected again.
  const MaintenanceWindow* maint = nullptr;
  for (const auto& w : windows) {
    if (w.ActiveAt(unix_ms) && (maint == nullptr || w.EffectiveEndMs() > maint->EffectiveEndMs())) {
      maint = &w;
    }
  }
  if (maint != nullptr) {
    absl::Time end = absl::FromUnixMillis(maint->EffectiveEndMs());
    bool same_day = absl::CivilDay(absl::ToCivilSecond(end, zone_)) == absl::CivilDay(cs);
    std::string until = absl::FormatTime(same_day ? "%H:%M" : "%Y-%m-%d %H:%M", end, zone_);
    std::string by = maint->opened_by.empty() ? "" : Cat(" by ", maint->opened_by);
    return {false, Cat("maintenance until ", until, by, ": ", maint->reason)};
  }

  if (OpenAtCivil(cs)) return {true, "open"};
  absl::CivilDay day(cs);
  Day d = DayOf(day);
  if (d.kind == DayKind::kClosedDate) {
    return {false, Cat("closed date ", absl::FormatCivilTime(day))};
  }
  std::string label = d.kind == DayKind::kSpecialDate
                          ? absl::FormatCivilTime(day)
                          : std::string(kDayKeys[static_cast<size_t>(absl::GetWeekday(day))]);
  return {false, Cat("outside opening hours (", label, " ", d.hours->text, ", ", zone_name_, ")")};
}

void StoreCalendar::AddInstantsOf(absl::CivilSecond cs, std::vector<int64_t>* out) const {
  absl::TimeZone::TimeInfo info = zone_.At(cs);
  out->push_back(absl::ToUnixMillis(info.pre));
  if (info.kind != absl::TimeZone::TimeInfo::UNIQUE) {
    out->push_back(absl::ToUnixMillis(info.trans));
    out->push_back(absl::ToUnixMillis(info.post));
  }
}

std::optional<int64_t> StoreCalendar::NextChangeAfter(
    int64_t unix_ms, const std::vector<MaintenanceWindow>& windows) const {
  // The answer can only change at a candidate instant: a range's start or end
  // on the local clock, a zone transition (the local clock jumps), a window's
  // start or end. Days are scanned a week at a time; a candidate is decided
  // once no later day can contribute an earlier one.
  constexpr int kChunkDays = 7;
  constexpr int kHorizonDays = 371;
  const bool initial = ExpectedAtMs(unix_ms, windows);
  std::vector<int64_t> pending;
  for (const auto& w : windows) {
    pending.push_back(w.start_ms);
    pending.push_back(w.EffectiveEndMs());
  }
  absl::Time scan = absl::FromUnixMillis(unix_ms);  // zone transitions found up to here
  absl::CivilDay first =
      absl::CivilDay(absl::ToCivilSecond(absl::FromUnixMillis(unix_ms), zone_)) - 1;
  for (int offset = 0; offset < kHorizonDays; offset += kChunkDays) {
    absl::CivilDay from = first + offset;
    absl::CivilDay to = from + kChunkDays;
    for (absl::CivilDay d = from; d < to; ++d) {
      const Hours& h = *DayOf(d).hours;
      if (h.closed()) continue;
      AddInstantsOf(absl::CivilSecond(d) + int64_t{h.start_min} * 60, &pending);
      AddInstantsOf(absl::CivilSecond(d) + int64_t{h.end_min} * 60, &pending);
    }
    // Ranges of later days start at or after the first instant of `to` (the
    // earlier of pre and post when a DST change skips or repeats midnight).
    absl::TimeZone::TimeInfo midnight = zone_.At(absl::CivilSecond(to));
    int64_t limit = absl::ToUnixMillis(std::min(midnight.pre, midnight.post));
    absl::TimeZone::CivilTransition tr;
    while (zone_.NextTransition(scan, &tr)) {
      absl::Time at = zone_.At(tr.to).trans;
      if (absl::ToUnixMillis(at) >= limit) break;
      pending.push_back(absl::ToUnixMillis(at));
      scan = at;
    }
    std::sort(pending.begin(), pending.end());
    auto it = pending.begin();
    for (; it != pending.end() && *it < limit; ++it) {
      if (*it > unix_ms && ExpectedAtMs(*it, windows) != initial) return *it;
    }
    pending.erase(pending.begin(), it);
  }
  for (int64_t c : pending) {  // windows planned beyond the horizon
    if (c > unix_ms && ExpectedAtMs(c, windows) != initial) return c;
  }
  return std::nullopt;
}

}  // namespace setdiag::agent
