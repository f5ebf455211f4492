// Overloaded answers spread the agents they turn away over the time the
// writer needs for them (collector/link/retry_schedule.h).

#include "collector/link/retry_schedule.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

namespace setdiag::collector {
namespace {

constexpr double kRate = 100'000;  // events per second

TEST(RetryScheduleTest, AgentsTurnedAwayTogetherGetConsecutiveSlots) {
  RetrySchedule s;
  const int64_t now = 1'000'000;
  // Nothing queued: the first agent may come back at once (after the
  // minimum), each next one when the previous one's 1,000 events are in
  // (10 ms at 100,000/s).
  std::vector<RetrySchedule::Hint> hints;
  for (int i = 0; i < 5; ++i) hints.push_back(s.Next(now, 0, 1'000, kRate));
  EXPECT_EQ(hints[0].retry_after_ms, RetrySchedule::kMinDelayMs);
  for (size_t i = 1; i < hints.size(); ++i) {
    EXPECT_EQ(hints[i].retry_after_ms, hints[i - 1].retry_after_ms + 10)
        << "slot " << i << " follows slot " << i - 1;
  }
  for (const auto& h : hints)
    EXPECT_EQ(h.spread_ms, 100u) << "a 10 ms slot, scattered over at least 100 ms";
  // 1,000 agents with 1,000 events each: back over 10 s, the time the
  // writer needs for their million events, not all at one instant.
  RetrySchedule herd;
  RetrySchedule::Hint last;
  for (int i = 0; i < 1000; ++i) last = herd.Next(now, 0, 1'000, kRate);
  EXPECT_EQ(last.retry_after_ms, RetrySchedule::kMinDelayMs + 999 * 10);
}

TEST(RetryScheduleTest, TheFirstSlotWaitsForRoomForTheAgent) {
  RetrySchedule s;
  // 200,000 queued at 100,000/s; the agent brings 50,000: room for it in 0.5 s.
  auto first = s.Next(0, 200'000, 50'000, kRate);
  EXPECT_EQ(first.retry_after_ms, 500u);
  EXPECT_EQ(first.spread_ms, 500u) << "50,000 events at 100,000/s";
  // Later, with the queue empty, the slot already handed out still counts.
  EXPECT_EQ(s.Next(100, 0, 10, kRate).retry_after_ms, 900u) << "the previous slot ends at 1,000 ms";
  // Once every slot has passed, an agent may return at once.
  EXPECT_EQ(s.Next(10'000, 0, 10, kRate).retry_after_ms, RetrySchedule::kMinDelayMs);
}

TEST(RetryScheduleTest, DelaysAndSlotsAreBounded) {
  RetrySchedule s;
  auto h = s.Next(0, 100'000'000, 100'000'000, 1'000);
  EXPECT_EQ(h.retry_after_ms, RetrySchedule::kMaxDelayMs)
      << "asked again then, not told to wait a day";
  EXPECT_EQ(h.spread_ms, RetrySchedule::kMaxSlotMs);
  // Past the cap the horizon stays where it is: the overflow is scattered
  // over the longest slot and scheduled behind everyone when it asks again.
  RetrySchedule busy;
  RetrySchedule::Hint in_time;
  for (int i = 0; i < 200; ++i) in_time = busy.Next(0, 0, 500'000, kRate);  // 5 s slots
  EXPECT_EQ(in_time.retry_after_ms, RetrySchedule::kMaxDelayMs)
      << "the 13th and later are past the cap";
  EXPECT_EQ(in_time.spread_ms, RetrySchedule::kMaxSlotMs);
  EXPECT_EQ(busy.Next(50'000, 0, 1'000, kRate).retry_after_ms, 10'250u)
      << "behind the 12 slots handed out before the cap, which end at 60.25 s";
  // A backlog of 2^64 - 1 (a Hello whose numbers are odd) is still bounded.
  auto odd = RetrySchedule().Next(0, UINT64_MAX, UINT64_MAX, 1.0);
  EXPECT_EQ(odd.retry_after_ms, RetrySchedule::kMaxDelayMs);
  RetrySchedule zero_rate;
  auto z = zero_rate.Next(0, 10, 10, 0.0);
  EXPECT_GE(z.retry_after_ms, RetrySchedule::kMinDelayMs)
      << "a rate of 0 is read as 1/s, not a division by 0";
  EXPECT_LE(z.retry_after_ms, RetrySchedule::kMaxDelayMs);
}

}  // namespace
}  // namespace setdiag::collector
