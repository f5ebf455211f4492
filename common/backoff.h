#pragma once
// Reconnect pacing: exponential backoff with jitter and a cap, and a harder
// back-off when the server says it is overloaded. Pure logic over a Clock, so
// tests drive it with a FakeClock. Not thread-safe; owned by one loop.

#include <cstdint>
#include <random>

#include "common/clock.h"

namespace setdiag {

struct BackoffPolicy {
  int64_t initial_ms = 500;
  int64_t max_ms = 60'000;
  double multiplier = 2.0;
  // Each delay is drawn uniformly from [d * (1 - jitter), d]: spreads the
  // reconnects of thousands of stores after a collector restart.
  double jitter = 0.3;
  // After "overloaded" the next delay is at least this (and at least the
  // server's retry-after), and the exponent jumps two steps.
  int64_t overloaded_min_ms = 15'000;
  // ...and it is drawn uniformly from [floor, floor + spread], spread being
  // the server's retry_spread_ms or, without one, this fraction of the
  // floor. Jitter below the floor cannot spread a herd that the floor then
  // lines up again: every agent told "15 s" would come back at 15 s exactly.
  double overloaded_spread = 1.0;
  // A completed handshake alone proves nothing (a collector whose storage is
  // broken accepts the Hello and fails the first batch): a session resets the
  // backoff only once it has lasted this long or had a batch acknowledged.
  int64_t healthy_after_ms = 10'000;
};

class Backoff {
 public:
  Backoff(BackoffPolicy policy, Clock& clock, uint64_t seed);

  // A connection attempt failed: schedules the next one. Returns the delay.
  int64_t Failed();
  // The server asked us to go away for a while. With a spread (a collector
  // that schedules returning agents, collector/link/retry_schedule.h) the delay
  // is drawn from [retry_after_ms, retry_after_ms + spread_ms], the
  // server's slot for this agent, whatever our own overloaded minimum (at
  // least kMinScheduledMs, at most max_ms + spread_ms). Without one (0.1.0
  // collectors): at least retry_after_ms, overloaded_min_ms and the grown
  // delay, spread over the policy's overloaded_spread of that floor.
  int64_t Overloaded(int64_t retry_after_ms, int64_t spread_ms = 0);
  static constexpr int64_t kMinScheduledMs = 250;
  // A session went well: the next failure starts small again.
  void Succeeded();
  // A handshake completed: the session's age is counted from now.
  void SessionStarted();
  // The session that SessionStarted() began has ended. It counts as healthy
  // (and resets the backoff, as Succeeded()) when it lasted healthy_after_ms
  // or `acknowledged` (the collector acknowledged a batch); otherwise the
  // backoff keeps growing like after a failed connect. Returns whether it
  // was healthy. Call Failed() or Overloaded() afterwards as usual.
  bool SessionEnded(bool acknowledged);

  bool ReadyNow() const { return clock_.MonotonicMs() >= next_attempt_ms_; }
  int64_t MsUntilReady() const;
  int attempts() const { return attempts_; }

 private:
  int64_t Schedule(int64_t base_delay_ms);

  BackoffPolicy policy_;
  Clock& clock_;
  std::mt19937_64 rng_;
  int attempts_ = 0;
  int64_t next_attempt_ms_ = 0;
  int64_t session_started_ms_ = -1;  // -1: no session
};

}  // namespace setdiag
