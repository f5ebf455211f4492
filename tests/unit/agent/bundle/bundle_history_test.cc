// The agent's local history (agent/store/history.h): what the watches committed,
// kept 7 days for bundles, never in the outbox's way.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "agent/store/history.h"
#include "agent/store/outbox.h"
#include "agent/watches/findings.h"
#include "common/clock.h"
#include "temp_dir.h"

namespace setdiag::agent {
namespace {

using ::testing::ElementsAre;

constexpr int64_t kNow = 1'795'000'000'000;
constexpr int64_t kDay = 86'400'000;

std::vector<std::string> Kinds(HistoryStore& h, int64_t from, int64_t to) {
  std::vector<std::string> out;
  auto n = h.Scan(from, to, 1000, [&](const HistoryRecord& r) {
    out.push_back(r.kind);
    return true;
  });
  EXPECT_TRUE(n.ok()) << n.status();
  return out;
}

TEST(HistoryStoreTest, ScansAWindowOldestFirst) {
  testutil::TempDir dir;
  auto h = HistoryStore::Open(dir.File("history.db"));
  ASSERT_TRUE(h.ok()) << h.status();
  ASSERT_TRUE(
      (*h)->Append({0, 3, "b", Severity::kNormal, kNow - 1000, 0, "tills", "{}"}, kNow).ok());
  ASSERT_TRUE(
      (*h)->Append({0, 2, "a", Severity::kNormal, kNow - 2000, 0, "tills", "{}"}, kNow).ok());
  ASSERT_TRUE(
      (*h)->Append({0, 1, "old", Severity::kNormal, kNow - 2 * kDay, 0, "loading", "{}"}, kNow)
          .ok());
  EXPECT_THAT(Kinds(**h, kNow - kDay, kNow), ElementsAre("a", "b"));
  EXPECT_THAT(Kinds(**h, 0, kNow), ElementsAre("old", "a", "b"));
  std::vector<HistoryRecord> got;
  ASSERT_TRUE((*h)->Scan(0, kNow, 1,
                         [&](const HistoryRecord& r) {
                           got.push_back(r);
                           return true;
                         })
                  .ok());
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].component, "loading");
  EXPECT_EQ(got[0].seq, 1u);
  EXPECT_EQ(got[0].recorded_at_ms, kNow);
}

TEST(HistoryStoreTest, KeepsSevenDays) {
  testutil::TempDir dir;
  auto h = HistoryStore::Open(dir.File("history.db"));
  ASSERT_TRUE(h.ok());
  ASSERT_TRUE((*h)->Append({0, 1, "ancient", Severity::kInfo, kNow - 8 * kDay, 0, "", "{}"},
                           kNow - 8 * kDay)
                  .ok());
  ASSERT_TRUE(
      (*h)->Append({0, 2, "recent", Severity::kInfo, kNow - 6 * kDay, 0, "", "{}"}, kNow - 6 * kDay)
          .ok());
  // A write prunes (at most hourly): the 8-day-old row goes.
  ASSERT_TRUE((*h)->Append({0, 3, "now", Severity::kInfo, kNow, 0, "", "{}"}, kNow).ok());
  EXPECT_THAT(Kinds(**h, 0, kNow), ElementsAre("recent", "now"));
  auto pruned = (*h)->Prune(kNow + 2 * kDay);
  ASSERT_TRUE(pruned.ok());
  EXPECT_EQ(*pruned, 1);
  EXPECT_THAT(Kinds(**h, 0, kNow), ElementsAre("now"));
}

TEST(HistoryStoreTest, ReadOnlyNeverCreates) {
  testutil::TempDir dir;
  auto h = HistoryStore::Open(dir.File("history.db"), /*read_only=*/true);
  EXPECT_EQ(h.status().code(), absl::StatusCode::kNotFound);
  EXPECT_FALSE(std::filesystem::exists(dir.File("history.db")));
}

TEST(HistoryStoreTest, UnusableFileIsAnErrorAtOpen) {
  testutil::TempDir dir;
  testutil::WriteBytes(dir.File("history.db"), std::string(8192, 'x'));
  EXPECT_FALSE(HistoryStore::Open(dir.File("history.db")).ok());
}

TEST(HistoryStoreTest, CommitFindingsRecordsWhatTheOutboxTook) {
  testutil::TempDir dir;
  FakeClock clock(kNow);
  auto outbox = Outbox::Open(dir.File("outbox.db"), OutboxLimits{}, clock);
  auto h = HistoryStore::Open(dir.File("history.db"));
  ASSERT_TRUE(h.ok());
  std::vector<Finding> findings = {
      {"tills.majority_stopped", Severity::kCritical, kNow, {{"state", "raised"}}},
      {"bad kind!", Severity::kNormal, kNow, {{"state", "raised"}}},  // refused by the outbox
  };
  EXPECT_EQ(CommitFindings(*outbox, findings, "tills", h->get()), 1u);
  std::vector<HistoryRecord> got;
  ASSERT_TRUE((*h)->Scan(0, kNow, 10,
                         [&](const HistoryRecord& r) {
                           got.push_back(r);
                           return true;
                         })
                  .ok());
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].kind, "tills.majority_stopped");
  EXPECT_EQ(got[0].seq, 1u);
  EXPECT_EQ(got[0].severity, Severity::kCritical);
  EXPECT_EQ(got[0].component, "tills");
  EXPECT_EQ(nlohmann::json::parse(got[0].payload)["state"], "raised");
}

TEST(HistoryStoreTest, AFailingHistoryNeverBlocksTheOutbox) {
  testutil::TempDir dir;
  FakeClock clock(kNow);
  auto outbox = Outbox::Open(dir.File("outbox.db"), OutboxLimits{}, clock);
  auto h = HistoryStore::Open(dir.File("history.db"));
  ASSERT_TRUE(h.ok());
  // Another process holds the write lock longer than the history waits.
  auto blocker = sql::Db::Open(dir.File("history.db"));
  ASSERT_TRUE(blocker.ok());
  ASSERT_TRUE(blocker->Exec("BEGIN IMMEDIATE").ok());
  std::vector<Finding> findings = {
      {"loading.halted", Severity::kCritical, kNow, {{"state", "raised"}}}};
  EXPECT_EQ(CommitFindings(*outbox, findings, "loading", h->get()), 1u);
  EXPECT_EQ(outbox->Stats().depth, 1u);
  ASSERT_TRUE(blocker->Exec("ROLLBACK").ok());
  EXPECT_TRUE(Kinds(**h, 0, kNow).empty());
}

}  // namespace
}  // namespace setdiag::agent
