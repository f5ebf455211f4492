#include "common/log_throttle.h"

#include <gtest/gtest.h>

namespace setdiag {
namespace {

TEST(LogThrottleTest, RepeatsWithinTheWindowAreCountedAndReportedWithTheNextLine) {
  LogThrottle t(10'000);
  uint64_t skipped = 99;
  EXPECT_TRUE(t.Allow("storage failed", 0, &skipped));
  EXPECT_EQ(skipped, 0u);
  for (int i = 1; i <= 14; ++i) EXPECT_FALSE(t.Allow("storage failed", i * 66, &skipped));
  EXPECT_TRUE(t.Allow("another error", 1'000, &skipped)) << "other lines are not held back";
  EXPECT_FALSE(t.Allow("storage failed", 9'999, &skipped));
  EXPECT_TRUE(t.Allow("storage failed", 10'000, &skipped));
  EXPECT_EQ(skipped, 15u);
  EXPECT_FALSE(t.Allow("storage failed", 10'001, &skipped));
}

TEST(LogThrottleTest, ManyDistinctKeysDoNotGrowWithoutBound) {
  LogThrottle t(10'000, 3);
  uint64_t skipped = 0;
  for (int i = 0; i < 10; ++i) EXPECT_TRUE(t.Allow("k" + std::to_string(i), 0, &skipped));
  EXPECT_TRUE(t.Allow("k0", 1, &skipped)) << "forgotten when the table was full: written again";
}

}  // namespace
}  // namespace setdiag
