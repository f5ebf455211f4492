#include "collector/link/retry_schedule.h"

#include <algorithm>
#include <cmath>

namespace setdiag::collector {

RetrySchedule::Hint RetrySchedule::Next(int64_t now_ms, uint64_t queued, uint64_t backlog,
                                        double rate) {
  const double per_ms = std::max(rate, 1.0) / 1000.0;
  // Capped before the conversion: a day is far beyond any delay handed out.
  const auto ms_for = [per_ms](uint64_t weight) {
    return static_cast<int64_t>(
        std::min(std::ceil(static_cast<double>(weight) / per_ms), 86'400'000.0));
  };
  const int64_t slot = std::clamp(ms_for(std::max<uint64_t>(backlog, 1)), kMinSlotMs, kMaxSlotMs);
  MutexLock lock(&mu_);
  // Not before there is room for what the agent brings, nor before the
  // slots already handed out have passed.
  int64_t start = std::max(horizon_ms_, now_ms + ms_for(std::min<uint64_t>(queued, backlog)));
  Hint h;
  if (start - now_ms > kMaxDelayMs) {
    // Beyond what is handed out: asked again after the cap, scattered over
    // the longest slot so they do not return together; the horizon stays,
    // so they are then scheduled after everyone already waiting.
    h.retry_after_ms = static_cast<uint32_t>(kMaxDelayMs);
    h.spread_ms = static_cast<uint32_t>(kMaxSlotMs);
    return h;
  }
  const int64_t delay = std::max(start - now_ms, kMinDelayMs);
  horizon_ms_ = now_ms + delay + slot;
  h.retry_after_ms = static_cast<uint32_t>(delay);
  h.spread_ms = static_cast<uint32_t>(std::max(slot, kMinSpreadMs));
  return h;
}

}  // namespace setdiag::collector
