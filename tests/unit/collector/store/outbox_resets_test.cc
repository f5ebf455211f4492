// What a corrupt agent outbox lost, as the collector records it
// (collector/store/outbox_resets.h), against a real SQLite file.

#include "collector/store/outbox_resets.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "collector/store/storage.h"
#include "collector/tickets/tickets.h"
#include "common/sqlite.h"
#include "temp_dir.h"

namespace setdiag::collector {
namespace {

using json = nlohmann::json;
using ::testing::HasSubstr;

constexpr int64_t kNow = 1'700'000'000'000;

json Reset(int64_t prev_next, const json& recovered_ranges, int64_t recovered_count) {
  return json{{"reason", "unreadable"},
              {"previous_outbox_id", "old"},
              {"previous_next_sequence", prev_next},
              {"recovered", {{"count", recovered_count}, {"sequences", recovered_ranges}}}};
}

TEST(OutboxResetGapTest, LostIsAfterTheCollectorsLastAndBeforeTheOldNextMinusWhatCameBack) {
  json gap = OutboxResetGap("a1", 50, Reset(151, json::parse("[[51,60],[70,150]]"), 91));
  EXPECT_EQ(gap["reason"], "outbox_reset");
  EXPECT_EQ(gap["count"], 9);
  EXPECT_EQ(gap["sequences"], json::parse("[[61,69]]"));
  EXPECT_EQ(gap["collector_last_committed_sequence"], 50);
  EXPECT_EQ(gap["recovered_count"], 91);
  EXPECT_THAT(gap["summary_en"].get<std::string>(),
              HasSubstr("9 event(s) among sequences 51..150 of outbox old"));
  EXPECT_FALSE(gap["summary_ru"].get<std::string>().empty());
}

TEST(OutboxResetGapTest, NothingRecoveredLosesTheWholeRangeAndAnUnknownEndIsSaid) {
  json all = OutboxResetGap("a1", 10, Reset(21, json::array(), 0));
  EXPECT_EQ(all["count"], 10);
  EXPECT_EQ(all["sequences"], json::parse("[[11,20]]"));
  // The old next sequence unreadable: the newest recovered one bounds it.
  json open_end = OutboxResetGap("a1", 10, Reset(0, json::parse("[[15,18]]"), 4));
  EXPECT_EQ(open_end["previous_next_sequence_known"], false);
  EXPECT_EQ(open_end["sequences"], json::parse("[[11,14]]"));
  EXPECT_THAT(open_end["summary_en"].get<std::string>(), HasSubstr("or more"));
  // Everything was stored before the reset: nothing lost.
  json none = OutboxResetGap("a1", 20, Reset(21, json::array(), 0));
  EXPECT_EQ(none["count"], 0);
  EXPECT_EQ(none["sequences"], json::array());
  // A collector that never saw the old outbox counts from 1.
  json unseen = OutboxResetGap("a1", -1, Reset(6, json::array(), 0));
  EXPECT_EQ(unseen["sequences"], json::parse("[[1,5]]"));
  EXPECT_EQ(unseen["collector_knew_outbox"], false);
}

TEST(OutboxResetGapTest, TheResetEventBecomesOneGapOnTheStoreAndATimelineEntry) {
  testutil::TempDir dir;
  auto db = sql::Db::Open(dir.File("c.db"));
  ASSERT_TRUE(db.ok());
  ASSERT_TRUE(InitSchema(*db).ok());
  ASSERT_TRUE(InitTicketSchema(*db).ok());
  auto token = CreateStoreToken(*db, "s1", "acme", kNow);
  ASSERT_TRUE(token.ok());
  // The old outbox had 30 events stored; the agent comes back with a new one.
  ASSERT_TRUE(RecordHello(*db, {"a1", "s1", "v", "old"}, 1, kNow).ok());
  std::vector<IncomingEvent> first;
  for (uint64_t s = 1; s <= 30; ++s) first.push_back({s, "test.x", 2, kNow, "{}"});
  ASSERT_TRUE(InsertEvents(*db, "a1", "s1", first, kNow).ok());
  {  // one open ticket of the store: every column zero or empty but these
    auto cols =
        db->Prepare("SELECT name, type FROM pragma_table_info('tickets') WHERE name != 'id'");
    ASSERT_TRUE(cols.ok());
    std::string names, values;
    while (true) {
      auto row = cols->Step();
      ASSERT_TRUE(row.ok());
      if (!*row) break;
      const std::string name = cols->Text(0);
      std::string v = cols->Text(1) == "INTEGER" ? "0" : "''";
      if (name == "store_id") v = "'s1'";
      if (name == "state") v = "'open'";
      if (name == "condition") v = "'tills'";
      names += (names.empty() ? "" : ",") + name;
      values += (values.empty() ? "" : ",") + v;
    }
    ASSERT_TRUE(db->Exec("INSERT INTO tickets(" + names + ") VALUES (" + values + ")").ok());
  }
  ASSERT_TRUE(RecordHello(*db, {"a1", "s1", "v", "new"}, 2, kNow).ok());
  std::vector<EventRow> added;
  json reset = Reset(41, json::parse("[[31,35]]"), 5);
  ASSERT_TRUE(InsertEvents(*db, "a1", "s1", {{31, "agent.outbox_reset", 3, kNow, reset.dump()}},
                           kNow, &added)
                  .ok());
  ASSERT_TRUE(RecordOutboxResetGaps(*db, "a1", "s1", added, kNow).ok());
  ASSERT_TRUE(RecordOutboxResetGaps(*db, "a1", "s1", added, kNow).ok())
      << "a replay changes nothing";
  User support{"u", "support", Role::kSupport, ""};
  auto events = ListEvents(*db, support, {"s1", "setdiag.gap", 0, 100});
  ASSERT_TRUE(events.ok());
  ASSERT_EQ(events->size(), 1u);
  EXPECT_EQ((*events)[0].agent_id, kCollectorAgentId);
  json gap = json::parse((*events)[0].payload);
  EXPECT_EQ(gap["collector_last_committed_sequence"], 30);
  EXPECT_EQ(gap["sequences"], json::parse("[[36,40]]"));
  EXPECT_EQ(gap["count"], 5);
  auto n = db->QueryInt("SELECT COUNT(*) FROM ticket_timeline WHERE type='gap'");
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(*n, 1);
}

}  // namespace
}  // namespace setdiag::collector
