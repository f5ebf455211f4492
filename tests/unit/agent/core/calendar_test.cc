#include "agent/core/calendar.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/time/civil_time.h"
#include "absl/time/time.h"
#include "common/config.h"
#include "common/strings.h"

namespace setdiag::agent {
namespace {

using ::testing::HasSubstr;

constexpr int64_t kMinute = 60'000;

// Unix ms of a wall-clock time in a zone (the first occurrence if repeated).
int64_t Local(const char* zone, int y, int mo, int d, int h, int mi, int s = 0) {
  absl::TimeZone tz;
  if (!absl::LoadTimeZone(zone, &tz)) ADD_FAILURE() << "no zone " << zone;
  return absl::ToUnixMillis(tz.At(absl::CivilSecond(y, mo, d, h, mi, s)).pre);
}
int64_t Msk(int y, int mo, int d, int h, int mi, int s = 0) {
  return Local("Europe/Moscow", y, mo, d, h, mi, s);
}
int64_t Utc(int y, int mo, int d, int h, int mi, int s = 0) {
  return Local("UTC", y, mo, d, h, mi, s);
}

struct Loaded {
  absl::StatusOr<StoreCalendar> calendar;
  absl::Status finish;
};

Loaded Load(const std::string& toml) {
  std::unique_ptr<ConfigReader> r;
  absl::Status parsed = ConfigReader::Parse(toml, "agent.toml", &r);
  if (!parsed.ok()) return {parsed, parsed};
  auto cal = StoreCalendar::FromConfig(*r);
  return {std::move(cal), r->Finish()};
}

StoreCalendar MustLoad(const std::string& toml) {
  Loaded l = Load(toml);
  EXPECT_TRUE(l.finish.ok()) << l.finish.ToString();
  EXPECT_TRUE(l.calendar.ok()) << l.calendar.status().ToString();
  return l.calendar.ok() ? *l.calendar : StoreCalendar();
}

// A week of 08:00-22:00 in Moscow, closed on Sundays.
constexpr const char* kMoscow =
    "[calendar]\n"
    "time_zone = \"Europe/Moscow\"\n"
    "default = \"08:00-22:00\"\n"
    "sun = \"closed\"\n";

struct Case {
  const char* what;
  int64_t at;
  bool open;
  const char* reason;
};

void ExpectCases(const StoreCalendar& cal, const std::vector<Case>& cases) {
  for (const Case& c : cases) {
    SCOPED_TRACE(c.what);
    EXPECT_EQ(cal.IsOpenAt(c.at), c.open);
    StoreCalendar::Expectation e = cal.ExpectedAt(c.at, {});
    EXPECT_EQ(e.expected, c.open);
    EXPECT_EQ(e.reason, c.reason);
  }
}

TEST(StoreCalendarTest, MoscowIsThreeHoursAheadOfUtc) {
  EXPECT_EQ(Msk(2026, 11, 26, 8, 0), Utc(2026, 11, 26, 5, 0));
}

TEST(StoreCalendarTest, WeekdayHoursInMoscowAtTheEdges) {
  StoreCalendar cal = MustLoad(kMoscow);
  const char* outside = "outside opening hours (thu 08:00-22:00, Europe/Moscow)";
  // 2026-11-26 is a Thursday.
  ExpectCases(cal, {
                       {"03:00", Msk(2026, 11, 26, 3, 0), false, outside},
                       {"07:59:59", Msk(2026, 11, 26, 7, 59, 59), false, outside},
                       {"07:59:59.999", Msk(2026, 11, 26, 8, 0) - 1, false, outside},
                       {"08:00", Msk(2026, 11, 26, 8, 0), true, "open"},
                       {"08:00 as UTC 05:00", Utc(2026, 11, 26, 5, 0), true, "open"},
                       {"13:00", Msk(2026, 11, 26, 13, 0), true, "open"},
                       {"21:59", Msk(2026, 11, 26, 21, 59), true, "open"},
                       {"21:59:59.999", Msk(2026, 11, 26, 22, 0) - 1, true, "open"},
                       {"22:00", Msk(2026, 11, 26, 22, 0), false, outside},
                       {"23:59", Msk(2026, 11, 26, 23, 59), false, outside},
                   });
}

TEST(StoreCalendarTest, ClosedWeekday) {
  StoreCalendar cal = MustLoad(kMoscow);
  // 2026-11-29 is a Sunday.
  ExpectCases(cal, {
                       {"sun 12:00", Msk(2026, 11, 29, 12, 0), false,
                        "outside opening hours (sun closed, Europe/Moscow)"},
                       {"mon 08:00", Msk(2026, 11, 30, 8, 0), true, "open"},
                   });
}

TEST(StoreCalendarTest, SameInstantDiffersBetweenMoscowAndYekaterinburg) {
  StoreCalendar moscow = MustLoad(kMoscow);
  StoreCalendar yekaterinburg = MustLoad(
      "[calendar]\n"
      "time_zone = \"Asia/Yekaterinburg\"\n"
      "default = \"08:00-22:00\"\n");
  // 04:00 UTC: 07:00 in Moscow (closed), 09:00 in Yekaterinburg (open).
  int64_t morning = Utc(2026, 11, 26, 4, 0);
  EXPECT_FALSE(moscow.IsOpenAt(morning));
  EXPECT_TRUE(yekaterinburg.IsOpenAt(morning));
  // 18:00 UTC: 21:00 in Moscow (open), 23:00 in Yekaterinburg (closed).
  int64_t evening = Utc(2026, 11, 26, 18, 0);
  EXPECT_TRUE(moscow.IsOpenAt(evening));
  EXPECT_FALSE(yekaterinburg.IsOpenAt(evening));
  EXPECT_EQ(yekaterinburg.ExpectedAt(evening, {}).reason,
            "outside opening hours (thu 08:00-22:00, Asia/Yekaterinburg)");
  EXPECT_EQ(yekaterinburg.time_zone_name(), "Asia/Yekaterinburg");
}

TEST(StoreCalendarTest, RangePassingMidnightBelongsToTheDayItStarts) {
  StoreCalendar cal = MustLoad(
      "[calendar]\n"
      "time_zone = \"Europe/Moscow\"\n"
      "fri = \"20:00-02:00\"\n"
      "sat = \"closed\"\n"
      "default = \"08:00-22:00\"\n");
  // 2026-11-27 is a Friday.
  ExpectCases(cal, {
                       {"fri 08:00", Msk(2026, 11, 27, 8, 0), false,
                        "outside opening hours (fri 20:00-02:00, Europe/Moscow)"},
                       {"fri 19:59", Msk(2026, 11, 27, 19, 59), false,
                        "outside opening hours (fri 20:00-02:00, Europe/Moscow)"},
                       {"fri 20:00", Msk(2026, 11, 27, 20, 0), true, "open"},
                       {"sat 00:00", Msk(2026, 11, 28, 0, 0), true, "open"},
                       {"sat 01:59:59", Msk(2026, 11, 28, 1, 59, 59), true, "open"},
                       {"sat 02:00", Msk(2026, 11, 28, 2, 0), false,
                        "outside opening hours (sat closed, Europe/Moscow)"},
                       {"thu 23:00 (thursday's range ended at 22:00)", Msk(2026, 11, 26, 23, 0),
                        false, "outside opening hours (thu 08:00-22:00, Europe/Moscow)"},
                       {"fri 01:00 (thursday did not pass midnight)", Msk(2026, 11, 27, 1, 0),
                        false, "outside opening hours (fri 20:00-02:00, Europe/Moscow)"},
                   });
}

TEST(StoreCalendarTest, AllDayAndFullRangeAreOpenAroundTheClock) {
  for (const char* hours : {"24h", "24H", "00:00-24:00"}) {
    SCOPED_TRACE(hours);
    StoreCalendar cal =
        MustLoad(Cat("[calendar]\ntime_zone = \"Europe/Moscow\"\ndefault = \"", hours, "\"\n"));
    for (int64_t t = Msk(2026, 11, 26, 0, 0); t < Msk(2026, 11, 28, 0, 0); t += 15 * kMinute) {
      ASSERT_TRUE(cal.IsOpenAt(t)) << t;
    }
    EXPECT_EQ(cal.NextChangeAfter(Msk(2026, 11, 26, 0, 0)), std::nullopt);
  }
}

TEST(StoreCalendarTest, DefaultCoversDaysNotGivenAndDaysOverrideIt) {
  StoreCalendar cal = MustLoad(
      "[calendar]\n"
      "time_zone = \"Europe/Moscow\"\n"
      "default = \"10:00-20:00\"\n"
      "thu = \"07:00-23:00\"\n");
  ExpectCases(cal, {
                       {"thu 07:00", Msk(2026, 11, 26, 7, 0), true, "open"},
                       {"thu 22:30", Msk(2026, 11, 26, 22, 30), true, "open"},
                       {"fri 09:59", Msk(2026, 11, 27, 9, 59), false,
                        "outside opening hours (fri 10:00-20:00, Europe/Moscow)"},
                       {"fri 10:00", Msk(2026, 11, 27, 10, 0), true, "open"},
                       {"sun 20:00", Msk(2026, 11, 29, 20, 0), false,
                        "outside opening hours (sun 10:00-20:00, Europe/Moscow)"},
                   });
}

TEST(StoreCalendarTest, WithoutDefaultUnlistedDaysAreOpenAllDay) {
  StoreCalendar cal = MustLoad(
      "[calendar]\n"
      "time_zone = \"Europe/Moscow\"\n"
      "sun = \"closed\"\n");
  EXPECT_TRUE(cal.IsOpenAt(Msk(2026, 11, 26, 3, 0)));
  EXPECT_FALSE(cal.IsOpenAt(Msk(2026, 11, 29, 3, 0)));
}

TEST(StoreCalendarTest, ClosedDates) {
  StoreCalendar cal = MustLoad(Cat(kMoscow, "closed_dates = [\"2026-01-01\", \"2026-01-07\"]\n"));
  ExpectCases(cal, {
                       {"jan 1 noon", Msk(2026, 1, 1, 12, 0), false, "closed date 2026-01-01"},
                       {"jan 1 03:00", Msk(2026, 1, 1, 3, 0), false, "closed date 2026-01-01"},
                       {"jan 2 noon", Msk(2026, 1, 2, 12, 0), true, "open"},
                       {"jan 7 noon", Msk(2026, 1, 7, 12, 0), false, "closed date 2026-01-07"},
                       {"dec 31 21:59", Msk(2025, 12, 31, 21, 59), true, "open"},
                   });
}

TEST(StoreCalendarTest, OvernightRangeRunsIntoAClosedDate) {
  StoreCalendar cal = MustLoad(
      "[calendar]\n"
      "time_zone = \"Europe/Moscow\"\n"
      "default = \"20:00-02:00\"\n"
      "closed_dates = [\"2026-01-01\"]\n");
  EXPECT_TRUE(cal.IsOpenAt(Msk(2026, 1, 1, 1, 0)));  // Dec 31's range
  EXPECT_EQ(cal.ExpectedAt(Msk(2026, 1, 1, 2, 0), {}).reason, "closed date 2026-01-01");
  EXPECT_FALSE(cal.IsOpenAt(Msk(2026, 1, 1, 21, 0)));
  EXPECT_TRUE(cal.IsOpenAt(Msk(2026, 1, 2, 21, 0)));
}

TEST(StoreCalendarTest, OpenDatesReplaceTheWeekdayHours) {
  StoreCalendar cal =
      MustLoad(Cat(kMoscow,
                   "closed_dates = [\"2026-01-01\"]\n"
                   "open_dates = { \"2026-01-03\" = \"10:00-18:00\", "
                   "\"2026-01-04\" = \"12:00-16:00\", 2026-01-05 = \"closed\" }\n"));
  // 2026-01-03 is a Saturday (normally 08:00-22:00), 01-04 a Sunday (closed).
  const char* jan3 = "outside opening hours (2026-01-03 10:00-18:00, Europe/Moscow)";
  ExpectCases(cal, {
                       {"jan 3 09:59", Msk(2026, 1, 3, 9, 59), false, jan3},
                       {"jan 3 10:00", Msk(2026, 1, 3, 10, 0), true, "open"},
                       {"jan 3 17:59", Msk(2026, 1, 3, 17, 59), true, "open"},
                       {"jan 3 18:00", Msk(2026, 1, 3, 18, 0), false, jan3},
                       {"jan 4 13:00", Msk(2026, 1, 4, 13, 0), true, "open"},
                       {"jan 5 13:00", Msk(2026, 1, 5, 13, 0), false,
                        "outside opening hours (2026-01-05 closed, Europe/Moscow)"},
                       {"jan 10 09:00 (a plain saturday)", Msk(2026, 1, 10, 9, 0), true, "open"},
                   });
}

TEST(StoreCalendarTest, MissingSectionIsOpenAroundTheClockInUtc) {
  Loaded l = Load("[agent]\nstore_id = \"s1\"\n");
  ASSERT_TRUE(l.calendar.ok()) << l.calendar.status().ToString();
  // FromConfig reads only calendar keys; the caller's Finish() sees the rest.
  EXPECT_THAT(l.finish.ToString(), HasSubstr("unknown key 'agent'"));
  EXPECT_EQ(l.calendar->time_zone_name(), "UTC");
  EXPECT_TRUE(l.calendar->IsOpenAt(Utc(2026, 1, 1, 3, 0)));
  EXPECT_EQ(l.calendar->ExpectedAt(Utc(2026, 1, 1, 3, 0), {}).reason, "open");
  EXPECT_TRUE(StoreCalendar().IsOpenAt(0));
}

TEST(StoreCalendarTest, UnknownCalendarKeyIsLeftToFinish) {
  Loaded l = Load(Cat(kMoscow, "monday = \"08:00-22:00\"\n"));
  EXPECT_TRUE(l.calendar.ok());
  EXPECT_FALSE(l.finish.ok());
  EXPECT_THAT(l.finish.ToString(), HasSubstr("agent.toml:5: unknown key 'calendar.monday'"));
}

TEST(StoreCalendarTest, WrongTypeIsReportedByFinishWithLine) {
  Loaded l = Load(
      "[calendar]\n"
      "time_zone = \"Europe/Moscow\"\n"
      "mon = 8\n");
  EXPECT_THAT(l.finish.ToString(),
              HasSubstr("agent.toml:3: key 'calendar.mon': expected a string"));
}

TEST(StoreCalendarTest, BadValuesAreRejectedNamingTheKey) {
  struct Bad {
    const char* lines;
    const char* message;
  };
  const std::vector<Bad> cases = {
      {"time_zone = \"Europe/Mosco\"\n",
       "key 'calendar.time_zone': unknown time zone 'Europe/Mosco'"},
      {"time_zone = \"\"\n", "key 'calendar.time_zone': unknown time zone ''"},
      {"mon = \"08:00-22:00\"\n", "key 'calendar.time_zone': required when [calendar] is present"},
      {"time_zone = \"Europe/Moscow\"\nmon = \"25:00-22:00\"\n",
       "key 'calendar.mon': bad opening hours '25:00-22:00'"},
      {"time_zone = \"Europe/Moscow\"\ntue = \"08:60-22:00\"\n", "key 'calendar.tue'"},
      {"time_zone = \"Europe/Moscow\"\nwed = \"10:00-10:00\"\n",
       "key 'calendar.wed': bad opening hours '10:00-10:00': the range starts where it ends"},
      {"time_zone = \"Europe/Moscow\"\nthu = \"24:00-02:00\"\n", "key 'calendar.thu'"},
      {"time_zone = \"Europe/Moscow\"\nfri = \"8-22\"\n", "key 'calendar.fri'"},
      {"time_zone = \"Europe/Moscow\"\nsat = \"open\"\n", "key 'calendar.sat'"},
      {"time_zone = \"Europe/Moscow\"\nsun = \"\"\n", "key 'calendar.sun'"},
      {"time_zone = \"Europe/Moscow\"\ndefault = \"08:00\"\n", "key 'calendar.default'"},
      {"time_zone = \"Europe/Moscow\"\nclosed_dates = [\"2026-02-30\"]\n",
       "key 'calendar.closed_dates': bad date '2026-02-30'"},
      {"time_zone = \"Europe/Moscow\"\nclosed_dates = [\"2026-1-1\"]\n",
       "key 'calendar.closed_dates': bad date '2026-1-1'"},
      {"time_zone = \"Europe/Moscow\"\nopen_dates = { \"3 Jan\" = \"10:00-18:00\" }\n",
       "key 'calendar.open_dates': bad date '3 Jan'"},
      {"time_zone = \"Europe/Moscow\"\nopen_dates = { \"2026-01-03\" = \"10:00-26:00\" }\n",
       "key 'calendar.open_dates.2026-01-03': bad opening hours '10:00-26:00'"},
      {"time_zone = \"Europe/Moscow\"\nclosed_dates = [\"2026-01-03\"]\n"
       "open_dates = { \"2026-01-03\" = \"10:00-18:00\" }\n",
       "key 'calendar.open_dates.2026-01-03': 2026-01-03 is also listed in calendar.closed_dates"},
  };
  for (const Bad& b : cases) {
    SCOPED_TRACE(b.lines);
    Loaded l = Load(Cat("[calendar]\n", b.lines));
    // The reader has it too, with the file name (and the line, see below).
    EXPECT_THAT(std::string(l.finish.message()), HasSubstr("agent.toml"));
    EXPECT_THAT(std::string(l.finish.message()), HasSubstr(b.message));
    ASSERT_FALSE(l.calendar.ok());
    EXPECT_EQ(l.calendar.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(l.calendar.status().message()), HasSubstr(b.message));
  }
}

TEST(StoreCalendarTest, BadValuesNameFileAndLineThroughFinish) {
  struct Bad {
    const char* toml;
    const char* finish;
  };
  for (const Bad& b : std::vector<Bad>{
           {"[calendar]\ntime_zone = \"Europe/Moscow\"\nmon = \"25:00-22:00\"\n",
            "agent.toml:3: key 'calendar.mon': bad opening hours '25:00-22:00'"},
           {"[calendar]\n\ntime_zone = \"Mars/Olympus\"\n",
            "agent.toml:3: key 'calendar.time_zone': unknown time zone 'Mars/Olympus'"},
           {"[calendar]\ntime_zone = \"Europe/Moscow\"\n"
            "[calendar.open_dates]  # the long form of an inline table\n"
            "\"2026-01-03\" = \"10:00-18:00\"\n\"2026-01-04\" = \"18:00-18:00\"\n",
            "agent.toml:5: key 'calendar.open_dates.2026-01-04': bad opening hours '18:00-18:00'"},
           {"[calendar]\nsun = \"closed\"\n",
            "agent.toml: key 'calendar.time_zone': required when [calendar] is present"},
       }) {
    SCOPED_TRACE(b.toml);
    Loaded l = Load(b.toml);
    EXPECT_FALSE(l.calendar.ok());
    EXPECT_THAT(std::string(l.finish.message()), HasSubstr(b.finish));
  }
}

MaintenanceWindow Window(int64_t start, int64_t end, std::string reason, std::string by) {
  MaintenanceWindow w;
  w.id = 1;
  w.start_ms = start;
  w.end_ms = end;
  w.reason = std::move(reason);
  w.opened_by = std::move(by);
  return w;
}

TEST(StoreCalendarTest, MaintenanceMeansNotExpectedAndSaysWhy) {
  StoreCalendar cal = MustLoad(kMoscow);
  std::vector<MaintenanceWindow> windows = {Window(
      Msk(2026, 11, 26, 13, 0), Msk(2026, 11, 26, 14, 30), "replacing the switch", "ivanov")};
  struct At {
    const char* what;
    int64_t at;
    bool expected;
    const char* reason;
  };
  for (const At& c : std::vector<At>{
           {"before", Msk(2026, 11, 26, 12, 59), true, "open"},
           {"start", Msk(2026, 11, 26, 13, 0), false,
            "maintenance until 14:30 by ivanov: replacing the switch"},
           {"inside", Msk(2026, 11, 26, 14, 29), false,
            "maintenance until 14:30 by ivanov: replacing the switch"},
           {"end", Msk(2026, 11, 26, 14, 30), true, "open"},
       }) {
    SCOPED_TRACE(c.what);
    auto e = cal.ExpectedAt(c.at, windows);
    EXPECT_EQ(e.expected, c.expected);
    EXPECT_EQ(e.reason, c.reason);
    EXPECT_TRUE(cal.IsOpenAt(c.at));  // the hours alone do not change
  }
}

TEST(StoreCalendarTest, MaintenanceReasonNamesTheWindowThatEndsLast) {
  StoreCalendar cal = MustLoad(kMoscow);
  MaintenanceWindow cancelled =
      Window(Msk(2026, 11, 26, 9, 0), Msk(2026, 11, 28, 9, 0), "cancelled one", "petrov");
  cancelled.cancelled_ms = Msk(2026, 11, 26, 10, 0);
  std::vector<MaintenanceWindow> windows = {
      Window(Msk(2026, 11, 26, 11, 0), Msk(2026, 11, 26, 12, 0), "short", "ivanov"),
      Window(Msk(2026, 11, 26, 11, 30), Msk(2026, 11, 27, 9, 15), "server migration", "sidorov"),
      cancelled,
      Window(Msk(2026, 11, 26, 20, 0), Msk(2026, 11, 26, 21, 0), "later", "ivanov"),
  };
  EXPECT_EQ(cal.ExpectedAt(Msk(2026, 11, 26, 11, 10), windows).reason,
            "maintenance until 12:00 by ivanov: short");
  // Ends on another local day: the date is named.
  EXPECT_EQ(cal.ExpectedAt(Msk(2026, 11, 26, 11, 45), windows).reason,
            "maintenance until 2026-11-27 09:15 by sidorov: server migration");
  // A cancelled window is over from its cancellation on.
  EXPECT_EQ(cal.ExpectedAt(Msk(2026, 11, 26, 9, 30), windows).reason,
            "maintenance until 10:00 by petrov: cancelled one");
  EXPECT_EQ(cal.ExpectedAt(Msk(2026, 11, 26, 10, 30), windows).reason, "open");
  // Maintenance outside hours still names the maintenance.
  EXPECT_EQ(cal.ExpectedAt(Msk(2026, 11, 27, 7, 0), windows).reason,
            "maintenance until 09:15 by sidorov: server migration");
}

TEST(StoreCalendarTest, NextChangeFollowsOpeningAndClosing) {
  StoreCalendar cal = MustLoad(Cat(kMoscow, "closed_dates = [\"2026-12-01\"]\n"));
  struct Next {
    const char* what;
    int64_t from;
    int64_t next;
  };
  for (const Next& c : std::vector<Next>{
           {"thu noon -> thu close", Msk(2026, 11, 26, 12, 0), Msk(2026, 11, 26, 22, 0)},
           {"thu 07:59:59 -> thu open", Msk(2026, 11, 26, 7, 59, 59), Msk(2026, 11, 26, 8, 0)},
           {"at opening -> closing", Msk(2026, 11, 26, 8, 0), Msk(2026, 11, 26, 22, 0)},
           {"at closing -> next opening", Msk(2026, 11, 26, 22, 0), Msk(2026, 11, 27, 8, 0)},
           {"sat night skips sunday", Msk(2026, 11, 28, 23, 0), Msk(2026, 11, 30, 8, 0)},
           {"mon night skips a closed tuesday", Msk(2026, 11, 30, 22, 0), Msk(2026, 12, 2, 8, 0)},
       }) {
    SCOPED_TRACE(c.what);
    auto next = cal.NextChangeAfter(c.from);
    ASSERT_TRUE(next.has_value());
    EXPECT_EQ(*next, c.next);
    EXPECT_NE(cal.IsOpenAt(*next), cal.IsOpenAt(c.from));
  }
}

TEST(StoreCalendarTest, NextChangeIncludesMaintenanceAndOvernightRanges) {
  StoreCalendar cal = MustLoad(
      "[calendar]\n"
      "time_zone = \"Europe/Moscow\"\n"
      "default = \"20:00-02:00\"\n");
  std::vector<MaintenanceWindow> windows = {
      Window(Msk(2026, 11, 26, 21, 0), Msk(2026, 11, 26, 23, 0), "switch", "ivanov")};
  EXPECT_EQ(cal.NextChangeAfter(Msk(2026, 11, 26, 12, 0), windows), Msk(2026, 11, 26, 20, 0));
  EXPECT_EQ(cal.NextChangeAfter(Msk(2026, 11, 26, 20, 0), windows), Msk(2026, 11, 26, 21, 0));
  EXPECT_EQ(cal.NextChangeAfter(Msk(2026, 11, 26, 21, 0), windows), Msk(2026, 11, 26, 23, 0));
  EXPECT_EQ(cal.NextChangeAfter(Msk(2026, 11, 26, 23, 0), windows), Msk(2026, 11, 27, 2, 0));
  // Maintenance entirely outside hours changes nothing.
  std::vector<MaintenanceWindow> at_noon = {
      Window(Msk(2026, 11, 26, 12, 0), Msk(2026, 11, 26, 13, 0), "nap", "ivanov")};
  EXPECT_EQ(cal.NextChangeAfter(Msk(2026, 11, 26, 11, 0), at_noon), Msk(2026, 11, 26, 20, 0));
  // Open around the clock, a window is the only change.
  StoreCalendar always;
  EXPECT_EQ(always.NextChangeAfter(Msk(2026, 11, 26, 12, 0), windows), Msk(2026, 11, 26, 21, 0));
  EXPECT_EQ(always.NextChangeAfter(Msk(2026, 11, 26, 23, 0), windows), std::nullopt);
}

TEST(StoreCalendarTest, ClosingTimeSkippedByDaylightSavingClosesAtTheJump) {
  // Berlin, 2026-03-29 (a Sunday): at 02:00 CET (01:00 UTC) clocks jump to
  // 03:00 CEST, so 02:30 never shows on the wall.
  StoreCalendar cal = MustLoad(
      "[calendar]\n"
      "time_zone = \"Europe/Berlin\"\n"
      "sun = \"01:00-02:30\"\n"
      "default = \"closed\"\n");
  EXPECT_TRUE(cal.IsOpenAt(Utc(2026, 3, 29, 0, 59)));
  EXPECT_FALSE(cal.IsOpenAt(Utc(2026, 3, 29, 1, 0)));
  EXPECT_EQ(cal.NextChangeAfter(Utc(2026, 3, 29, 0, 30)), Utc(2026, 3, 29, 1, 0));
  EXPECT_EQ(cal.NextChangeAfter(Utc(2026, 3, 28, 12, 0)), Utc(2026, 3, 29, 0, 0));
}

TEST(StoreCalendarTest, WallClockRepeatedByDaylightSavingReopens) {
  // Berlin, 2026-10-25 (a Sunday): at 03:00 CEST (01:00 UTC) clocks go back to
  // 02:00 CET, so 02:00-02:30 shows on the wall twice. Hours are wall-clock
  // times, so the store is open during both.
  StoreCalendar cal = MustLoad(
      "[calendar]\n"
      "time_zone = \"Europe/Berlin\"\n"
      "sun = \"01:00-02:30\"\n"
      "default = \"closed\"\n");
  EXPECT_TRUE(cal.IsOpenAt(Utc(2026, 10, 25, 0, 15)));   // 02:15 CEST
  EXPECT_FALSE(cal.IsOpenAt(Utc(2026, 10, 25, 0, 45)));  // 02:45 CEST
  EXPECT_TRUE(cal.IsOpenAt(Utc(2026, 10, 25, 1, 15)));   // 02:15 CET
  EXPECT_EQ(cal.NextChangeAfter(Utc(2026, 10, 25, 0, 15)), Utc(2026, 10, 25, 0, 30));
  EXPECT_EQ(cal.NextChangeAfter(Utc(2026, 10, 25, 0, 45)), Utc(2026, 10, 25, 1, 0));
  EXPECT_EQ(cal.NextChangeAfter(Utc(2026, 10, 25, 1, 15)), Utc(2026, 10, 25, 1, 30));
}

}  // namespace
}  // namespace setdiag::agent
