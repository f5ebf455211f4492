// The loading watch's decisions as tables on explicit timestamps.

#include "agent/detectors/loading_detector.h"

#include <gtest/gtest.h>

#include <ostream>
#include <set>

#include "agent/store/detector_state.h"

namespace setdiag::agent {

inline void PrintTo(const HeldEpisode& h, std::ostream* os) { *os << h.kind << " " << h.episode; }

namespace {

constexpr int64_t kT0 = 1'795'000'000'000;
constexpr int64_t kSec = 1000;
constexpr int64_t kMin = 60 * kSec;

LoadingPolicy Policy() {
  LoadingPolicy p;
  p.stuck_ms = 15 * kMin;
  p.inbox_age_ms = 15 * kMin;
  p.transport_lag_ms = 30 * kMin;
  p.erp_every_ms = 15 * kMin;
  p.server_confirm_ms = 30 * kSec;
  p.clear_ms = 60 * kSec;
  return p;
}

LoadingSnapshot Healthy(int64_t now) {
  LoadingSnapshot s;
  s.now_ms = now;
  s.server = {true, true, true, true, true, false};
  s.import_service_ok = true;
  s.erp_window_open = true;
  s.erp_window_opened_ms = now - 3600 * kSec;
  // A package imported correctly a minute ago keeps the ERP condition quiet.
  s.packages.push_back({"TI-ok", now - kMin, 3, "correct", "GOODS", ""});
  return s;
}

std::vector<std::string> Kinds(const std::vector<Finding>& f) {
  std::vector<std::string> out;
  for (const auto& x : f) out.push_back(x.kind + ":" + x.payload.value("state", ""));
  return out;
}

TEST(LoadingDetector, StuckPackageRaisesOnlyAfterTheThreshold) {
  LoadingDetector d(Policy(), "a");
  auto at = [&](int64_t now, int status) {
    LoadingSnapshot s = Healthy(now);
    s.packages.push_back({"TI-1", kT0, status, "in process", "GOODS", ""});
    return d.Evaluate(s);
  };
  EXPECT_TRUE(at(kT0 + 5 * kMin, 2).empty());
  EXPECT_EQ(d.NextDeadline(kT0 + 5 * kMin), kT0 + 15 * kMin + 1);
  EXPECT_TRUE(at(kT0 + 15 * kMin, 2).empty()) << "exactly at the threshold is not yet stuck";
  auto f = at(kT0 + 15 * kMin + 1, 2);
  ASSERT_EQ(Kinds(f), std::vector<std::string>{"loading.halted:raised"});
  EXPECT_EQ(f[0].severity, Severity::kCritical);
  EXPECT_EQ(f[0].payload["stuck_packages"][0]["ti"], "TI-1");
  EXPECT_EQ(f[0].payload["stuck_packages"][0]["since_ms"], kT0);
  EXPECT_EQ(f[0].payload["last_successful_import"]["ti"], "TI-ok");
  // Processed: cleared after the clear window.
  EXPECT_TRUE(at(kT0 + 16 * kMin, 3).empty());
  auto c = at(kT0 + 17 * kMin, 3);
  ASSERT_EQ(Kinds(c), std::vector<std::string>{"loading.halted:cleared"});
  EXPECT_EQ(c[0].payload["episode"], f[0].payload["episode"]);
}

TEST(LoadingDetector, APackageFinishingOneSecondBeforeTheThresholdRaisesNothing) {
  LoadingDetector d(Policy(), "a");
  std::vector<Finding> all;
  for (int64_t t = kT0; t <= kT0 + 20 * kMin; t += 10 * kSec) {
    LoadingSnapshot s = Healthy(t);
    int status = t < kT0 + 15 * kMin - kSec ? 2 : 3;
    s.packages.push_back({"TI-1", kT0, status, "", "GOODS", ""});
    auto f = d.Evaluate(s);
    all.insert(all.end(), f.begin(), f.end());
  }
  EXPECT_TRUE(all.empty()) << Kinds(all).front();
}

TEST(LoadingDetector, OldInboxFileAndDeadServiceWhileWaiting) {
  struct Case {
    int64_t file_age_ms;  // -1: no file
    bool service_ok;
    bool package_waiting;
    bool halted;
  };
  const Case cases[] = {
      {-1, true, false, false},       {10 * kMin, true, false, false},
      {16 * kMin, true, false, true},  // the server is not consuming files
      {-1, false, false, false},       // service dead, nothing waits: not loading halted
      {-1, false, true, true},         // service dead while a package waits
      {kMin, false, false, true},      // service dead while a file waits
  };
  LoadingPolicy p = Policy();
  p.service_confirm_ms = 0;  // its own test below
  for (const auto& c : cases) {
    LoadingDetector d(p, "a");
    LoadingSnapshot s = Healthy(kT0);
    s.import_service_ok = c.service_ok;
    if (c.file_age_ms >= 0) {
      s.inboxes.push_back({"/var/lib/jboss/products/source", true, "", 1, kT0 - c.file_age_ms,
                           "catalog-goods_1.xml"});
    }
    if (c.package_waiting) s.packages.push_back({"TI-w", kT0 - kMin, 2, "", "GOODS", ""});
    auto f = d.Evaluate(s);
    EXPECT_EQ(!f.empty(), c.halted)
        << c.file_age_ms << " " << c.service_ok << " " << c.package_waiting;
    if (c.halted) {
      EXPECT_EQ(f[0].kind, "loading.halted");
      EXPECT_FALSE(f[0].payload["reasons"].empty());
    }
  }
}

TEST(LoadingDetector, TheErpIsAllowedToBeQuietOutsideItsWindow) {
  LoadingDetector d(Policy(), "a");
  // Last package at kT0; the window closed at kT0 + 1 min and reopens at
  // kT0 + 8 h. No alarm overnight; the cadence counts from the opening.
  std::vector<Finding> all;
  const int64_t opens = kT0 + 8 * 3600 * kSec;
  for (int64_t t = kT0 + 2 * kMin; t < opens; t += 5 * kMin) {
    LoadingSnapshot s = Healthy(t);
    s.packages = {{"TI-last", kT0, 3, "", "GOODS", ""}};
    s.erp_window_open = false;
    auto f = d.Evaluate(s);
    all.insert(all.end(), f.begin(), f.end());
  }
  EXPECT_TRUE(all.empty());
  for (int64_t t = opens; t <= opens + 15 * kMin; t += kMin) {
    LoadingSnapshot s = Healthy(t);
    s.packages = {{"TI-last", kT0, 3, "", "GOODS", ""}};
    s.erp_window_opened_ms = opens;
    EXPECT_TRUE(d.Evaluate(s).empty()) << (t - opens) / kMin;
  }
  LoadingSnapshot s = Healthy(opens + 15 * kMin + 1);
  s.packages = {{"TI-last", kT0, 3, "", "GOODS", ""}};
  s.erp_window_opened_ms = opens;
  auto f = d.Evaluate(s);
  ASSERT_EQ(Kinds(f), std::vector<std::string>{"loading.erp_silent:raised"});
  EXPECT_EQ(f[0].severity, Severity::kImportant);
}

TEST(LoadingDetector, UnreadableDatabaseIsUnknownNotHalted) {
  LoadingDetector d(Policy(), "a");
  std::vector<Finding> all;
  for (int64_t t = kT0; t <= kT0 + 60 * kMin; t += kMin) {
    LoadingSnapshot s = Healthy(t);
    s.db_ok = false;
    s.packages.clear();  // nothing could be read
    s.transport.clear();
    auto f = d.Evaluate(s);
    all.insert(all.end(), f.begin(), f.end());
  }
  EXPECT_TRUE(all.empty()) << Kinds(all).front();
}

TEST(LoadingDetector, TransportHaltedWhenMostTillsLag) {
  struct Case {
    int lagging;
    int mothballed;
    bool halted;
  };
  const Case cases[] = {{10, 0, false}, {11, 0, true}, {6, 10, true}, {5, 10, false}};
  for (const auto& c : cases) {
    LoadingDetector d(Policy(), "a");
    LoadingSnapshot s = Healthy(kT0);
    for (int till = 1; till <= 20; ++till) {
      TransportObservation t;
      t.till = till;
      t.expected = till > c.mothballed;
      bool lag = till > c.mothballed && till <= c.mothballed + c.lagging;
      t.last_load_ms = lag ? kT0 - 31 * kMin : kT0 - kMin;
      t.not_loaded = lag ? 3 : 0;
      if (!t.expected) t.not_loaded = 5;  // mothballed tills never load: not counted
      s.transport.push_back(t);
    }
    auto f = d.Evaluate(s);
    EXPECT_EQ(!f.empty(), c.halted) << c.lagging << "/" << c.mothballed;
    if (c.halted) {
      EXPECT_EQ(f[0].kind, "loading.transport_halted");
      EXPECT_EQ(f[0].payload["lagging"], c.lagging);
      EXPECT_EQ(f[0].payload["expected"], 20 - c.mothballed);
    }
  }
}

TEST(LoadingDetector, LagCountsFromTheOldestWaitingFileNotTheLastLoad) {
  LoadingPolicy p = Policy();
  p.erp_every_ms = 0;  // only transport here
  LoadingDetector d(p, "a");
  LoadingSnapshot s = Healthy(kT0);
  // Nothing to load for hours, then a new file a second ago: not late.
  for (int till = 1; till <= 20; ++till) {
    TransportObservation t;
    t.till = till;
    t.last_load_ms = kT0 - 5 * 3600 * kSec;
    t.not_loaded = 1;
    t.oldest_pending_ms = kT0 - kSec;
    s.transport.push_back(t);
  }
  EXPECT_TRUE(d.Evaluate(s).empty());
  EXPECT_EQ(d.NextDeadline(kT0), kT0 - kSec + 30 * kMin + 1);
  s.now_ms = kT0 - kSec + 30 * kMin + 1;
  auto f = d.Evaluate(s);
  ASSERT_EQ(f.size(), 1u);
  EXPECT_EQ(f[0].payload["lagging"], 20);
}

// A halted transport whose query stops fitting (a SET upgrade drops a
// column, a second shop appears) is unknown, not delivered: it is not
// cleared until the tills are seen taking their goods again.
TEST(LoadingDetector, AHaltedTransportThatCannotBeReadIsNotCleared) {
  LoadingPolicy p = Policy();
  p.erp_every_ms = 0;
  LoadingDetector d(p, "a");
  auto lagging = [&](int64_t now) {
    LoadingSnapshot s = Healthy(now);
    for (int till = 1; till <= 20; ++till) {
      TransportObservation t;
      t.till = till;
      t.not_loaded = 1;
      t.oldest_pending_ms = kT0;
      s.transport.push_back(t);
    }
    return s;
  };
  d.Evaluate(lagging(kT0));
  auto raised = d.Evaluate(lagging(kT0 + 30 * kMin + 1));
  ASSERT_EQ(Kinds(raised), std::vector<std::string>{"loading.transport_halted:raised"});
  std::vector<Finding> all;
  for (int64_t t = kT0 + 31 * kMin; t <= kT0 + 60 * kMin; t += 10 * kSec) {
    LoadingSnapshot s = Healthy(t);
    s.transport_unknown = true;  // no observations
    auto f = d.Evaluate(s);
    all.insert(all.end(), f.begin(), f.end());
  }
  EXPECT_TRUE(all.empty()) << ::testing::PrintToString(Kinds(all));
  // Seen delivered again: cleared after the clear window, in its episode.
  auto delivered = [&](int64_t now) {
    LoadingSnapshot s = lagging(now);
    for (auto& t : s.transport) t.not_loaded = 0;
    return d.Evaluate(s);
  };
  EXPECT_TRUE(delivered(kT0 + 61 * kMin).empty());
  auto cleared = delivered(kT0 + 62 * kMin + 1);
  ASSERT_EQ(Kinds(cleared), std::vector<std::string>{"loading.transport_halted:cleared"});
  EXPECT_EQ(cleared[0].payload["episode"], raised[0].payload["episode"]);
}

TEST(LoadingDetector, ANightlyPriceFileIsNotLateWhileTheStoreIsClosed) {
  LoadingPolicy p = Policy();
  p.erp_every_ms = 0;
  LoadingDetector d(p, "a");
  auto snapshot = [&](int64_t now, bool open) {
    LoadingSnapshot s = Healthy(now);
    s.tills_expected = open;
    for (int till = 1; till <= 20; ++till) {
      TransportObservation t;
      t.till = till;
      t.last_load_ms = kT0 - 3600 * kSec;
      t.not_loaded = 1;
      t.oldest_pending_ms = kT0;  // a price file at night, tills switched off
      s.transport.push_back(t);
    }
    return s;
  };
  for (int64_t t = kT0; t <= kT0 + 8 * 3600 * kSec; t += 10 * kMin) {
    EXPECT_TRUE(d.Evaluate(snapshot(t, false)).empty());
  }
  // Morning: the tills get the transport threshold from the opening.
  const int64_t open = kT0 + 8 * 3600 * kSec + kMin;
  EXPECT_TRUE(d.Evaluate(snapshot(open, true)).empty());
  EXPECT_TRUE(d.Evaluate(snapshot(open + 30 * kMin, true)).empty());
  auto f = d.Evaluate(snapshot(open + 30 * kMin + 1, true));
  ASSERT_EQ(Kinds(f), std::vector<std::string>{"loading.transport_halted:raised"});
}

// The reason names the PostgreSQL port the agent probed (server.port_db,
// which follows set_db.port), not always 5432.
TEST(LoadingDetector, AClosedDatabasePortIsNamedByItsNumber) {
  LoadingDetector d(Policy(), "a");
  auto down = [&](int64_t now) {
    LoadingSnapshot s = Healthy(now);
    s.server.port_5432 = false;
    s.server.db_port = 6432;
    return d.Evaluate(s);
  };
  EXPECT_TRUE(down(kT0).empty());
  auto f = down(kT0 + 30 * kSec);
  ASSERT_EQ(Kinds(f), std::vector<std::string>{"set.server_down:raised"});
  EXPECT_NE(f[0].payload.dump().find("port 6432 (PostgreSQL) is closed"), std::string::npos)
      << f[0].payload.dump();
  EXPECT_EQ(f[0].payload.dump().find("5432 (PostgreSQL)"), std::string::npos)
      << f[0].payload.dump();
}

TEST(LoadingDetector, ServerDownAfterTheConfirmWindow) {
  LoadingDetector d(Policy(), "a");
  auto down = [&](int64_t now) {
    LoadingSnapshot s = Healthy(now);
    s.server.port_8090 = false;
    return d.Evaluate(s);
  };
  EXPECT_TRUE(down(kT0).empty());
  EXPECT_TRUE(down(kT0 + 29 * kSec).empty());
  auto f = down(kT0 + 30 * kSec);
  ASSERT_EQ(Kinds(f), std::vector<std::string>{"set.server_down:raised"});
  EXPECT_EQ(f[0].severity, Severity::kImportant);
  // A full disk is a reason too.
  LoadingDetector d2(Policy(), "a");
  LoadingSnapshot s = Healthy(kT0);
  s.disks.push_back({"/", 100 * 1024 * 1024, uint64_t{100} * 1024 * 1024 * 1024});
  d2.Evaluate(s);
  s.now_ms += 31 * kSec;
  auto g = d2.Evaluate(s);
  ASSERT_EQ(g.size(), 1u);
  EXPECT_NE(g[0].payload["reasons"][0].get<std::string>().find("nearly full"), std::string::npos);
}

TEST(LoadingDetector, TheImportServiceCountsAsDeadOnlyAfterItsConfirmWindow) {
  LoadingPolicy p = Policy();
  p.service_confirm_ms = 2 * kMin;
  LoadingDetector d(p, "a");
  auto at = [&](int64_t now) {
    LoadingSnapshot s = Healthy(now);
    s.import_service_ok = false;
    s.packages.push_back({"TI-w", now - kSec, 2, "", "GOODS", ""});  // always a fresh one waiting
    return d.Evaluate(s);
  };
  EXPECT_TRUE(at(kT0).empty()) << "one failed check is not an outage";
  EXPECT_TRUE(at(kT0 + kMin).empty());
  auto f = at(kT0 + 2 * kMin);
  ASSERT_EQ(Kinds(f), std::vector<std::string>{"loading.halted:raised"});
}

TEST(LoadingDetector, FilesPilingUpCountEvenWithoutTheDatabaseWhichNeverClears) {
  LoadingDetector d(Policy(), "a");
  LoadingSnapshot s = Healthy(kT0);
  s.db_ok = false;
  s.packages.clear();
  s.inboxes.push_back({"/in", true, "", 3, kT0 - 16 * kMin, "catalog-goods_1.xml"});
  ASSERT_EQ(Kinds(d.Evaluate(s)), std::vector<std::string>{"loading.halted:raised"});
  // Files gone, database still unreadable: packages may still be stuck.
  s.inboxes.clear();
  for (int64_t t = kT0 + kMin; t <= kT0 + 10 * kMin; t += kMin) {
    s.now_ms = t;
    EXPECT_TRUE(d.Evaluate(s).empty());
  }
  s.db_ok = true;
  s.packages = {{"TI-ok", kT0 + 9 * kMin, 3, "", "GOODS", ""}};
  d.Evaluate(s);
  s.now_ms += 2 * kMin;
  ASSERT_EQ(Kinds(d.Evaluate(s)), std::vector<std::string>{"loading.halted:cleared"});
}

TEST(LoadingDetector, MaintenanceRaisesNothingAndClearsWhatIsActive) {
  LoadingDetector d(Policy(), "a");
  LoadingSnapshot s = Healthy(kT0);
  s.server.port_8090 = false;  // JBoss being restarted by the engineer
  s.maintenance = true;
  for (int64_t t = kT0; t <= kT0 + 10 * kMin; t += 10 * kSec) {
    s.now_ms = t;
    EXPECT_TRUE(d.Evaluate(s).empty());
  }
  // A package the engineer's work broke is noted, not reported.
  s.packages.push_back({"TI-during", s.now_ms - kSec, 5, "internal error", "GOODS", "restart"});
  EXPECT_TRUE(d.Evaluate(s).empty());
  s.maintenance = false;
  s.now_ms += kMin;
  d.Evaluate(s);
  s.now_ms += kMin;
  ASSERT_EQ(Kinds(d.Evaluate(s)), std::vector<std::string>{"set.server_down:raised"});
}

TEST(LoadingDetector, ImportErrorsAreReportedOnceWithMessagesAndClearedByASuccess) {
  LoadingDetector d(Policy(), "a");
  LoadingSnapshot s = Healthy(kT0);
  s.packages.push_back(
      {"TI-bad1", kT0 - 10 * kSec, 4, "invalid item", "GOODS", "item 4711: price is negative"});
  auto f = d.Evaluate(s);
  ASSERT_EQ(Kinds(f), std::vector<std::string>{"loading.import_errors:raised"});
  EXPECT_EQ(f[0].severity, Severity::kNormal);
  EXPECT_EQ(f[0].payload["failed_packages"][0]["message"], "item 4711: price is negative");
  s.now_ms += kMin;
  EXPECT_TRUE(d.Evaluate(s).empty()) << "the same failure is not reported twice";
  s.packages.push_back(
      {"TI-bad2", kT0 + 30 * kSec, 5, "internal error", "GOODS", "NullPointerException"});
  auto g = d.Evaluate(s);
  ASSERT_EQ(Kinds(g), std::vector<std::string>{"loading.import_errors:updated"});
  s.packages.push_back({"TI-good", kT0 + 2 * kMin, 3, "correct", "GOODS", ""});
  s.now_ms = kT0 + 3 * kMin;
  auto h = d.Evaluate(s);
  ASSERT_EQ(Kinds(h), std::vector<std::string>{"loading.import_errors:cleared"});
}

// --- Restarts: the state a new process restores ---

nlohmann::json Persisted(const LoadingDetector& d) {
  return nlohmann::json::parse(d.ExportState().dump());
}

TEST(LoadingDetectorRestart, ARestoredHaltClearsWithItsEpisodeOrStaysWhileItHolds) {
  auto stuck = [](int64_t now, int status) {
    LoadingSnapshot s = Healthy(now);
    s.packages.push_back({"TI-1", kT0, status, "in process", "GOODS", ""});
    return s;
  };
  LoadingDetector d1(Policy(), "agent-1");
  auto raised = d1.Evaluate(stuck(kT0 + 15 * kMin + 1, 2));
  ASSERT_EQ(Kinds(raised), std::vector<std::string>{"loading.halted:raised"});
  const std::string episode = raised[0].payload["episode"];
  EXPECT_EQ(HeldEpisodesOf(d1.ExportState()),
            (std::vector<HeldEpisode>{{"loading.halted", episode}}));
  const nlohmann::json state = Persisted(d1);

  {  // Processed while the agent restarted: cleared after the clear window.
    LoadingDetector d2(Policy(), "agent-1");
    ASSERT_TRUE(d2.RestoreState(state).ok());
    EXPECT_TRUE(d2.Evaluate(stuck(kT0 + 16 * kMin, 3)).empty());
    auto f = d2.Evaluate(stuck(kT0 + 17 * kMin, 3));
    ASSERT_EQ(Kinds(f), std::vector<std::string>{"loading.halted:cleared"});
    EXPECT_EQ(f[0].payload["episode"], episode);
    EXPECT_TRUE(HeldEpisodesOf(d2.ExportState()).empty());
  }
  {  // Still stuck: not raised again; cleared in the same episode later.
    LoadingDetector d2(Policy(), "agent-1");
    ASSERT_TRUE(d2.RestoreState(state).ok());
    for (int64_t t = kT0 + 16 * kMin; t <= kT0 + 40 * kMin; t += kMin) {
      auto f = d2.Evaluate(stuck(t, 2));
      EXPECT_TRUE(f.empty()) << Kinds(f).front();
    }
    EXPECT_TRUE(d2.Evaluate(stuck(kT0 + 41 * kMin, 3)).empty());
    auto f = d2.Evaluate(stuck(kT0 + 42 * kMin, 3));
    ASSERT_EQ(Kinds(f), std::vector<std::string>{"loading.halted:cleared"});
    EXPECT_EQ(f[0].payload["episode"], episode);
  }
}

TEST(LoadingDetectorRestart, ReportedImportErrorsAreNotReportedAgainAndClearInTheirEpisode) {
  LoadingDetector d1(Policy(), "agent-1");
  LoadingSnapshot s = Healthy(kT0);
  s.packages.push_back(
      {"TI-bad1", kT0 - 10 * kSec, 4, "invalid item", "GOODS", "item 4711: price is negative"});
  auto f = d1.Evaluate(s);
  ASSERT_EQ(Kinds(f), std::vector<std::string>{"loading.import_errors:raised"});
  const std::string episode = f[0].payload["episode"];

  LoadingDetector d2(Policy(), "agent-1");
  ASSERT_TRUE(d2.RestoreState(Persisted(d1)).ok());
  s.now_ms += kMin;
  auto again = d2.Evaluate(s);
  EXPECT_TRUE(again.empty()) << "reported before the restart: " << Kinds(again).front();
  s.packages.push_back(
      {"TI-bad2", kT0 + 30 * kSec, 5, "internal error", "GOODS", "NullPointerException"});
  auto g = d2.Evaluate(s);
  ASSERT_EQ(Kinds(g), std::vector<std::string>{"loading.import_errors:updated"});
  EXPECT_EQ(g[0].payload["episode"], episode);
  ASSERT_EQ(g[0].payload["failed_packages"].size(), 1u);
  s.packages.push_back({"TI-good", kT0 + 2 * kMin, 3, "correct", "GOODS", ""});
  s.now_ms = kT0 + 3 * kMin;
  auto h = d2.Evaluate(s);
  ASSERT_EQ(Kinds(h), std::vector<std::string>{"loading.import_errors:cleared"});
  EXPECT_EQ(h[0].payload["episode"], episode);
}

TEST(LoadingDetectorRestart, ARestoredConditionNoLongerWatchedClears) {
  // Transport and the ERP cadence were watched by the previous process;
  // after the restart they are not (configuration changed).
  const nlohmann::json state = {
      {"version", 1},
      {"conditions",
       {{"loading.transport_halted",
         {{"episode", "agent-1-loading.transport_halted-1"}, {"since_ms", kT0 - kMin}}},
        {"loading.erp_silent",
         {{"episode", "agent-1-loading.erp_silent-2"}, {"since_ms", kT0 - kMin}}}}},
      {"held", nlohmann::json::array()}};
  LoadingPolicy p = Policy();
  p.erp_every_ms = 0;
  LoadingDetector d(p, "agent-1");
  ASSERT_TRUE(d.RestoreState(state).ok());
  EXPECT_EQ(HeldEpisodesOf(d.ExportState()).size(), 2u);
  EXPECT_TRUE(d.Evaluate(Healthy(kT0)).empty());
  auto f = d.Evaluate(Healthy(kT0 + kMin));
  std::set<std::string> kinds;
  for (const auto& x : f) {
    EXPECT_EQ(x.payload["state"], "cleared") << x.kind;
    kinds.insert(x.kind);
  }
  EXPECT_EQ(kinds, (std::set<std::string>{"loading.transport_halted", "loading.erp_silent"}));
  EXPECT_TRUE(HeldEpisodesOf(d.ExportState()).empty());
}

TEST(LoadingDetectorRestart, AMalformedStateIsRefused) {
  using nlohmann::json;
  const json bad[] = {
      json::array(),
      json{{"version", 7}},
      json{{"version", 1}, {"conditions", {{"loading.halted", {{"since_ms", 1}}}}}},
      json{{"version", 1}, {"reported_failures", {1}}},
  };
  for (const auto& b : bad) {
    LoadingDetector d(Policy(), "a");
    EXPECT_EQ(d.RestoreState(b).code(), absl::StatusCode::kInvalidArgument) << b.dump();
    EXPECT_TRUE(HeldEpisodesOf(d.ExportState()).empty());
  }
  LoadingDetector d(Policy(), "a");
  d.Evaluate(Healthy(kT0));
  EXPECT_EQ(d.RestoreState(json{{"version", 1}}).code(), absl::StatusCode::kFailedPrecondition);
}

}  // namespace
}  // namespace setdiag::agent

// Sources of the loading watch that need no SET server.
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "agent/watches/loading_watch.h"

namespace setdiag::agent {
namespace {

TEST(LoadingSources, AServiceThatAcceptsAndNeverAnswersIsCutByTheTimeout) {
  // A listening socket nobody reads: the TCP handshake completes, no answer.
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(listen(fd, 4), 0);
  socklen_t len = sizeof addr;
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  std::string url = "http://127.0.0.1:" + std::to_string(ntohs(addr.sin_port)) + "/x?wsdl";
  auto st = CheckWsdl(url, 200);
  EXPECT_EQ(st.code(), absl::StatusCode::kUnavailable) << st;
  EXPECT_NE(std::string(st.message()).find("timed out"), std::string::npos) << st;
  close(fd);
}

TEST(LoadingSources, DailyWindowParsing) {
  int a = 0, b = 0;
  EXPECT_TRUE(ParseDailyWindow("06:00-23:00", &a, &b));
  EXPECT_EQ(a, 360);
  EXPECT_EQ(b, 1380);
  EXPECT_TRUE(ParseDailyWindow("00:00-24:00", &a, &b));
  for (const char* bad : {"", "6-23", "23:00-06:00", "06:00", "25:00-26:00", "06:60-07:00"}) {
    EXPECT_FALSE(ParseDailyWindow(bad, &a, &b)) << bad;
  }
}

TEST(LoadingSources, AnInboxThatCannotBeListedIsReportedNotFatal) {
  InboxObservation in = LoadingWatch::ListInbox("/nonexistent/setdiag/inbox", "*.xml");
  EXPECT_FALSE(in.readable);
  EXPECT_FALSE(in.error.empty());
  EXPECT_EQ(in.files, 0);
}

}  // namespace
}  // namespace setdiag::agent
