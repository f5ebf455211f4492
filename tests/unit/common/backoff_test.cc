#include "common/backoff.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <vector>

#include "common/clock.h"

namespace setdiag {
namespace {

using std::chrono::milliseconds;

BackoffPolicy NoJitter() {
  BackoffPolicy p;
  p.initial_ms = 500;
  p.max_ms = 60'000;
  p.multiplier = 2.0;
  p.jitter = 0.0;
  p.overloaded_min_ms = 15'000;
  p.overloaded_spread = 0.0;
  return p;
}

// Lower bound of the jitter window for a base delay d (the delay is an integer
// number of ms, so the bound is rounded down).
int64_t JitterFloor(int64_t d, double jitter) {
  return static_cast<int64_t>(std::floor(static_cast<double>(d) * (1.0 - jitter)));
}

TEST(BackoffTest, WithoutJitterDelaysDoubleFromInitialUntilTheCap) {
  FakeClock clock;
  Backoff b(NoJitter(), clock, 1);
  std::vector<int64_t> got;
  for (int i = 0; i < 10; ++i) got.push_back(b.Failed());
  std::vector<int64_t> want = {500, 1000, 2000, 4000, 8000, 16000, 32000, 60000, 60000, 60000};
  EXPECT_EQ(got, want);
  EXPECT_EQ(b.attempts(), 10);
}

TEST(BackoffTest, StaysAtTheCapAfterVeryManyFailures) {
  FakeClock clock;
  Backoff b(NoJitter(), clock, 1);
  int64_t last = 0;
  for (int i = 0; i < 200; ++i) last = b.Failed();  // exponent well beyond 2^62
  EXPECT_EQ(last, 60'000);
}

TEST(BackoffTest, JitterKeepsEachDelayWithinItsWindow) {
  BackoffPolicy p = NoJitter();
  p.jitter = 0.3;
  for (uint64_t seed = 1; seed <= 50; ++seed) {
    FakeClock clock;
    Backoff b(p, clock, seed);
    int64_t base = p.initial_ms;
    for (int i = 0; i < 12; ++i) {
      int64_t d = b.Failed();
      EXPECT_LE(d, base) << "seed " << seed << " attempt " << i;
      EXPECT_GE(d, JitterFloor(base, p.jitter)) << "seed " << seed << " attempt " << i;
      base = std::min(base * 2, p.max_ms);
    }
  }
}

TEST(BackoffTest, JitterActuallySpreadsDelays) {
  // Many agents with different seeds must not all pick the same delay.
  BackoffPolicy p = NoJitter();
  p.jitter = 0.3;
  std::vector<int64_t> delays;
  for (uint64_t seed = 1; seed <= 20; ++seed) {
    FakeClock clock;
    Backoff b(p, clock, seed);
    for (int i = 0; i < 7; ++i) (void)b.Failed();
    delays.push_back(b.Failed());  // base 64000 -> capped 60000
  }
  std::sort(delays.begin(), delays.end());
  EXPECT_LT(delays.front(), delays.back());
  EXPECT_GE(delays.front(), 42'000);
  EXPECT_LE(delays.back(), 60'000);
}

TEST(BackoffTest, NotReadyUntilTheClockAdvancesByTheDelay) {
  FakeClock clock;
  BackoffPolicy p = NoJitter();
  p.jitter = 0.3;
  Backoff b(p, clock, 7);
  EXPECT_TRUE(b.ReadyNow()) << "a fresh backoff lets the first attempt go at once";
  int64_t d = b.Failed();
  ASSERT_GT(d, 0);
  EXPECT_FALSE(b.ReadyNow());
  EXPECT_EQ(b.MsUntilReady(), d);
  clock.Advance(milliseconds(d - 1));
  EXPECT_FALSE(b.ReadyNow());
  EXPECT_EQ(b.MsUntilReady(), 1);
  clock.Advance(milliseconds(1));
  EXPECT_TRUE(b.ReadyNow());
  EXPECT_EQ(b.MsUntilReady(), 0);
  clock.Advance(milliseconds(10'000));
  EXPECT_TRUE(b.ReadyNow());
  EXPECT_EQ(b.MsUntilReady(), 0);
}

TEST(BackoffTest, SucceededResetsToSmallDelays) {
  FakeClock clock;
  BackoffPolicy p = NoJitter();
  p.jitter = 0.3;
  Backoff b(p, clock, 3);
  int64_t big = 0;
  for (int i = 0; i < 9; ++i) big = b.Failed();
  EXPECT_GE(big, 42'000);
  EXPECT_FALSE(b.ReadyNow());
  b.Succeeded();
  EXPECT_EQ(b.attempts(), 0);
  EXPECT_TRUE(b.ReadyNow()) << "after a good session we may reconnect at once";
  int64_t next = b.Failed();
  EXPECT_LE(next, p.initial_ms);
  EXPECT_GE(next, JitterFloor(p.initial_ms, p.jitter));
}

// Regression test (fixed): the overloaded wait never undercuts overloaded_min.
TEST(BackoffTest, OverloadedWaitsAtLeastTheOverloadedMinimum) {
  BackoffPolicy p = NoJitter();
  p.jitter = 0.3;
  int64_t shortest = INT64_MAX, shortest_wait = INT64_MAX;
  for (uint64_t seed = 1; seed <= 20; ++seed) {
    FakeClock clock;
    Backoff b(p, clock, seed);
    shortest = std::min(shortest, b.Overloaded(/*retry_after_ms=*/0));
    shortest_wait = std::min(shortest_wait, b.MsUntilReady());
  }
  EXPECT_GE(shortest, p.overloaded_min_ms) << "shortest delay over 20 seeds";
  EXPECT_GE(shortest_wait, p.overloaded_min_ms) << "shortest wait over 20 seeds";
}

TEST(BackoffTest, OverloadedWithoutJitterWaitsAtLeastTheOverloadedMinimum) {
  FakeClock clock;
  Backoff b(NoJitter(), clock, 1);
  EXPECT_EQ(b.Overloaded(0), 15'000);
  EXPECT_FALSE(b.ReadyNow());
  clock.Advance(milliseconds(14'999));
  EXPECT_FALSE(b.ReadyNow());
  clock.Advance(milliseconds(1));
  EXPECT_TRUE(b.ReadyNow());
}

TEST(BackoffTest, OverloadedHonoursALongerRetryAfterDespiteJitter) {
  BackoffPolicy p = NoJitter();
  p.jitter = 0.3;
  for (uint64_t seed = 1; seed <= 20; ++seed) {
    FakeClock clock;
    Backoff b(p, clock, seed);
    int64_t d = b.Overloaded(/*retry_after_ms=*/40'000);
    EXPECT_GE(d, 40'000) << "seed " << seed;
    EXPECT_LE(d, 60'000) << "seed " << seed;
    clock.Advance(milliseconds(39'999));
    EXPECT_FALSE(b.ReadyNow()) << "seed " << seed;
  }
}

TEST(BackoffTest, OverloadedRetryAfterBeyondTheCapIsStillHonoured) {
  FakeClock clock;
  BackoffPolicy p = NoJitter();
  p.jitter = 0.3;
  Backoff b(p, clock, 5);
  int64_t d = b.Overloaded(/*retry_after_ms=*/120'000);
  EXPECT_EQ(d, 120'000);
  clock.Advance(milliseconds(119'999));
  EXPECT_FALSE(b.ReadyNow());
  clock.Advance(milliseconds(1));
  EXPECT_TRUE(b.ReadyNow());
}

// Issue 13: jitter that only shortened the delay was undone by the floor, so
// every agent told "overloaded, retry after 15 s" came back at 15 s exactly:
// a thundering herd that turned a 9 s drain into 38 s.
TEST(BackoffTest, AgentsTurnedAwayTogetherComeBackSpreadOverAWindow) {
  const BackoffPolicy p;  // the defaults the agent runs with
  constexpr int kAgents = 1000;
  std::vector<int64_t> delays;
  for (uint64_t seed = 1; seed <= kAgents; ++seed) {
    FakeClock clock;
    Backoff b(p, clock, seed);
    delays.push_back(b.Overloaded(/*retry_after_ms=*/15'000));
  }
  std::sort(delays.begin(), delays.end());
  EXPECT_GE(delays.front(), 15'000) << "never before the server's retry-after";
  EXPECT_LE(delays.back(), 30'000) << "within one floor's length after it";
  EXPECT_GE(delays.back() - delays.front(), 12'000) << "spread over the window";
  // No second of the window gets more than 2.5 times its share.
  std::vector<int> per_second(16, 0);
  for (int64_t d : delays) ++per_second[static_cast<size_t>((d - 15'000) / 1000)];
  const int most = *std::max_element(per_second.begin(), per_second.end());
  EXPECT_LE(most, kAgents / 15 * 5 / 2) << "the busiest second";
}

TEST(BackoffTest, OverloadedSpreadsOverTheWindowTheServerNames) {
  BackoffPolicy p;
  p.overloaded_min_ms = 1000;
  int64_t lo = INT64_MAX, hi = 0;
  for (uint64_t seed = 1; seed <= 200; ++seed) {
    FakeClock clock;
    Backoff b(p, clock, seed);
    const int64_t d = b.Overloaded(/*retry_after_ms=*/5000, /*spread_ms=*/2000);
    lo = std::min(lo, d);
    hi = std::max(hi, d);
    EXPECT_EQ(b.MsUntilReady(), d);
  }
  EXPECT_GE(lo, 5000);
  EXPECT_LE(hi, 7000);
  EXPECT_GE(hi - lo, 1500) << "200 agents use most of the 2 s window";
}

// A collector that schedules returning agents (it sends a spread) is
// followed even below the agent's own 15 s overloaded minimum: its slots are
// what makes 1,000 agents drain in seconds instead of all waiting 15 s.
TEST(BackoffTest, AScheduledReturnFollowsTheServersSlot) {
  const BackoffPolicy p;  // overloaded_min_ms = 15 s
  for (uint64_t seed = 1; seed <= 100; ++seed) {
    FakeClock clock;
    Backoff b(p, clock, seed);
    const int64_t d = b.Overloaded(/*retry_after_ms=*/1200, /*spread_ms=*/300);
    EXPECT_GE(d, 1200);
    EXPECT_LE(d, 1500);
  }
  FakeClock clock;
  Backoff b(p, clock, 7);
  EXPECT_GE(b.Overloaded(0, 100), Backoff::kMinScheduledMs) << "never straight back";
  EXPECT_LE(b.Overloaded(10'000'000, 100), p.max_ms + 100) << "at most the policy's cap";
  // The hint does not stop later failures from backing off harder.
  FakeClock c1, c2;
  BackoffPolicy nj = NoJitter();
  Backoff fresh(nj, c1, 1), told(nj, c2, 1);
  (void)told.Overloaded(300, 100);
  EXPECT_GT(told.Failed(), fresh.Failed());
}

TEST(BackoffTest, OverloadedGrowsHarderThanFailed) {
  BackoffPolicy p = NoJitter();
  p.overloaded_min_ms = 0;  // isolate the exponent from the floor
  FakeClock c1, c2;
  Backoff failed(p, c1, 1), overloaded(p, c2, 1);
  // The exponent jumps two steps per "overloaded" instead of one.
  EXPECT_EQ(failed.Failed(), 500);
  EXPECT_EQ(overloaded.Overloaded(0), 2000);
  EXPECT_EQ(failed.Failed(), 1000);
  EXPECT_EQ(overloaded.Overloaded(0), 8000);
  EXPECT_EQ(failed.Failed(), 2000);
  EXPECT_EQ(overloaded.Overloaded(0), 32000);
  EXPECT_EQ(overloaded.Overloaded(0), 60000);  // still capped
  // And a plain failure after being told "overloaded" stays large.
  FakeClock c3, c4;
  Backoff a(p, c3, 1), b(p, c4, 1);
  (void)a.Failed();
  (void)b.Overloaded(0);
  EXPECT_GT(b.Failed(), a.Failed());
}

// Issue 11: a collector whose storage is broken completes every handshake
// and fails the first batch. Such sessions must not reset the backoff, or
// the agent reconnects at the initial delay forever.
TEST(BackoffTest, ShortSessionsWithoutAnAckKeepTheBackoffGrowing) {
  FakeClock clock;
  BackoffPolicy p = NoJitter();
  p.healthy_after_ms = 10'000;
  Backoff b(p, clock, 1);
  std::vector<int64_t> got;
  for (int i = 0; i < 8; ++i) {
    b.SessionStarted();               // Welcome arrived
    clock.Advance(milliseconds(50));  // the first batch failed at once
    EXPECT_FALSE(b.SessionEnded(false)) << "session " << i;
    int64_t d = b.Failed();
    got.push_back(d);
    clock.Advance(milliseconds(d));
  }
  std::vector<int64_t> want = {500, 1000, 2000, 4000, 8000, 16000, 32000, 60000};
  EXPECT_EQ(got, want);
}

TEST(BackoffTest, ASessionThatLastedOrWasAcknowledgedResetsTheBackoff) {
  FakeClock clock;
  BackoffPolicy p = NoJitter();
  p.healthy_after_ms = 10'000;
  Backoff b(p, clock, 1);
  for (int i = 0; i < 5; ++i) (void)b.Failed();
  // Lasted long enough, nothing to send: healthy.
  b.SessionStarted();
  clock.Advance(milliseconds(9'999));
  Backoff copy = b;
  EXPECT_FALSE(copy.SessionEnded(false)) << "one millisecond short";
  clock.Advance(milliseconds(1));
  EXPECT_TRUE(b.SessionEnded(false));
  EXPECT_EQ(b.attempts(), 0);
  EXPECT_EQ(b.Failed(), p.initial_ms);
  // Short, but the collector acknowledged a batch: healthy too.
  for (int i = 0; i < 5; ++i) (void)b.Failed();
  b.SessionStarted();
  clock.Advance(milliseconds(20));
  EXPECT_TRUE(b.SessionEnded(true));
  EXPECT_EQ(b.Failed(), p.initial_ms);
  // SessionEnded without SessionStarted (no handshake) is never healthy.
  for (int i = 0; i < 3; ++i) (void)b.Failed();
  clock.Advance(milliseconds(60'000));
  EXPECT_FALSE(b.SessionEnded(false));
  EXPECT_EQ(b.attempts(), 4);
}

}  // namespace
}  // namespace setdiag
