#include "collector/retry_schedule.h"

#include <algorithm>
#include <cmath>

namespace setdiag::collector {

RetrySchedule::Hint RetrySchedule::Next(int64_t now_ms, uint64_t queued, uint64_t backlog, double rate) {
  const double per_ms = std::max(rate, 1.0) / 1000.0;
  const auto ms_for = [per_ms](uint64_t weight) {
    return static_cast<int64_t>(std::ceil(static_cast<double>(weight) / per_ms));
  };
  const int64_t slot = std::clamp(ms_for(std::max<uint64_t>(backlog, 1)), kMinSlotMs, kMaxSlotMs);
  std::lock_guard lock(mu_);
  // Not before there is room for what the agent brings, nor before the
  // slots already handed out have passed.
  int64_t start = std::max(horizon_ms_, now_ms + ms_for(std::min<uint64_t>(queued, backlog)));
  int64_t delay = std::clamp(start - now_ms, kMinDelayMs, kMaxDelayMs);
  horizon_ms_ = now_ms + delay + slot;
  Hint h;
  h.retry_after_ms = static_cast<uint32_t>(delay);
  h.spread_ms = static_cast<uint32_t>(std::max(slot, kMinSpreadMs));
  return h;
}

}  // namespace setdiag::collector
