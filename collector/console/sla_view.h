#pragma once
// The SLA clocks of a ticket as the console shows them, live: for each
// clock still running, how much SLA time is left now and whether the clock
// stands still (a business-hours clock outside 10:00-19:00 MSK or on a day
// off: the first response to an important or normal Expert ticket), so the
// page counts down only what the tariff counts. Pure: the ticket as the API
// gives it, the policy, the business clock and an instant.

#include <cstdint>
#include <limits>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "collector/tickets/production_calendar.h"
#include "collector/tickets/tickets.h"

namespace setdiag::collector::console {

struct ClockView {
  std::string name;  // "registration", "first_response", "workaround"
  int64_t due_ms = 0;
  int64_t met_at_ms = 0;  // 0: running
  bool business = false;  // counts business time only
  bool paused = false;    // running, business, and now is outside business hours
  // SLA time left (business time for a business clock); negative: overdue
  // by that much wall time.
  int64_t remaining_ms = 0;
  std::string state;  // "met", "ok", "warning", "breached"
};

// The clocks the ticket has (a clock not started, such as the workaround
// before an error is registered, is left out), in the API's order.
std::vector<ClockView> ClockViews(const nlohmann::json& ticket, const TicketPolicy& policy,
                                  const BusinessClock& business, int64_t now_ms);

// Of the running clocks, the earliest due instant (what the queue sorts by:
// what breaches first, whichever clock it is); INT64_MAX when none runs.
int64_t NextDueMs(const std::vector<ClockView>& clocks);

// "1 h 05 min", "12 min", "45 s"; a negative span the same, without sign.
std::string FormatSpan(int64_t ms, bool ru);

}  // namespace setdiag::collector::console
