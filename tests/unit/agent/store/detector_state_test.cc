// The store of the detectors' raised conditions (agent/store/detector_state.h) on
// a real SQLite file, and one restart cycle through it.

#include "agent/store/detector_state.h"

#include <gtest/gtest.h>

#include <ostream>
#include <string>
#include <vector>

#include "agent/detectors/till_detector.h"
#include "agent/store/maintenance.h"
#include "common/sqlite.h"
#include "temp_dir.h"

namespace setdiag::agent {

inline void PrintTo(const HeldEpisode& h, std::ostream* os) { *os << h.kind << " " << h.episode; }

namespace {

using json = nlohmann::json;

json TillState(const std::string& episode) {
  return json{{"version", 1},
              {"episode", episode},
              {"majority", {{"onset_ms", 5}}},
              {"held", {{{"kind", "tills.majority_stopped"}, {"episode", episode}}}}};
}

int64_t SavedMs(const std::string& path, const std::string& detector) {
  auto db = sql::Db::Open(path);
  EXPECT_TRUE(db.ok());
  auto stmt = db->Prepare("SELECT saved_ms FROM detector_state WHERE detector = ?1");
  EXPECT_TRUE(stmt.ok());
  stmt->Bind(1, detector);
  auto row = stmt->Step();
  EXPECT_TRUE(row.ok() && *row);
  return stmt->Int(0);
}

TEST(DetectorStateStore, SavesLoadsAndForgetsAcrossReopening) {
  testutil::TempDir dir;
  const std::string path = dir.File("state.db");
  {
    auto store = DetectorStateStore::Open(path);
    ASSERT_TRUE(store.ok()) << store.status();
    auto none = (*store)->Load("tills");
    ASSERT_TRUE(none.ok());
    EXPECT_FALSE(none->has_value());
    auto held = (*store)->HeldEpisodes();
    ASSERT_TRUE(held.ok());
    EXPECT_TRUE(held->empty());
    ASSERT_TRUE((*store)->Save("tills", TillState("ep-1"), 1000).ok());
    ASSERT_TRUE((*store)->Save("tills", TillState("ep-2"), 2000).ok());  // replaces
    json loading = {
        {"version", 1},
        {"conditions", json::object()},
        {"held",
         {{{"kind", "loading.halted"}, {"episode", "ep-L"}}, {{"kind", ""}, {"episode", "x"}}}}};
    ASSERT_TRUE((*store)->Save("loading", loading, 2000).ok());
    EXPECT_EQ((*store)->Save("tills", json::array(), 3000).code(),
              absl::StatusCode::kInvalidArgument);
  }
  // The maintenance windows live in the same file.
  ASSERT_TRUE(MaintenanceStore::Open(path).ok());
  auto store = DetectorStateStore::Open(path);
  ASSERT_TRUE(store.ok());
  auto loaded = (*store)->Load("tills");
  ASSERT_TRUE(loaded.ok() && loaded->has_value());
  EXPECT_EQ(**loaded, TillState("ep-2"));
  auto held = (*store)->HeldEpisodes();
  ASSERT_TRUE(held.ok());
  EXPECT_EQ(*held, (std::vector<HeldEpisode>{{"loading.halted", "ep-L"},
                                             {"tills.majority_stopped", "ep-2"}}));
  ASSERT_TRUE((*store)->Forget("loading").ok());
  ASSERT_TRUE((*store)->Forget("loading").ok());  // nothing to forget is fine
  held = (*store)->HeldEpisodes();
  ASSERT_TRUE(held.ok());
  EXPECT_EQ(*held, (std::vector<HeldEpisode>{{"tills.majority_stopped", "ep-2"}}));
}

TEST(DetectorStateStore, ARowThatIsNotJsonIsDataLossNotAGuess) {
  testutil::TempDir dir;
  const std::string path = dir.File("state.db");
  auto store = DetectorStateStore::Open(path);
  ASSERT_TRUE(store.ok());
  {
    auto db = sql::Db::Open(path);
    ASSERT_TRUE(db.ok());
    ASSERT_TRUE(db->Exec("INSERT INTO detector_state VALUES ('tills', '{not json', 1)").ok());
  }
  auto loaded = (*store)->Load("tills");
  EXPECT_EQ(loaded.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(loaded.status().message().find("tills"), std::string::npos) << loaded.status();
  // Held episodes are then unknown, not "none" (the collector would resolve
  // everything the agent still holds).
  EXPECT_EQ((*store)->HeldEpisodes().status().code(), absl::StatusCode::kDataLoss);
  // The keeper starts afresh and overwrites it at the first save.
  DetectorStateKeeper keeper(*store, "tills", "tills");
  EXPECT_FALSE(keeper.Load().has_value());
  keeper.Update(TillState("ep-3"), 5000, 0);
  EXPECT_FALSE(keeper.failing());
  auto held = (*store)->HeldEpisodes();
  ASSERT_TRUE(held.ok());
  EXPECT_EQ(held->size(), 1u);
}

TEST(DetectorStateKeeper, SavesOnlyChangesAndSurvivesAFailingDatabase) {
  testutil::TempDir dir;
  const std::string path = dir.File("state.db");
  auto store = DetectorStateStore::Open(path);
  ASSERT_TRUE(store.ok());
  DetectorStateKeeper keeper(*store, "tills", "tills", /*retry_ms=*/10'000);
  EXPECT_FALSE(keeper.Load().has_value());
  keeper.Update(TillState("ep-1"), 1000, 0);
  keeper.Update(TillState("ep-1"), 2000, 1000);  // unchanged: no write
  EXPECT_EQ(SavedMs(path, "tills"), 1000);
  keeper.Update(TillState("ep-2"), 3000, 2000);
  EXPECT_EQ(SavedMs(path, "tills"), 3000);

  // The table goes away under the agent (another process, a broken disk):
  // the save fails, is logged, and the watch goes on.
  {
    auto db = sql::Db::Open(path);
    ASSERT_TRUE(db.ok());
    ASSERT_TRUE(db->Exec("DROP TABLE detector_state").ok());
  }
  keeper.Update(TillState("ep-3"), 4000, 3000);
  EXPECT_TRUE(keeper.failing());
  // Meanwhile the stored episodes are stale: the Hello must not claim them.
  EXPECT_EQ((*store)->HeldEpisodes().status().code(), absl::StatusCode::kFailedPrecondition);
  ASSERT_TRUE(DetectorStateStore::Open(path).ok());  // the table is back
  keeper.Update(TillState("ep-3"), 5000, 4000);      // same state, before the retry time
  EXPECT_TRUE(keeper.failing());
  keeper.Update(TillState("ep-3"), 14000, 13000);  // retried
  EXPECT_FALSE(keeper.failing());
  EXPECT_EQ(SavedMs(path, "tills"), 14000);
  auto held = (*store)->HeldEpisodes();
  ASSERT_TRUE(held.ok()) << held.status();
  EXPECT_EQ(*held, (std::vector<HeldEpisode>{{"tills.majority_stopped", "ep-3"}}));
  // A change is tried at once, whatever the retry time.
  {
    auto db = sql::Db::Open(path);
    ASSERT_TRUE(db->Exec("DROP TABLE detector_state").ok());
  }
  keeper.Update(TillState("ep-4"), 15000, 14000);
  EXPECT_TRUE(keeper.failing());
  ASSERT_TRUE(DetectorStateStore::Open(path).ok());
  keeper.Update(TillState("ep-5"), 16000, 15000);
  EXPECT_FALSE(keeper.failing());
  EXPECT_EQ(SavedMs(path, "tills"), 16000);
}

TEST(DetectorStateStore, ARestartThroughTheStoreClearsTheRestoredCondition) {
  testutil::TempDir dir;
  const std::string path = dir.File("state.db");
  constexpr int64_t kT0 = 1'795'000'000'000;
  constexpr int64_t kSec = 1000;
  TillWatchPolicy policy;
  policy.heartbeat_timeout_ms = 10 * kSec;
  policy.confirm_ms = 5 * kSec;
  policy.clear_ms = 5 * kSec;
  std::vector<TillObservation> tills(3);
  for (int i = 0; i < 3; ++i) {
    tills[static_cast<size_t>(i)].number = i + 1;
    tills[static_cast<size_t>(i)].last_heartbeat_ms = kT0;
  }
  auto at = [&](int64_t now) {
    TillSnapshot s;
    s.now_ms = now;
    s.tills = tills;
    return s;
  };
  std::string episode;
  {  // The first process raises and saves.
    auto store = DetectorStateStore::Open(path);
    ASSERT_TRUE(store.ok());
    DetectorStateKeeper keeper(*store, "tills", "tills");
    TillDetector d(policy, "agent-1");
    for (int64_t t = kT0; t <= kT0 + 20 * kSec; t += kSec) {
      for (const auto& f : d.Evaluate(at(t))) {
        if (f.payload["state"] == "raised") episode = f.payload["episode"];
      }
      keeper.Update(d.ExportState(), t, t);
    }
    ASSERT_FALSE(episode.empty());
  }
  // The second one restores, sees the tills up and clears the same episode.
  auto store = DetectorStateStore::Open(path);
  ASSERT_TRUE(store.ok());
  auto held = (*store)->HeldEpisodes();
  ASSERT_TRUE(held.ok());
  EXPECT_EQ(*held, (std::vector<HeldEpisode>{{"tills.majority_stopped", episode}}));
  DetectorStateKeeper keeper(*store, "tills", "tills");
  auto previous = keeper.Load();
  ASSERT_TRUE(previous.has_value());
  TillDetector d(policy, "agent-1");
  ASSERT_TRUE(d.RestoreState(*previous).ok());
  std::vector<Finding> found;
  for (int64_t t = kT0 + 30 * kSec; t <= kT0 + 40 * kSec; t += kSec) {
    for (auto& x : tills) x.last_heartbeat_ms = t;
    auto f = d.Evaluate(at(t));
    found.insert(found.end(), f.begin(), f.end());
    keeper.Update(d.ExportState(), t, t);
  }
  ASSERT_EQ(found.size(), 1u);
  EXPECT_EQ(found[0].payload["state"], "cleared");
  EXPECT_EQ(found[0].payload["episode"], episode);
  held = (*store)->HeldEpisodes();
  ASSERT_TRUE(held.ok());
  EXPECT_TRUE(held->empty()) << "the cleared condition is no longer held";
}

}  // namespace
}  // namespace setdiag::agent
