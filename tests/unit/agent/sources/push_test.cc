// The heartbeat push format: what is accepted and what is turned away.

#include <gtest/gtest.h>

#include "agent/sources/push_receiver.h"

namespace setdiag::agent {
namespace {

TEST(PushHeartbeat, ParsesTheDocumentedFormat) {
  EXPECT_EQ(*ParseHeartbeat(R"({"store":"1042","till":7})", "1042"), 7);
  EXPECT_EQ(*ParseHeartbeat(R"({"store":"1042","till":7,"ts_ms":1795731411731})", "1042"), 7);
  EXPECT_EQ(*ParseHeartbeat(R"({"store":1042,"till":3})", "1042"), 3);
}

TEST(PushHeartbeat, RejectsGarbageWithAReason) {
  const char* bad[] = {"",
                       "garbage",
                       "\xff\xfe\x00\x01",
                       "[]",
                       R"({"till":7})",
                       R"({"store":"1042"})",
                       R"({"store":"1042","till":"7"})",
                       R"({"store":"1042","till":0})",
                       R"({"store":"1042","till":-3})",
                       R"({"store":"1042","till":1e9})",
                       R"({"store":["1042"],"till":1})"};
  for (const char* b : bad) {
    auto r = ParseHeartbeat(b, "1042");
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << b;
  }
  EXPECT_EQ(ParseHeartbeat(R"({"store":"9999","till":7})", "1042").status().code(),
            absl::StatusCode::kFailedPrecondition);
  std::string huge = R"({"store":"1042","till":7,"pad":")" + std::string(600, 'x') + R"("})";
  EXPECT_EQ(ParseHeartbeat(huge, "1042").status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(PushHeartbeat, BoardKeepsTheLatestArrivalPerTill) {
  HeartbeatBoard board;
  board.Record(1, 100);
  board.Record(1, 50);  // the clock stepped back: this arrival is still the latest
  board.Record(2, 70);
  auto snap = board.Snapshot();
  EXPECT_EQ(snap[1], 50);
  EXPECT_EQ(snap[2], 70);
}

}  // namespace
}  // namespace setdiag::agent
