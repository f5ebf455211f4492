// The tariff's SLA clocks (collector/tickets/sla.h) over the shipped 2026-2027
// production calendar and Moscow business hours. Fixed instants, no sleeps.

#include "collector/tickets/sla.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <filesystem>
#include <string>

#include "absl/time/civil_time.h"
#include "absl/time/time.h"
#include "collector/tickets/production_calendar.h"

namespace setdiag::collector {
namespace {

constexpr int64_t kSecond = 1'000;
constexpr int64_t kMinute = 60 * kSecond;
constexpr int64_t kHour = 60 * kMinute;

absl::TimeZone Moscow() {
  absl::TimeZone tz;
  if (!absl::LoadTimeZone("Europe/Moscow", &tz)) ADD_FAILURE() << "no Europe/Moscow (tzdata)";
  return tz;
}

int64_t Msk(int y, int mo, int d, int h, int mi = 0, int s = 0) {
  return absl::ToUnixMillis(Moscow().At(absl::CivilSecond(y, mo, d, h, mi, s)).pre);
}

std::string MskText(int64_t ms) {
  return absl::FormatTime("%Y-%m-%d %H:%M:%E3S %a MSK", absl::FromUnixMillis(ms), Moscow());
}

BusinessHours MoscowHours() {
  BusinessHours h;
  h.zone = Moscow();
  return h;
}

// The calendars that ship with the collector, found from this source file.
BusinessClock ShippedClock() {
  std::string dir =
      (std::filesystem::path(__FILE__).parent_path() / "../../../../collector/calendars")
          .lexically_normal()
          .string();
  auto cal = ProductionCalendar::LoadDirectory(dir);
  EXPECT_TRUE(cal.ok()) << cal.status().ToString();
  return BusinessClock(cal.ok() ? *cal : ProductionCalendar(), MoscowHours());
}

struct Expected {
  int64_t due_ms;
  int64_t warn_ms;
};

void ExpectTarget(const SlaTarget& got, const Expected& want, const char* name) {
  EXPECT_EQ(MskText(got.due_ms), MskText(want.due_ms)) << name << ": due";
  EXPECT_EQ(MskText(got.warn_ms), MskText(want.warn_ms)) << name << ": warn";
}

TEST(SlaTest, PriorityNames) {
  EXPECT_STREQ(PriorityName(Priority::kNormal), "normal");
  EXPECT_STREQ(PriorityName(Priority::kImportant), "important");
  EXPECT_STREQ(PriorityName(Priority::kCritical), "critical");
}

TEST(SlaTest, TariffPolicies) {
  SlaPolicy expert = ExpertPolicy();
  EXPECT_EQ(expert.tariff, "expert");
  EXPECT_EQ(expert.registration.duration_ms, 15 * kMinute);
  EXPECT_FALSE(expert.registration.business);
  EXPECT_EQ(expert.first_response_critical.duration_ms, 2 * kHour);
  EXPECT_FALSE(expert.first_response_critical.business);
  EXPECT_EQ(expert.first_response.duration_ms, 4 * kHour);
  EXPECT_TRUE(expert.first_response.business);
  EXPECT_EQ(expert.workaround_working_days, 3);
  EXPECT_DOUBLE_EQ(expert.warn_fraction, 0.75);

  SlaPolicy free = FreePolicy();
  EXPECT_EQ(free.tariff, "free");
  EXPECT_EQ(free.registration.duration_ms, 30 * kMinute);
  EXPECT_FALSE(free.registration.business);
  EXPECT_EQ(free.first_response_critical.duration_ms, 24 * kHour);
  EXPECT_FALSE(free.first_response_critical.business);
  EXPECT_EQ(free.first_response.duration_ms, 24 * kHour);
  EXPECT_FALSE(free.first_response.business);
  EXPECT_EQ(free.workaround_working_days, 3);
  EXPECT_DOUBLE_EQ(free.warn_fraction, 0.75);
}

struct RegistrationCase {
  const char* name;
  SlaPolicy policy;
  int64_t detected_ms;
  Expected want;
};

TEST(SlaTest, RegistrationIsAroundTheClock) {
  BusinessClock clock = ShippedClock();
  const int64_t weekday = Msk(2026, 11, 16, 12);
  const int64_t holiday_night = Msk(2026, 1, 1, 3);  // New Year's night
  const int64_t saturday_late = Msk(2026, 11, 21, 23, 50);
  const RegistrationCase cases[] = {
      {"expert, weekday",
       ExpertPolicy(),
       weekday,
       {Msk(2026, 11, 16, 12, 15), Msk(2026, 11, 16, 12, 11, 15)}},
      {"expert, holiday night",
       ExpertPolicy(),
       holiday_night,
       {Msk(2026, 1, 1, 3, 15), Msk(2026, 1, 1, 3, 11, 15)}},
      {"expert, saturday before midnight",
       ExpertPolicy(),
       saturday_late,
       {Msk(2026, 11, 22, 0, 5), Msk(2026, 11, 22, 0, 1, 15)}},
      {"free, weekday",
       FreePolicy(),
       weekday,
       {Msk(2026, 11, 16, 12, 30), Msk(2026, 11, 16, 12, 22, 30)}},
      {"free, holiday night",
       FreePolicy(),
       holiday_night,
       {Msk(2026, 1, 1, 3, 30), Msk(2026, 1, 1, 3, 22, 30)}},
      {"free, saturday before midnight",
       FreePolicy(),
       saturday_late,
       {Msk(2026, 11, 22, 0, 20), Msk(2026, 11, 22, 0, 12, 30)}},
  };
  for (const RegistrationCase& c : cases) {
    ExpectTarget(RegistrationTarget(c.policy, clock, c.detected_ms), c.want, c.name);
  }
}

struct FirstResponseCase {
  const char* name;
  SlaPolicy policy;
  Priority priority;
  int64_t detected_ms;
  Expected want;
};

TEST(SlaTest, FirstResponse) {
  BusinessClock clock = ShippedClock();
  const int64_t friday_evening = Msk(2026, 11, 20, 18, 30);
  const FirstResponseCase cases[] = {
      // Expert: 4 business hours for important and normal.
      {"expert important, friday 18:30 -> monday 13:30",
       ExpertPolicy(),
       Priority::kImportant,
       friday_evening,
       {Msk(2026, 11, 23, 13, 30), Msk(2026, 11, 23, 12, 30)}},
      {"expert normal, friday 18:30 -> monday 13:30",
       ExpertPolicy(),
       Priority::kNormal,
       friday_evening,
       {Msk(2026, 11, 23, 13, 30), Msk(2026, 11, 23, 12, 30)}},
      {"expert important, inside one day",
       ExpertPolicy(),
       Priority::kImportant,
       Msk(2026, 11, 17, 11),
       {Msk(2026, 11, 17, 15), Msk(2026, 11, 17, 14)}},
      {"expert important, at night counts from 10:00",
       ExpertPolicy(),
       Priority::kImportant,
       Msk(2026, 11, 17, 2),
       {Msk(2026, 11, 17, 14), Msk(2026, 11, 17, 13)}},
      // 3 November is shortened (ends 18:00) and 4 November is a holiday.
      {"expert important, at the shortened closing before a holiday",
       ExpertPolicy(),
       Priority::kImportant,
       Msk(2026, 11, 3, 18),
       {Msk(2026, 11, 5, 14), Msk(2026, 11, 5, 13)}},
      {"expert important, shortened day then holiday",
       ExpertPolicy(),
       Priority::kImportant,
       Msk(2026, 11, 3, 16),
       {Msk(2026, 11, 5, 12), Msk(2026, 11, 5, 11)}},
      {"expert important, warning exactly at the shortened closing",
       ExpertPolicy(),
       Priority::kImportant,
       Msk(2026, 11, 3, 15),
       {Msk(2026, 11, 5, 11), Msk(2026, 11, 3, 18)}},
      {"expert important, during the new year holidays",
       ExpertPolicy(),
       Priority::kImportant,
       Msk(2026, 1, 5, 12),
       {Msk(2026, 1, 12, 14), Msk(2026, 1, 12, 13)}},
      // Expert critical: 2 h around the clock.
      {"expert critical, saturday 03:00 -> 05:00",
       ExpertPolicy(),
       Priority::kCritical,
       Msk(2026, 11, 21, 3),
       {Msk(2026, 11, 21, 5), Msk(2026, 11, 21, 4, 30)}},
      {"expert critical, holiday night",
       ExpertPolicy(),
       Priority::kCritical,
       Msk(2026, 1, 1, 2),
       {Msk(2026, 1, 1, 4), Msk(2026, 1, 1, 3, 30)}},
      {"expert critical, weekday evening",
       ExpertPolicy(),
       Priority::kCritical,
       Msk(2026, 11, 20, 18, 30),
       {Msk(2026, 11, 20, 20, 30), Msk(2026, 11, 20, 20)}},
      // Free: 24 h around the clock, every priority.
      {"free critical",
       FreePolicy(),
       Priority::kCritical,
       friday_evening,
       {Msk(2026, 11, 21, 18, 30), Msk(2026, 11, 21, 12, 30)}},
      {"free important",
       FreePolicy(),
       Priority::kImportant,
       friday_evening,
       {Msk(2026, 11, 21, 18, 30), Msk(2026, 11, 21, 12, 30)}},
      {"free normal",
       FreePolicy(),
       Priority::kNormal,
       friday_evening,
       {Msk(2026, 11, 21, 18, 30), Msk(2026, 11, 21, 12, 30)}},
      {"free important, holiday night",
       FreePolicy(),
       Priority::kImportant,
       Msk(2026, 1, 1, 2),
       {Msk(2026, 1, 2, 2), Msk(2026, 1, 1, 20)}},
  };
  for (const FirstResponseCase& c : cases) {
    ExpectTarget(FirstResponseTarget(c.policy, clock, c.priority, c.detected_ms), c.want, c.name);
  }
}

TEST(SlaTest, FirstResponseCountsATransferredWorkingSaturday) {
  // 2027-03-06 is a Saturday made a working day by this test calendar.
  auto cal = ProductionCalendar::Parse("year 2027\nworking 2027-03-06 transfer\n", "test.txt");
  ASSERT_TRUE(cal.ok()) << cal.status().ToString();
  BusinessClock clock(*cal, MoscowHours());
  ExpectTarget(
      FirstResponseTarget(ExpertPolicy(), clock, Priority::kImportant, Msk(2027, 3, 5, 18)),
      {Msk(2027, 3, 6, 13), Msk(2027, 3, 6, 12)}, "friday 18:00 -> saturday 13:00");
}

struct WorkaroundCase {
  const char* name;
  SlaPolicy policy;
  int64_t registered_ms;
  Expected want;
};

TEST(SlaTest, WorkaroundInWorkingDays) {
  BusinessClock clock = ShippedClock();
  const WorkaroundCase cases[] = {
      // 35 business hours to Thursday 19:00; 75% = 26 h 15 min.
      {"monday 11:00 -> thursday 19:00",
       ExpertPolicy(),
       Msk(2026, 11, 16, 11),
       {Msk(2026, 11, 19, 19), Msk(2026, 11, 19, 10, 15)}},
      // 2, 3 (shortened), 5, 6 November: 34 business hours; 75% = 25 h 30 min.
      {"across the 4 november holiday",
       ExpertPolicy(),
       Msk(2026, 11, 2, 11),
       {Msk(2026, 11, 6, 19), Msk(2026, 11, 6, 10, 30)}},
      // Monday is day 1: 27 business hours; 75% = 20 h 15 min.
      {"started on a sunday",
       ExpertPolicy(),
       Msk(2026, 11, 15, 14),
       {Msk(2026, 11, 18, 19), Msk(2026, 11, 18, 12, 15)}},
      {"free has the same clock",
       FreePolicy(),
       Msk(2026, 11, 16, 11),
       {Msk(2026, 11, 19, 19), Msk(2026, 11, 19, 10, 15)}},
  };
  for (const WorkaroundCase& c : cases) {
    ExpectTarget(WorkaroundTarget(c.policy, clock, c.registered_ms), c.want, c.name);
  }
}

TEST(SlaTest, NoWorkaroundClock) {
  BusinessClock clock = ShippedClock();
  SlaPolicy policy = ExpertPolicy();
  policy.workaround_working_days = 0;
  SlaTarget t = WorkaroundTarget(policy, clock, Msk(2026, 11, 16, 11));
  EXPECT_EQ(t.due_ms, 0);
  EXPECT_EQ(t.warn_ms, 0);
}

TEST(SlaTest, WarnFractionIsConfigurableAndBounded) {
  BusinessClock clock = ShippedClock();
  const int64_t detected = Msk(2026, 11, 20, 18, 30);
  SlaPolicy policy = ExpertPolicy();
  policy.warn_fraction = 0.5;
  ExpectTarget(FirstResponseTarget(policy, clock, Priority::kImportant, detected),
               {Msk(2026, 11, 23, 13, 30), Msk(2026, 11, 23, 11, 30)}, "half");
  policy.warn_fraction = 1.5;  // never after the deadline
  ExpectTarget(FirstResponseTarget(policy, clock, Priority::kImportant, detected),
               {Msk(2026, 11, 23, 13, 30), Msk(2026, 11, 23, 13, 30)}, "clamped");
}

}  // namespace
}  // namespace setdiag::collector
