// The production calendar parser, the shipped calendar files and the business
// clock (collector/tickets/production_calendar.h). Fixed instants, no sleeps.

#include "collector/tickets/production_calendar.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <filesystem>
#include <limits>
#include <string>
#include <vector>

#include "absl/time/civil_time.h"
#include "absl/time/time.h"
#include "common/strings.h"
#include "temp_dir.h"

namespace setdiag::collector {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr int64_t kMinute = 60'000;
constexpr int64_t kHour = 60 * kMinute;

absl::TimeZone Zone(const char* name) {
  absl::TimeZone tz;
  if (!absl::LoadTimeZone(name, &tz)) ADD_FAILURE() << "no time zone " << name << " (tzdata)";
  return tz;
}

int64_t Local(const char* zone, int y, int mo, int d, int h, int mi) {
  return absl::ToUnixMillis(Zone(zone).At(absl::CivilSecond(y, mo, d, h, mi, 0)).pre);
}
int64_t Msk(int y, int mo, int d, int h, int mi = 0) {
  return Local("Europe/Moscow", y, mo, d, h, mi);
}

std::string MskText(int64_t ms) {
  return absl::FormatTime("%Y-%m-%d %H:%M:%S %a MSK", absl::FromUnixMillis(ms),
                          Zone("Europe/Moscow"));
}

// The files that ship with the collector, found from this source file (the
// build compiles sources by absolute path).
std::string ShippedDir() {
  return (std::filesystem::path(__FILE__).parent_path() / "../../../../collector/calendars")
      .lexically_normal()
      .string();
}

BusinessHours MoscowHours() {
  BusinessHours h;
  h.zone = Zone("Europe/Moscow");
  return h;
}

ProductionCalendar MustParse(const std::string& text) {
  auto cal = ProductionCalendar::Parse(text, "test.txt");
  EXPECT_TRUE(cal.ok()) << cal.status().ToString();
  return cal.ok() ? *cal : ProductionCalendar();
}

ProductionCalendar Shipped() {
  auto cal = ProductionCalendar::LoadDirectory(ShippedDir());
  EXPECT_TRUE(cal.ok()) << cal.status().ToString();
  return cal.ok() ? *cal : ProductionCalendar();
}

int WorkingDaysIn(const ProductionCalendar& cal, int64_t year) {
  int n = 0;
  for (absl::CivilDay d(year, 1, 1); d.year() == year; ++d) n += cal.IsWorkingDay(d) ? 1 : 0;
  return n;
}

int ShortenedDaysIn(const ProductionCalendar& cal, int64_t year) {
  int n = 0;
  for (absl::CivilDay d(year, 1, 1); d.year() == year; ++d) {
    n += cal.IsWorkingDay(d) && cal.IsShortened(d) ? 1 : 0;
  }
  return n;
}

// ---------------------------------------------------------------------------
// Parsing

TEST(ProductionCalendarTest, ParsesEntriesCommentsAndFreeText) {
  ProductionCalendar cal = MustParse(
      "\xEF\xBB\xBF# a test calendar\r\n"
      "year 2027   # the year\r\n"
      "\n"
      "holiday 2027-01-01 Новый год\n"
      "\tholiday\t2027-05-03   transfer of 1 May\n"
      "working 2027-03-06 a Saturday made working\n"
      "short 2027-03-06\n"
      "short 2027-04-30 # before 1 May\n");
  EXPECT_TRUE(cal.Covers(2027));
  EXPECT_FALSE(cal.Covers(2026));
  EXPECT_THAT(cal.Years(), ElementsAre(2027));

  EXPECT_FALSE(cal.IsWorkingDay(absl::CivilDay(2027, 1, 1)));  // listed holiday, a Friday
  EXPECT_FALSE(cal.IsWorkingDay(absl::CivilDay(2027, 5, 3)));  // listed holiday, a Monday
  EXPECT_TRUE(cal.IsWorkingDay(absl::CivilDay(2027, 3, 6)));   // listed working Saturday
  EXPECT_TRUE(cal.IsShortened(absl::CivilDay(2027, 3, 6)));
  EXPECT_TRUE(cal.IsShortened(absl::CivilDay(2027, 4, 30)));
  EXPECT_FALSE(cal.IsShortened(absl::CivilDay(2027, 4, 29)));
  EXPECT_TRUE(cal.IsWorkingDay(absl::CivilDay(2027, 3, 5)));   // a plain Friday
  EXPECT_FALSE(cal.IsWorkingDay(absl::CivilDay(2027, 3, 7)));  // a plain Sunday
}

TEST(ProductionCalendarTest, DaysNotListedFollowTheWeek) {
  ProductionCalendar cal;  // covers no year
  EXPECT_FALSE(cal.Covers(2030));
  EXPECT_TRUE(cal.Years().empty());
  // 2030-01-07 is a Monday.
  const bool expected[] = {true, true, true, true, true, false, false};
  for (int i = 0; i < 7; ++i) {
    absl::CivilDay d = absl::CivilDay(2030, 1, 7) + i;
    EXPECT_EQ(cal.IsWorkingDay(d), expected[i]) << d;
    EXPECT_FALSE(cal.IsShortened(d)) << d;
  }
}

struct ParseErrorCase {
  const char* name;
  const char* text;
  const char* message;  // expected substring
};

TEST(ProductionCalendarTest, ParseErrorsNameSourceLineAndWhatIsWrong) {
  const ParseErrorCase cases[] = {
      {"bad date", "year 2026\nholiday 2026-02-30\n",
       "test.txt:2: bad date '2026-02-30': expected a real day as YYYY-MM-DD"},
      {"date not padded", "year 2026\n\nholiday 2026-1-1\n", "test.txt:3: bad date '2026-1-1'"},
      {"no date", "year 2026\nshort\n", "test.txt:2: 'short' needs a date YYYY-MM-DD"},
      {"outside the year", "year 2026\nholiday 2027-01-01\n",
       "test.txt:2: date 2027-01-01 is outside the declared year 2026 (line 1)"},
      {"unknown keyword", "year 2026\nholidays 2026-01-01\n",
       "test.txt:2: unknown keyword 'holidays': expected 'year YYYY'"},
      {"entry before year", "# comment\nholiday 2026-01-01\nyear 2026\n",
       "test.txt:2: missing 'year': 'holiday' before the 'year' line"},
      {"no year at all", "# only a comment\n\n", "test.txt: missing 'year'"},
      {"empty file", "", "test.txt: missing 'year'"},
      {"second year", "year 2026\nyear 2027\n",
       "test.txt:2: second 'year' line (the first is on line 1)"},
      {"bad year", "year 26\n", "test.txt:1: bad year '26'"},
      {"text after year", "year 2026 2027\n", "test.txt:1: unexpected text after the year"},
      {"duplicate", "year 2026\nholiday 2026-01-01\n# x\nholiday 2026-01-01 again\n",
       "test.txt:4: duplicate date 2026-01-01: already listed as 'holiday' on line 2"},
      {"holiday and working", "year 2026\nworking 2026-01-03\nholiday 2026-01-03\n",
       "test.txt:3: duplicate date 2026-01-03: 'holiday' contradicts line 2 which lists it as "
       "'working'"},
      {"holiday and short", "year 2026\nholiday 2026-11-04\nshort 2026-11-04\n",
       "test.txt:3: duplicate date 2026-11-04: 'short' contradicts line 2"},
      {"working on a weekday", "year 2026\nworking 2026-01-12\n",
       "test.txt:2: 'working 2026-01-12': not a Saturday or Sunday"},
      {"short on a weekend", "year 2026\n\nshort 2026-01-17\n",
       "test.txt:3: 'short 2026-01-17' is not a working day"},
  };
  for (const ParseErrorCase& c : cases) {
    SCOPED_TRACE(c.name);
    auto cal = ProductionCalendar::Parse(c.text, "test.txt");
    ASSERT_FALSE(cal.ok());
    EXPECT_EQ(cal.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(cal.status().message()), HasSubstr(c.message));
  }
}

TEST(ProductionCalendarTest, WorkingThenShortOnTheSameSaturdayIsAllowedInEitherOrder) {
  for (const char* text : {"year 2027\nworking 2027-03-06\nshort 2027-03-06\n",
                           "year 2027\nshort 2027-03-06\nworking 2027-03-06\n"}) {
    ProductionCalendar cal = MustParse(text);
    EXPECT_TRUE(cal.IsWorkingDay(absl::CivilDay(2027, 3, 6)));
    EXPECT_TRUE(cal.IsShortened(absl::CivilDay(2027, 3, 6)));
  }
}

// ---------------------------------------------------------------------------
// Files

TEST(ProductionCalendarTest, LoadFilesMergesYears) {
  testutil::TempDir dir;
  testutil::WriteBytes(dir.File("a.txt"), "year 2030\nholiday 2030-01-01\n");
  testutil::WriteBytes(dir.File("b.txt"), "year 2031\nholiday 2031-01-01\nshort 2031-12-31\n");
  auto cal = ProductionCalendar::LoadFiles({dir.File("a.txt"), dir.File("b.txt")});
  ASSERT_TRUE(cal.ok()) << cal.status().ToString();
  EXPECT_THAT(cal->Years(), ElementsAre(2030, 2031));
  EXPECT_FALSE(cal->IsWorkingDay(absl::CivilDay(2030, 1, 1)));
  EXPECT_FALSE(cal->IsWorkingDay(absl::CivilDay(2031, 1, 1)));
  EXPECT_TRUE(cal->IsShortened(absl::CivilDay(2031, 12, 31)));
}

TEST(ProductionCalendarTest, LoadFilesRejectsTwoFilesForOneYear) {
  testutil::TempDir dir;
  testutil::WriteBytes(dir.File("a.txt"), "year 2030\n");
  testutil::WriteBytes(dir.File("b.txt"), "year 2030\n");
  auto cal = ProductionCalendar::LoadFiles({dir.File("a.txt"), dir.File("b.txt")});
  ASSERT_FALSE(cal.ok());
  EXPECT_EQ(cal.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(
      std::string(cal.status().message()),
      HasSubstr(Cat(dir.File("b.txt"), ": year 2030 is already covered by ", dir.File("a.txt"))));
}

TEST(ProductionCalendarTest, LoadFilesNamesTheFileOfAParseError) {
  testutil::TempDir dir;
  testutil::WriteBytes(dir.File("ru-2030.txt"), "year 2030\nholiday 2030-13-01\n");
  auto cal = ProductionCalendar::LoadFiles({dir.File("ru-2030.txt")});
  ASSERT_FALSE(cal.ok());
  EXPECT_THAT(std::string(cal.status().message()),
              HasSubstr(Cat(dir.File("ru-2030.txt"), ":2: bad date '2030-13-01'")));
}

TEST(ProductionCalendarTest, LoadFilesReportsAMissingFile) {
  testutil::TempDir dir;
  auto cal = ProductionCalendar::LoadFiles({dir.File("nope.txt")});
  ASSERT_FALSE(cal.ok());
  EXPECT_EQ(cal.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(cal.status().message()), HasSubstr(dir.File("nope.txt")));
}

TEST(ProductionCalendarTest, LoadDirectoryReadsOnlyTxtFiles) {
  testutil::TempDir dir;
  testutil::WriteBytes(dir.File("ru-2031.txt"), "year 2031\n");
  testutil::WriteBytes(dir.File("ru-2030.txt"), "year 2030\nholiday 2030-01-01\n");
  testutil::WriteBytes(dir.File("README.md"), "not a calendar\n");
  testutil::WriteBytes(dir.File("ru-2030.txt.bak"), "year 2030\n");
  auto cal = ProductionCalendar::LoadDirectory(dir.path());
  ASSERT_TRUE(cal.ok()) << cal.status().ToString();
  EXPECT_THAT(cal->Years(), ElementsAre(2030, 2031));
}

TEST(ProductionCalendarTest, LoadDirectoryReportsAMissingDirectory) {
  testutil::TempDir dir;
  auto cal = ProductionCalendar::LoadDirectory(dir.File("calendars"));
  ASSERT_FALSE(cal.ok());
  EXPECT_EQ(cal.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(cal.status().message()), HasSubstr(dir.File("calendars")));
}

// ---------------------------------------------------------------------------
// The shipped files (collector/calendars)

TEST(ShippedCalendarTest, LoadsEveryShippedYear) {
  auto cal = ProductionCalendar::LoadDirectory(ShippedDir());
  ASSERT_TRUE(cal.ok()) << cal.status().ToString();
  EXPECT_THAT(cal->Years(), ElementsAre(2026, 2027));
}

TEST(ShippedCalendarTest, Year2026Has247WorkingDaysAsDecreed) {
  ProductionCalendar cal = Shipped();
  EXPECT_EQ(WorkingDaysIn(cal, 2026), 247);
  EXPECT_EQ(ShortenedDaysIn(cal, 2026), 4);
  // Hours at a 40-hour week, as the official calendar states them.
  EXPECT_EQ(WorkingDaysIn(cal, 2026) * 8 - ShortenedDaysIn(cal, 2026), 1972);

  struct Day {
    absl::CivilDay day;
    bool working;
    bool shortened;
  };
  const Day days[] = {
      {absl::CivilDay(2026, 1, 9), false, false},  // transfer from 3 January
      {absl::CivilDay(2026, 1, 12), true, false},  // first working day
      {absl::CivilDay(2026, 2, 23), false, false},
      {absl::CivilDay(2026, 3, 9), false, false},  // 8 March is a Sunday
      {absl::CivilDay(2026, 4, 30), true, true},
      {absl::CivilDay(2026, 5, 8), true, true},
      {absl::CivilDay(2026, 5, 11), false, false},  // 9 May is a Saturday
      {absl::CivilDay(2026, 6, 11), true, true},
      {absl::CivilDay(2026, 11, 3), true, true},
      {absl::CivilDay(2026, 11, 4), false, false},
      {absl::CivilDay(2026, 12, 30), true, false},
      {absl::CivilDay(2026, 12, 31), false, false},  // transfer from 4 January
  };
  for (const Day& d : days) {
    EXPECT_EQ(cal.IsWorkingDay(d.day), d.working) << d.day;
    if (d.working) {
      EXPECT_EQ(cal.IsShortened(d.day), d.shortened) << d.day;
    }
  }
}

TEST(ShippedCalendarTest, Year2027IsBuiltFromTheLabourCodeAlone) {
  ProductionCalendar cal = Shipped();
  // Without the decree's transfer of 2 and 3 January (docs/sla.md).
  EXPECT_EQ(WorkingDaysIn(cal, 2027), 249);
  EXPECT_EQ(ShortenedDaysIn(cal, 2027), 5);
  EXPECT_FALSE(cal.IsWorkingDay(absl::CivilDay(2027, 5, 3)));   // 1 May is a Saturday
  EXPECT_FALSE(cal.IsWorkingDay(absl::CivilDay(2027, 5, 10)));  // 9 May is a Sunday
  EXPECT_FALSE(cal.IsWorkingDay(absl::CivilDay(2027, 6, 14)));  // 12 June is a Saturday
  EXPECT_TRUE(cal.IsShortened(absl::CivilDay(2027, 12, 31)));
}

// ---------------------------------------------------------------------------
// BusinessClock over the shipped calendar, Moscow hours 10:00-19:00

struct AddCase {
  const char* name;
  int64_t start_ms;
  int64_t duration_ms;
  int64_t want_ms;
};

TEST(BusinessClockTest, AddBusinessTime) {
  BusinessClock clock(Shipped(), MoscowHours());
  const AddCase cases[] = {
      {"inside hours", Msk(2026, 11, 16, 11), 2 * kHour, Msk(2026, 11, 16, 13)},
      {"ends exactly at closing", Msk(2026, 11, 16, 10), 9 * kHour, Msk(2026, 11, 16, 19)},
      {"one minute past the day", Msk(2026, 11, 16, 10), 9 * kHour + kMinute,
       Msk(2026, 11, 17, 10, 1)},
      {"friday evening to monday", Msk(2026, 11, 20, 18, 30), 4 * kHour, Msk(2026, 11, 23, 13, 30)},
      {"before opening", Msk(2026, 11, 16, 8), kHour, Msk(2026, 11, 16, 11)},
      {"after closing", Msk(2026, 11, 16, 20), kHour, Msk(2026, 11, 17, 11)},
      {"at closing", Msk(2026, 11, 16, 19), kHour, Msk(2026, 11, 17, 11)},
      {"zero inside hours", Msk(2026, 11, 16, 12, 5), 0, Msk(2026, 11, 16, 12, 5)},
      {"zero on a saturday", Msk(2026, 11, 21, 12), 0, Msk(2026, 11, 23, 10)},
      {"negative counts as zero", Msk(2026, 11, 16, 12), -kHour, Msk(2026, 11, 16, 12)},
      {"shortened day ends at 18:00", Msk(2026, 11, 3, 17), 2 * kHour, Msk(2026, 11, 5, 11)},
      {"from a shortened closing over a holiday", Msk(2026, 11, 3, 18), 4 * kHour,
       Msk(2026, 11, 5, 14)},
      {"over new year into 2027", Msk(2026, 12, 30, 18), 2 * kHour, Msk(2027, 1, 11, 11)},
      {"a working week", Msk(2026, 11, 16, 10), 45 * kHour, Msk(2026, 11, 20, 19)},
      {"two working weeks", Msk(2026, 11, 16, 10), 90 * kHour, Msk(2026, 11, 27, 19)},
      {"over the may holidays", Msk(2026, 4, 30, 17), 11 * kHour, Msk(2026, 5, 5, 11)},
  };
  for (const AddCase& c : cases) {
    EXPECT_EQ(MskText(clock.AddBusinessTime(c.start_ms, c.duration_ms)), MskText(c.want_ms))
        << c.name;
  }
}

struct BetweenCase {
  const char* name;
  int64_t from_ms;
  int64_t to_ms;
  int64_t want_ms;
};

TEST(BusinessClockTest, BusinessTimeBetween) {
  BusinessClock clock(Shipped(), MoscowHours());
  const BetweenCase cases[] = {
      {"within a day", Msk(2026, 11, 16, 11), Msk(2026, 11, 16, 13), 2 * kHour},
      {"over a weekend", Msk(2026, 11, 20, 18, 30), Msk(2026, 11, 23, 13, 30), 4 * kHour},
      {"weekend only", Msk(2026, 11, 21, 0), Msk(2026, 11, 22, 23, 59), 0},
      {"reversed", Msk(2026, 11, 16, 13), Msk(2026, 11, 16, 11), 0},
      {"a whole week", Msk(2026, 11, 16, 0), Msk(2026, 11, 23, 0), 45 * kHour},
      {"a shortened day", Msk(2026, 11, 3, 0), Msk(2026, 11, 4, 0), 8 * kHour},
      {"the new year holidays", Msk(2026, 12, 31, 0), Msk(2027, 1, 11, 0), 0},
      {"the year 2026", Msk(2026, 1, 1, 0), Msk(2027, 1, 1, 0), (247 * 9 - 4) * kHour},
  };
  for (const BetweenCase& c : cases) {
    EXPECT_EQ(clock.BusinessTimeBetween(c.from_ms, c.to_ms), c.want_ms) << c.name;
  }
}

TEST(BusinessClockTest, BetweenUndoesAdd) {
  BusinessClock clock(Shipped(), MoscowHours());
  const int64_t starts[] = {Msk(2026, 11, 20, 18, 30), Msk(2026, 11, 3, 17, 59),
                            Msk(2026, 12, 30, 3), Msk(2026, 5, 9, 12), Msk(2026, 6, 11, 10)};
  const int64_t durations[] = {1, kMinute, 4 * kHour, 9 * kHour, 100 * kHour};
  for (int64_t s : starts) {
    for (int64_t d : durations) {
      EXPECT_EQ(clock.BusinessTimeBetween(s, clock.AddBusinessTime(s, d)), d)
          << MskText(s) << " + " << d << " ms";
    }
  }
}

TEST(BusinessClockTest, AddWorkingDays) {
  BusinessClock clock(Shipped(), MoscowHours());
  const AddCase cases[] = {
      // duration_ms holds the number of working days here.
      {"monday 11:00 + 3", Msk(2026, 11, 16, 11), 3, Msk(2026, 11, 19, 19)},
      {"monday after hours + 3", Msk(2026, 11, 16, 22), 3, Msk(2026, 11, 19, 19)},
      {"started on a sunday", Msk(2026, 11, 15, 14), 3, Msk(2026, 11, 18, 19)},
      {"across the 4 november holiday", Msk(2026, 11, 2, 11), 3, Msk(2026, 11, 6, 19)},
      {"ends on a shortened day", Msk(2026, 10, 30, 11), 2, Msk(2026, 11, 3, 18)},
      {"across the new year", Msk(2026, 12, 29, 11), 2, Msk(2027, 1, 11, 19)},
      {"zero days", Msk(2026, 11, 16, 11), 0, Msk(2026, 11, 16, 11)},
  };
  for (const AddCase& c : cases) {
    EXPECT_EQ(MskText(clock.AddWorkingDays(c.start_ms, static_cast<int>(c.duration_ms))),
              MskText(c.want_ms))
        << c.name;
  }
}

TEST(BusinessClockTest, ATransferredWorkingSaturdayCounts) {
  // 2027-03-06 is a Saturday; a decree could make it a working day.
  BusinessClock clock(MustParse("year 2027\nworking 2027-03-06 transfer\n"), MoscowHours());
  EXPECT_EQ(MskText(clock.AddBusinessTime(Msk(2027, 3, 5, 18), 4 * kHour)),
            MskText(Msk(2027, 3, 6, 13)));
  EXPECT_EQ(clock.BusinessTimeBetween(Msk(2027, 3, 6, 0), Msk(2027, 3, 8, 0)), 9 * kHour);
  EXPECT_EQ(MskText(clock.AddWorkingDays(Msk(2027, 3, 5, 11), 1)), MskText(Msk(2027, 3, 6, 19)));

  BusinessClock shortened(
      MustParse("year 2027\nworking 2027-03-06 transfer\nshort 2027-03-06 pre-holiday\n"),
      MoscowHours());
  EXPECT_EQ(MskText(shortened.AddBusinessTime(Msk(2027, 3, 6, 17), 2 * kHour)),
            MskText(Msk(2027, 3, 8, 11)));
  EXPECT_EQ(MskText(shortened.AddWorkingDays(Msk(2027, 3, 5, 11), 1)),
            MskText(Msk(2027, 3, 6, 18)));
}

TEST(BusinessClockTest, HoursAreLocalTimeInTheZone) {
  BusinessClock clock(ProductionCalendar(), MoscowHours());
  auto utc = [](int y, int mo, int d, int h) { return Local("UTC", y, mo, d, h, 0); };
  // Moscow is UTC+3 all year: 10:00 MSK is 07:00 UTC, in winter and summer.
  EXPECT_EQ(clock.AddBusinessTime(utc(2026, 1, 12, 0), 0), utc(2026, 1, 12, 7));
  EXPECT_EQ(clock.AddBusinessTime(utc(2026, 7, 13, 0), 0), utc(2026, 7, 13, 7));

  // Where the offset changes, a day is as long as its wall clock says: the
  // clock uses the zone, not a fixed offset. Berlin skips 02:00-03:00 on
  // Sunday 2026-03-29; with business hours around the clock and that Sunday
  // made a working day, it holds 23 hours.
  BusinessHours berlin;
  berlin.zone = Zone("Europe/Berlin");
  berlin.start_minute = 0;
  berlin.end_minute = 24 * 60;
  BusinessClock dst(MustParse("year 2026\nworking 2026-03-29\n"), berlin);
  int64_t sunday = Local("Europe/Berlin", 2026, 3, 29, 0, 0);
  int64_t monday = Local("Europe/Berlin", 2026, 3, 30, 0, 0);
  EXPECT_EQ(dst.BusinessTimeBetween(sunday, monday), 23 * kHour);
  EXPECT_EQ(dst.AddBusinessTime(sunday, 23 * kHour), monday);
}

TEST(BusinessClockTest, HoursWithNoTimeNeverEnd) {
  BusinessHours h = MoscowHours();
  h.start_minute = 19 * 60;
  h.end_minute = 10 * 60;
  BusinessClock clock(ProductionCalendar(), h);
  EXPECT_EQ(clock.AddBusinessTime(Msk(2026, 11, 16, 11), kHour),
            std::numeric_limits<int64_t>::max());
  EXPECT_EQ(clock.BusinessTimeBetween(Msk(2026, 11, 16, 0), Msk(2026, 11, 23, 0)), 0);
}

}  // namespace
}  // namespace setdiag::collector
