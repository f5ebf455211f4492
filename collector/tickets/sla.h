#pragma once
// The tariff's SLA clocks (docs/sla.md): per tariff, how long registration,
// first response and the workaround may take, and on which clock (around the
// clock or business time). Pure functions of a policy, a BusinessClock and
// instants; no clock of their own.

#include <cstdint>
#include <map>
#include <string>

#include "collector/tickets/production_calendar.h"

namespace setdiag::collector {

// Ticket priority, from the condition's severity (design.md's table).
enum class Priority { kNormal = 1, kImportant = 2, kCritical = 3 };
const char* PriorityName(Priority p);  // "normal", "important", "critical"

struct SlaSpan {
  int64_t duration_ms = 0;
  bool business = false;  // counted in business hours, else around the clock
};

struct SlaPolicy {
  std::string tariff;               // "expert", "free", or a configured name
  SlaSpan registration;             // 24/7: expert 15 min, free 30 min
  SlaSpan first_response_critical;  // expert 2 h 24/7; free 24 h
  SlaSpan first_response;           // important and normal: expert 4 business hours; free 24 h
  int workaround_working_days = 3;  // from a person registering an error; 0: no clock
  double warn_fraction = 0.75;      // a warning when this share of the time has passed
};

SlaPolicy ExpertPolicy();
SlaPolicy FreePolicy();

struct SlaTarget {
  int64_t due_ms = 0;
  int64_t warn_ms =
      0;  // when warn_fraction of the span has passed (business time for business spans)
};

SlaTarget RegistrationTarget(const SlaPolicy& policy, const BusinessClock& clock,
                             int64_t detected_ms);
SlaTarget FirstResponseTarget(const SlaPolicy& policy, const BusinessClock& clock,
                              Priority priority, int64_t detected_ms);
// nullopt-like: due_ms == 0 when the policy has no workaround clock.
SlaTarget WorkaroundTarget(const SlaPolicy& policy, const BusinessClock& clock,
                           int64_t error_registered_ms);

}  // namespace setdiag::collector
