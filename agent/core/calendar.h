#pragma once
// The store's opening hours: when tills are expected to work. Outside hours
// or in maintenance, tills are not expected and no till condition is raised.
//
// Hours are wall-clock times in the store's time zone (IANA name, loaded from
// the system tzdata), per weekday, with a default for days not given, closed
// dates, and special hours on given dates. A range that passes midnight
// ("20:00-02:00") belongs to the day it starts: on a Friday it keeps the store
// open until 02:00 on Saturday, even if Saturday is a closed date. Ranges
// include their start and exclude their end (08:00-22:00 is open at 08:00:00
// and 21:59:59, closed at 22:00:00).
//
// Config (docs/config.md):
//   [calendar]
//   time_zone = "Europe/Moscow"   # required when the section is present
//   default = "08:00-22:00"       # days not listed below; "24h" if unset
//   mon = "08:00-22:00"           # also tue wed thu fri sat sun: "HH:MM-HH:MM",
//   sun = "closed"                #   "closed", "24h", or e.g. "20:00-02:00"
//   closed_dates = ["2026-01-01", "2026-01-07"]
//   open_dates = { "2026-01-03" = "10:00-18:00", "2026-01-04" = "closed" }
// Without a [calendar] section the store is open around the clock (UTC).
//
// Immutable once built: every method is const and safe from any thread.

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/civil_time.h"
#include "absl/time/time.h"
#include "agent/core/maintenance_window.h"
#include "common/config.h"

namespace setdiag::agent {

class StoreCalendar {
 public:
  struct Expectation {
    bool expected = true;
    // "open"; "outside opening hours (mon 08:00-22:00, Europe/Moscow)";
    // "closed date 2026-01-01"; "maintenance until 14:30 by ivanov: replacing
    // the switch".
    std::string reason;
  };

  // Open around the clock, UTC.
  StoreCalendar();

  // Reads the keys under "calendar." from `r`. It does not call r.Finish():
  // the caller does. Every error (a wrong type, an unknown zone, "25:00", a
  // range that starts where it ends) is recorded in the reader, so Finish()
  // reports it with file, line and key; a wrong value is also returned as
  // InvalidArgument "key 'calendar.mon': ...". Check Finish() first.
  static absl::StatusOr<StoreCalendar> FromConfig(ConfigReader& r);

  bool IsOpenAt(int64_t unix_ms) const;

  // Whether tills are expected at unix_ms, and why. Maintenance comes first:
  // while any of `windows` is active (MaintenanceWindow::ActiveAt) nothing is
  // expected and the reason names the window that ends last. `windows` may
  // hold inactive ones too (e.g. MaintenanceStore::List).
  Expectation ExpectedAt(int64_t unix_ms, const std::vector<MaintenanceWindow>& windows) const;

  // The first instant after unix_ms at which ExpectedAt(..., windows).expected
  // differs from its value at unix_ms (an opening, a closing, a maintenance
  // window starting or ending); nullopt if nothing changes within a year
  // (e.g. open around the clock). Lets a watch loop sleep until then.
  std::optional<int64_t> NextChangeAfter(int64_t unix_ms,
                                         const std::vector<MaintenanceWindow>& windows = {}) const;

  const std::string& time_zone_name() const { return zone_name_; }

 private:
  // Open [start_min, end_min) in minutes after the local midnight that begins
  // the day; end_min may exceed 1440 (the range passes midnight). Closed when
  // start_min == end_min.
  struct Hours {
    int start_min = 0;
    int end_min = 0;
    std::string text;  // as shown in reasons: "08:00-22:00", "24h", "closed"
    bool closed() const { return start_min == end_min; }
  };
  enum class DayKind { kWeekday, kClosedDate, kSpecialDate };
  struct Day {
    const Hours* hours;
    DayKind kind;
  };

  // Accepts "HH:MM-HH:MM" (H:MM too; the end may be 24:00), "closed", "24h".
  static absl::StatusOr<Hours> ParseHours(std::string_view text);
  Day DayOf(absl::CivilDay day) const;
  bool OpenAtCivil(absl::CivilSecond cs) const;
  bool ExpectedAtMs(int64_t unix_ms, const std::vector<MaintenanceWindow>& windows) const;
  // Every instant at which the local wall clock shows `cs` (twice when a DST
  // change repeats it) or jumps over it.
  void AddInstantsOf(absl::CivilSecond cs, std::vector<int64_t>* out) const;

  absl::TimeZone zone_;
  std::string zone_name_;
  Hours weekday_[7];  // indexed by absl::Weekday (monday = 0)
  Hours closed_;
  std::set<absl::CivilDay> closed_dates_;
  std::map<absl::CivilDay, Hours> special_dates_;
};

}  // namespace setdiag::agent
