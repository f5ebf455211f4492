#include "collector/tickets/sla.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace setdiag::collector {
namespace {

constexpr int64_t kMinute = 60'000;
constexpr int64_t kHour = 60 * kMinute;

// fraction * span in whole milliseconds; the fraction is clamped to [0, 1] so
// a misconfigured policy cannot put the warning after the deadline.
int64_t Share(int64_t span_ms, double fraction) {
  double f = std::isnan(fraction) ? 0.0 : std::clamp(fraction, 0.0, 1.0);
  return static_cast<int64_t>(std::llround(static_cast<double>(span_ms) * f));
}

int64_t SaturatingAdd(int64_t a, int64_t b) {
  if (b > 0 && a > std::numeric_limits<int64_t>::max() - b) {
    return std::numeric_limits<int64_t>::max();
  }
  return a + b;
}

SlaTarget SpanTarget(const SlaSpan& span, const BusinessClock& clock, double warn_fraction,
                     int64_t start_ms) {
  int64_t duration = std::max<int64_t>(span.duration_ms, 0);
  int64_t warn = Share(duration, warn_fraction);
  if (span.business) {
    return {clock.AddBusinessTime(start_ms, duration), clock.AddBusinessTime(start_ms, warn)};
  }
  return {SaturatingAdd(start_ms, duration), SaturatingAdd(start_ms, warn)};
}

}  // namespace

const char* PriorityName(Priority p) {
  switch (p) {
    case Priority::kNormal:
      return "normal";
    case Priority::kImportant:
      return "important";
    case Priority::kCritical:
      return "critical";
  }
  return "unknown";
}

SlaPolicy ExpertPolicy() {
  SlaPolicy p;
  p.tariff = "expert";
  p.registration = {15 * kMinute, /*business=*/false};
  p.first_response_critical = {2 * kHour, /*business=*/false};
  p.first_response = {4 * kHour, /*business=*/true};
  p.workaround_working_days = 3;
  p.warn_fraction = 0.75;
  return p;
}

SlaPolicy FreePolicy() {
  // The tariff says only "up to 24 h" for Free: read as around the clock and
  // for every priority, since Free has no critical-process promise.
  SlaPolicy p;
  p.tariff = "free";
  p.registration = {30 * kMinute, /*business=*/false};
  p.first_response_critical = {24 * kHour, /*business=*/false};
  p.first_response = {24 * kHour, /*business=*/false};
  p.workaround_working_days = 3;
  p.warn_fraction = 0.75;
  return p;
}

SlaTarget RegistrationTarget(const SlaPolicy& policy, const BusinessClock& clock,
                             int64_t detected_ms) {
  return SpanTarget(policy.registration, clock, policy.warn_fraction, detected_ms);
}

SlaTarget FirstResponseTarget(const SlaPolicy& policy, const BusinessClock& clock,
                              Priority priority, int64_t detected_ms) {
  const SlaSpan& span =
      priority == Priority::kCritical ? policy.first_response_critical : policy.first_response;
  return SpanTarget(span, clock, policy.warn_fraction, detected_ms);
}

SlaTarget WorkaroundTarget(const SlaPolicy& policy, const BusinessClock& clock,
                           int64_t error_registered_ms) {
  if (policy.workaround_working_days <= 0) return {};
  SlaTarget t;
  t.due_ms = clock.AddWorkingDays(error_registered_ms, policy.workaround_working_days);
  // The deadline is the end of a working day, so the warning is placed in the
  // business time between: 75% of the business hours the engineer really has,
  // not 75% of nights and weekends.
  int64_t business = clock.BusinessTimeBetween(error_registered_ms, t.due_ms);
  t.warn_ms = clock.AddBusinessTime(error_registered_ms, Share(business, policy.warn_fraction));
  return t;
}

}  // namespace setdiag::collector
