#pragma once
// A maintenance window: a span of time in which an engineer on site said
// tills will be down. A plain value; the windows are kept by
// agent/store/maintenance.h and read by the calendar (agent/core/calendar.h).

#include <cstdint>
#include <optional>
#include <string>

namespace setdiag::agent {

struct MaintenanceWindow {
  int64_t id = 0;
  int64_t start_ms = 0;  // inclusive
  int64_t end_ms = 0;    // exclusive; the planned end
  std::string reason;
  std::string opened_by;
  std::optional<int64_t> cancelled_ms;  // set by Cancel(); the window ends there

  // The instant the window stops being active: the planned end, or the
  // cancellation if that came first.
  int64_t EffectiveEndMs() const;
  bool ActiveAt(int64_t unix_ms) const { return start_ms <= unix_ms && unix_ms < EffectiveEndMs(); }
};

}  // namespace setdiag::agent
