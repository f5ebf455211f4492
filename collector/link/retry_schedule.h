#pragma once
// When to tell an agent turned away by Overloaded to come back. Agents
// turned away together must not return together (a herd that overflows the
// queue again and turns a 9 s drain into 38 s): each gets its own slot, one
// after another, each slot as long as the writer needs for that agent's
// backlog at the rate it is committing now. The first slot starts once the
// writer has committed as much of what is queued as the agent brings (room
// for it), and never before the slots already handed out have passed.
//
// The hint goes out as Overloaded{retry_after_ms, retry_spread_ms}: the
// agent returns at a uniformly drawn instant in [start, start + spread]
// (common/backoff.h, Backoff::Overloaded), the spread being its slot but at
// least kMinSpreadMs, so that short slots still scatter the returns a
// little. Thread-safe; times in ms on the caller's monotonic clock.

#include <cstdint>

#include "common/mutex.h"

namespace setdiag::collector {

class RetrySchedule {
 public:
  struct Hint {
    uint32_t retry_after_ms = 0;
    uint32_t spread_ms = 0;
  };
  static constexpr int64_t kMinDelayMs = 250;
  // An agent whose slot would start later is told to come back after this,
  // scattered over kMaxSlotMs, without taking a slot: it gets one then.
  static constexpr int64_t kMaxDelayMs = 60'000;
  static constexpr int64_t kMinSlotMs = 1;
  static constexpr int64_t kMaxSlotMs = 10'000;
  static constexpr int64_t kMinSpreadMs = 100;

  // `queued`: weight waiting in the commit queue now; `backlog`: events the
  // agent still has to send (at least 1 counted); `rate`: weight committed
  // per second.
  Hint Next(int64_t now_ms, uint64_t queued, uint64_t backlog, double rate);

 private:
  Mutex mu_;
  int64_t horizon_ms_ ABSL_GUARDED_BY(mu_) = 0;  // the end of the last slot handed out
};

}  // namespace setdiag::collector
